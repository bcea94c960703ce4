// Tensor-core multi-head attention for 16-bit activations (fp16 / bf16), head width 64 or 80, S up to ~600.
// Compiled with small_batch.cu as one NVRTC program: if it fails to build, the engine falls back to the scalar
// kernel and the cuBLASLt block.
//
// One CTA of 4 to 8 warps per (head, image) — or per group of query tiles when the batch is too small to fill the GPU —;
// each warp owns 16 query rows at a time and walks the CTA's tiles (the host picks the warps per CTA that idle the
// fewest), so K/V of a head are staged once however long the sequence. K and V (row-major, copied with cp.async in blocks of 64 keys so the next block loads
// while this one is used; V read through ldmatrix.trans) of the whole sequence for the head sit in shared memory as
// 16-bit values, padded to a multiple of 16 keys with zeros. Scores S = Q·Kᵀ and O += P·V use mma.sync m16n8k16 with fp32 accumulators; the softmax is exact
// in fp32 with a running max and sum over blocks of 64 keys. Q, K, V are read strided from the fused QKV output
// [B*S, 3W]; the output is [B*S, W].

typedef unsigned short u16;

__device__ __forceinline__ unsigned load32(const u16 *p) { return *(const unsigned *)p; }

template <int BF16> __device__ __forceinline__ unsigned pack2(float lo, float hi);
template <> __device__ __forceinline__ unsigned pack2<0>(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
template <> __device__ __forceinline__ unsigned pack2<1>(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

template <int BF16> __device__ __forceinline__ void mma16816(float *c, const unsigned *a, unsigned b0, unsigned b1);
template <> __device__ __forceinline__ void mma16816<0>(float *c, const unsigned *a, unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma16816<1>(float *c, const unsigned *a, unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ unsigned shared_address(const void *p) {
    unsigned address;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(address) : "l"(p));
    return address;
}

// 16-byte global -> shared copy that does not wait (many in flight per thread).
__device__ __forceinline__ void copy_async16(void *shared, const void *global) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(shared_address(shared)), "l"(global));
}

// B fragment of m16n8k16 from a row-major [k][n] tile: two transposed 8x8 loads (rows k0..k0+15 from lanes 0..15).
__device__ __forceinline__ void load_b_transposed(unsigned &b0, unsigned &b1, const u16 *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];"
                 : "=r"(b0), "=r"(b1)
                 : "r"(shared_address(row)));
}

struct __align__(16) Zero16 { unsigned x, y, z, w; };

// Programmatic dependent launch: let the next kernel in the stream start its prologue now, and wait until the kernel
// before this one has finished and its writes are visible. Both are no-ops without the launch attribute.
__device__ __forceinline__ void allow_dependents() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_for_producer() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

