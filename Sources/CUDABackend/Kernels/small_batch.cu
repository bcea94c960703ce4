// Small-batch linear layers for 16-bit activations (fp16 / bf16), sm_90 and later: the whole transformer block in five
// kernels, each launched as a programmatic dependent of the one before (PDL) so its weights stream into shared memory
// while the previous kernel still runs, and as a thread-block cluster. Compiled after attention_mma.cu in the same
// NVRTC program (it uses that file's pack2, mma16816, shared_address, copy_async16, allow_dependents and
// wait_for_producer).
//
//   ln_linear:        out[M, N] = act(LayerNorm(x)[M, K] · Wᵀ + bias), 16-bit out; act = none, exact-erf GELU, QuickGELU
//   linear_residual:  x[M, N] += A[M, K] · Wᵀ + bias, fp32 residual stream (and its 16-bit copy), K split over the
//                     CTAs of a cluster
//
// W is PyTorch's Linear weight [N, K] row-major, which is exactly the "col" B operand of mma.m16n8k16. A CTA of 8 warps
// computes a 64 x 32 tile: warp w owns rows 16(w % 4)..+15, all four 8-column n-tiles and half of K (w / 4); the
// second half's sums are added to the first through shared memory, in that order. Every operand sits in shared
// memory with rows padded by 8 halves, so the 8 rows an ldmatrix reads fall on different banks.
//
// ln_linear never normalises a row. The engine folds LayerNorm's gamma into W (W' = W·diag(gamma), 16-bit) and its
// beta into the bias (b' = b + W·beta), and keeps c = W'·1 (fp32, from the 16-bit W'). Then for a row x with mean mu
// and 1/std s, LayerNorm(x)·Wᵀ + b = s·(x·W'ᵀ − mu·c) + b': the mma runs on the raw rows (the 16-bit copy of x that
// linear_residual writes), the row statistics come from the same tile, and both meet in the epilogue. The CTAs of a
// cluster (consecutive n-tiles) need the same rows: each fetches every C-th row once, by a bulk copy multicast to all
// of them, and computes those rows' statistics for all of them.
// linear_residual: the CTAs of a cluster take slices of K for one output tile; the first adds the others' partial
// tiles, read from their shared memory in rank order (so a result never depends on timing), adds bias and residual.
//
// At these sizes every kernel is a chain of memory latencies, so loads are issued in batches before their values
// are used, with no load behind a branch and no store the compiler must assume aliases the next load (a LayerNorm of
// 50 rows written without that care took 19.5 µs on an H100, launch included; with it, 4.6 µs).

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900  // (undefined: the host pass of nvcc, for scripts/device/small_batch_bench.cu)
// PHASE(i): with CLIPSERVE_PHASE_TIMES (only scripts/device/small_batch_bench.cu defines it), thread 0 of the first CTA
// records the SM clock at point i of the kernel; the product build compiles it to nothing.
#ifdef CLIPSERVE_PHASE_TIMES
__device__ long long phaseClocks[32];
#define PHASE(i)                                                                                                  \
    do {                                                                                                          \
        if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0) phaseClocks[i] = clock64(); \
    } while (0)
#else
#define PHASE(i)
#endif

__device__ __forceinline__ unsigned cluster_size() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(r));
    return r;
}
__device__ __forceinline__ unsigned cluster_rank() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}
// Every thread of every CTA of the cluster; orders shared-memory writes before it with reads after it.
__device__ __forceinline__ void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;" ::: "memory");
}
// The address of `p` (this CTA's shared memory) in the shared memory of cluster CTA `rank`.
__device__ __forceinline__ unsigned cluster_address(const void *p, unsigned rank) {
    unsigned remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(shared_address(p)), "r"(rank));
    return remote;
}
__device__ __forceinline__ float4 cluster_load16(unsigned address) {
    float4 v;
    asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(address) : "memory");
    return v;
}

__device__ __forceinline__ void ldmatrix_x4(unsigned *r, const u16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(p)));
}

