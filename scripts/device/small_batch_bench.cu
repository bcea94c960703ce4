// Times the small-batch kernels (Sources/CUDABackend/Kernels/small_batch.cu) alone, at ViT-B-32 batch-1 shapes, with
// nvcc on the GPU machine: `nvcc -O3 -arch=sm_90 -DCLIPSERVE_F16 -o /tmp/sbb scripts/device/small_batch_bench.cu`.
// Each case is 200 back-to-back launches captured in a CUDA graph; prints µs per launch. Variants isolate the
// phases: row statistics only, staging only, the full kernels, with and without programmatic launch.
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>
#define CLIPSERVE_PHASE_TIMES 1
#include "../../Sources/CUDABackend/Kernels/attention_mma.cu"
#include "../../Sources/CUDABackend/Kernels/small_batch.cu"

#define CHECK(x) do { cudaError_t status_ = (x); if (status_ != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(status_)); exit(1); } } while (0)

// Phase probes, built from the same device functions.
extern "C" __global__ void __launch_bounds__(256) probe_stage(const u16 *weight, int K, int N) {
    extern __shared__ __align__(16) unsigned char probeShared[];
    u16 *w = (u16 *)probeShared;
    stage_rows(w, weight + (long)blockIdx.x * 32 * K, K, 0, K, 32, 32);
    asm volatile("cp.async.commit_group;");
    asm volatile("cp.async.wait_group 0;" ::: "memory");
    __syncthreads();
}
extern "C" __global__ void __launch_bounds__(256) probe_mma(const u16 *weight, u16 *out, int K) {
    extern __shared__ __align__(16) unsigned char probeShared[];
    u16 *a = (u16 *)probeShared, *w = a + 64 * (K + 8);
    float acc[4][4] = {};
    const int warp = threadIdx.x >> 5, half = (warp >> 2) * (K >> 1);
    warp_tile_mma<0>(acc, a + (warp & 3) * 16 * (K + 8) + half, w + half, K >> 1, K + 8);
    if (acc[0][0] == 123.f) out[threadIdx.x] = 1;
}
extern "C" __global__ void __launch_bounds__(256) probe_stats(float *out, int K) {
    extern __shared__ __align__(16) unsigned char probeShared[];
    float *mean = (float *)((u16 *)probeShared + 64 * (K + 8));
    tile_row_stats<0>((const u16 *)probeShared, K + 8, K, 1e-5f, mean, mean + 64, 0, 1);  // all 64 rows
    if (mean[threadIdx.x & 63] == 123.f) out[threadIdx.x] = 1.f;
}
extern "C" __global__ void __launch_bounds__(256) empty_kernel() {}

template <typename F> float time_graph(cudaStream_t s, F launch, int n = 200) {
    cudaGraph_t g; cudaGraphExec_t e;
    CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < n; i++) launch();
    CHECK(cudaStreamEndCapture(s, &g));
    CHECK(cudaGraphInstantiate(&e, g, 0));
    CHECK(cudaGraphLaunch(e, s));
    CHECK(cudaStreamSynchronize(s));
    cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
    cudaEventRecord(a, s);
    for (int r = 0; r < 5; r++) CHECK(cudaGraphLaunch(e, s));
    cudaEventRecord(b, s);
    CHECK(cudaEventSynchronize(b));
    float ms; cudaEventElapsedTime(&ms, a, b);
    cudaGraphExecDestroy(e); cudaGraphDestroy(g);
    return ms * 1000 / (5 * n);
}

