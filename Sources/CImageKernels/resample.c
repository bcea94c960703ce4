// Fixed-point resampling passes: scalar C everywhere, AVX2 and AVX-512BW on x86-64, chosen at run time.
// Pillow's arithmetic: ss = 1 << (PRECISION_BITS - 1); ss += pixel * k for each tap; out = clip8(ss >> PRECISION_BITS).
// Products and sums are 32-bit integers, so any order of additions gives the same result as Pillow's.
#include "CImageKernels.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CIK_X86 1
#include <immintrin.h>
#endif

// Sums are accumulated as uint32_t (wrapping, like Pillow's int on every real input, without C's signed overflow).
static inline uint8_t cik_clip8(uint32_t sum) {
    int32_t v = (int32_t)sum >> CIK_PRECISION_BITS;
    return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
}

static const uint32_t cik_bias = 1 << (CIK_PRECISION_BITS - 1);

// MARK: Kernel selection

cik_kernel cik_best_kernel(void) {
#ifdef CIK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) {
        return CIK_KERNEL_AVX512;
    }
    if (__builtin_cpu_supports("avx2")) {
        return CIK_KERNEL_AVX2;
    }
#endif
    return CIK_KERNEL_SCALAR;
}

cik_kernel cik_resolve_kernel(cik_kernel requested) {
    // Every thread computes the same value, so relaxed atomics suffice (and keep ThreadSanitizer quiet).
    static int cached = -1;
    int best = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (best < 0) {
        best = (int)cik_best_kernel();
        __atomic_store_n(&cached, best, __ATOMIC_RELAXED);
    }
    if (requested == CIK_KERNEL_AUTO || (int)requested > best) {
        return (cik_kernel)best;
    }
    return requested;
}

// MARK: Scalar

static void horizontal_pixel_scalar(
    const uint8_t *p, int channels, const int32_t *k, int n, uint8_t *out) {
    switch (channels) {
    case 1: {
        uint32_t s0 = cik_bias;
        for (int t = 0; t < n; t++) {
            s0 += (uint32_t)p[t] * (uint32_t)k[t];
        }
        out[0] = cik_clip8(s0);
        break;
    }
    case 3: {
        uint32_t s0 = cik_bias, s1 = cik_bias, s2 = cik_bias;
        for (int t = 0; t < n; t++, p += 3) {
            s0 += (uint32_t)p[0] * (uint32_t)k[t];
            s1 += (uint32_t)p[1] * (uint32_t)k[t];
            s2 += (uint32_t)p[2] * (uint32_t)k[t];
        }
        out[0] = cik_clip8(s0);
        out[1] = cik_clip8(s1);
        out[2] = cik_clip8(s2);
        break;
    }
    case 4: {
        uint32_t s0 = cik_bias, s1 = cik_bias, s2 = cik_bias, s3 = cik_bias;
        for (int t = 0; t < n; t++, p += 4) {
            s0 += (uint32_t)p[0] * (uint32_t)k[t];
            s1 += (uint32_t)p[1] * (uint32_t)k[t];
            s2 += (uint32_t)p[2] * (uint32_t)k[t];
            s3 += (uint32_t)p[3] * (uint32_t)k[t];
        }
        out[0] = cik_clip8(s0);
        out[1] = cik_clip8(s1);
        out[2] = cik_clip8(s2);
        out[3] = cik_clip8(s3);
        break;
    }
    default:
        for (int c = 0; c < channels; c++) {
            uint32_t s = cik_bias;
            for (int t = 0; t < n; t++) {
                s += (uint32_t)p[t * channels + c] * (uint32_t)k[t];
            }
            out[c] = cik_clip8(s);
        }
    }
}

static void horizontal_scalar(
    const uint8_t *src, ptrdiff_t src_stride, int rows, int channels,
    const int32_t *offset, const int32_t *count, const int32_t *coeffs, int ksize, int outs,
    uint8_t *dst, ptrdiff_t dst_stride) {
    for (int r = 0; r < rows; r++) {
        const uint8_t *line = src + r * src_stride;
        uint8_t *out = dst + r * dst_stride;
        for (int o = 0; o < outs; o++) {
            horizontal_pixel_scalar(line + offset[o], channels, coeffs + (ptrdiff_t)o * ksize, count[o], out);
            out += channels;
        }
    }
}