// Copies rows [0, count) x columns [k0, k0 + columns) of a row-major 16-bit matrix (row length `ld`) into shared rows of
// `columns + 8` halves; rows in [count, total) are zero. Columns and k0 are multiples of 8. Warp w copies rows w,
// w + warps, ...; its lanes take the row's 16-byte chunks in turn.
__device__ __forceinline__ void stage_rows(u16 *shared, const u16 *global, long ld, int k0, int columns, int count,
                                           int total) {
    const int chunks = columns >> 3, stride = columns + 8, warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    for (int r = threadIdx.x >> 5; r < total; r += warps) {
        u16 *to = shared + r * stride;
        const u16 *from = global + r * ld + k0;
        for (int c = lane; c < chunks; c += 32) {
            if (r < count) {
                copy_async16(to + c * 8, from + c * 8);
            } else {
                Zero16 zero = {0u, 0u, 0u, 0u};
                *(Zero16 *)(to + c * 8) = zero;
            }
        }
    }
}

// acc[j] (n-tile j, m16n8 accumulator) += A[16 rows][0, columns) · W[32 rows][0, columns)ᵀ, both in shared with rows
// of `stride` halves; columns % 32 == 0. The next k-step's fragments load while this step's mma run (two named
// fragment sets, so nothing is indexed at run time and everything stays in registers).
template <int BF16>
__device__ __forceinline__ void mma_step(float (*acc)[4], const unsigned *fa, const unsigned *b01, const unsigned *b23) {
    mma16816<BF16>(acc[0], fa, b01[0], b01[1]);
    mma16816<BF16>(acc[1], fa, b01[2], b01[3]);
    mma16816<BF16>(acc[2], fa, b23[0], b23[1]);
    mma16816<BF16>(acc[3], fa, b23[2], b23[3]);
}

template <int BF16>
__device__ __forceinline__ void warp_tile_mma(float (*acc)[4], const u16 *a, const u16 *w, int columns, int stride) {
    const int lane = threadIdx.x & 31;
    const u16 *aRow = a + (lane & 15) * stride + ((lane >> 4) << 3);
    // ldmatrix.x4 over W: matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15).
    const u16 *wRow = w + (((lane >> 4) << 3) + (lane & 7)) * stride + (((lane >> 3) & 1) << 3);
    const u16 *wRow2 = wRow + 16 * stride;
    unsigned fa0[4], b010[4], b230[4], fa1[4], b011[4], b231[4];
    ldmatrix_x4(fa0, aRow);
    ldmatrix_x4(b010, wRow);
    ldmatrix_x4(b230, wRow2);
    for (int k = 0; k < columns; k += 32) {
        ldmatrix_x4(fa1, aRow + k + 16);
        ldmatrix_x4(b011, wRow + k + 16);
        ldmatrix_x4(b231, wRow2 + k + 16);
        mma_step<BF16>(acc, fa0, b010, b230);
        if (k + 32 < columns) {
            ldmatrix_x4(fa0, aRow + k + 32);
            ldmatrix_x4(b010, wRow + k + 32);
            ldmatrix_x4(b230, wRow2 + k + 32);
        }
        mma_step<BF16>(acc, fa1, b011, b231);
    }
}

// The CTA's 64 x 32 tile from its 8 warps' halves of K: warps 4-7 hand their sums to warps 0-3 through `exchange`
// (8 KB of shared memory), which add them. Every thread of the CTA calls it; afterwards warps 0-3 hold the tile.
__device__ __forceinline__ void add_k_halves(float (*acc)[4], float *exchange) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float4 *slot = (float4 *)exchange + ((warp & 3) * 4) * 32 + lane;
    if (warp >= 4) {
#pragma unroll
        for (int j = 0; j < 4; j++) slot[j * 32] = make_float4(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
    }
    __syncthreads();
    if (warp < 4) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const float4 other = slot[j * 32];
            acc[j][0] += other.x;
            acc[j][1] += other.y;
            acc[j][2] += other.z;
            acc[j][3] += other.w;
        }
    }
}

