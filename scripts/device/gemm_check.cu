// The wgmma c_fc + activation kernel (gemm_wgmma.cu) on its own, against what it replaces: cuBLASLt's c_fc (the
// engine's plan: fp16 in and out, fp32 accumulation, no bias) followed by the engine's bias_gelu pass (vit_kernels.cu),
// both as shipped. It checks the fused output against that pair element by element (the two round the same fp32 sums
// to 16 bits, summed in a different order: they may differ by a rounding step of the pre-activation), then times
// both at the MLP shapes of ViT-L-14 and ViT-B-16 at batch 256, short (20 calls) and sustained (about 3 s each, so
// a power-capped card is compared at the clock it holds). Built with nvcc on the GPU machine (or anywhere, then run
// there):
//   nvcc -O3 -gencode arch=compute_90a,code=sm_90a -std=c++17 -DCLIPSERVE_F16 -DCLIPSERVE_GEMM_VARIANTS \
//     -o /tmp/gemm_check scripts/device/gemm_check.cu -lcublasLt
//   /tmp/gemm_check [--check | --sanitize]   (--check: no timings; --sanitize: small shapes, the shipped kernel and
//   the one without clusters, for compute-sanitizer: scripts/device/gemm_bench.sh SANITIZE=1)
// Exits non-zero when an output is off by more than two 16-bit rounding steps of the pair's value.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>
#include <cublasLt.h>
#include "../../Sources/CUDABackend/Kernels/activation.cu"
#include "../../Sources/CUDABackend/Kernels/vit_kernels.cu"
#include "../../Sources/CUDABackend/Kernels/attention_mma.cu"
#include "../../Sources/CUDABackend/Kernels/small_batch.cu"
// The files are empty unless the target has wgmma (__CUDA_ARCH_FEAT_SM90_ALL, which NVRTC sets for sm_90a); nvcc's
// passes need the kernels whatever they define (the host pass for their launch stubs), and this harness is built
// for sm_90a only.
#ifndef __CUDA_ARCH_FEAT_SM90_ALL
#define __CUDA_ARCH_FEAT_SM90_ALL
#endif
#include "../../Sources/CUDABackend/Kernels/attention_wgmma.cu"
#include "../../Sources/CUDABackend/Kernels/gemm_wgmma.cu"

#define CHECK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e_)); exit(2); } } while (0)
#define LT(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { printf("%s: status %d\n", #x, (int)s_); exit(2); } } while (0)

static float half_to_float(unsigned short h) {
    const unsigned s = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
    const float v = e == 0 ? std::ldexp((float)m, -24) : std::ldexp((float)(m | 1024), (int)e - 25);
    return s ? -v : v;
}

static unsigned state = 2024;
static float uniform() { state = state * 1664525u + 1013904223u; return ((state >> 8) + 0.5f) / 16777216.f; }

// Random 16-bit values in [-scale, scale], made on the GPU from a hash (65,792 x 1,024 is too many for a host loop).
__global__ void fill_random(u16 *out, long count, float scale, unsigned seed) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < count; i += (long)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 15; h *= 2246822519u; h ^= h >> 13; h *= 3266489917u; h ^= h >> 16;
        const float v = scale * (2.f * ((h >> 8) + 0.5f) / 16777216.f - 1.f);
        unsigned short bits;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(v));
        out[i] = bits;
    }
}

static PFN_cuTensorMapEncodeTiled_v12000 encodeTiled;

// A row-major 16-bit matrix read in boxes of boxRows x 64 with the 128-byte swizzle wgmma reads.
static TensorMap tensor_map(const void *address, long rows, long columns, int boxRows) {
    TensorMap map;
    cuuint64_t dims[2] = {(cuuint64_t)columns, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)columns * 2};
    cuuint32_t box[2] = {64, (cuuint32_t)boxRows}, elementStrides[2] = {1, 1};
    const CUresult r = encodeTiled((CUtensorMap *)&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, (void *)address, dims, strides,
                                   box, elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                   CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) { printf("cuTensorMapEncodeTiled: %d\n", (int)r); exit(2); }
    return map;
}

struct Lt {
    cublasLtHandle_t handle;
    void *workspace;
    size_t workspaceBytes = 32u << 20;
};

// cuBLASLt's c_fc as the engine plans it: Y [m, n] (row-major) = X [m, k] · W [n, k]ᵀ, fp16, fp32 compute. Times the
// heuristic's first `candidates` algorithms once and keeps the fastest (the engine times candidates too).
struct Plan {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
};

