// fp32 GEMM for the CPU backend: AVX-512 FMA micro-kernel with a 14×32 register tile and fused epilogues.
//
// Blocking (one thread's share of the columns): columns in micro-panels of NR = 32, rows in blocks of MC, K whole
// up to 4096 (ViT MLPs) so C is written once. Each micro-panel of op(B) (K × 32) is packed k-major into a buffer
// that stays in L2 while every 14-row tile of the MC-row block of A (read in place, 14 row streams) runs over it;
// measured on Zen 5 this beat KC = 256/384/768 blocking for M ≈ 400, K = 768/3072. A tile's 28 accumulators stay in
// registers for a whole K block; after the last block the epilogue (bias, GELU, QuickGELU) runs on them before
// the only store. Everything here is compiled for AVX-512 through target attributes, so the rest of the binary
// keeps the baseline x86-64 target and AVX2-only CPUs never execute it (callers check ck_avx512_available()).
#include "CKernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define CK_TARGET __attribute__((target("avx512f,avx512dq,fma")))
#define CK_INLINE static inline __attribute__((always_inline)) CK_TARGET

/// Register tile MR × NR; rows per block of A (MC); the most K per block (KC_MAX).
enum { MR = 14, NR = 32, MC = 14 * 36, KC_MAX = 4096 };

int ck_avx512_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma");
}

// MARK: Vector math

/// e^x, relative error below 3e-7: Cephes expf's polynomial on x − n·ln2, scaled by 2^n with vscalefps.
CK_INLINE __m512 ck_exp(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.37626f)), _mm512_set1_ps(-87.33654f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/// 1/x to about 1 ulp: vrcp14ps (relative error 2⁻¹⁴) and one Newton step, cheaper than vdivps.
CK_INLINE __m512 ck_reciprocal(__m512 x) {
    __m512 r = _mm512_rcp14_ps(x);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(x, r, _mm512_set1_ps(2.0f)));
}

/// nn.GELU(): x·Φ(x) = 0.5·x·(1 + erf(x/√2)), through erfc(|x|/√2) by Abramowitz & Stegun 7.1.26 (absolute error
/// below 1.5e-7, the formula PyTorch's vectorised CPU erf uses too).
CK_INLINE __m512 ck_gelu(__m512 x) {
    __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
    __m512 t = ck_reciprocal(_mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    __m512 erfc = _mm512_mul_ps(_mm512_mul_ps(p, t), ck_exp(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), z), z)));
    __m512 half_tail = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), erfc);
    __mmask16 positive = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
    return _mm512_mask_sub_ps(half_tail, positive, x, half_tail);
}

/// open_clip's QuickGELU: x·sigmoid(1.702·x).
CK_INLINE __m512 ck_quick_gelu(__m512 x) {
    __m512 e = ck_exp(_mm512_mul_ps(x, _mm512_set1_ps(-1.702f)));
    return _mm512_mul_ps(x, ck_reciprocal(_mm512_add_ps(e, _mm512_set1_ps(1.0f))));
}

CK_INLINE __m512 ck_activate(__m512 x, ck_epilogue epilogue) {
    switch (epilogue) {
    case CK_EPILOGUE_BIAS_GELU: return ck_gelu(x);
    case CK_EPILOGUE_BIAS_QUICKGELU: return ck_quick_gelu(x);
    default: return x;
    }
}

CK_TARGET void ck_bias_activation(float *x, const float *bias, int count, ck_epilogue epilogue) {
    for (int i = 0; i < count; i += 16) {
        __mmask16 mask = count - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias + i));
        _mm512_mask_storeu_ps(x + i, mask, ck_activate(v, epilogue));
    }
}

// MARK: Packing op(B)

/// Transposes 16 rows of 16 floats in registers (unpack, then 128-bit lane shuffles).
CK_INLINE void ck_transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) {
        u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g + 0], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g + 0], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    // u[4g + e], 128-bit lane L, holds rows 4g..4g+3 of column 4L + e.
    for (int e = 0; e < 4; e++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x88), v1 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x88);
        __m512 w0 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xDD), w1 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xDD);
        r[e] = _mm512_shuffle_f32x4(v0, v1, 0x88);
        r[8 + e] = _mm512_shuffle_f32x4(v0, v1, 0xDD);
        r[4 + e] = _mm512_shuffle_f32x4(w0, w1, 0x88);
        r[12 + e] = _mm512_shuffle_f32x4(w0, w1, 0xDD);
    }
}