// The CTA's 64 x 32 tile A[64 rows][0, columns) · W[32 rows][0, columns)ᵀ (A and W in shared, rows of `stride` halves):
// warp w multiplies row tile w % 4 over half w / 4 of K, and the halves are added in `exchange`. Every thread of the
// CTA calls it; afterwards warps 0-3 hold the tile in `acc`, one row tile each.
template <int BF16>
__device__ __forceinline__ void cta_tile_mma(float (*acc)[4], const u16 *a, const u16 *w, int columns, int stride,
                                             float *exchange) {
    const int warp = threadIdx.x >> 5, half = (warp >> 2) * (columns >> 1);
#pragma unroll
    for (int j = 0; j < 4; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    warp_tile_mma<BF16>(acc, a + (warp & 3) * 16 * stride + half, w + half, columns >> 1, stride);
    add_k_halves(acc, exchange);
}

// The bias of the columns this thread's accumulators hold in the tile starting at column n0: b[j] for n-tile j.
__device__ __forceinline__ void tile_bias(float (*b)[2], const float *__restrict__ bias, int n0) {
    const int t = threadIdx.x & 3;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        b[j][0] = bias[n0 + j * 8 + 2 * t];
        b[j][1] = bias[n0 + j * 8 + 2 * t + 1];
    }
}

// act: 0 none, 1 GELU with exact erf (nn.GELU), 2 QuickGELU (x · sigmoid(1.702 x)).
__device__ __forceinline__ float activate(float v, int act) {
    if (act == 1) return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    if (act == 2) return v / (1.f + __expf(-1.702f * v));
    return v;
}

// The two values of a packed pair of 16-bit floats (low half first).
template <int BF16> __device__ __forceinline__ float2 unpack2(unsigned v);
template <> __device__ __forceinline__ float2 unpack2<0>(unsigned v) {
    float lo, hi;
    asm("{ .reg .f16 l, h; mov.b32 {l, h}, %2; cvt.f32.f16 %0, l; cvt.f32.f16 %1, h; }" : "=f"(lo), "=f"(hi) : "r"(v));
    return make_float2(lo, hi);
}
template <> __device__ __forceinline__ float2 unpack2<1>(unsigned v) {
    return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
}

// The sum of the eight 16-bit values of a 16-byte chunk, after subtracting `mu` and squaring when SQUARES.
template <int BF16, bool SQUARES>
__device__ __forceinline__ float chunk_sum(uint4 v, float mu) {
    const unsigned parts[4] = {v.x, v.y, v.z, v.w};
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 p = unpack2<BF16>(parts[i]);
        sum += SQUARES ? (p.x - mu) * (p.x - mu) + (p.y - mu) * (p.y - mu) : p.x + p.y;
    }
    return sum;
}

// Mean and 1/sqrt(variance + eps) of the A tile's rows rank, rank + C, ... (K columns, rows of `stride` halves), one
// warp per row, two-pass in fp32 as the layernorm kernels compute them, written into `mean` and `inv` of every CTA of
// the cluster (C CTAs): each CTA takes 1/C of the rows, as each fetched them.
template <int BF16>
__device__ __forceinline__ void tile_row_stats(const u16 *a, int stride, int K, float eps, float *mean, float *inv,
                                               unsigned rank, unsigned size) {
    const int lane = threadIdx.x & 31, chunks = K >> 3;
    for (int r = rank + size * (threadIdx.x >> 5); r < 64; r += size * (blockDim.x >> 5)) {
        const u16 *row = a + r * stride;
        float sum = 0.f;
        for (int c = lane; c < chunks; c += 32) sum += chunk_sum<BF16, false>(*(const uint4 *)(row + c * 8), 0.f);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        const float mu = sum / K;
        float squares = 0.f;
        for (int c = lane; c < chunks; c += 32) squares += chunk_sum<BF16, true>(*(const uint4 *)(row + c * 8), mu);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) squares += __shfl_xor_sync(0xffffffffu, squares, o);
        if (lane < size) {
            asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(cluster_address(mean + r, lane)), "f"(mu) : "memory");
            asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(cluster_address(inv + r, lane)), "f"(rsqrtf(squares / K + eps))
                         : "memory");
        }
    }
}

