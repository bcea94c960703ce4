// Hopper (sm_90a) multi-head attention with warpgroup MMA (wgmma) for 16-bit activations, head width 64, for large
// batches. Compiled after attention_mma.cu in the same NVRTC program (it uses that file's u16, pack2, shared_address,
// copy_async16, Zero16, allow_dependents and wait_for_producer, and small_batch.cu's unpack2). Built only for the
// sm_90a target; elsewhere the file is empty and the engine keeps the mma.sync kernel.
//
// One CTA of two warpgroups per (head, image), one when the sequence is a single query tile. K and V of the whole
// sequence sit in shared memory in the 128-byte swizzled layout that wgmma reads directly (row r of 64 halves at
// r·128 bytes, its 16-byte chunk c stored at chunk c ^ (r mod 8)), zero-padded to the key blocks below; they arrive
// one key block per cp.async group, so the first tile starts on block 0 while the rest load. The query tiles of 64
// rows are shared out between the warpgroups (tile i to warpgroup i mod 2); each warpgroup loads its tile into its
// own swizzled buffer, and the next one while it computes.
//
// Per tile, over blocks of 64 keys (the last block 16 keys when no more than 16 remain, so ViT-L-14's 257 tokens take
// 4·64 + 16):
//   S = Q·Kᵀ   wgmma m64nNk16, Q and K from shared memory (K-major), fp32 accumulators in registers;
//   softmax    exact, in fp32, running max and sum per row;
//   O += P·V   wgmma m64n64k16 with P from registers (the accumulator layout of S is the A-fragment layout) and V
//              from shared memory (N-major: the transposed-B form).
// A warp of the group holds rows 16w..16w+15 of the tile in the fragments of mma.sync m16n8k16, so the softmax is
// attention_mma.cu's, with the score scale folded into the exponent's FFMA.
//
// Two extras the host may ask for:
//   queryBias  the QKV rows come without their bias (the engine folds K's and V's away): Q's is added to each query
//              tile in shared memory once it has landed (add_query_bias);
//   tail       the last `tail` rows (fewer than 64, after at least two whole tiles; ViT-L-14's 257th) are computed
//              without a tile of their own (attention_rows_scalar), once all of K and V are in.

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// wgmma shared-memory descriptor: 128-byte swizzle (bits 62–63 = 1), 1024 bytes between groups of 8 rows (stride
// byte offset, bits 32–45, in 16-byte units), start address in 16-byte units (bits 0–13). The leading byte offset
// (bits 16–29) steps between 64-column atoms of an N-major operand; with 64 columns there is one, so it is never used
// here (also 1024). The tile must start on a 1024-byte boundary for the swizzle to line up; moving along K inside the
// 128-byte row adds to the start address.
__device__ __forceinline__ unsigned long long wgmma_descriptor_at(unsigned address) {
    return (unsigned long long)((address & 0x3FFFF) >> 4) | (64ull << 16) | (64ull << 32) | (1ull << 62);
}
__device__ __forceinline__ unsigned long long wgmma_descriptor(const void *tile) { return wgmma_descriptor_at(shared_address(tile)); }

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
// Keeps the compiler from moving reads of accumulator registers above wgmma_wait_all.
template <int N> __device__ __forceinline__ void wgmma_hold(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}

#define CLIPSERVE_OUT8(d, i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])

// S (+)= A·Bᵀ for a 64 x N tile, A and B in shared memory, both K-major. accumulate = 0 overwrites S.
template <int BF16, int N> __device__ __forceinline__ void wgmma_ss(float (&s)[N / 2], unsigned long long a, unsigned long long b, int accumulate);
#define CLIPSERVE_WGMMA_SS_N64(TYPE)                                                                                 \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                        \
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " "                                     \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                          \
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "                \
                 "%32, %33, p, 1, 1, 0, 0;\n}\n"                                                                    \
                 : CLIPSERVE_OUT8(s, 0), CLIPSERVE_OUT8(s, 8), CLIPSERVE_OUT8(s, 16), CLIPSERVE_OUT8(s, 24)       \
                 : "l"(a), "l"(b), "r"(accumulate))