static void vertical_row_scalar(
    const uint8_t *src, ptrdiff_t src_stride, int from, int to, int first, int n, const int32_t *k, uint8_t *out) {
    for (int i = from; i < to; i++) {
        uint32_t s = cik_bias;
        const uint8_t *p = src + (ptrdiff_t)first * src_stride + i;
        for (int t = 0; t < n; t++, p += src_stride) {
            s += (uint32_t)p[0] * (uint32_t)k[t];
        }
        out[i] = cik_clip8(s);
    }
}

// MARK: x86-64 SIMD

#ifdef CIK_X86

// Coefficients repeated for the 4 byte lanes of a pixel: tap t of output o at expanded[(o * kpad + t) * 4 + 0..3],
// zero past count[o], kpad = ksize rounded up to 4. NULL when out of memory (callers then run the scalar pass).
static int32_t *expand_coeffs(const int32_t *coeffs, const int32_t *count, int ksize, int outs, int kpad) {
    int32_t *expanded = aligned_alloc(64, ((size_t)outs * (size_t)kpad * 4 * sizeof(int32_t) + 63) & ~(size_t)63);
    if (!expanded) {
        return NULL;
    }
    for (int o = 0; o < outs; o++) {
        int32_t *e = expanded + (size_t)o * kpad * 4;
        const int32_t *k = coeffs + (size_t)o * ksize;
        for (int t = 0; t < kpad; t++) {
            int32_t v = t < count[o] ? k[t] : 0;
            e[4 * t] = e[4 * t + 1] = e[4 * t + 2] = e[4 * t + 3] = v;
        }
    }
    return expanded;
}

// Coefficients padded with zeros to `kpad` taps per output (one channel).
static int32_t *pad_coeffs(const int32_t *coeffs, const int32_t *count, int ksize, int outs, int kpad) {
    int32_t *padded = aligned_alloc(64, ((size_t)outs * (size_t)kpad * sizeof(int32_t) + 63) & ~(size_t)63);
    if (!padded) {
        return NULL;
    }
    for (int o = 0; o < outs; o++) {
        for (int t = 0; t < kpad; t++) {
            padded[(size_t)o * kpad + t] = t < count[o] ? coeffs[(size_t)o * ksize + t] : 0;
        }
    }
    return padded;
}

// Stores the low `channels` (3 or 4) bytes of `packed` (fixed-size copies, so no call to memcpy).
static inline void store_pixel(uint8_t *out, uint32_t packed, int channels) {
    if (channels == 4) {
        memcpy(out, &packed, 4);
    } else {
        uint16_t low = (uint16_t)packed;
        memcpy(out, &low, 2);
        out[2] = (uint8_t)(packed >> 16);
    }
}

__attribute__((target("avx2")))
static inline uint32_t finish_pixel_avx2(__m128i sums) {
    __m128i v = _mm_srai_epi32(_mm_add_epi32(sums, _mm_set1_epi32((int32_t)cik_bias)), CIK_PRECISION_BITS);
    v = _mm_packs_epi32(v, v);
    v = _mm_packus_epi16(v, v);
    return (uint32_t)_mm_cvtsi128_si32(v);
}

// The longest window.
static int max_count(const int32_t *count, int outs) {
    int longest = 0;
    for (int o = 0; o < outs; o++) {
        longest = count[o] > longest ? count[o] : longest;
    }
    return longest;
}

// The byte offset past the furthest read of a row when every sample runs `steps` steps of 16-byte loads.
static ptrdiff_t horizontal_reach(const int32_t *offset, int outs, int channels, int steps) {
    ptrdiff_t reach = 0;
    for (int o = 0; o < outs; o++) {
        ptrdiff_t end = (ptrdiff_t)offset[o] + (ptrdiff_t)(steps - 1) * 4 * channels + 16;
        reach = end > reach ? end : reach;
    }
    return reach;
}

// Calls BODY(c, steps) with `c` (3 or 4) and `steps` as constants for the common window sizes, so the tap loop
// unrolls; other sizes run with a variable step count.
#define CIK_DISPATCH_STEPS(BODY, c, steps)                                                                              \
    switch (steps) {                                                                                                   \
    case 1: BODY(c, 1); break;                                                                                         \
    case 2: BODY(c, 2); break;                                                                                         \
    case 3: BODY(c, 3); break;                                                                                         \
    case 4: BODY(c, 4); break;                                                                                         \
    case 5: BODY(c, 5); break;                                                                                         \
    case 6: BODY(c, 6); break;                                                                                         \
    default: BODY(c, steps); break;                                                                                    \
    }