// An mbarrier in shared memory that completes once `bytes` of bulk copies have landed (one arrival: thread 0's).
__device__ __forceinline__ void mbarrier_init(unsigned long long *bar) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(shared_address(bar)));
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
__device__ __forceinline__ void mbarrier_expect(unsigned long long *bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(shared_address(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbarrier_wait(unsigned long long *bar) {
    asm volatile(
        "{ .reg .pred done;\n"
        "wait: mbarrier.try_wait.parity.shared::cta.b64 done, [%0], 0;\n"
        "@!done bra wait;\n}" ::"r"(shared_address(bar)) : "memory");
}
// `bytes` (a multiple of 16) from global `from` to the same shared offset as `to` in every CTA of `mask` (bits =
// cluster ranks), each completing `bytes` on its mbarrier at the offset of `bar`. (ptxas advises the sm_90a target for
// .multicast::cluster, warning of reduced performance on some later architectures; measured on sm_90 only.)
__device__ __forceinline__ void bulk_copy_multicast(void *to, const void *from, unsigned bytes,
                                                    unsigned long long *bar, unsigned short mask) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1], %2, [%3], %4;"
        ::"r"(shared_address(to)), "l"(from), "r"(bytes), "r"(shared_address(bar)), "h"(mask) : "memory");
}

// grid (N / 32, ceil(M / 64)), clusters of C CTAs along x (C divides N / 32, at most 8), 256 threads, shared
// (64 + 32) * (K + 8) halves + 8.5 KB + 8 bytes. A is rows of x16 (the 16-bit copy of the residual stream), `rowStride`
// halves apart: the CTAs of a cluster need the same rows, so each fetches every C-th row once with a bulk copy
// multicast to all of them. K is a multiple of 8 up to 1024. weight is W' (LayerNorm gamma folded in), rowSums its row
// sums, bias b' (beta folded in). out is 16-bit, or fp32 when outF32 (the projection after ln_post).
template <int BF16>
__device__ void ln_linear(const u16 *__restrict__ x16, long rowStride, float eps, const u16 *__restrict__ weight,
                          const float *__restrict__ rowSums, const float *__restrict__ bias, void *__restrict__ out,
                          int outF32, int rows, int K, int N, int act) {
    extern __shared__ __align__(16) unsigned char sharedBytes[];
    const int stride = K + 8;
    u16 *a = (u16 *)sharedBytes, *w = a + 64 * stride;
    float *exchange = (float *)(w + 32 * stride), *mean = exchange + 2048, *inv = mean + 64;
    unsigned long long *landed = (unsigned long long *)(inv + 64);
    const int n0 = blockIdx.x * 32, m0 = blockIdx.y * 64;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int count = min(64, rows - m0);
    allow_dependents();
    PHASE(0);
    stage_rows(w, weight + (long)n0 * K, K, 0, K, 32, 32);  // weights do not depend on the previous kernel
    asm volatile("cp.async.commit_group;");
    float b[4][2], c[4][2];
    tile_bias(b, bias, n0);
    tile_bias(c, rowSums, n0);
    // Rows past the batch are zero in every CTA; the others arrive by multicast once the producer is done.
    for (int i = threadIdx.x; i < (64 - count) * (K >> 3); i += blockDim.x) {
        Zero16 zero = {0u, 0u, 0u, 0u};
        *(Zero16 *)(a + (count + i / (K >> 3)) * stride + (i % (K >> 3)) * 8) = zero;
    }
    const unsigned rank = cluster_rank(), size = cluster_size();
    if (threadIdx.x == 0) mbarrier_init(landed);
    cluster_sync();  // every CTA's barrier is initialised before any copy can complete on it
    // The expected bytes may be posted after other CTAs' copies have begun to complete (the transaction count goes
    // below zero meanwhile); the phase cannot complete before this arrival.
    if (threadIdx.x == 0) mbarrier_expect(landed, count * K * 2);
    wait_for_producer();
    PHASE(1);
    if (warp == 0)
        for (int r = rank + size * lane; r < count; r += size * 32)
            bulk_copy_multicast(a + r * stride, x16 + (m0 + r) * rowStride, K * 2, landed, (unsigned short)((1u << size) - 1));
    mbarrier_wait(landed);
    asm volatile("cp.async.wait_group 0;" ::: "memory");
    __syncthreads();
    PHASE(2);
    tile_row_stats<BF16>(a, stride, K, eps, mean, inv, rank, size);
    // Waited before the epilogue reads the statistics; also, no CTA exits while a copy may still write into it.
    asm volatile("barrier.cluster.arrive.release;" ::: "memory");
    PHASE(3);

    float acc[4][4];
    cta_tile_mma<BF16>(acc, a, w, K, stride, exchange);
    PHASE(5);
    asm volatile("barrier.cluster.wait.acquire;" ::: "memory");
    if (warp >= 4) return;
    const int l0 = warp * 16 + g, l1 = l0 + 8, r0 = m0 + l0, r1 = m0 + l1;
    const float mu0 = mean[l0], s0 = inv[l0], mu1 = mean[l1], s1 = inv[l1];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int col = n0 + j * 8 + 2 * t;
        const float2 v0 = make_float2(activate(s0 * (acc[j][0] - mu0 * c[j][0]) + b[j][0], act),
                                      activate(s0 * (acc[j][1] - mu0 * c[j][1]) + b[j][1], act));
        const float2 v1 = make_float2(activate(s1 * (acc[j][2] - mu1 * c[j][0]) + b[j][0], act),
                                      activate(s1 * (acc[j][3] - mu1 * c[j][1]) + b[j][1], act));
        if (outF32) {
            if (r0 < rows) *(float2 *)((float *)out + (long)r0 * N + col) = v0;
            if (r1 < rows) *(float2 *)((float *)out + (long)r1 * N + col) = v1;
        } else {
            if (r0 < rows) *(unsigned *)((u16 *)out + (long)r0 * N + col) = pack2<BF16>(v0.x, v0.y);
            if (r1 < rows) *(unsigned *)((u16 *)out + (long)r1 * N + col) = pack2<BF16>(v1.x, v1.y);
        }
    }
    PHASE(6);
}