template <int BF16, int D>
__device__ void attention_mma(const u16 *qkv, u16 *out, int tokens, int heads, float scale, int tilesPerCTA) {
    extern __shared__ __align__(16) unsigned char sharedBytes[];
    allow_dependents();
    wait_for_producer();  // qkv comes from the kernel before (when launched as its dependent)
    const int padded = (tokens + 15) & ~15;
    const int kStride = D + 8;  // halves; 16-byte multiple, and spreads rows over banks
    u16 *keys = (u16 *)sharedBytes;
    u16 *values = keys + padded * kStride;
    const int b = blockIdx.z, h = blockIdx.y;
    const int width = heads * D;
    const long stride = 3L * width;
    const u16 *base = qkv + (long)b * tokens * stride;
    const int warps = blockDim.x >> 5;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;

    // K/V arrive in blocks of 64 keys, one cp.async group each: block j+1 is in flight while block j is used.
    const int chunks = D / 8;
    auto issue = [&](int k0) {
        const int end = min(k0 + 64, padded);
        for (int i = threadIdx.x; i < (end - k0) * chunks; i += blockDim.x) {
            int r = k0 + i / chunks, c = (i % chunks) * 8;
            u16 *k = keys + r * kStride + c, *v = values + r * kStride + c;
            if (r < tokens) {
                copy_async16(k, base + r * stride + width + h * D + c);
                copy_async16(v, base + r * stride + 2 * width + h * D + c);
            } else {
                Zero16 zero = {0u, 0u, 0u, 0u};
                *(Zero16 *)k = zero;
                *(Zero16 *)v = zero;
            }
        }
        asm volatile("cp.async.commit_group;");
    };
    issue(0);
    const float negInf = __int_as_float(0xff800000);
    // exp(x·scale − m) as exp2 of pre-scaled scores.
    const float scale2 = scale * 1.4426950408889634f;

    // The CTA owns query tiles [blockIdx.x·tilesPerCTA, +tilesPerCTA) of 16 rows; warp w takes tiles w, w+warps, ...
    // The first pass streams K/V in (every warp meets its barriers, idle or not); later passes find it all in place.
    for (int pass = 0;; pass++) {
        const int local = warp + pass * warps;
        const int q0 = (blockIdx.x * tilesPerCTA + local) * 16;
        const bool active = local < tilesPerCTA && q0 < tokens;
        if (pass > 0 && !active) break;
        const int r0 = q0 + g, r1 = q0 + g + 8;
        unsigned qa[D / 16][4];
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            int col = h * D + kk * 16 + 2 * t;
            qa[kk][0] = active && r0 < tokens ? load32(base + r0 * stride + col) : 0u;
            qa[kk][1] = active && r1 < tokens ? load32(base + r1 * stride + col) : 0u;
            qa[kk][2] = active && r0 < tokens ? load32(base + r0 * stride + col + 8) : 0u;
            qa[kk][3] = active && r1 < tokens ? load32(base + r1 * stride + col + 8) : 0u;
        }
        float o[D / 8][4];
#pragma unroll
        for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
        float m0 = negInf, m1 = negInf, l0 = 0.f, l1 = 0.f;

        for (int k0 = 0; k0 < padded; k0 += 64) {
            if (pass == 0) {
                if (k0 + 64 < padded) {
                    issue(k0 + 64);
                    asm volatile("cp.async.wait_group 1;" ::: "memory");
                } else {
                    asm volatile("cp.async.wait_group 0;" ::: "memory");
                }
                __syncthreads();
            }
            if (!active) continue;
            const int tiles = min(8, (padded - k0) >> 3);  // even: padded is a multiple of 16
            float s[8][4];
    #pragma unroll
            for (int j = 0; j < 8; j++) {
                s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
                if (j < tiles) {
                    const u16 *krow = keys + (k0 + j * 8 + g) * kStride + 2 * t;
    #pragma unroll
                    for (int kk = 0; kk < D / 16; kk++) mma16816<BF16>(s[j], qa[kk], load32(krow + kk * 16), load32(krow + kk * 16 + 8));
                }
            }
            float mx0 = negInf, mx1 = negInf;
    #pragma unroll
            for (int j = 0; j < 8; j++) {
    #pragma unroll
                for (int e = 0; e < 4; e++) {
                    int key = k0 + j * 8 + 2 * t + (e & 1);
                    s[j][e] = (j < tiles && key < tokens) ? s[j][e] * scale2 : negInf;
                }
                mx0 = fmaxf(mx0, fmaxf(s[j][0], s[j][1]));
                mx1 = fmaxf(mx1, fmaxf(s[j][2], s[j][3]));
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
            const float c0 = exp2f(m0 - n0), c1 = exp2f(m1 - n1);
            m0 = n0;
            m1 = n1;
            l0 *= c0;
            l1 *= c1;
    #pragma unroll
            for (int n = 0; n < D / 8; n++) {
                o[n][0] *= c0;
                o[n][1] *= c0;
                o[n][2] *= c1;
                o[n][3] *= c1;
            }
    #pragma unroll
            for (int j = 0; j < 8; j++) {
                s[j][0] = exp2f(s[j][0] - n0);
                s[j][1] = exp2f(s[j][1] - n0);
                s[j][2] = exp2f(s[j][2] - n1);
                s[j][3] = exp2f(s[j][3] - n1);
                l0 += s[j][0] + s[j][1];
                l1 += s[j][2] + s[j][3];
            }
    #pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                if (2 * kk < tiles) {
                    unsigned a[4] = {pack2<BF16>(s[2 * kk][0], s[2 * kk][1]), pack2<BF16>(s[2 * kk][2], s[2 * kk][3]),
                                     pack2<BF16>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                     pack2<BF16>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
                    const u16 *vrow = values + (k0 + kk * 16 + (lane & 15)) * kStride;
    #pragma unroll
                    for (int n = 0; n < D / 8; n++) {
                        unsigned b0, b1;
                        load_b_transposed(b0, b1, vrow + n * 8);
                        mma16816<BF16>(o[n], a, b0, b1);
                    }
                }
            }
        }
        if (!active) continue;  // pass 0 only: idle warps went through the barriers
        l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
        l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        const float inv0 = 1.f / l0, inv1 = 1.f / l1;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            int col = h * D + n * 8 + 2 * t;
            if (r0 < tokens) *(unsigned *)(out + ((long)b * tokens + r0) * width + col) = pack2<BF16>(o[n][0] * inv0, o[n][1] * inv0);
            if (r1 < tokens) *(unsigned *)(out + ((long)b * tokens + r1) * width + col) = pack2<BF16>(o[n][2] * inv1, o[n][3] * inv1);
        }
    }
}

#ifdef CLIPSERVE_F16
extern "C" __global__ void __launch_bounds__(256) attention_mma_d64_f16(const u16 *qkv, u16 *out, int tokens, int heads, float scale, int tilesPerCTA) {
    attention_mma<0, 64>(qkv, out, tokens, heads, scale, tilesPerCTA);
}
extern "C" __global__ void __launch_bounds__(256) attention_mma_d80_f16(const u16 *qkv, u16 *out, int tokens, int heads, float scale, int tilesPerCTA) {
    attention_mma<0, 80>(qkv, out, tokens, heads, scale, tilesPerCTA);
}
#endif
#ifdef CLIPSERVE_BF16
extern "C" __global__ void __launch_bounds__(256) attention_mma_d64_bf16(const u16 *qkv, u16 *out, int tokens, int heads, float scale, int tilesPerCTA) {
    attention_mma<1, 64>(qkv, out, tokens, heads, scale, tilesPerCTA);
}
extern "C" __global__ void __launch_bounds__(256) attention_mma_d80_bf16(const u16 *qkv, u16 *out, int tokens, int heads, float scale, int tilesPerCTA) {
    attention_mma<1, 80>(qkv, out, tokens, heads, scale, tilesPerCTA);
}
#endif