#define CLIPSERVE_WGMMA_SS_N16(TYPE)                                                                                 \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"                                                        \
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32." TYPE "." TYPE " "                                     \
                 "{%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 0, 0;\n}\n"                                    \
                 : CLIPSERVE_OUT8(s, 0)                                                                             \
                 : "l"(a), "l"(b), "r"(accumulate))
template <> __device__ __forceinline__ void wgmma_ss<0, 64>(float (&s)[32], unsigned long long a, unsigned long long b, int accumulate) { CLIPSERVE_WGMMA_SS_N64("f16"); }
template <> __device__ __forceinline__ void wgmma_ss<1, 64>(float (&s)[32], unsigned long long a, unsigned long long b, int accumulate) { CLIPSERVE_WGMMA_SS_N64("bf16"); }
template <> __device__ __forceinline__ void wgmma_ss<0, 16>(float (&s)[8], unsigned long long a, unsigned long long b, int accumulate) { CLIPSERVE_WGMMA_SS_N16("f16"); }
template <> __device__ __forceinline__ void wgmma_ss<1, 16>(float (&s)[8], unsigned long long a, unsigned long long b, int accumulate) { CLIPSERVE_WGMMA_SS_N16("bf16"); }

// O += P·V for a 64 x 64 tile and 16 keys: P from registers (A fragment), V in shared memory N-major (transposed B).
template <int BF16> __device__ __forceinline__ void wgmma_rs(float (&o)[32], const unsigned (&p)[4], unsigned long long v);
#define CLIPSERVE_WGMMA_RS(TYPE)                                                                                     \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                                        \
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " "                                     \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                          \
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "                \
                 "{%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"                                                     \
                 : CLIPSERVE_OUT8(o, 0), CLIPSERVE_OUT8(o, 8), CLIPSERVE_OUT8(o, 16), CLIPSERVE_OUT8(o, 24)       \
                 : "r"(p[0]), "r"(p[1]), "r"(p[2]), "r"(p[3]), "l"(v), "r"(1))
template <> __device__ __forceinline__ void wgmma_rs<0>(float (&o)[32], const unsigned (&p)[4], unsigned long long v) { CLIPSERVE_WGMMA_RS("f16"); }
template <> __device__ __forceinline__ void wgmma_rs<1>(float (&o)[32], const unsigned (&p)[4], unsigned long long v) { CLIPSERVE_WGMMA_RS("bf16"); }

// Rows of K and V kept in shared memory for `tokens` keys: blocks of 64, the last one 16 rows when at most 16 keys
// remain in it. (CUDAKernels.wgmmaAttentionSharedBytes computes the same.)
__device__ __forceinline__ int wgmma_key_rows(int tokens) {
    const int last = (tokens - 1) / 64 * 64;
    return last + (tokens - last <= 16 ? 16 : 64);
}

// Copies 64-half rows [first, first + rows) of one head (column offset `column` of the fused QKV rows) into a swizzled
// tile, zeros for rows at or past `tokens`. `threads` threads, numbered `thread`, share the work.
__device__ __forceinline__ void load_swizzled(u16 *tile, const u16 *base, long stride, int column, int first, int rows,
                                              int tokens, int thread, int threads) {
    for (int i = thread; i < rows * 8; i += threads) {
        const int r = i >> 3, c = i & 7;
        u16 *dst = tile + r * 64 + ((c ^ (r & 7)) << 3);
        if (first + r < tokens) {
            copy_async16(dst, base + (first + r) * stride + column + c * 8);
        } else {
            Zero16 zero = {0u, 0u, 0u, 0u};
            *(Zero16 *)dst = zero;
        }
    }
}

// Waits until at most `pending` of this thread's newest cp.async groups are still in flight (at most 7 are left
// pending: waiting for more is always safe); what it copied is then visible to this thread.
__device__ __forceinline__ void wait_copies(int pending) {
    switch (pending) {
    case 0: asm volatile("cp.async.wait_group 0;" ::: "memory"); break;
    case 1: asm volatile("cp.async.wait_group 1;" ::: "memory"); break;
    case 2: asm volatile("cp.async.wait_group 2;" ::: "memory"); break;
    case 3: asm volatile("cp.async.wait_group 3;" ::: "memory"); break;
    case 4: asm volatile("cp.async.wait_group 4;" ::: "memory"); break;
    case 5: asm volatile("cp.async.wait_group 5;" ::: "memory"); break;
    case 6: asm volatile("cp.async.wait_group 6;" ::: "memory"); break;
    default: asm volatile("cp.async.wait_group 7;" ::: "memory"); break;
    }
}

// Makes this thread's finished cp.async and plain shared-memory writes visible to wgmma (the async proxy); a barrier
// must follow before another thread's wgmma reads them.
__device__ __forceinline__ void copies_visible_to_wgmma(int pending) {
    wait_copies(pending);
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// Adds the query bias to the 16-byte chunks of a swizzled 64-row tile that this thread copied (load_swizzled by a
// warpgroup: chunks thread, thread + 128, ..., all of them column chunk thread mod 8, whose 8 bias values are in
// `bias`), once its copies have landed. The QKV GEMM then runs without a bias (see CUDAExecutionContext.forward):
// the tile is rounded to 16 bits twice, as the product and as the sum.
template <int BF16>
__device__ __forceinline__ void add_query_bias(u16 *tile, const float (&bias)[8], int thread) {
    for (int i = thread; i < 64 * 8; i += 128) {
        const int r = i >> 3;
        uint4 *chunk = (uint4 *)(tile + r * 64 + (((i & 7) ^ (r & 7)) << 3));
        uint4 v = *chunk;
        float2 f = unpack2<BF16>(v.x);
        v.x = pack2<BF16>(f.x + bias[0], f.y + bias[1]);
        f = unpack2<BF16>(v.y);
        v.y = pack2<BF16>(f.x + bias[2], f.y + bias[3]);
        f = unpack2<BF16>(v.z);
        v.z = pack2<BF16>(f.x + bias[4], f.y + bias[5]);
        f = unpack2<BF16>(v.w);
        v.w = pack2<BF16>(f.x + bias[6], f.y + bias[7]);
        *chunk = v;
    }
}

// The max and the sum over the four threads of a quad, which hold one row's columns in the accumulator fragments.
__device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// 2^x in one MUFU instruction (flushes denormal results to zero: they are below what a 16-bit P keeps anyway).
__device__ __forceinline__ float exp2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// Issues S = Q·Kᵀ for the N keys from k0 (not committed).
template <int BF16, int N>
__device__ __forceinline__ void issue_scores(float (&s)[N / 2], unsigned long long qDesc, const u16 *keys, int k0) {
    const unsigned long long kDesc = wgmma_descriptor(keys + k0 * 64);
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wgmma_ss<BF16, N>(s, qDesc + 2 * kk, kDesc + 2 * kk, kk);  // +32 bytes along d
}

// Issues O += P·V for the N keys from k0 (not committed).
template <int BF16, int N>
__device__ __forceinline__ void issue_values(float (&o)[32], const unsigned (&p)[4][4], const u16 *values, int k0) {
#pragma unroll
    for (int kk = 0; kk < N / 16; kk++) wgmma_rs<BF16>(o, p[kk], wgmma_descriptor(values + (k0 + 16 * kk) * 64));
}

// The running softmax over the N scores from k0 in s (m in units of scale·log2(e)): rescales O and the row sums to
// the new maximum and leaves P, rounded to 16 bits, in p as A fragments. `partial`: the block holds keys at or past
// `tokens`, which are masked.
template <int BF16, int N>
__device__ __forceinline__ void softmax_block(float (&s)[N / 2], float (&o)[32], float &m0, float &m1, float &l0, float &l1,
                                              unsigned (&p)[4][4], int k0, int tokens, float scale2, int t, bool partial) {
    const float negInf = __int_as_float(0xff800000);
    if (partial) {
#pragma unroll
        for (int j = 0; j < N / 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                if (k0 + j * 8 + 2 * t + (e & 1) >= tokens) s[4 * j + e] = negInf;
            }
        }
    }
    float mx0 = negInf, mx1 = negInf;
#pragma unroll
    for (int j = 0; j < N / 8; j++) {
        mx0 = fmaxf(mx0, fmaxf(s[4 * j], s[4 * j + 1]));
        mx1 = fmaxf(mx1, fmaxf(s[4 * j + 2], s[4 * j + 3]));
    }
    const float n0 = fmaxf(m0, quad_max(mx0) * scale2), n1 = fmaxf(m1, quad_max(mx1) * scale2);
    const float c0 = exp2_approx(m0 - n0), c1 = exp2_approx(m1 - n1);
    m0 = n0;
    m1 = n1;
    l0 *= c0;
    l1 *= c1;
#pragma unroll
    for (int n = 0; n < 8; n++) {
        o[4 * n] *= c0;
        o[4 * n + 1] *= c0;
        o[4 * n + 2] *= c1;
        o[4 * n + 3] *= c1;
    }
#pragma unroll
    for (int j = 0; j < N / 8; j++) {  // exp(scale·(s − max)) = 2^(s·scale2 − n): one FFMA and one MUFU a score
        s[4 * j] = exp2_approx(fmaf(s[4 * j], scale2, -n0));
        s[4 * j + 1] = exp2_approx(fmaf(s[4 * j + 1], scale2, -n0));
        s[4 * j + 2] = exp2_approx(fmaf(s[4 * j + 2], scale2, -n1));
        s[4 * j + 3] = exp2_approx(fmaf(s[4 * j + 3], scale2, -n1));
        l0 += s[4 * j] + s[4 * j + 1];
        l1 += s[4 * j + 2] + s[4 * j + 3];
    }
#pragma unroll
    for (int kk = 0; kk < N / 16; kk++) {
        p[kk][0] = pack2<BF16>(s[8 * kk], s[8 * kk + 1]);
        p[kk][1] = pack2<BF16>(s[8 * kk + 2], s[8 * kk + 3]);
        p[kk][2] = pack2<BF16>(s[8 * kk + 4], s[8 * kk + 5]);
        p[kk][3] = pack2<BF16>(s[8 * kk + 6], s[8 * kk + 7]);
    }
}

// The eight 16-bit values of a 16-byte chunk as floats, in order.
template <int BF16> __device__ __forceinline__ void unpack8(uint4 v, float *out) {
    const unsigned words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 f = unpack2<BF16>(words[i]);
        out[2 * i] = f.x;
        out[2 * i + 1] = f.y;
    }
}