static Plan plan(Lt &lt, long m, long n, long k, const u16 *x, const u16 *w, u16 *y, cudaStream_t stream) {
    Plan p;
    LT(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t transA = CUBLAS_OP_T, transB = CUBLAS_OP_N;
    LT(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &transA, sizeof transA));
    LT(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &transB, sizeof transB));
    LT(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16F, k, n, k));  // W: column-major k x n
    LT(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16F, k, m, k));  // X: column-major k x m
    LT(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_16F, n, m, n));  // Y: column-major n x m
    cublasLtMatmulPreference_t pref;
    LT(cublasLtMatmulPreferenceCreate(&pref));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt.workspaceBytes, sizeof lt.workspaceBytes));
    cublasLtMatmulHeuristicResult_t results[8];
    int found = 0;
    LT(cublasLtMatmulAlgoGetHeuristic(lt.handle, p.op, p.a, p.b, p.c, p.c, pref, 8, results, &found));
    const float alpha = 1.f, beta = 0.f;
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    float best = 1e30f;
    for (int i = 0; i < found; i++) {
        for (int r = 0; r < 3; r++)
            LT(cublasLtMatmul(lt.handle, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &results[i].algo, lt.workspace, lt.workspaceBytes, stream));
        CHECK(cudaEventRecord(e0, stream));
        for (int r = 0; r < 10; r++)
            LT(cublasLtMatmul(lt.handle, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &results[i].algo, lt.workspace, lt.workspaceBytes, stream));
        CHECK(cudaEventRecord(e1, stream));
        CHECK(cudaEventSynchronize(e1));
        float ms;
        CHECK(cudaEventElapsedTime(&ms, e0, e1));
        if (ms < best) best = ms, p.algo = results[i].algo;
    }
    int tile = 0, stages = 0, cluster = 0, id = 0;
    cublasLtMatmulAlgoConfigGetAttribute(&p.algo, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, nullptr);
    cublasLtMatmulAlgoConfigGetAttribute(&p.algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, nullptr);
    cublasLtMatmulAlgoConfigGetAttribute(&p.algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, nullptr);
    cublasLtMatmulAlgoConfigGetAttribute(&p.algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &cluster, sizeof cluster, nullptr);
    printf("  cuBLASLt: %d candidates, fastest %.4f ms a call (algo %d, tile id %d, stages id %d, cluster shape id %d)\n",
           found, best / 10, id, tile, stages, cluster);
    return p;
}

static void run_lt(Lt &lt, Plan &p, const u16 *x, const u16 *w, u16 *y, cudaStream_t stream) {
    const float alpha = 1.f, beta = 0.f;
    LT(cublasLtMatmul(lt.handle, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo, lt.workspace, lt.workspaceBytes, stream));
}

typedef void (*GemmKernel)(const TensorMap, const TensorMap, u16 *, const float *, int, int, int, int);

struct Fused {
    const char *name;
    GemmKernel kernel;
    int cluster, sharedBytes;
    bool activation;  // false: bias only (the main loop's ceiling), not compared
    int threads;
};

static int multiprocessors;

// A persistent grid: as many CTAs (clusters) as can be resident at once, or one per tile (pair of tiles) if fewer.
// With clusters of two not every SM can hold one (a GPC with an odd count of free SMs leaves one over), so the
// count comes from the occupancy API: a grid one cluster larger would run a second wave for that cluster alone.
static void run_fused(const Fused &f, const TensorMap &mx, const TensorMap &mw, u16 *y, const float *bias, int m, int n,
                      int k, cudaStream_t stream, int quick = 0) {
    const int units = ((m + 127) / 128 + f.cluster - 1) / f.cluster * (n / 256);
    cudaLaunchConfig_t config = {};
    config.blockDim = dim3(f.threads);
    config.dynamicSmemBytes = f.sharedBytes;
    config.stream = stream;
    cudaLaunchAttribute attribute[1];
    attribute[0].id = cudaLaunchAttributeClusterDimension;
    attribute[0].val.clusterDim.x = f.cluster;
    attribute[0].val.clusterDim.y = 1;
    attribute[0].val.clusterDim.z = 1;
    config.attrs = attribute;
    config.numAttrs = 1;
    config.gridDim = dim3(multiprocessors / f.cluster * f.cluster);
    int resident = 0;
    CHECK(cudaOccupancyMaxActiveClusters(&resident, f.kernel, &config));
    static bool told[8];
    if (!told[f.cluster]) told[f.cluster] = true, printf("  clusters of %d: %d resident at once\n", f.cluster, resident);
    config.gridDim = dim3(std::min(units, resident) * f.cluster);
    CHECK(cudaLaunchKernelEx(&config, f.kernel, mx, mw, y, bias, m, n, k, quick));
}

