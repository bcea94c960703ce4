// Small-batch linear layers for 16-bit activations (fp16 / bf16), sm_90 and later: the whole transformer block in five
// kernels, each launched as a programmatic dependent of the one before (PDL) so its weights stream into shared memory
// while the previous kernel still runs, and as a thread-block cluster whose CTAs share work through distributed
// shared memory. Compiled after attention_mma.cu in the same NVRTC program (it uses that file's pack2, mma16816,
// shared_address, copy_async16, allow_dependents and wait_for_producer).
//
//   ln_linear:        out[M, N] = act(LayerNorm(x)[M, K] · Wᵀ + bias), 16-bit out; act = none, exact-erf GELU, QuickGELU
//   linear_residual:  x[M, N] += A[M, K] · Wᵀ + bias, fp32 residual stream, K split over the CTAs of a cluster
//
// W is PyTorch's Linear weight [N, K] row-major, which is exactly the "col" B operand of mma.m16n8k16. A CTA of 8 warps
// computes a 64 x 32 tile: warp w owns rows 16(w % 4)..+15, all four 8-column n-tiles and half of K (w / 4); the
// second half's sums are added to the first through shared memory, in that order. Every operand sits in shared
// memory with rows padded by 8 halves, so the 8 rows an ldmatrix reads fall on different banks.
//
// ln_linear: the CTAs of a cluster (consecutive n-tiles) need the same normalised rows, so each normalises a share of
// them and writes the 16-bit result into every CTA's A tile.
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

__device__ __forceinline__ unsigned cluster_rank() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}
__device__ __forceinline__ unsigned cluster_size() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(r));
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
__device__ __forceinline__ void cluster_store8(unsigned address, uint2 v) {
    asm volatile("st.shared::cluster.v2.u32 [%0], {%1, %2};" ::"r"(address), "r"(v.x), "r"(v.y) : "memory");
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

// LayerNorm of the fp32 rows [m0, m0 + 64) of x into the 16-bit A tile (rows of `stride` halves) of every CTA in the
// cluster: this CTA takes rows rank, rank + C, ...; its warps take those in turn; rows >= `rows` are zero. Two-pass
// mean and variance in fp32, as the layernorm kernels compute them. K = 128 * VECTORS is a compile-time constant so
// that no load sits behind a branch.
template <int BF16, int VECTORS>
__device__ __forceinline__ void layernorm_to_cluster(const float *__restrict__ x, const float *__restrict__ gamma,
                                                     const float *__restrict__ beta, float eps, u16 *a, int stride,
                                                     int m0, int rows) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const unsigned rank = cluster_rank(), size = cluster_size();
    constexpr int K = VECTORS * 128;
    float4 gm[VECTORS], bt[VECTORS];
#pragma unroll
    for (int i = 0; i < VECTORS; i++) {
        gm[i] = ((const float4 *)gamma)[i * 32 + lane];
        bt[i] = ((const float4 *)beta)[i * 32 + lane];
    }
    for (int r = rank + size * warp; r < 64; r += size * 8) {
        u16 *dst = a + r * stride;
        if (m0 + r >= rows) {  // padding rows: zeros, in every CTA
            for (unsigned q = 0; q < size; q++)
#pragma unroll
                for (int i = 0; i < VECTORS; i++) cluster_store8(cluster_address(dst + (i * 32 + lane) * 4, q), make_uint2(0u, 0u));
            continue;
        }
        float4 v[VECTORS];
        const float4 *src = (const float4 *)(x + (long)(m0 + r) * K);
#pragma unroll
        for (int i = 0; i < VECTORS; i++) v[i] = src[i * 32 + lane];
        float sum = 0.f, squares = 0.f;
#pragma unroll
        for (int i = 0; i < VECTORS; i++) sum += (v[i].x + v[i].y) + (v[i].z + v[i].w);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        const float mean = sum * (1.f / K);
#pragma unroll
        for (int i = 0; i < VECTORS; i++) {
            const float dx = v[i].x - mean, dy = v[i].y - mean, dz = v[i].z - mean, dw = v[i].w - mean;
            squares += (dx * dx + dy * dy) + (dz * dz + dw * dw);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) squares += __shfl_xor_sync(0xffffffffu, squares, o);
        const float inv = rsqrtf(squares * (1.f / K) + eps);
        uint2 packed[VECTORS];
#pragma unroll
        for (int i = 0; i < VECTORS; i++) {
            packed[i].x = pack2<BF16>((v[i].x - mean) * inv * gm[i].x + bt[i].x, (v[i].y - mean) * inv * gm[i].y + bt[i].y);
            packed[i].y = pack2<BF16>((v[i].z - mean) * inv * gm[i].z + bt[i].z, (v[i].w - mean) * inv * gm[i].w + bt[i].w);
        }
        for (unsigned q = 0; q < size; q++)
#pragma unroll
            for (int i = 0; i < VECTORS; i++) cluster_store8(cluster_address(dst + (i * 32 + lane) * 4, q), packed[i]);
    }
}