// The end of a split-K residual kernel: warps 0-3 of each CTA hold their slice's sums of the 64 x 32 tile (rows m0..,
// columns n0..) in `acc`. The cluster's first CTA adds the others' tiles (read from their `partial`, 8 KB of shared
// memory, in rank order, so a result never depends on timing), then bias `b` and the old x, and stores x and its
// 16-bit copy x16 (the next ln_linear's input). Every thread of every CTA calls it.
template <int BF16>
__device__ __forceinline__ void finish_residual(float (*acc)[4], const float (*b)[2], float *partial,
                                                float *__restrict__ x, u16 *__restrict__ x16, int rows, int N, int n0,
                                                int m0, int splits) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    float4 *slot = (float4 *)partial + (warp * 4) * 32 + lane;  // warps 0-3: one float4 per n-tile, in fragment order
    if (splits > 1) {
        const unsigned rank = cluster_rank();
        if (rank != 0 && warp < 4) {
#pragma unroll
            for (int j = 0; j < 4; j++) slot[j * 32] = make_float4(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
        }
        cluster_sync();  // the partial tiles are written
        if (rank == 0 && warp < 4) {
            float4 p[8][4];
#pragma unroll
            for (int q = 1; q < 8; q++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    if (q < splits) p[q][j] = cluster_load16(cluster_address(slot + j * 32, q));
#pragma unroll
            for (int q = 1; q < 8; q++) {
                if (q < splits) {
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        acc[j][0] += p[q][j].x;
                        acc[j][1] += p[q][j].y;
                        acc[j][2] += p[q][j].z;
                        acc[j][3] += p[q][j].w;
                    }
                }
            }
        }
        cluster_sync();  // read: the other CTAs may exit
        if (rank != 0) return;
    }
    if (warp >= 4) return;
    const int r0 = m0 + warp * 16 + g, r1 = r0 + 8;
    // Old values first (all eight loads in flight), then the stores.
    float2 old[4][2];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int col = n0 + j * 8 + 2 * t;
        old[j][0] = r0 < rows ? *(const float2 *)(x + (long)r0 * N + col) : make_float2(0.f, 0.f);
        old[j][1] = r1 < rows ? *(const float2 *)(x + (long)r1 * N + col) : make_float2(0.f, 0.f);
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int col = n0 + j * 8 + 2 * t;
        const float2 v0 = make_float2(old[j][0].x + (acc[j][0] + b[j][0]), old[j][0].y + (acc[j][1] + b[j][1]));
        const float2 v1 = make_float2(old[j][1].x + (acc[j][2] + b[j][0]), old[j][1].y + (acc[j][3] + b[j][1]));
        if (r0 < rows) {
            *(float2 *)(x + (long)r0 * N + col) = v0;
            *(unsigned *)(x16 + (long)r0 * N + col) = pack2<BF16>(v0.x, v0.y);
        }
        if (r1 < rows) {
            *(float2 *)(x + (long)r1 * N + col) = v1;
            *(unsigned *)(x16 + (long)r1 * N + col) = pack2<BF16>(v1.x, v1.y);
        }
    }
}

