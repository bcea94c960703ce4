// Hopper (sm_90a) GEMM with the MLP's activation in its epilogue: Y = act(X·Wᵀ + bias) for 16-bit X [m, k] and a
// Linear weight W [n, k] (both K-major, as wgmma reads them), fp32 bias [n], 16-bit Y [m, n]. It replaces cuBLASLt's
// c_fc followed by the bias + GELU pass: that pass reads and writes the whole MLP hidden layer once more (for
// ViT-L-14 at batch 256 about 1 GB a block, 9 ms in all), and cuBLASLt's own GELU epilogue is the tanh form, which
// open_clip does not use. Compiled after attention_wgmma.cu in the tensor-core program (it uses that file's
// wgmma_descriptor_at, wgmma_fence, wgmma_commit, wgmma_wait_all, wgmma_hold and CLIPSERVE_OUT8, attention_mma.cu's
// u16, pack2 and shared_address, and activation.cu's mlp_activation). Built only for sm_90a.
//
// One CTA computes a 128 x 128 tile of Y, two CTAs per SM (so one's epilogue runs while the other's main loop does):
// a producer warp streams 64-wide K slices of X and W into a ring of three shared-memory stages with TMA (the tensor
// maps ask for the 128-byte swizzle wgmma reads), and two consumer warpgroups each own 64 rows of the tile, issuing
// wgmma m64n128k16 from shared memory with fp32 accumulators. Full/empty mbarriers hand the stages back and forth: a
// stage is handed back once the wgmma that read it has completed (wgmma.wait_group 1 after the next slice's wgmmas
// are issued). The host checks n % 128 == 0 and k % 64 == 0; rows past m are zero-filled by TMA and not stored.
//
// On an H100 it is slower than what it replaces (ViT-L-14 at batch 256: 32.5 ms against cuBLASLt's 17.6 ms plus
// 9.3 ms for bias + GELU), so the engine runs it only when asked (CLIPSERVE_MLP_GEMM=wgmma). Persistent versions
// (a CTA per SM walking 128 x 256 tiles, cooperative or ping-pong between the warpgroups) were slower still.

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// A CUtensorMap (the driver's opaque 128-byte TMA descriptor), passed by value as a __grid_constant__ parameter.
struct __align__(64) TensorMap { unsigned long long words[16]; };

__device__ __forceinline__ void barrier_init(unsigned bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
// Arrives and adds `bytes` to the transaction count this phase waits for (what the TMA loads will deliver).
__device__ __forceinline__ void barrier_expect_bytes(unsigned bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void barrier_arrive(unsigned bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
// Waits until the phase with this parity has completed.
__device__ __forceinline__ void barrier_wait(unsigned bar, unsigned parity) {
    asm volatile("{\n.reg .pred done;\nwait:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra wait;\n}\n" ::"r"(bar), "r"(parity) : "memory");
}
// Loads the box at (c0 along the inner dimension, c1 along the outer) into shared memory, completing on `bar`.
__device__ __forceinline__ void tma_load(unsigned dst, const TensorMap *map, unsigned bar, int c0, int c1) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];"
                 ::"r"(dst), "l"((unsigned long long)map), "r"(bar), "r"(c0), "r"(c1) : "memory");
}
__device__ __forceinline__ void wgmma_wait_one() { asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory"); }

// D (+)= A·Bᵀ for a 64 x N tile and 16 of K, A and B in shared memory, both K-major. accumulate = 0 overwrites D.
template <int BF16, int N> __device__ __forceinline__ void wgmma_tile(float (&d)[N / 2], unsigned long long a, unsigned long long b, int accumulate);
#define CLIPSERVE_WGMMA_N128(TYPE)                                                                  \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                           \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " {"                      \
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "               \
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "     \
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "     \
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"       \
                 "}, %64, %65, p, 1, 1, 0, 0;\n}\n"                                                     \
                 : CLIPSERVE_OUT8(d, 0), CLIPSERVE_OUT8(d, 8), CLIPSERVE_OUT8(d, 16), CLIPSERVE_OUT8(d, 24),\
                   CLIPSERVE_OUT8(d, 32), CLIPSERVE_OUT8(d, 40), CLIPSERVE_OUT8(d, 48), CLIPSERVE_OUT8(d, 56)\
                 : "l"(a), "l"(b), "r"(accumulate))
template <> __device__ __forceinline__ void wgmma_tile<0, 128>(float (&d)[64], unsigned long long a, unsigned long long b, int accumulate) { CLIPSERVE_WGMMA_N128("f16"); }
template <> __device__ __forceinline__ void wgmma_tile<1, 128>(float (&d)[64], unsigned long long a, unsigned long long b, int accumulate) { CLIPSERVE_WGMMA_N128("bf16"); }