// act: 0 none, 1 GELU with exact erf (nn.GELU), 2 QuickGELU (x · sigmoid(1.702 x)).
__device__ __forceinline__ float activate(float v, int act) {
    if (act == 1) return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    if (act == 2) return v / (1.f + __expf(-1.702f * v));
    return v;
}

// grid (N / 32, ceil(M / 64)), clusters of C CTAs along x (C divides N / 32, at most 8), 256 threads, shared
// (64 + 32) * (K + 8) halves + 8 KB. K is a multiple of 128 up to 1024.
template <int BF16>
__device__ void ln_linear(const float *__restrict__ x, const float *__restrict__ gamma, const float *__restrict__ beta,
                          float eps, const u16 *__restrict__ weight, const float *__restrict__ bias, u16 *__restrict__ out,
                          int rows, int K, int N, int act) {
    extern __shared__ __align__(16) unsigned char sharedBytes[];
    const int stride = K + 8;
    u16 *a = (u16 *)sharedBytes, *w = a + 64 * stride;
    float *exchange = (float *)(w + 32 * stride);
    const int n0 = blockIdx.x * 32, m0 = blockIdx.y * 64;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    allow_dependents();
    PHASE(0);
    stage_rows(w, weight + (long)n0 * K, K, 0, K, 32, 32);  // weights do not depend on the previous kernel
    asm volatile("cp.async.commit_group;");
    float b[4][2];
    tile_bias(b, bias, n0);
    wait_for_producer();
    PHASE(1);

    switch (K) {  // the host sends only multiples of 128 up to 1024
    case 128: layernorm_to_cluster<BF16, 1>(x, gamma, beta, eps, a, stride, m0, rows); break;
    case 256: layernorm_to_cluster<BF16, 2>(x, gamma, beta, eps, a, stride, m0, rows); break;
    case 384: layernorm_to_cluster<BF16, 3>(x, gamma, beta, eps, a, stride, m0, rows); break;
    case 512: layernorm_to_cluster<BF16, 4>(x, gamma, beta, eps, a, stride, m0, rows); break;
    case 640: layernorm_to_cluster<BF16, 5>(x, gamma, beta, eps, a, stride, m0, rows); break;
    case 768: layernorm_to_cluster<BF16, 6>(x, gamma, beta, eps, a, stride, m0, rows); break;
    case 896: layernorm_to_cluster<BF16, 7>(x, gamma, beta, eps, a, stride, m0, rows); break;
    case 1024: layernorm_to_cluster<BF16, 8>(x, gamma, beta, eps, a, stride, m0, rows); break;
    default: __trap();
    }
    PHASE(2);
    asm volatile("cp.async.wait_group 0;" ::: "memory");
    cluster_sync();  // every CTA's A tile complete (and its W tile: the barrier includes this CTA's threads)
    PHASE(3);

    float acc[4][4];
    cta_tile_mma<BF16>(acc, a, w, K, stride, exchange);
    PHASE(5);
    if (warp >= 4) return;
    const int r0 = m0 + warp * 16 + g, r1 = r0 + 8;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int col = n0 + j * 8 + 2 * t;
        if (r0 < rows)
            *(unsigned *)(out + (long)r0 * N + col) = pack2<BF16>(activate(acc[j][0] + b[j][0], act), activate(acc[j][1] + b[j][1], act));
        if (r1 < rows)
            *(unsigned *)(out + (long)r1 * N + col) = pack2<BF16>(activate(acc[j][2] + b[j][0], act), activate(acc[j][3] + b[j][1], act));
    }
    PHASE(6);
}