// 3 or 4 channels: 4 taps per step, two pixels (as 4 x int32 each) per 256-bit register. Every sample runs the
// same `steps` (zero weights pad the shorter windows); rows whose furthest read (`reach`) stays inside the source
// skip the per-sample bounds check.
__attribute__((target("avx2"), always_inline))
static inline void horizontal_avx2_body(
    const uint8_t *src, ptrdiff_t src_stride, const uint8_t *src_end, int rows, const int c, const int steps,
    ptrdiff_t reach, const int32_t *offset, const int32_t *count, const int32_t *coeffs, int ksize, int outs,
    const int32_t *expanded, int kpad, uint8_t *dst, ptrdiff_t dst_stride) {
    // Lane 0 of `lo` takes the 1st pixel of a 16-byte group, lane 1 the 2nd; `hi` the 3rd and 4th. -1 zeroes a byte.
#define Z -1
    const __m256i lo = c == 3
        ? _mm256_setr_epi8(0, Z, Z, Z, 1, Z, Z, Z, 2, Z, Z, Z, Z, Z, Z, Z, 3, Z, Z, Z, 4, Z, Z, Z, 5, Z, Z, Z, Z, Z, Z, Z)
        : _mm256_setr_epi8(0, Z, Z, Z, 1, Z, Z, Z, 2, Z, Z, Z, 3, Z, Z, Z, 4, Z, Z, Z, 5, Z, Z, Z, 6, Z, Z, Z, 7, Z, Z, Z);
    const __m256i hi = c == 3
        ? _mm256_setr_epi8(6, Z, Z, Z, 7, Z, Z, Z, 8, Z, Z, Z, Z, Z, Z, Z, 9, Z, Z, Z, 10, Z, Z, Z, 11, Z, Z, Z, Z, Z, Z, Z)
        : _mm256_setr_epi8(8, Z, Z, Z, 9, Z, Z, Z, 10, Z, Z, Z, 11, Z, Z, Z, 12, Z, Z, Z, 13, Z, Z, Z, 14, Z, Z, Z, 15, Z, Z, Z);
#undef Z
    for (int r = 0; r < rows; r++) {
        const uint8_t *line = src + r * src_stride;
        uint8_t *out = dst + r * dst_stride;
        int checked = line + reach > src_end;
        for (int o = 0; o < outs; o++, out += c) {
            const uint8_t *p = line + offset[o];
            if (checked && p + (ptrdiff_t)(steps - 1) * 4 * c + 16 > src_end) {
                horizontal_pixel_scalar(p, c, coeffs + (ptrdiff_t)o * ksize, count[o], out);
                continue;
            }
            const int32_t *e = expanded + (size_t)o * kpad * 4;
            __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
            for (int s = 0; s < steps; s++, p += 4 * c, e += 16) {
                __m256i pixels = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
                __m256i k01 = _mm256_load_si256((const __m256i *)e);
                __m256i k23 = _mm256_load_si256((const __m256i *)(e + 8));
                acc0 = _mm256_add_epi32(acc0, _mm256_mullo_epi32(_mm256_shuffle_epi8(pixels, lo), k01));
                acc1 = _mm256_add_epi32(acc1, _mm256_mullo_epi32(_mm256_shuffle_epi8(pixels, hi), k23));
            }
            __m256i acc = _mm256_add_epi32(acc0, acc1);
            __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
            store_pixel(out, finish_pixel_avx2(sums), c);
        }
    }
}

__attribute__((target("avx2")))
static void horizontal_avx2(
    const uint8_t *src, ptrdiff_t src_stride, const uint8_t *src_end, int rows, int channels,
    const int32_t *offset, const int32_t *count, const int32_t *coeffs, int ksize, int outs,
    uint8_t *dst, ptrdiff_t dst_stride) {
    int longest = max_count(count, outs);
    int kpad = (ksize + 3) & ~3, steps = longest > 0 ? (longest + 3) / 4 : 1;
    int32_t *expanded = expand_coeffs(coeffs, count, ksize, outs, kpad);
    if (!expanded) {
        horizontal_scalar(src, src_stride, rows, channels, offset, count, coeffs, ksize, outs, dst, dst_stride);
        return;
    }
    ptrdiff_t reach = horizontal_reach(offset, outs, channels, steps);
#define BODY(C, S)                                                                                                     \
    horizontal_avx2_body(                                                                                              \
        src, src_stride, src_end, rows, C, S, reach, offset, count, coeffs, ksize, outs, expanded, kpad, dst, dst_stride)
    if (channels == 3) {
        CIK_DISPATCH_STEPS(BODY, 3, steps)
    } else {
        CIK_DISPATCH_STEPS(BODY, 4, steps)
    }
#undef BODY
    free(expanded);
}