// grid (N / 32, splits, ceil(M / 64)), clusters of (1, splits, 1), 256 threads, shared (64 + 32) * (K / splits + 8)
// halves + 16 KB; K / splits % 64 == 0, splits <= 8.
template <int BF16>
__device__ void linear_residual(const u16 *__restrict__ input, const u16 *__restrict__ weight,
                                const float *__restrict__ bias, float *__restrict__ x, u16 *__restrict__ x16, int rows,
                                int K, int N) {
    extern __shared__ __align__(16) unsigned char sharedBytes[];
    const int splits = gridDim.y, columns = K / splits, stride = columns + 8;
    u16 *a = (u16 *)sharedBytes, *w = a + 64 * stride;
    float *exchange = (float *)(w + 32 * stride), *partial = exchange + 2048;
    const int n0 = blockIdx.x * 32, k0 = blockIdx.y * columns, m0 = blockIdx.z * 64;
    allow_dependents();
    PHASE(10);
    stage_rows(w, weight + (long)n0 * K, K, k0, columns, 32, 32);
    asm volatile("cp.async.commit_group;");
    float b[4][2];
    tile_bias(b, bias, n0);
    wait_for_producer();
    PHASE(11);
    stage_rows(a, input + (long)m0 * K, K, k0, columns, min(64, rows - m0), 64);
    asm volatile("cp.async.commit_group;");
    asm volatile("cp.async.wait_group 0;" ::: "memory");
    __syncthreads();
    PHASE(12);

    float acc[4][4];
    cta_tile_mma<BF16>(acc, a, w, columns, stride, exchange);
    PHASE(14);

    finish_residual<BF16>(acc, b, partial, x, x16, rows, N, n0, m0, splits);
    PHASE(17);
}
#endif

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900  // (undefined: the host pass of nvcc, for scripts/device/small_batch_bench.cu)
// Entry points `<op>_<dtype>` of one storage type (BF16: 0 fp16, 1 bf16); only the engine's precision is built.
#define CLIPSERVE_SMALL_BATCH_ENTRY_POINTS(BF16, NAME)                                                             \
    extern "C" __global__ void __launch_bounds__(256) ln_linear_##NAME(const u16 *x16, long rowStride, float eps,  \
            const u16 *weight, const float *rowSums, const float *bias, void *out, int outF32, int rows, int K,    \
            int N, int act) {                                                                                      \
        ln_linear<BF16>(x16, rowStride, eps, weight, rowSums, bias, out, outF32, rows, K, N, act);                 \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(256) linear_residual_##NAME(const u16 *input, const u16 *weight,  \
            const float *bias, float *x, u16 *x16, int rows, int K, int N) {                                       \
        linear_residual<BF16>(input, weight, bias, x, x16, rows, K, N);                                            \
    }
#ifdef CLIPSERVE_F16
CLIPSERVE_SMALL_BATCH_ENTRY_POINTS(0, f16)
#endif
#ifdef CLIPSERVE_BF16
CLIPSERVE_SMALL_BATCH_ENTRY_POINTS(1, bf16)
#endif
#endif