// grid (N / 32, splits, ceil(M / 64)), clusters of (1, splits, 1), 256 threads, shared (64 + 32) * (K / splits + 8)
// halves + 16 KB; K / splits % 64 == 0, splits <= 8.
template <int BF16>
__device__ void linear_residual(const u16 *__restrict__ input, const u16 *__restrict__ weight,
                                const float *__restrict__ bias, float *__restrict__ x, int rows, int K, int N) {
    extern __shared__ __align__(16) unsigned char sharedBytes[];
    const int splits = gridDim.y, columns = K / splits, stride = columns + 8;
    u16 *a = (u16 *)sharedBytes, *w = a + 64 * stride;
    float *exchange = (float *)(w + 32 * stride), *partial = exchange + 2048;
    const int n0 = blockIdx.x * 32, k0 = blockIdx.y * columns, m0 = blockIdx.z * 64;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
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

    float4 *slot = (float4 *)partial + (warp * 4) * 32 + lane;  // warps 0-3: one float4 per n-tile, in fragment order
    if (splits > 1) {
        const unsigned rank = cluster_rank();
        if (rank != 0 && warp < 4) {
#pragma unroll
            for (int j = 0; j < 4; j++) slot[j * 32] = make_float4(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
        }
        cluster_sync();  // the partial tiles are written
        PHASE(15);
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
        PHASE(16);
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
        if (r0 < rows)
            *(float2 *)(x + (long)r0 * N + col) =
                make_float2(old[j][0].x + (acc[j][0] + b[j][0]), old[j][0].y + (acc[j][1] + b[j][1]));
        if (r1 < rows)
            *(float2 *)(x + (long)r1 * N + col) =
                make_float2(old[j][1].x + (acc[j][2] + b[j][0]), old[j][1].y + (acc[j][3] + b[j][1]));
    }
    PHASE(17);
}
#endif

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900  // (undefined: the host pass of nvcc, for scripts/device/small_batch_bench.cu)
// Entry points `<op>_<dtype>` of one storage type (BF16: 0 fp16, 1 bf16); only the engine's precision is built.
#define CLIPSERVE_SMALL_BATCH_ENTRY_POINTS(BF16, NAME)                                                             \
    extern "C" __global__ void __launch_bounds__(256) ln_linear_##NAME(const float *x, const float *gamma,          \
            const float *beta, float eps, const u16 *weight, const float *bias, u16 *out, int rows, int K, int N, \
            int act) {                                                                                             \
        ln_linear<BF16>(x, gamma, beta, eps, weight, bias, out, rows, K, N, act);                                  \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(256) linear_residual_##NAME(const u16 *input, const u16 *weight,  \
            const float *bias, float *x, int rows, int K, int N) {                                                 \
        linear_residual<BF16>(input, weight, bias, x, rows, K, N);                                                 \
    }
#ifdef CLIPSERVE_F16
CLIPSERVE_SMALL_BATCH_ENTRY_POINTS(0, f16)
#endif
#ifdef CLIPSERVE_BF16
CLIPSERVE_SMALL_BATCH_ENTRY_POINTS(1, bf16)
#endif
#endif
