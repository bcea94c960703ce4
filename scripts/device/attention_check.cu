// The wgmma attention (attention_wgmma.cu) on its own, for compute-sanitizer: launched exactly as the engine launches
// it (one CTA of one or two warpgroups per (head, image), the shared memory of CUDAKernels.wgmmaAttentionSharedBytes),
// on random QKV rows with and without the query bias and the tail rows, and compared with an fp64 reference on the
// host. With nothing else in the process, racecheck, memcheck and synccheck finish in seconds and report on this
// kernel alone (in the engine they spend their time on cuBLASLt's kernels). Built with nvcc on the GPU machine:
//   nvcc -O3 -gencode arch=compute_90a,code=sm_90a -std=c++17 -DCLIPSERVE_F16 -o /tmp/attention_check scripts/device/attention_check.cu
//   compute-sanitizer --tool racecheck /tmp/attention_check
// Exits non-zero when an output is further than 1e-2 from the reference.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <vector>
#include <cuda_runtime.h>
#include "../../Sources/CUDABackend/Kernels/attention_mma.cu"
#include "../../Sources/CUDABackend/Kernels/activation.cu"
#include "../../Sources/CUDABackend/Kernels/small_batch.cu"
// The file is empty unless the target has wgmma (__CUDA_ARCH_FEAT_SM90_ALL, which NVRTC sets for sm_90a); nvcc's
// passes need the kernel whatever they define (the host pass for its launch stub), and this harness is built for
// sm_90a only.
#ifndef __CUDA_ARCH_FEAT_SM90_ALL
#define __CUDA_ARCH_FEAT_SM90_ALL
#endif
#include "../../Sources/CUDABackend/Kernels/attention_wgmma.cu"

#define CHECK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e_)); exit(2); } } while (0)

static float half_to_float(unsigned short h) {
    const unsigned s = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
    const float v = e == 0 ? std::ldexp((float)m, -24) : std::ldexp((float)(m | 1024), (int)e - 25);
    return s ? -v : v;
}

// Round to nearest even, as cvt.rn.f16.f32 (finite values below 65504).
static unsigned short float_to_half(float f) {
    const unsigned short sign = std::signbit(f) ? 0x8000 : 0;
    const float a = std::fabs(f);
    if (a < 6.103515625e-05f) return sign | (unsigned short)std::nearbyint(a * 16777216.f);
    int e;
    const float fraction = std::frexp(a, &e);  // a = fraction · 2^e, fraction in [0.5, 1)
    int m = (int)std::nearbyint(fraction * 2048.f), exponent = e - 1 + 15;
    if (m == 2048) m = 1024, exponent++;
    return sign | (unsigned short)(exponent << 10) | (unsigned short)(m - 1024);
}

// CUDAKernels.wgmmaAttentionSharedBytes.
static int shared_bytes(int tokens, int tail) {
    const int last = (tokens - 1) / 64 * 64, keyRows = last + (tokens - last <= 16 ? 16 : 64);
    const int scratch = tail > 0 ? 4 * ((tokens + 3) / 4 * 4 + 8 + 4 * 64) : 0;
    return 1024 + 2 * keyRows * 128 + (tokens > 64 ? 2 : 1) * 2 * 64 * 128 + scratch;
}

static unsigned state = 2024;
static float uniform() { state = state * 1664525u + 1013904223u; return ((state >> 8) + 0.5f) / 16777216.f; }