// Query rows [first, tokens) of one head without wgmma: the few rows past the last whole 64-row tile (ViT-L-14's
// 257th), which as a tile of their own would cost as much as 64 rows. One warpgroup (`thread` 0..127, named barrier
// `barrier`), after every key block has landed in shared memory (swizzled as above); q is read from global memory
// (plus queryBias when not null), `scratch` holds the scores (rounded up to 4) and 8 + 4·64 floats for the
// reductions. out points at the head's first column of the image's first row. Exact fp32 softmax (P stays fp32).
//   scores   a thread per key: q (fp32 registers) · K row
//   O        a warp per quarter of the keys, a lane per two columns; the quarters summed through shared memory
template <int BF16>
__device__ void attention_rows_scalar(const u16 *base, long stride, int qColumn, const float *queryBias, const u16 *keys,
                                      const u16 *values, u16 *out, int width, int first, int tokens, float scale2,
                                      int thread, int barrier, float *scratch) {
    float *p = scratch, *reduce = scratch + ((tokens + 3) & ~3), *partial = reduce + 8;
    const int warp = thread >> 5, lane = thread & 31;
    const int quarter = (tokens + 3) / 4, j0 = warp * quarter, j1 = min(tokens, j0 + quarter);
    const int d = 2 * lane, chunk = d >> 3;
    for (int r = first; r < tokens; r++) {
        float q[64];
        const uint4 *qRow = (const uint4 *)(base + r * stride + qColumn);
#pragma unroll
        for (int c = 0; c < 8; c++) unpack8<BF16>(qRow[c], q + 8 * c);
        if (queryBias) {
#pragma unroll
            for (int i = 0; i < 64; i++) q[i] += queryBias[i];
        }
        float mx = __int_as_float(0xff800000);
        for (int j = thread; j < tokens; j += 128) {
            const u16 *k = keys + j * 64;
            float s = 0.f;
#pragma unroll
            for (int c = 0; c < 8; c++) {
                float key[8];
                unpack8<BF16>(*(const uint4 *)(k + ((c ^ (j & 7)) << 3)), key);
#pragma unroll
                for (int i = 0; i < 8; i++) s = fmaf(q[8 * c + i], key[i], s);
            }
            s *= scale2;
            p[j] = s;
            mx = fmaxf(mx, s);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        if (lane == 0) reduce[warp] = mx;
        asm volatile("bar.sync %0, 128;" ::"r"(barrier) : "memory");
        mx = fmaxf(fmaxf(reduce[0], reduce[1]), fmaxf(reduce[2], reduce[3]));
        float sum = 0.f;
        for (int j = thread; j < tokens; j += 128) {
            const float e = exp2_approx(p[j] - mx);
            p[j] = e;
            sum += e;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (lane == 0) reduce[4 + warp] = sum;
        asm volatile("bar.sync %0, 128;" ::"r"(barrier) : "memory");
        float o0 = 0.f, o1 = 0.f;
#pragma unroll 4
        for (int j = j0; j < j1; j++) {
            const float2 v = unpack2<BF16>(*(const unsigned *)(values + j * 64 + ((chunk ^ (j & 7)) << 3) + (d & 7)));
            o0 = fmaf(p[j], v.x, o0);
            o1 = fmaf(p[j], v.y, o1);
        }
        partial[warp * 64 + d] = o0;
        partial[warp * 64 + d + 1] = o1;
        asm volatile("bar.sync %0, 128;" ::"r"(barrier) : "memory");
        if (warp == 0) {
            const float inv = 1.f / (reduce[4] + reduce[5] + reduce[6] + reduce[7]);
            float a = 0.f, b = 0.f;
#pragma unroll
            for (int w = 0; w < 4; w++) a += partial[w * 64 + d], b += partial[w * 64 + d + 1];
            *(unsigned *)(out + (long)r * width + d) = pack2<BF16>(a * inv, b * inv);
        }
        asm volatile("bar.sync %0, 128;" ::"r"(barrier) : "memory");  // p, reduce and partial are reused
    }
}

template <int BF16>
__device__ void attention_wgmma(const u16 *qkv, u16 *out, int tokens, int heads, float scale, const float *queryBias,
                                int tail) {
    extern __shared__ __align__(1024) unsigned char wgmmaShared[];
    allow_dependents();
    wait_for_producer();  // qkv comes from the kernel before (when launched as its dependent)
    // The swizzle pattern repeats every 1024 bytes and wgmma expects tiles aligned to it.
    u16 *keys = (u16 *)(wgmmaShared + ((1024 - (shared_address(wgmmaShared) & 1023)) & 1023));
    const int keyRows = wgmma_key_rows(tokens);
    u16 *values = keys + keyRows * 64;
    const int warpgroups = blockDim.x >> 7, wg = threadIdx.x >> 7, thread = threadIdx.x & 127;
    u16 *queries = values + keyRows * 64 + wg * 2 * 64 * 64;  // two 8 KB buffers per warpgroup
    const int h = blockIdx.y, b = gridDim.z - 1 - blockIdx.z;  // last image first (see layernorm in vit_kernels.cu)
    const int width = heads * 64;
    const long stride = 3L * width;
    const u16 *base = qkv + (long)b * tokens * stride;
    const int warp = thread >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    // Query tiles and key blocks, 64 rows each; the last `tail` rows (the host sends 0, or fewer than 64 after at
    // least two whole tiles) go to attention_rows_scalar instead of a tile of their own.
    const int tiles = (tokens - tail + 63) / 64, blocks = (tokens + 63) / 64;
    const float scale2 = scale * 1.4426950408889634f;  // exp(x·scale − m) as exp2 of pre-scaled scores
    const float negInf = __int_as_float(0xff800000);
    // The query bias of the columns this thread copies (queryBias null: the QKV rows have their bias already).
    float qb[8];
#pragma unroll
    for (int i = 0; i < 8; i++) qb[i] = queryBias ? queryBias[h * 64 + (thread & 7) * 8 + i] : 0.f;

    // One cp.async group per key block (the first also brings this warpgroup's first query tile): the first pass
    // starts on block 0 while the others are still on their way.
    for (int j = 0; j < blocks; j++) {
        const int rows = min(64, keyRows - j * 64);
        load_swizzled(keys + j * 64 * 64, base, stride, width + h * 64, j * 64, rows, tokens, threadIdx.x, blockDim.x);
        load_swizzled(values + j * 64 * 64, base, stride, 2 * width + h * 64, j * 64, rows, tokens, threadIdx.x, blockDim.x);
        if (j == 0 && wg < tiles) load_swizzled(queries, base, stride, h * 64, wg * 64, 64, tokens, thread, 128);
        asm volatile("cp.async.commit_group;");
    }
    // With tail rows, everything is waited for at once (no first pass racing the copies of later key blocks), then
    // the warpgroup the next tile would have gone to (the one with fewer tiles, or either) computes those rows before
    // its tiles. (Here rather than after the tile loop: code after the loop makes ptxas serialise the wgmmas.)
    if (tail > 0) {
        wait_copies(0);
        if (queryBias) add_query_bias<BF16>(queries, qb, thread);
        copies_visible_to_wgmma(0);
        __syncthreads();
        if (wg == tiles % warpgroups) {
            attention_rows_scalar<BF16>(base, stride, h * 64, queryBias ? queryBias + h * 64 : nullptr, keys, values,
                                        out + (long)b * tokens * width + h * 64, width, tokens - tail, tokens, scale2,
                                        thread, 1 + wg, (float *)(values + keyRows * 64 + warpgroups * 2 * 64 * 64));
        }
    }

    for (int tile = wg, pass = 0; tile < tiles; tile += warpgroups, pass++) {
        u16 *q = queries + (pass & 1) * 64 * 64;
        const int next = tile + warpgroups;
        if (next < tiles) {  // the next tile's rows load while this one computes
            load_swizzled(queries + ((pass + 1) & 1) * 64 * 64, base, stride, h * 64, next * 64, 64, tokens, thread, 128);
            asm volatile("cp.async.commit_group;");
        }
        const unsigned long long qDesc = wgmma_descriptor(q);
        float o[32];
#pragma unroll
        for (int i = 0; i < 32; i++) o[i] = 0.f;
        float m0 = negInf, m1 = negInf, l0 = 0.f, l1 = 0.f;
        // Key block j's P·V and block j + 1's scores go to the tensor cores together; the softmax of a block runs
        // between them. Full blocks (64 keys, the last of them possibly part-masked) first, then the 16-key tail if
        // there is one, each in straight-line code: a branch between wgmmas in flight makes ptxas serialise them.
        // (The first pass waits for each key block's copies before its scores.)
        const int full = tokens - (blocks - 1) * 64 <= 16 ? blocks - 1 : blocks;
        const int pendingAfterBlock0 = blocks - 1 + (next < tiles ? 1 : 0);
        unsigned p[4][4];
        if (pass == 0 && tail == 0) {  // every warpgroup has a first tile: all threads meet these barriers
            wait_copies(pendingAfterBlock0);
            if (queryBias) add_query_bias<BF16>(q, qb, thread);
            copies_visible_to_wgmma(pendingAfterBlock0);
            __syncthreads();
        }
        if (full > 0) {
            float s[32];
            wgmma_fence();
            issue_scores<BF16, 64>(s, qDesc, keys, 0);
            wgmma_commit();
            wgmma_wait_all();
            wgmma_hold(s);
            for (int j = 0; j < full; j++) {
                const int k0 = j * 64;
                softmax_block<BF16, 64>(s, o, m0, m1, l0, l1, p, k0, tokens, scale2, t, k0 + 64 > tokens);
                if (pass == 0 && tail == 0 && j + 1 < blocks) {
                    copies_visible_to_wgmma(pendingAfterBlock0 - (j + 1));
                    __syncthreads();
                }
                wgmma_fence();  // o, p and s were written by this thread since the last wgmma
                issue_values<BF16, 64>(o, p, values, k0);
                if (j + 1 < full) issue_scores<BF16, 64>(s, qDesc, keys, k0 + 64);
                wgmma_commit();
                wgmma_wait_all();
                wgmma_hold(o);
                wgmma_hold(s);
            }
        }
        if (full < blocks) {
            const int k0 = full * 64;
            float s[8];
            wgmma_fence();
            issue_scores<BF16, 16>(s, qDesc, keys, k0);
            wgmma_commit();
            wgmma_wait_all();
            wgmma_hold(s);
            softmax_block<BF16, 16>(s, o, m0, m1, l0, l1, p, k0, tokens, scale2, t, true);
            wgmma_fence();
            issue_values<BF16, 16>(o, p, values, k0);
            wgmma_commit();
            wgmma_wait_all();
            wgmma_hold(o);
        }
        const float inv0 = 1.f / quad_sum(l0), inv1 = 1.f / quad_sum(l1);
        const int r0 = tile * 64 + warp * 16 + g, r1 = r0 + 8;
#pragma unroll
        for (int n = 0; n < 8; n++) {
            const int col = h * 64 + n * 8 + 2 * t;
            if (r0 < tokens) *(unsigned *)(out + ((long)b * tokens + r0) * width + col) = pack2<BF16>(o[4 * n] * inv0, o[4 * n + 1] * inv0);
            if (r1 < tokens) *(unsigned *)(out + ((long)b * tokens + r1) * width + col) = pack2<BF16>(o[4 * n + 2] * inv1, o[4 * n + 3] * inv1);
        }
        if (next < tiles) {
            wait_copies(0);
            if (queryBias) add_query_bias<BF16>(queries + ((pass + 1) & 1) * 64 * 64, qb, thread);
            copies_visible_to_wgmma(0);
            asm volatile("bar.sync %0, 128;" ::"r"(1 + wg) : "memory");  // this warpgroup's threads only
        }
    }
}

#ifdef CLIPSERVE_F16
extern "C" __global__ void __launch_bounds__(256, 2) attention_wgmma_d64_f16(const u16 *qkv, u16 *out, int tokens, int heads,
                                                                              float scale, const float *queryBias, int tail) {
    attention_wgmma<0>(qkv, out, tokens, heads, scale, queryBias, tail);
}
#endif
#ifdef CLIPSERVE_BF16
extern "C" __global__ void __launch_bounds__(256, 2) attention_wgmma_d64_bf16(const u16 *qkv, u16 *out, int tokens, int heads,
                                                                               float scale, const float *queryBias, int tail) {
    attention_wgmma<1>(qkv, out, tokens, heads, scale, queryBias, tail);
}
#endif

#endif  // __CUDA_ARCH_FEAT_SM90_ALL