// Shared memory of one CTA: STAGES x (X slice 128 x 64 + W slice BN x 64, 16-bit), the full and empty barriers, and
// 1 KB to align the stages to the swizzle's 1024 bytes. (CUDAKernels.GemmActivationKernel.sharedBytes computes the
// same.)
template <int BN, int STAGES> struct GemmShape {
    static constexpr int xBytes = 128 * 64 * 2, wBytes = BN * 64 * 2, stageBytes = xBytes + wBytes;
    static constexpr int sharedBytes = 1024 + STAGES * stageBytes + 2 * STAGES * 8;
};

template <int BF16, int BN, int STAGES>
__device__ __forceinline__ void gemm_activation(const TensorMap *mapX, const TensorMap *mapW, u16 *y,
                                                const float *bias, int m, int n, int k, int quick) {
    typedef GemmShape<BN, STAGES> S;
    extern __shared__ __align__(16) unsigned char sharedBytes[];
    const unsigned base = (shared_address(sharedBytes) + 1023u) & ~1023u;
    const unsigned full = base + STAGES * S::stageBytes, empty = full + STAGES * 8;
    const int thread = threadIdx.x, m0 = blockIdx.y * 128, n0 = blockIdx.x * BN, slices = k / 64;
    if (thread == 0) {
        for (int s = 0; s < STAGES; s++) {
            barrier_init(full + 8 * s, 1);
            barrier_init(empty + 8 * s, 8);  // lane 0 of each consumer warp
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    if (thread >= 256) {  // the producer warp: one thread issues every load
        if (thread == 256) {
            for (int i = 0; i < slices; i++) {
                const int s = i % STAGES;
                if (i >= STAGES) barrier_wait(empty + 8 * s, (i / STAGES - 1) & 1);
                const unsigned stage = base + s * S::stageBytes;
                barrier_expect_bytes(full + 8 * s, S::stageBytes);
                tma_load(stage, mapX, full + 8 * s, i * 64, m0);
                tma_load(stage + S::xBytes, mapW, full + 8 * s, i * 64, n0);
            }
        }
        return;
    }
    const int wg = thread >> 7, warp = (thread >> 5) & 3, lane = thread & 31;
    float d[BN / 2];
    for (int i = 0; i < slices; i++) {
        const int s = i % STAGES;
        barrier_wait(full + 8 * s, (i / STAGES) & 1);
        const unsigned stage = base + s * S::stageBytes;
        // The descriptors' start address is in 16-byte units; this warpgroup's 64 rows of X start 8 KB in for wg 1.
        const unsigned long long a = wgmma_descriptor_at(stage + wg * 8192), b = wgmma_descriptor_at(stage + S::xBytes);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++) wgmma_tile<BF16, BN>(d, a + 2 * kk, b + 2 * kk, i > 0 || kk > 0);  // +32 bytes along K
        wgmma_commit();
        wgmma_wait_one();  // the previous slice's wgmmas have finished reading their stage
        if (i > 0 && lane == 0) barrier_arrive(empty + 8 * ((i - 1) % STAGES));
    }
    wgmma_wait_all();
    wgmma_hold(d);
    // Accumulator layout of wgmma m64nN: warp w of the group holds rows 16w + lane/4 and +8; element 4j (+1) is column
    // 8j + 2·(lane % 4) (+1) of the first row, 4j + 2 (+3) the same columns of the second.
    const int r0 = m0 + wg * 64 + warp * 16 + (lane >> 2), r1 = r0 + 8;
    u16 *y0 = y + (long)r0 * n, *y1 = y + (long)r1 * n;
#pragma unroll
    for (int j = 0; j < BN / 8; j++) {
        const int col = n0 + j * 8 + 2 * (lane & 3);
        const float2 bb = *(const float2 *)(bias + col);
        if (r0 < m) *(unsigned *)(y0 + col) = pack2<BF16>(mlp_activation(d[4 * j] + bb.x, quick), mlp_activation(d[4 * j + 1] + bb.y, quick));
        if (r1 < m) *(unsigned *)(y1 + col) = pack2<BF16>(mlp_activation(d[4 * j + 2] + bb.x, quick), mlp_activation(d[4 * j + 3] + bb.y, quick));
    }
}

// Entry points gemm_activation_<dtype>: 128 x 128 tiles, three stages, two CTAs per SM (CUDAKernels.gemmActivation).
#define CLIPSERVE_GEMM_ACTIVATION(NAME, BF16)                                                                          \
    extern "C" __global__ void __launch_bounds__(288, 2) NAME(const __grid_constant__ TensorMap mapX,                   \
            const __grid_constant__ TensorMap mapW, u16 *y, const float *bias, int m, int n, int k, int quick) {        \
        gemm_activation<BF16, 128, 3>(&mapX, &mapW, y, bias, m, n, k, quick);                                           \
    }
#ifdef CLIPSERVE_F16
CLIPSERVE_GEMM_ACTIVATION(gemm_activation_f16, 0)
#endif
#ifdef CLIPSERVE_BF16
CLIPSERVE_GEMM_ACTIVATION(gemm_activation_bf16, 1)
#endif

#endif  // __CUDA_ARCH_FEAT_SM90_ALL