// One channel: 8 taps per step.
__attribute__((target("avx2")))
static void horizontal_gray_avx2(
    const uint8_t *src, ptrdiff_t src_stride, const uint8_t *src_end, int rows,
    const int32_t *offset, const int32_t *count, const int32_t *coeffs, int ksize, int outs,
    uint8_t *dst, ptrdiff_t dst_stride) {
    int kpad = (ksize + 7) & ~7;
    int32_t *padded = pad_coeffs(coeffs, count, ksize, outs, kpad);
    if (!padded) {
        horizontal_scalar(src, src_stride, rows, 1, offset, count, coeffs, ksize, outs, dst, dst_stride);
        return;
    }
    for (int r = 0; r < rows; r++) {
        const uint8_t *line = src + r * src_stride;
        uint8_t *out = dst + r * dst_stride;
        for (int o = 0; o < outs; o++) {
            const uint8_t *p = line + offset[o];
            int n = count[o];
            int steps = (n + 7) >> 3;
            if (steps == 0 || p + (ptrdiff_t)steps * 8 > src_end) {
                horizontal_pixel_scalar(p, 1, coeffs + (ptrdiff_t)o * ksize, n, out + o);
                continue;
            }
            const int32_t *k = padded + (size_t)o * kpad;
            __m256i acc = _mm256_setzero_si256();
            for (int s = 0; s < steps; s++, p += 8, k += 8) {
                __m256i pixels = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(pixels, _mm256_load_si256((const __m256i *)k)));
            }
            __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
            sums = _mm_add_epi32(sums, _mm_shuffle_epi32(sums, _MM_SHUFFLE(1, 0, 3, 2)));
            sums = _mm_add_epi32(sums, _mm_shuffle_epi32(sums, _MM_SHUFFLE(2, 3, 0, 1)));
            out[o] = (uint8_t)finish_pixel_avx2(sums);
        }
    }
    free(padded);
}

__attribute__((target("avx2")))
static inline __m256i vertical_sum8_avx2(const uint8_t *p, ptrdiff_t stride, const int32_t *k, int n) {
    __m256i acc = _mm256_set1_epi32((int32_t)cik_bias);
    for (int t = 0; t < n; t++, p += stride) {
        __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(v, _mm256_set1_epi32(k[t])));
    }
    return _mm256_srai_epi32(acc, CIK_PRECISION_BITS);
}

__attribute__((target("avx2")))
static void vertical_avx2(
    const uint8_t *src, ptrdiff_t src_stride, int row_bytes,
    const int32_t *first, const int32_t *count, const int32_t *coeffs, int ksize, int out_rows,
    uint8_t *dst, ptrdiff_t dst_stride) {
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int r = 0; r < out_rows; r++) {
        const int32_t *k = coeffs + (ptrdiff_t)r * ksize;
        const uint8_t *base = src + (ptrdiff_t)first[r] * src_stride;
        uint8_t *out = dst + r * dst_stride;
        int n = count[r];
        int i = 0;
        for (; i + 32 <= row_bytes; i += 32) {
            __m256i a0 = _mm256_set1_epi32((int32_t)cik_bias), a1 = a0, a2 = a0, a3 = a0;
            const uint8_t *p = base + i;
            for (int t = 0; t < n; t++, p += src_stride) {
                __m256i kt = _mm256_set1_epi32(k[t]);
                a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)), kt));
                a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8))), kt));
                a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 16))), kt));
                a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 24))), kt));
            }
            a0 = _mm256_srai_epi32(a0, CIK_PRECISION_BITS);
            a1 = _mm256_srai_epi32(a1, CIK_PRECISION_BITS);
            a2 = _mm256_srai_epi32(a2, CIK_PRECISION_BITS);
            a3 = _mm256_srai_epi32(a3, CIK_PRECISION_BITS);
            __m256i packed = _mm256_packus_epi16(_mm256_packs_epi32(a0, a1), _mm256_packs_epi32(a2, a3));
            _mm256_storeu_si256((__m256i *)(out + i), _mm256_permutevar8x32_epi32(packed, order));
        }
        for (; i + 8 <= row_bytes; i += 8) {
            __m256i a = vertical_sum8_avx2(base + i, src_stride, k, n);
            __m128i v = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
            _mm_storel_epi64((__m128i *)(out + i), _mm_packus_epi16(v, v));
        }
        vertical_row_scalar(src, src_stride, i, row_bytes, first[r], n, k, out);
    }
}