template <typename... KArgs, typename... Args>
void launch(bool pdl, dim3 cluster, void (*k)(KArgs...), dim3 grid, int shared, cudaStream_t s, Args... args) {
    cudaLaunchConfig_t c = {};
    c.gridDim = grid; c.blockDim = dim3(256); c.dynamicSmemBytes = shared; c.stream = s;
    cudaLaunchAttribute at[2];
    int n = 0;
    if (pdl) {
        at[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[n++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster.x * cluster.y * cluster.z > 1) {
        at[n].id = cudaLaunchAttributeClusterDimension;
        at[n].val.clusterDim.x = cluster.x; at[n].val.clusterDim.y = cluster.y; at[n++].val.clusterDim.z = cluster.z;
    }
    c.attrs = at; c.numAttrs = n;
    CHECK(cudaLaunchKernelEx(&c, k, args...));
}

int main() {
    const int rows = 50, W = 768, MW = 3072;
    cudaStream_t s; CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    float *x, *sums, *bias; u16 *wq, *wfc, *wproj, *out, *act, *x16;
    CHECK(cudaMalloc(&x, 64 * 4 * W * 4)); CHECK(cudaMalloc(&x16, 64 * 4 * W * 2)); CHECK(cudaMalloc(&sums, MW * 4));
    CHECK(cudaMalloc(&bias, MW * 4));
    CHECK(cudaMalloc(&wq, 3 * W * W * 2)); CHECK(cudaMalloc(&wfc, MW * W * 2)); CHECK(cudaMalloc(&wproj, W * MW * 2));
    CHECK(cudaMalloc(&out, 256 * MW * 2)); CHECK(cudaMalloc(&act, 256 * MW * 2));
    cudaMemset(x, 0, 64 * 4 * W * 4); cudaMemset(x16, 0, 64 * 4 * W * 2); cudaMemset(sums, 0, MW * 4); cudaMemset(bias, 0, MW * 4);
    cudaMemset(wq, 0, 3 * W * W * 2); cudaMemset(wfc, 0, MW * W * 2);
    cudaMemset(wproj, 0, W * MW * 2); cudaMemset(act, 0, 256 * MW * 2);
    int maxShared = 0; cudaDeviceGetAttribute(&maxShared, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0);
    for (auto f : {(const void *)ln_linear_f16, (const void *)linear_residual_f16, (const void *)probe_stage, (const void *)probe_mma, (const void *)probe_stats})
        CHECK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, maxShared));
    const int lnShared = 96 * (W + 8) * 2 + 8192 + 512 + 8;
    float eps = 1e-5f;
    printf("empty kernel            %7.2f us\n", time_graph(s, [&] { launch(false, dim3(1), empty_kernel, dim3(1), 0, s); }));
    for (int pdl = 0; pdl < 2; pdl++) {
        printf("-- pdl %d\n", pdl);
        for (int c : {1, 2, 4, 8}) {
            printf("ln_linear qkv  (72) c%d  %7.2f us\n", c, time_graph(s, [&] { launch(pdl, dim3(c), ln_linear_f16, dim3(3 * W / 32, 1), lnShared, s,
                (const u16 *)x16, (long)W, eps, (const u16 *)wq, (const float *)sums, (const float *)bias, (void *)out, 0, rows, W, 3 * W, 0); }));
            printf("ln_linear c_fc (96) c%d  %7.2f us\n", c, time_graph(s, [&] { launch(pdl, dim3(c), ln_linear_f16, dim3(MW / 32, 1), lnShared, s,
                (const u16 *)x16, (long)W, eps, (const u16 *)wfc, (const float *)sums, (const float *)bias, (void *)out, 0, rows, W, MW, 1); }));
        }
        for (int splits : {1, 2, 3, 4, 6, 8}) {
            int sh = 96 * (MW / splits + 8) * 2 + 16384;
            if ((MW / 64) % splits == 0 && sh <= maxShared)
                printf("linear_residual c_proj s%d %7.2f us\n", splits, time_graph(s, [&] { launch(pdl, dim3(1, splits, 1), linear_residual_f16, dim3(W / 32, splits, 1), sh, s,
                    (const u16 *)act, (const u16 *)wproj, (const float *)bias, x, x16, rows, MW, W); }));
            sh = 96 * (W / splits + 8) * 2 + 16384;
            if ((W / 64) % splits == 0)
                printf("linear_residual out s%d  %7.2f us\n", splits, time_graph(s, [&] { launch(pdl, dim3(1, splits, 1), linear_residual_f16, dim3(W / 32, splits, 1), sh, s,
                    (const u16 *)act, (const u16 *)wq, (const float *)bias, x, x16, rows, W, W); }));
        }
    }
    printf("probe stage W 32xK=768 (72)   %7.2f us\n", time_graph(s, [&] { launch(false, dim3(1), probe_stage, dim3(72), 32 * (W + 8) * 2, s, (const u16 *)wq, W, 3 * W); }));
    printf("probe stage W 32xK=3072 (24)  %7.2f us\n", time_graph(s, [&] { launch(false, dim3(1), probe_stage, dim3(24), 32 * (MW + 8) * 2, s, (const u16 *)wproj, MW, W); }));
    printf("probe row stats, 64 rows (72)  %7.2f us\n", time_graph(s, [&] { launch(false, dim3(1), probe_stats, dim3(72), lnShared, s, (float *)bias, W); }));
    printf("probe mma K=768 (72)          %7.2f us\n", time_graph(s, [&] { launch(false, dim3(1), probe_mma, dim3(72), lnShared, s, (const u16 *)wq, out, W); }));
    // A ViT-B-32 block at batch 1 as the engine runs it (attention left out), 12 times, PDL, clusters as the host picks.
    int clockKHz = 0; cudaDeviceGetAttribute(&clockKHz, cudaDevAttrClockRate, 0);
    for (int c : {1, 2, 8}) for (int sp : {3, 4}) {
        auto block = [&] {
            launch(true, dim3(c), ln_linear_f16, dim3(3 * W / 32, 1), lnShared, s, (const u16 *)x16, (long)W, eps, (const u16 *)wq, (const float *)sums, (const float *)bias, (void *)out, 0, rows, W, 3 * W, 0);
            launch(true, dim3(1, 1, 1), linear_residual_f16, dim3(W / 32, 1, 1), 96 * (W + 8) * 2 + 16384, s, (const u16 *)act, (const u16 *)wq, (const float *)bias, x, x16, rows, W, W);
            launch(true, dim3(c), ln_linear_f16, dim3(MW / 32, 1), lnShared, s, (const u16 *)x16, (long)W, eps, (const u16 *)wfc, (const float *)sums, (const float *)bias, (void *)out, 0, rows, W, MW, 1);
            launch(true, dim3(1, sp, 1), linear_residual_f16, dim3(W / 32, sp, 1), 96 * (MW / sp + 8) * 2 + 16384, s, (const u16 *)act, (const u16 *)wproj, (const float *)bias, x, x16, rows, MW, W);
        };
        printf("block of 4 kernels, ln cluster %d, c_proj split %d: %7.2f us\n", c, sp, time_graph(s, block, 48));
        long long clocks[32];
        CHECK(cudaMemcpyFromSymbol(clocks, phaseClocks, sizeof clocks));
        auto us = [&](int a, int b) { return (clocks[b] - clocks[a]) / (clockKHz / 1000.0); };
        printf("  ln_linear c_fc: wait %.2f | A multicast + W %.2f | row stats %.2f | mma + halves %.2f | epilogue %.2f\n",
               us(0, 1), us(1, 2), us(2, 3), us(3, 5), us(5, 6));
        printf("  c_proj: wait %.2f | A staged %.2f | mma + halves %.2f | partials, leader sum, epilogue %.2f\n",
               us(10, 11), us(11, 12), us(12, 14), us(14, 17));
    }
    CHECK(cudaDeviceSynchronize());
    return 0;
}