static void run_bias_gelu(u16 *h, const float *bias, long m, int n, cudaStream_t stream, int quick = 0) {
    bias_gelu_f16<<<(unsigned)std::min<long>(m, multiprocessors * 32), 128, 0, stream>>>((f16_t *)h, bias, m, n, quick);
}

// Milliseconds a call: `calls` calls, or as many as fit in `seconds` (then at least 20).
template <typename F> static double time_calls(F f, cudaStream_t stream, int calls, double seconds) {
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    for (int i = 0; i < 3; i++) f();
    CHECK(cudaStreamSynchronize(stream));
    if (seconds > 0) {  // size the run from one timed batch of 20
        CHECK(cudaEventRecord(e0, stream));
        for (int i = 0; i < 20; i++) f();
        CHECK(cudaEventRecord(e1, stream));
        CHECK(cudaEventSynchronize(e1));
        float ms;
        CHECK(cudaEventElapsedTime(&ms, e0, e1));
        calls = std::max(20, (int)(seconds * 1000 / (ms / 20)));
    }
    CHECK(cudaEventRecord(e0, stream));
    for (int i = 0; i < calls; i++) f();
    CHECK(cudaEventRecord(e1, stream));
    CHECK(cudaEventSynchronize(e1));
    float ms;
    CHECK(cudaEventElapsedTime(&ms, e0, e1));
    CHECK(cudaGetLastError());
    return ms / calls;
}

// One shape: checks every fused kernel against cuBLASLt + bias_gelu, then times them. Returns whether all match.
static bool shape(const char *name, Lt &lt, const std::vector<Fused> &kernels, int m, int n, int k, bool timed,
                  cudaStream_t stream, int quick = 0) {
    printf("%s: m %d, n %d, k %d\n", name, m, n, k);
    u16 *x, *w, *ref, *out;
    float *bias;
    CHECK(cudaMalloc(&x, (size_t)m * k * 2));
    CHECK(cudaMalloc(&w, (size_t)n * k * 2));
    CHECK(cudaMalloc(&ref, (size_t)m * n * 2));
    CHECK(cudaMalloc(&out, (size_t)m * n * 2));
    CHECK(cudaMalloc(&bias, n * 4));
    fill_random<<<1024, 256, 0, stream>>>(x, (long)m * k, 1.f, 17);
    fill_random<<<1024, 256, 0, stream>>>(w, (long)n * k, 0.06f, 29);  // pre-activations of about ±1
    std::vector<float> hostBias(n);
    for (auto &v : hostBias) v = 0.5f * (2.f * uniform() - 1.f);
    CHECK(cudaMemcpy(bias, hostBias.data(), n * 4, cudaMemcpyHostToDevice));
    Plan p = plan(lt, m, n, k, x, w, ref, stream);
    run_lt(lt, p, x, w, ref, stream);
    run_bias_gelu(ref, bias, m, n, stream, quick);
    CHECK(cudaStreamSynchronize(stream));
    CHECK(cudaGetLastError());
    std::vector<unsigned short> hostRef((size_t)m * n), hostOut((size_t)m * n);
    CHECK(cudaMemcpy(hostRef.data(), ref, hostRef.size() * 2, cudaMemcpyDeviceToHost));
    const TensorMap mx = tensor_map(x, m, k, 128), mw = tensor_map(w, n, k, 128);
    bool ok = true;
    for (const Fused &f : kernels) {
        if (!f.activation) continue;
        CHECK(cudaMemset(out, 0xff, (size_t)m * n * 2));  // NaNs: an element never written fails
        run_fused(f, mx, mw, out, bias, m, n, k, stream, quick);
        CHECK(cudaStreamSynchronize(stream));
        CHECK(cudaGetLastError());
        CHECK(cudaMemcpy(hostOut.data(), out, hostOut.size() * 2, cudaMemcpyDeviceToHost));
        long equal = 0, bad = 0;
        double worst = 0;
        for (size_t i = 0; i < hostOut.size(); i++) {
            if (hostOut[i] == hostRef[i]) { equal++; continue; }
            const double a = half_to_float(hostOut[i]), b = half_to_float(hostRef[i]), d = std::fabs(a - b);
            // two 16-bit rounding steps of the larger value (fp16 has 11 significant bits), and 1e-4 near zero
            const double allowed = std::max(1e-4, 2 * std::ldexp(1.0, (int)std::floor(std::log2(std::max(std::fabs(b), 1e-30))) - 10));
            if (!(d <= allowed)) { if (bad < 5) printf("    [%zu] row %zu col %zu: %g against %g\n", i, i / n, i % n, a, b); bad++; }
            if (std::isnan(a)) worst = 1e9; else worst = std::max(worst, d);
        }
        const bool pass = bad == 0;
        ok &= pass;
        printf("  %s %-28s equal %.4f%%, largest difference %.3g, beyond two rounding steps: %ld\n", pass ? "PASS" : "FAIL",
               f.name, 100.0 * equal / hostOut.size(), worst, bad);
    }
    if (timed) {
        const double flop = 2.0 * m * n * k;
        for (double seconds : {0.0, 3.0}) {
            const char *how = seconds > 0 ? "sustained" : "20 calls";
            const double gemm = time_calls([&] { run_lt(lt, p, x, w, ref, stream); }, stream, 20, seconds);
            const double pass = time_calls([&] { run_bias_gelu(ref, bias, m, n, stream); }, stream, 20, seconds);
            const double both = time_calls([&] { run_lt(lt, p, x, w, ref, stream); run_bias_gelu(ref, bias, m, n, stream); }, stream, 20, seconds);
            printf("  %-9s cuBLASLt c_fc %.4f ms (%.0f TFLOP/s) + bias_gelu %.4f ms; together %.4f ms\n", how, gemm,
                   flop / gemm * 1e-9, pass, both);
            for (const Fused &f : kernels) {
                        const double fused = time_calls([&] { run_fused(f, mx, mw, out, bias, m, n, k, stream); }, stream, 20, seconds);
                printf("  %-9s %-28s %.4f ms (%.0f TFLOP/s), %.3fx the pair\n", how, f.name, fused, flop / fused * 1e-9, both / fused);
            }
        }
    }
    cudaFree(x); cudaFree(w); cudaFree(ref); cudaFree(out); cudaFree(bias);
    return ok;
}