/// packed[kk·32 + jj] = op(B)[k0 + kk, j + jj] for kk < kc, jj < nr; columns nr..<32 are zero.
CK_TARGET static void ck_pack_b(const float *b, long ldb, int transpose_b, int k0, int kc, int j, int nr,
                                float *restrict packed) {
    if (!transpose_b) {
        __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
        __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
        for (int kk = 0; kk < kc; kk++) {
            const float *row = b + (long)(k0 + kk) * ldb + j;
            _mm512_store_ps(packed + kk * NR, _mm512_maskz_loadu_ps(m0, row));
            _mm512_store_ps(packed + kk * NR + 16, _mm512_maskz_loadu_ps(m1, row + 16));
        }
        return;
    }
    // B is [n, k]: 16×16 blocks of rows j.., columns k0.. are transposed in registers.
    int kv = nr == NR ? kc & ~15 : 0;
    for (int kk = 0; kk < kv; kk += 16) {
        for (int half = 0; half < 2; half++) {
            __m512 r[16];
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(b + (long)(j + 16 * half + i) * ldb + k0 + kk);
            ck_transpose16(r);
            for (int i = 0; i < 16; i++) _mm512_store_ps(packed + (kk + i) * NR + 16 * half, r[i]);
        }
    }
    for (int kk = kv; kk < kc; kk++) {
        for (int jj = 0; jj < NR; jj++) packed[kk * NR + jj] = jj < nr ? b[(long)(j + jj) * ldb + k0 + kk] : 0.0f;
    }
}

// MARK: Micro-kernel

/// The rows × 32 tile of C at `c`: (load ? C : 0) + A[rows, kc]·packed[kc, 32], then (when `last`) the epilogue,
/// stored under the column masks.
CK_INLINE void ck_tile(const int rows, int kc, const float *a, long lda, const float *restrict packed, float *c,
                       long ldc, __mmask16 m0, __mmask16 m1, int load, int last, const float *bias,
                       ck_epilogue epilogue) {
    __m512 acc0[MR], acc1[MR];
    for (int i = 0; i < rows; i++) {
        acc0[i] = _mm512_setzero_ps();
        acc1[i] = _mm512_setzero_ps();
    }
    const float *a3 = a + 3 * lda, *a6 = a + 6 * lda, *a9 = a + 9 * lda, *a12 = a + 12 * lda;
    for (int kk = 0; kk < kc; kk++) {
        // Each A row is a separate stream; fetching its lines 512 bytes ahead helped the K = 3072 GEMM (fc2) ~4%.
        if ((kk & 15) == 0) {
            for (int i = 0; i < rows; i++) _mm_prefetch((const char *)(a + i * lda + kk + 128), _MM_HINT_T0);
        }
        __m512 b0 = _mm512_load_ps(packed), b1 = _mm512_load_ps(packed + 16);
        packed += NR;
#define CK_ROW(i, base, offset)                                                                                        \
    if (rows > i) {                                                                                                    \
        __m512 ai = _mm512_set1_ps(base[offset + kk]);                                                                 \
        acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);                                                                    \
        acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);                                                                    \
    }
        CK_ROW(0, a, 0)
        CK_ROW(1, a, lda)
        CK_ROW(2, a, 2 * lda)
        CK_ROW(3, a3, 0)
        CK_ROW(4, a3, lda)
        CK_ROW(5, a3, 2 * lda)
        CK_ROW(6, a6, 0)
        CK_ROW(7, a6, lda)
        CK_ROW(8, a6, 2 * lda)
        CK_ROW(9, a9, 0)
        CK_ROW(10, a9, lda)
        CK_ROW(11, a9, 2 * lda)
        CK_ROW(12, a12, 0)
        CK_ROW(13, a12, lda)
