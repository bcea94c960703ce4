// Hopper (sm_90a) GEMM with the MLP's activation in its epilogue: Y = act(X·Wᵀ + bias) for 16-bit X [m, k] and a
// Linear weight W [n, k] (both K-major, as wgmma reads them), fp32 bias [n], 16-bit Y [m, n]. It replaces cuBLASLt's
// c_fc followed by the bias + GELU pass: that pass reads and writes the whole MLP hidden layer once more (for
// ViT-L-14 at batch 256 about 1 GB a block), and cuBLASLt's own GELU epilogue is the tanh form, which open_clip does
// not use. Compiled after small_batch.cu and attention_wgmma.cu in the tensor-core program (it uses
// wgmma_descriptor_at, wgmma_fence, wgmma_commit, wgmma_wait_all, wgmma_hold and CLIPSERVE_OUT8 from the one,
// cluster_rank and cluster_sync from the other, attention_mma.cu's u16, pack2 and shared_address, small_batch.cu's
// unpack2 and activation.cu's mlp_activation). Built only for sm_90a.
//
// Persistent and warp-specialised: one CTA of three warpgroups per SM walks 128 x 256 tiles of Y (n-tiles fastest,
// so the CTAs at work share rows of X and all of W in L2).
//   warpgroups 0 and 1
//                the consumers: each owns 64 rows of the tile and issues wgmma m64n256k16 from shared memory with
//                fp32 accumulators (128 registers a thread). A stage is handed back once the wgmmas that read it
//                have completed (wgmma.wait_group 1 after the next slice's are issued). At the end of a tile they
//                round the sums to 16 bits into a staging tile in shared memory and go on with the next tile;
//   warp 8       the producer: one thread streams 64-wide K slices of X (128 rows) and W (256 rows) into a ring of
//                STAGES shared-memory stages with TMA (the tensor maps ask for the 128-byte swizzle wgmma reads);
//   warps 9–11   the epilogue: bias and activation on the staged tile, 16-byte stores of whole rows.
// So the tensor cores do not wait for the activation. The sums are rounded to 16 bits before the bias, exactly as
// cuBLASLt's c_fc output is before the bias + GELU pass, so the two paths agree to the rounding of fp32 sums (on
// random ViT-L-14 and ViT-B-16 shapes, every element was equal: scripts/device/gemm_check.cu).
//
// Clusters of CL = 2 CTAs along M: the two take m-tiles 2p and 2p + 1 at the same n; each loads its own X slice and
// half of the W slice, multicast to both, so W crosses from L2 once per pair of tiles (without it the main loop is
// bound by L2 bandwidth, about 535 against 660 TFLOP/s on an H100). A stage is then refilled only when the consumers
// of both CTAs have handed it back (its empty barrier counts both CTAs' warps).
//
// Measured on an H100 at ViT-L-14's batch-256 shape: the main loop alone (bias only) 0.85 ms, with erf GELU 1.04 ms,
// against 0.72 ms for cuBLASLt's c_fc and 0.38 ms for the bias + GELU pass. The three epilogue warps, one per SM
// sub-partition, are what holds it back: warps can have at most 168 registers here (384 threads), and a fourth
// warpgroup would leave 128, too few for the consumers' accumulators; the consumers doing part of the activation
// between their wgmmas was slower still.
//
// Full/empty mbarriers for the stages, two more for the staging tile. The host checks n % 256 == 0 and k % 64 == 0
// (CUDAKernels.gemmActivation); rows past m are zero-filled by TMA and not stored.

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
// A consumer hands a stage back: the wgmmas that read it have completed (wgmma.wait_group), which is all the
// producer's next TMA write into it needs, so the arrival is relaxed (a release at cluster scope, every K slice, cost
// the clustered kernel half its speed). On the barrier in this CTA, and on the one at the same address in cluster CTA
// `rank`.
__device__ __forceinline__ void stage_release(unsigned bar) {
    asm volatile("mbarrier.arrive.relaxed.cta.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void stage_release_remote(unsigned bar, unsigned rank) {
    unsigned remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(bar), "r"(rank));
    asm volatile("mbarrier.arrive.relaxed.cluster.shared::cluster.b64 _, [%0];" ::"r"(remote) : "memory");
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
// The same box into the same offset of the shared memory of every CTA in `mask`, completing on each one's `bar`.
__device__ __forceinline__ void tma_load_multicast(unsigned dst, const TensorMap *map, unsigned bar, int c0, int c1,
                                                   unsigned short mask) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
                 " [%0], [%1, {%3, %4}], [%2], %5;"
                 ::"r"(dst), "l"((unsigned long long)map), "r"(bar), "r"(c0), "r"(c1), "h"(mask) : "memory");
}
__device__ __forceinline__ void wgmma_wait_one() { asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory"); }

// D (+)= A·Bᵀ for a 64 x 256 tile and 16 of K, A and B in shared memory, both K-major. accumulate = 0 overwrites D.
#define CLIPSERVE_WGMMA_N256(TYPE)                                                                                   \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"                                                       \
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32." TYPE "." TYPE " {"                                   \
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                            \
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                  \
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                  \
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "                  \
                 "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "                  \
                 "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "                  \
                 "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "      \
                 "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"    \
                 "}, %128, %129, p, 1, 1, 0, 0;\n}\n"                                                                \
                 : CLIPSERVE_OUT8(d, 0), CLIPSERVE_OUT8(d, 8), CLIPSERVE_OUT8(d, 16), CLIPSERVE_OUT8(d, 24),         \
                   CLIPSERVE_OUT8(d, 32), CLIPSERVE_OUT8(d, 40), CLIPSERVE_OUT8(d, 48), CLIPSERVE_OUT8(d, 56),     \
                   CLIPSERVE_OUT8(d, 64), CLIPSERVE_OUT8(d, 72), CLIPSERVE_OUT8(d, 80), CLIPSERVE_OUT8(d, 88),     \
                   CLIPSERVE_OUT8(d, 96), CLIPSERVE_OUT8(d, 104), CLIPSERVE_OUT8(d, 112), CLIPSERVE_OUT8(d, 120)   \
                 : "l"(a), "l"(b), "r"(accumulate))
template <int BF16> __device__ __forceinline__ void wgmma_n256(float (&d)[128], unsigned long long a, unsigned long long b, int accumulate);
template <> __device__ __forceinline__ void wgmma_n256<0>(float (&d)[128], unsigned long long a, unsigned long long b, int accumulate) { CLIPSERVE_WGMMA_N256("f16"); }
template <> __device__ __forceinline__ void wgmma_n256<1>(float (&d)[128], unsigned long long a, unsigned long long b, int accumulate) { CLIPSERVE_WGMMA_N256("bf16"); }

// Shared memory of one CTA: STAGES x (X slice 128 x 64 + W slice 256 x 64, 16-bit), the staging tile (128 rows of
// 256 + 8 halves: the 8 put the rows a warp's accumulator fragments write on different banks), the barriers (a full
// and an empty one per stage, two for the staging tile), and 1 KB to align the stages to the swizzle's 1024 bytes.
// (CUDAKernels.GemmActivationKernel.sharedBytes computes the same.)
template <int STAGES> struct GemmShape {
    static constexpr int xBytes = 128 * 64 * 2, wBytes = 256 * 64 * 2, stageBytes = xBytes + wBytes;
    static constexpr int pitch = 256 + 8, stagingBytes = 128 * pitch * 2;
    static constexpr int sharedBytes = 1024 + STAGES * stageBytes + stagingBytes + (2 * STAGES + 2) * 8;
};

// Epilogue warp e (0..2) on a staged tile: rows e, e + 3, ... of the 128, 8 columns a lane (from `column` of Y), plus
// the bias, through the activation (ACT: 0 none, 1 erf GELU, 2 QuickGELU, the mlp_activation of the bias_gelu pass),
// 16-byte stores; rows at or past m are not stored. Four rows' loads go out before their arithmetic, so a thread has
// 32 independent values in flight.
template <int BF16, int ACT, int PITCH>
__device__ __forceinline__ void epilogue_rows(const u16 *staging, u16 *y, const float (&b)[8], int e, int m0, int m,
                                              int n, int column, int lane) {
    constexpr int rows = 128;
    for (int r = e; r < rows; r += 12) {
        uint4 v[4];
#pragma unroll
        for (int q = 0; q < 4; q++) {
            if (r + 3 * q < rows) v[q] = *(const uint4 *)(staging + (r + 3 * q) * PITCH + lane * 8);
        }
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int row = r + 3 * q;
            if (row < rows) {
                const unsigned words[4] = {v[q].x, v[q].y, v[q].z, v[q].w};
                unsigned out[4];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const float2 f = unpack2<BF16>(words[i]);
                    const float x0 = f.x + b[2 * i], x1 = f.y + b[2 * i + 1];
                    out[i] = ACT == 0 ? pack2<BF16>(x0, x1)
                                      : pack2<BF16>(mlp_activation(x0, ACT == 2), mlp_activation(x1, ACT == 2));
                }
                if (m0 + row < m) *(uint4 *)(y + (long)(m0 + row) * n + column) = make_uint4(out[0], out[1], out[2], out[3]);
            }
        }
    }
}