int main(int argc, char **argv) {
    setvbuf(stdout, nullptr, _IONBF, 0);  // every line out before a crash under a sanitizer
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    multiprocessors = prop.multiProcessorCount;
    printf("%s, %d SMs\n", prop.name, multiprocessors);
    cudaDriverEntryPointQueryResult query;
    CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", (void **)&encodeTiled, 12000, cudaEnableDefault, &query));
    const int shared = GemmShape<3>::sharedBytes;
    std::vector<Fused> kernels = {
        {"fused (as shipped)", gemm_activation_f16, 2, shared, true, 384},
        {"fused, no cluster", gemm_activation_c1_f16, 1, shared, true, 384},
        {"bias only (main-loop ceiling)", gemm_bias_only_f16, 2, shared, false, 384}};
    for (const Fused &f : kernels) CHECK(cudaFuncSetAttribute(f.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, f.sharedBytes));
    Lt lt;
    LT(cublasLtCreate(&lt.handle));
    CHECK(cudaMalloc(&lt.workspace, lt.workspaceBytes));
    cudaStream_t stream;
    CHECK(cudaStreamCreate(&stream));
    bool ok = true;
    // --check: every shape, untimed. --sanitize: the kernels with and without clusters on small shapes, erf GELU and
    // QuickGELU (for compute-sanitizer).
    const bool sanitize = argc > 1 && strcmp(argv[1], "--sanitize") == 0;
    const bool timed = argc < 2;
    if (sanitize) {  // the kernel without clusters first: what it shares with the shipped one is checked even where a
                     // tool cannot run clusters
        kernels = {kernels[1], kernels[0]};
        ok &= shape("rows past the last whole tile, an odd count of m-tiles", lt, kernels, 1100, 768, 256, false, stream);
        ok &= shape("the same, QuickGELU", lt, kernels, 1100, 768, 256, false, stream, 1);
        ok &= shape("more tiles than clusters", lt, kernels, 9000, 1024, 512, false, stream);
        printf(ok ? "all PASS\n" : "FAILED\n");
        return ok ? 0 : 1;
    }
    ok &= shape("rows past the last whole tile, an odd count of m-tiles", lt, kernels, 1100, 768, 256, false, stream);
    ok &= shape("the same, QuickGELU", lt, kernels, 1100, 768, 256, false, stream, 1);
    ok &= shape("ViT-B-16 MLP, batch 256 (197 tokens)", lt, kernels, 256 * 197, 3072, 768, timed, stream);
    ok &= shape("ViT-L-14 MLP, batch 256 (257 tokens)", lt, kernels, 256 * 257, 4096, 1024, timed, stream);
    printf(ok ? "all PASS\n" : "FAILED\n");
    return ok ? 0 : 1;
}