#undef CK_ROW
    }
    // C's old value (a partial sum from the previous K block, or the residual) is added after the loop, so the
    // tile's loads overlap the FMAs instead of delaying them.
    if (load) {
        for (int i = 0; i < rows; i++) {
            acc0[i] = _mm512_add_ps(acc0[i], _mm512_maskz_loadu_ps(m0, c + i * ldc));
            acc1[i] = _mm512_add_ps(acc1[i], _mm512_maskz_loadu_ps(m1, c + i * ldc + 16));
        }
    }
    if (last && epilogue != CK_EPILOGUE_NONE) {
        __m512 bias0 = _mm512_maskz_loadu_ps(m0, bias), bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
        for (int i = 0; i < rows; i++) {
            acc0[i] = ck_activate(_mm512_add_ps(acc0[i], bias0), epilogue);
            acc1[i] = ck_activate(_mm512_add_ps(acc1[i], bias1), epilogue);
        }
    }
    for (int i = 0; i < rows; i++) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, acc0[i]);
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc1[i]);
    }
}

#define CK_TILE_CASE(r)                                                                                                \
    case r: ck_tile(r, kc, a, lda, packed, c, ldc, m0, m1, load, last, bias, epilogue); break;

CK_TARGET static void ck_tile_any(int rows, int kc, const float *a, long lda, const float *packed, float *c, long ldc,
                                  __mmask16 m0, __mmask16 m1, int load, int last, const float *bias,
                                  ck_epilogue epilogue) {
    switch (rows) {
        CK_TILE_CASE(1) CK_TILE_CASE(2) CK_TILE_CASE(3) CK_TILE_CASE(4) CK_TILE_CASE(5) CK_TILE_CASE(6) CK_TILE_CASE(7)
        CK_TILE_CASE(8) CK_TILE_CASE(9) CK_TILE_CASE(10) CK_TILE_CASE(11) CK_TILE_CASE(12) CK_TILE_CASE(13)
        CK_TILE_CASE(14)
    default: break;
    }
}

// MARK: Driver

CK_TARGET void ck_sgemm(int m, int n0, int n1, int k, const float *a, long lda, const float *b, long ldb,
                        int transpose_b, float *c, long ldc, int accumulate, const float *bias,
                        ck_epilogue epilogue) {
    if (m <= 0 || n1 <= n0 || k <= 0) return;
    // One K block up to KC_MAX (C is then written once, epilogue included); beyond that, equal blocks.
    int blocks = (k + KC_MAX - 1) / KC_MAX;
    int block_k = blocks == 1 ? k : (((k + blocks - 1) / blocks) + 15) & ~15;
    // Panels of up to 128 K (attention's per-head GEMMs) live on the stack; larger ones on the heap.
    float stack_panel[128 * NR] __attribute__((aligned(64)));
    float *packed = block_k <= 128 ? stack_panel : aligned_alloc(64, (size_t)block_k * NR * sizeof(float));
    if (!packed) abort();
    for (int k0 = 0; k0 < k; k0 += block_k) {
        int kc = k - k0 < block_k ? k - k0 : block_k;
        int load = accumulate || k0 > 0, last = k0 + kc == k;
        for (int i0 = 0; i0 < m; i0 += MC) {
            int mc = m - i0 < MC ? m - i0 : MC;
            for (int j = n0; j < n1; j += NR) {
                int nr = n1 - j < NR ? n1 - j : NR;
                __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
                __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
                ck_pack_b(b, ldb, transpose_b, k0, kc, j, nr, packed);
                const float *tile_bias = bias ? bias + j : NULL;
                for (int i = i0; i < i0 + mc; i += MR) {
                    int rows = i0 + mc - i < MR ? i0 + mc - i : MR;
                    const float *ta = a + (long)i * lda + k0;
                    float *tc = c + (long)i * ldc + j;
                    if (rows == MR) {
                        ck_tile(MR, kc, ta, lda, packed, tc, ldc, m0, m1, load, last, tile_bias, epilogue);
                    } else {
                        ck_tile_any(rows, kc, ta, lda, packed, tc, ldc, m0, m1, load, last, tile_bias, epilogue);
                    }
                }
            }
        }
    }
    if (packed != stack_panel) free(packed);
}

// MARK: Attention and LayerNorm