template <int BF16, int CL, int STAGES, int ACT>
__device__ __forceinline__ void gemm_activation(const TensorMap *mapX, const TensorMap *mapW, u16 *y,
                                                const float *bias, int m, int n, int k, int quick) {
    typedef GemmShape<STAGES> S;
    extern __shared__ __align__(16) unsigned char sharedBytes[];
    const unsigned start = shared_address(sharedBytes), base = (start + 1023u) & ~1023u;
    u16 *staging = (u16 *)(sharedBytes + (base - start) + STAGES * S::stageBytes);
    const unsigned full = base + STAGES * S::stageBytes + S::stagingBytes, empty = full + STAGES * 8;
    const unsigned stagedFull = empty + STAGES * 8, stagedEmpty = stagedFull + 8;
    const int thread = threadIdx.x, warp = thread >> 5, lane = thread & 31;
    const unsigned rank = CL > 1 ? cluster_rank() : 0;
    const int mTiles = (m + 127) / 128, nTiles = n / 256, slices = k / 64;
    const int units = (mTiles + CL - 1) / CL * nTiles, first = blockIdx.x / CL, step = gridDim.x / CL;
    if (thread == 0) {
        for (int s = 0; s < STAGES; s++) {
            barrier_init(full + 8 * s, 1);
            barrier_init(empty + 8 * s, 8 * CL);  // lane 0 of each consumer warp of each CTA of the cluster
        }
        barrier_init(stagedFull, 256);  // every consumer thread, after its stores
        barrier_init(stagedEmpty, 96);  // every epilogue thread, after its loads
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    if (CL > 1) {
        cluster_sync();  // the peer's barriers are initialised before anything arrives on them
    } else {
        __syncthreads();
    }
    if (warp == 8) {  // the producer
        if (lane == 0) {
            int it = 0;
            for (int u = first; u < units; u += step) {
                const int m0 = ((u / nTiles) * CL + rank) * 128, n0 = (u % nTiles) * 256;
                for (int i = 0; i < slices; i++, it++) {
                    const int s = it % STAGES;
                    if (it >= STAGES) barrier_wait(empty + 8 * s, ((it / STAGES) & 1) ^ 1);
                    const unsigned stage = base + s * S::stageBytes, bar = full + 8 * s;
                    barrier_expect_bytes(bar, S::stageBytes);
                    tma_load(stage, mapX, bar, i * 64, m0);
                    if (CL == 1) {
                        tma_load(stage + S::xBytes, mapW, bar, i * 64, n0);
                        tma_load(stage + S::xBytes + S::wBytes / 2, mapW, bar, i * 64, n0 + 128);
                    } else {
                        tma_load_multicast(stage + S::xBytes + rank * (S::wBytes / 2), mapW, bar, i * 64, n0 + rank * 128, 3);
                    }
                }
            }
        }
        __syncwarp();
    } else if (warp > 8) {  // the epilogue warps 9..11
        int tile = 0;
        for (int u = first; u < units; u += step, tile++) {
            const int m0 = ((u / nTiles) * CL + rank) * 128, n0 = (u % nTiles) * 256, column = n0 + lane * 8;
            const float4 b0 = *(const float4 *)(bias + column), b1 = *(const float4 *)(bias + column + 4);
            const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
            barrier_wait(stagedFull, tile & 1);
            if (ACT == 0) {
                epilogue_rows<BF16, 0, S::pitch>(staging, y, b, warp - 9, m0, m, n, column, lane);
            } else if (quick) {
                epilogue_rows<BF16, 2, S::pitch>(staging, y, b, warp - 9, m0, m, n, column, lane);
            } else {
                epilogue_rows<BF16, 1, S::pitch>(staging, y, b, warp - 9, m0, m, n, column, lane);
            }
            barrier_arrive(stagedEmpty);
        }
    } else {  // the consumers: warpgroup wg owns rows 64·wg ... of each tile
        const int wg = thread >> 7, row = wg * 64 + (warp & 3) * 16 + (lane >> 2), t = lane & 3;
        int it = 0, tile = 0;
        for (int u = first; u < units; u += step, tile++) {
            float d[128];
            for (int i = 0; i < slices; i++, it++) {
                const int s = it % STAGES;
                barrier_wait(full + 8 * s, (it / STAGES) & 1);
                const unsigned stage = base + s * S::stageBytes;
                // The descriptors' start address is in 16-byte units; this warpgroup's 64 rows of X start 8 KB in for wg 1.
                const unsigned long long a = wgmma_descriptor_at(stage + wg * 8192), bw = wgmma_descriptor_at(stage + S::xBytes);
                wgmma_fence();
#pragma unroll
                for (int kk = 0; kk < 4; kk++) wgmma_n256<BF16>(d, a + 2 * kk, bw + 2 * kk, i > 0 || kk > 0);  // +32 bytes along K
                wgmma_commit();
                wgmma_wait_one();  // the previous slice's wgmmas have finished reading their stage
                if (i > 0 && lane == 0) {
                    const unsigned bar = empty + 8 * ((it - 1) % STAGES);
                    stage_release(bar);
                    if (CL > 1) stage_release_remote(bar, rank ^ 1);
                }
            }
            wgmma_wait_all();
            wgmma_hold(d);
            if (lane == 0) {
                const unsigned bar = empty + 8 * ((it - 1) % STAGES);
                stage_release(bar);
                if (CL > 1) stage_release_remote(bar, rank ^ 1);
            }
            // Accumulator layout of wgmma m64nN: warp w of the group holds rows 16w + lane/4 and +8; element 4j (+1)
            // is column 8j + 2·(lane % 4) (+1) of the first row, 4j + 2 (+3) the same columns of the second.
            if (tile > 0) barrier_wait(stagedEmpty, (tile - 1) & 1);  // the epilogue warps have read the previous tile
            u16 *s0 = staging + row * S::pitch + 2 * t, *s1 = s0 + 8 * S::pitch;
#pragma unroll
            for (int j = 0; j < 32; j++) {
                *(unsigned *)(s0 + 8 * j) = pack2<BF16>(d[4 * j], d[4 * j + 1]);
                *(unsigned *)(s1 + 8 * j) = pack2<BF16>(d[4 * j + 2], d[4 * j + 3]);
            }
            barrier_arrive(stagedFull);
        }
    }
    // No CTA leaves while its peer may still arrive on its barriers or write its shared memory.
    if (CL > 1) cluster_sync();
}

// Entry points gemm_activation_<dtype>: K in slices of 64 through three stages, clusters of two along M
// (CUDAKernels.gemmActivation), 384 threads, one CTA per SM. CLIPSERVE_GEMM_VARIANTS (scripts/device/gemm_check.cu)
// adds the kernel without clusters and the main loop with the bias alone.
#define CLIPSERVE_GEMM_ACTIVATION(NAME, BF16, CL, STAGES, ACT)                                                          \
    extern "C" __global__ void __launch_bounds__(384, 1) NAME(const __grid_constant__ TensorMap mapX,                   \
            const __grid_constant__ TensorMap mapW, u16 *y, const float *bias, int m, int n, int k, int quick) {        \
        gemm_activation<BF16, CL, STAGES, ACT>(&mapX, &mapW, y, bias, m, n, k, quick);                                  \
    }
#ifdef CLIPSERVE_F16
CLIPSERVE_GEMM_ACTIVATION(gemm_activation_f16, 0, 2, 3, 1)
#ifdef CLIPSERVE_GEMM_VARIANTS
CLIPSERVE_GEMM_ACTIVATION(gemm_activation_c1_f16, 0, 1, 3, 1)
CLIPSERVE_GEMM_ACTIVATION(gemm_bias_only_f16, 0, 2, 3, 0)
#endif
#endif
#ifdef CLIPSERVE_BF16
CLIPSERVE_GEMM_ACTIVATION(gemm_activation_bf16, 1, 2, 3, 1)
#endif

#endif  // __CUDA_ARCH_FEAT_SM90_ALL