// RGB, 5 taps per step: the 15 bytes of 5 pixels widened to 32-bit lanes (the 16th lane's weight is zero), each
// lane weighted by its pixel's coefficient: rgb5[(o * steps + s) * 16 + j] = k[o][5 * s + j / 3], zero past count[o].
static int32_t *expand_coeffs_rgb5(const int32_t *coeffs, const int32_t *count, int ksize, int outs, int steps) {
    int32_t *expanded = aligned_alloc(64, (size_t)outs * (size_t)steps * 16 * sizeof(int32_t));
    if (!expanded) {
        return NULL;
    }
    for (int o = 0; o < outs; o++) {
        int32_t *e = expanded + (size_t)o * steps * 16;
        for (int s = 0; s < steps; s++) {
            for (int j = 0; j < 16; j++) {
                int t = 5 * s + j / 3;
                e[16 * s + j] = j < 15 && t < count[o] ? coeffs[(size_t)o * ksize + t] : 0;
            }
        }
    }
    return expanded;
}

// RGB with the 5-tap layout above: lanes j, j + 3, ..., j + 12 of the sums hold channel j's partial sums.
__attribute__((target("avx512f,avx512bw"), always_inline))
static inline void horizontal_rgb_avx512_body(
    const uint8_t *src, ptrdiff_t src_stride, const uint8_t *src_end, int rows, const int steps, ptrdiff_t reach,
    const int32_t *offset, const int32_t *count, const int32_t *coeffs, int ksize, int outs,
    const int32_t *expanded, uint8_t *dst, ptrdiff_t dst_stride) {
    const __m512i zero = _mm512_setzero_si512();
    for (int r = 0; r < rows; r++) {
        const uint8_t *line = src + r * src_stride;
        uint8_t *out = dst + r * dst_stride;
        int checked = line + reach > src_end;
        for (int o = 0; o < outs; o++, out += 3) {
            const uint8_t *p = line + offset[o];
            if (checked && p + (ptrdiff_t)(steps - 1) * 15 + 16 > src_end) {
                horizontal_pixel_scalar(p, 3, coeffs + (ptrdiff_t)o * ksize, count[o], out);
                continue;
            }
            const int32_t *e = expanded + (size_t)o * steps * 16;
            __m512i acc = _mm512_setzero_si512();
            for (int s = 0; s < steps; s++, p += 15, e += 16) {
                __m512i pixels = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
                acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(pixels, _mm512_load_si512((const void *)e)));
            }
            // Lane j (< 3) += lanes j + 3, j + 6, j + 9, j + 12 (shifting zeros in from above).
            __m512i t = _mm512_add_epi32(acc, _mm512_alignr_epi32(zero, acc, 3));
            t = _mm512_add_epi32(t, _mm512_alignr_epi32(zero, t, 6));
            t = _mm512_add_epi32(t, _mm512_alignr_epi32(zero, acc, 12));
            store_pixel(out, finish_pixel_avx2(_mm512_castsi512_si128(t)), 3);
        }
    }
}