// One configuration; returns whether every output is within tolerance.
static bool run(const char *name, int tokens, int heads, int batch, int tail, bool bias) {
    const int width = heads * 64;
    const long rows = (long)batch * tokens, stride = 3L * width;
    std::vector<unsigned short> qkv(rows * stride), out(rows * width);
    for (auto &v : qkv) v = float_to_half(2.f * uniform() - 1.f);
    std::vector<float> queryBias(width);
    for (auto &v : queryBias) v = 0.25f * (2.f * uniform() - 1.f);
    unsigned short *dQKV, *dOut;
    float *dBias = nullptr;
    CHECK(cudaMalloc(&dQKV, qkv.size() * 2));
    CHECK(cudaMalloc(&dOut, out.size() * 2));
    CHECK(cudaMemcpy(dQKV, qkv.data(), qkv.size() * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemset(dOut, 0xff, out.size() * 2));  // NaNs: a row the kernel never writes fails the comparison
    if (bias) {
        CHECK(cudaMalloc(&dBias, width * 4));
        CHECK(cudaMemcpy(dBias, queryBias.data(), width * 4, cudaMemcpyHostToDevice));
    }
    const int shared = shared_bytes(tokens, tail);
    CHECK(cudaFuncSetAttribute(attention_wgmma_d64_f16, cudaFuncAttributeMaxDynamicSharedMemorySize, shared));
    const float scale = 0.125f;
    attention_wgmma_d64_f16<<<dim3(1, heads, batch), 128 * (tokens > 64 ? 2 : 1), shared>>>(
        dQKV, dOut, tokens, heads, scale, dBias, tail);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(out.data(), dOut, out.size() * 2, cudaMemcpyDeviceToHost));
    // Reference: Q plus its bias rounded to 16 bits (as the kernel adds it in shared memory), K and V as stored.
    double worst = 0;
    std::vector<double> scores(tokens);
    for (int b = 0; b < batch; b++) {
        for (int h = 0; h < heads; h++) {
            for (int r = 0; r < tokens; r++) {
                const unsigned short *row = &qkv[((long)b * tokens + r) * stride];
                double q[64];
                for (int d = 0; d < 64; d++) {
                    const float value = half_to_float(row[h * 64 + d]);
                    q[d] = bias ? half_to_float(float_to_half(value + queryBias[h * 64 + d])) : value;
                }
                double mx = -1e300, sum = 0;
                for (int j = 0; j < tokens; j++) {
                    const unsigned short *key = &qkv[((long)b * tokens + j) * stride + width + h * 64];
                    double s = 0;
                    for (int d = 0; d < 64; d++) s += q[d] * half_to_float(key[d]);
                    scores[j] = s * scale;
                    mx = std::max(mx, scores[j]);
                }
                for (int j = 0; j < tokens; j++) sum += scores[j] = std::exp(scores[j] - mx);
                for (int d = 0; d < 64; d++) {
                    double o = 0;
                    for (int j = 0; j < tokens; j++)
                        o += scores[j] * half_to_float(qkv[((long)b * tokens + j) * stride + 2 * width + h * 64 + d]);
                    const double got = half_to_float(out[((long)b * tokens + r) * width + h * 64 + d]);
                    const double error = std::fabs(got - o / sum);
                    worst = std::isnan(got) ? 1e9 : std::max(worst, error);
                }
            }
        }
    }
    const bool pass = worst <= 1e-2;
    printf("%s %-40s tokens %3d heads %2d images %d tail %d bias %d: largest error %.3g\n", pass ? "PASS" : "FAIL", name,
           tokens, heads, batch, tail, bias ? 1 : 0, worst);
    cudaFree(dQKV);
    cudaFree(dOut);
    if (dBias) cudaFree(dBias);
    return pass;
}

int main() {
    bool ok = true;
    ok &= run("ViT-L-14 (the engine's launch)", 257, 16, 2, 1, true);
    ok &= run("ViT-L-14, a tile for the last row", 257, 16, 2, 0, true);
    ok &= run("ViT-L-14, bias already in the rows", 257, 16, 1, 1, false);
    ok &= run("ViT-B-16 (the engine's launch)", 197, 12, 2, 0, true);
    ok &= run("ViT-B-16, 5 tail rows (ATTENTION_TAIL=8)", 197, 12, 2, 5, true);
    ok &= run("ViT-B-32 (one warpgroup)", 50, 12, 2, 0, true);
    return ok ? 0 : 1;
}