CK_TARGET void ck_attention_head(int queries, int tokens, int head_width, const float *q, const float *k,
                                 const float *v, long ld, float scale, float *out, long ldo, float *scratch) {
    // S = Q·Kᵀ, then each row: p = exp(scale·(s − max)) / Σ, then O = P·V.
    ck_sgemm(queries, 0, tokens, head_width, q, ld, k, ld, 1, scratch, tokens, 0, NULL, CK_EPILOGUE_NONE);
    __m512 vscale = _mm512_set1_ps(scale);
    for (int i = 0; i < queries; i++) {
        float *s = scratch + (long)i * tokens;
        __m512 vmax = _mm512_set1_ps(-INFINITY);
        for (int j = 0; j < tokens; j += 16) {
            __mmask16 mask = tokens - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (tokens - j)) - 1);
            vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), mask, s + j));
        }
        __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
        __m512 vsum = _mm512_setzero_ps();
        for (int j = 0; j < tokens; j += 16) {
            __mmask16 mask = tokens - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (tokens - j)) - 1);
            __m512 e = ck_exp(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, s + j), shift), vscale));
            e = _mm512_maskz_mov_ps(mask, e);
            vsum = _mm512_add_ps(vsum, e);
            _mm512_mask_storeu_ps(s + j, mask, e);
        }
        __m512 inverse = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
        for (int j = 0; j < tokens; j += 16) {
            __mmask16 mask = tokens - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (tokens - j)) - 1);
            _mm512_mask_storeu_ps(s + j, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, s + j), inverse));
        }
    }
    ck_sgemm(queries, 0, head_width, tokens, scratch, tokens, v, ld, 0, out, ldo, 0, NULL, CK_EPILOGUE_NONE);
}

CK_TARGET void ck_layer_norm(const float *in, long in_stride, float *out, long out_stride, int rows, int width,
                             const float *weight, const float *bias, float epsilon) {
    for (int r = 0; r < rows; r++) {
        const float *x = in + (long)r * in_stride;
        float *y = out + (long)r * out_stride;
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < width; i += 16) {
            __mmask16 mask = width - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (width - i)) - 1);
            acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(mask, x + i));
        }
        float mean = _mm512_reduce_add_ps(acc) / (float)width;
        __m512 vmean = _mm512_set1_ps(mean);
        __m512 sq = _mm512_setzero_ps();
        for (int i = 0; i < width; i += 16) {
            __mmask16 mask = width - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (width - i)) - 1);
            __m512 d = _mm512_maskz_sub_ps(mask, _mm512_maskz_loadu_ps(mask, x + i), vmean);
            sq = _mm512_fmadd_ps(d, d, sq);
        }
        float variance = _mm512_reduce_add_ps(sq) / (float)width;
        __m512 rstd = _mm512_set1_ps(1.0f / sqrtf(variance + epsilon));
        for (int i = 0; i < width; i += 16) {
            __mmask16 mask = width - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (width - i)) - 1);
            __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + i), vmean), rstd);
            __m512 v = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(mask, weight + i), _mm512_maskz_loadu_ps(mask, bias + i));
            _mm512_mask_storeu_ps(y + i, mask, v);
        }
    }
}

#else  // not x86-64: no AVX-512 kernels; callers use BLAS.

int ck_avx512_available(void) { return 0; }
void ck_sgemm(int m, int n0, int n1, int k, const float *a, long lda, const float *b, long ldb, int transpose_b,
              float *c, long ldc, int accumulate, const float *bias, ck_epilogue epilogue) {
    (void)m; (void)n0; (void)n1; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)transpose_b;
    (void)c; (void)ldc; (void)accumulate; (void)bias; (void)epilogue;
    abort();
}
void ck_bias_activation(float *x, const float *bias, int count, ck_epilogue epilogue) {
    (void)x; (void)bias; (void)count; (void)epilogue;
    abort();
}
void ck_attention_head(int queries, int tokens, int head_width, const float *q, const float *k, const float *v, long ld,
                       float scale, float *out, long ldo, float *scratch) {
    (void)queries; (void)tokens; (void)head_width; (void)q; (void)k; (void)v; (void)ld; (void)scale; (void)out;
    (void)ldo; (void)scratch;
    abort();
}
void ck_layer_norm(const float *in, long in_stride, float *out, long out_stride, int rows, int width,
                   const float *weight, const float *bias, float epsilon) {
    (void)in; (void)in_stride; (void)out; (void)out_stride; (void)rows; (void)width; (void)weight; (void)bias;
    (void)epsilon;
    abort();
}

#endif