// 4 channels: the 16 bytes of 4 pixels widened to 32-bit lanes, 4 taps per step; otherwise as horizontal_avx2_body.
__attribute__((target("avx512f,avx512bw"), always_inline))
static inline void horizontal_rgba_avx512_body(
    const uint8_t *src, ptrdiff_t src_stride, const uint8_t *src_end, int rows, const int steps, ptrdiff_t reach,
    const int32_t *offset, const int32_t *count, const int32_t *coeffs, int ksize, int outs,
    const int32_t *expanded, int kpad, uint8_t *dst, ptrdiff_t dst_stride) {
    for (int r = 0; r < rows; r++) {
        const uint8_t *line = src + r * src_stride;
        uint8_t *out = dst + r * dst_stride;
        int checked = line + reach > src_end;
        for (int o = 0; o < outs; o++, out += 4) {
            const uint8_t *p = line + offset[o];
            if (checked && p + (ptrdiff_t)(steps - 1) * 16 + 16 > src_end) {
                horizontal_pixel_scalar(p, 4, coeffs + (ptrdiff_t)o * ksize, count[o], out);
                continue;
            }
            const int32_t *e = expanded + (size_t)o * kpad * 4;
            __m512i acc = _mm512_setzero_si512();
            for (int s = 0; s < steps; s++, p += 16, e += 16) {
                __m512i pixels = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
                acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(pixels, _mm512_load_si512((const void *)e)));
            }
            __m256i half = _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
            __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
            store_pixel(out, finish_pixel_avx2(sums), 4);
        }
    }
}

__attribute__((target("avx512f,avx512bw")))
static void horizontal_avx512(
    const uint8_t *src, ptrdiff_t src_stride, const uint8_t *src_end, int rows, int channels,
    const int32_t *offset, const int32_t *count, const int32_t *coeffs, int ksize, int outs,
    uint8_t *dst, ptrdiff_t dst_stride) {
    int longest = max_count(count, outs);
    if (channels == 3) {
        int steps = longest > 0 ? (longest + 4) / 5 : 1;
        int32_t *expanded = expand_coeffs_rgb5(coeffs, count, ksize, outs, steps);
        if (!expanded) {
            horizontal_scalar(src, src_stride, rows, 3, offset, count, coeffs, ksize, outs, dst, dst_stride);
            return;
        }
        ptrdiff_t reach = 0;
        for (int o = 0; o < outs; o++) {
            ptrdiff_t end = (ptrdiff_t)offset[o] + (ptrdiff_t)(steps - 1) * 15 + 16;
            reach = end > reach ? end : reach;
        }
#define BODY(C, S)                                                                                                     \
    horizontal_rgb_avx512_body(                                                                                        \
        src, src_stride, src_end, rows, S, reach, offset, count, coeffs, ksize, outs, expanded, dst, dst_stride)
        CIK_DISPATCH_STEPS(BODY, 3, steps)
#undef BODY
        free(expanded);
        return;
    }
    int kpad = (ksize + 3) & ~3, steps = longest > 0 ? (longest + 3) / 4 : 1;
    int32_t *expanded = expand_coeffs(coeffs, count, ksize, outs, kpad);
    if (!expanded) {
        horizontal_scalar(src, src_stride, rows, 4, offset, count, coeffs, ksize, outs, dst, dst_stride);
        return;
    }
    ptrdiff_t reach = horizontal_reach(offset, outs, 4, steps);
#define BODY(C, S)                                                                                                     \
    horizontal_rgba_avx512_body(                                                                                       \
        src, src_stride, src_end, rows, S, reach, offset, count, coeffs, ksize, outs, expanded, kpad, dst, dst_stride)
    CIK_DISPATCH_STEPS(BODY, 4, steps)
#undef BODY
    free(expanded);
}

__attribute__((target("avx512f,avx512bw")))
static void vertical_avx512(
    const uint8_t *src, ptrdiff_t src_stride, int row_bytes,
    const int32_t *first, const int32_t *count, const int32_t *coeffs, int ksize, int out_rows,
    uint8_t *dst, ptrdiff_t dst_stride) {
    const __m512i zero = _mm512_setzero_si512();
    for (int r = 0; r < out_rows; r++) {
        const int32_t *k = coeffs + (ptrdiff_t)r * ksize;
        const uint8_t *base = src + (ptrdiff_t)first[r] * src_stride;
        uint8_t *out = dst + r * dst_stride;
        int n = count[r];
        int i = 0;
        for (; i + 64 <= row_bytes; i += 64) {
            __m512i a0 = _mm512_set1_epi32((int32_t)cik_bias), a1 = a0, a2 = a0, a3 = a0;
            const uint8_t *p = base + i;
            for (int t = 0; t < n; t++, p += src_stride) {
                __m512i kt = _mm512_set1_epi32(k[t]);
                a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)), kt));
                a1 = _mm512_add_epi32(a1, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 16))), kt));
                a2 = _mm512_add_epi32(a2, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 32))), kt));
                a3 = _mm512_add_epi32(a3, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 48))), kt));
            }
            // Negative sums clamp to 0 here; cvtusepi32 saturates the rest to 255.
            _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtusepi32_epi8(_mm512_max_epi32(_mm512_srai_epi32(a0, CIK_PRECISION_BITS), zero)));
            _mm_storeu_si128((__m128i *)(out + i + 16), _mm512_cvtusepi32_epi8(_mm512_max_epi32(_mm512_srai_epi32(a1, CIK_PRECISION_BITS), zero)));
            _mm_storeu_si128((__m128i *)(out + i + 32), _mm512_cvtusepi32_epi8(_mm512_max_epi32(_mm512_srai_epi32(a2, CIK_PRECISION_BITS), zero)));
            _mm_storeu_si128((__m128i *)(out + i + 48), _mm512_cvtusepi32_epi8(_mm512_max_epi32(_mm512_srai_epi32(a3, CIK_PRECISION_BITS), zero)));
        }
        for (; i + 16 <= row_bytes; i += 16) {
            __m512i a = _mm512_set1_epi32((int32_t)cik_bias);
            const uint8_t *p = base + i;
            for (int t = 0; t < n; t++, p += src_stride) {
                a = _mm512_add_epi32(a, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)), _mm512_set1_epi32(k[t])));
            }
            _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtusepi32_epi8(_mm512_max_epi32(_mm512_srai_epi32(a, CIK_PRECISION_BITS), zero)));
        }
        vertical_row_scalar(src, src_stride, i, row_bytes, first[r], n, k, out);
    }
}

#endif  // CIK_X86

// MARK: Entry points

void cik_horizontal_u8(
    const uint8_t *src, ptrdiff_t src_stride, const uint8_t *src_end, int rows, int channels,
    const int32_t *offset, const int32_t *count, const int32_t *coeffs, int ksize, int outs,
    uint8_t *dst, ptrdiff_t dst_stride, cik_kernel kernel) {
    if (rows <= 0 || outs <= 0) {
        return;
    }
#ifdef CIK_X86
    cik_kernel resolved = cik_resolve_kernel(kernel);
    if (resolved == CIK_KERNEL_AVX512 && (channels == 3 || channels == 4)) {
        horizontal_avx512(src, src_stride, src_end, rows, channels, offset, count, coeffs, ksize, outs, dst, dst_stride);
        return;
    }
    if (resolved >= CIK_KERNEL_AVX2 && (channels == 3 || channels == 4)) {
        horizontal_avx2(src, src_stride, src_end, rows, channels, offset, count, coeffs, ksize, outs, dst, dst_stride);
        return;
    }
    if (resolved >= CIK_KERNEL_AVX2 && channels == 1) {
        horizontal_gray_avx2(src, src_stride, src_end, rows, offset, count, coeffs, ksize, outs, dst, dst_stride);
        return;
    }
#else
    (void)src_end;
    (void)kernel;
#endif
    horizontal_scalar(src, src_stride, rows, channels, offset, count, coeffs, ksize, outs, dst, dst_stride);
}

void cik_vertical_u8(
    const uint8_t *src, ptrdiff_t src_stride, int row_bytes,
    const int32_t *first, const int32_t *count, const int32_t *coeffs, int ksize, int out_rows,
    uint8_t *dst, ptrdiff_t dst_stride, cik_kernel kernel) {
    if (row_bytes <= 0 || out_rows <= 0) {
        return;
    }
#ifdef CIK_X86
    cik_kernel resolved = cik_resolve_kernel(kernel);
    if (resolved == CIK_KERNEL_AVX512) {
        vertical_avx512(src, src_stride, row_bytes, first, count, coeffs, ksize, out_rows, dst, dst_stride);
        return;
    }
    if (resolved == CIK_KERNEL_AVX2) {
        vertical_avx2(src, src_stride, row_bytes, first, count, coeffs, ksize, out_rows, dst, dst_stride);
        return;
    }
#else
    (void)kernel;
#endif
    for (int r = 0; r < out_rows; r++) {
        vertical_row_scalar(
            src, src_stride, 0, row_bytes, first[r], count[r], coeffs + (ptrdiff_t)r * ksize, dst + r * dst_stride);
    }
}
