#include "CPixelEncoding.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPE_X86 1
#endif

static inline uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline uint16_t f32_to_f16_one(float f) {
    uint32_t x = bits_of(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t exponent = (x >> 23) & 0xffu, mantissa = x & 0x7fffffu;
    if (exponent == 0xffu) return sign | 0x7c00u | (mantissa ? 0x200u | (uint16_t)(mantissa >> 13) : 0u);
    int e = (int)exponent - 127 + 15;
    if (e >= 31) return sign | 0x7c00u;  // overflow to infinity
    if (e <= 0) {                        // subnormal half (or zero): shift the full significand, round to even
        if (e < -10) return sign;
        uint32_t m = mantissa | 0x800000u;
        int shift = 14 - e;
        uint32_t half = m >> shift, rest = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half & 1u))) half++;
        return sign | (uint16_t)half;
    }
    uint32_t half = ((uint32_t)e << 10) | (mantissa >> 13), rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++;  // may carry into the exponent: still right
    return sign | (uint16_t)half;
}

void cpe_f32_to_f16_scalar(const float *src, uint16_t *dst, size_t count) {
    for (size_t i = 0; i < count; i++) dst[i] = f32_to_f16_one(src[i]);
}

#ifdef CPE_X86
__attribute__((target("avx,f16c"))) static void f32_to_f16_f16c(const float *src, uint16_t *dst, size_t count) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    for (; i < count; i++) dst[i] = f32_to_f16_one(src[i]);
}

static int has_f16c(void) {
    static int cached = -1;  // benign race: every thread computes the same value
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        __builtin_cpu_init();
        value = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value;
}
#endif

void cpe_f32_to_f16(const float *src, uint16_t *dst, size_t count) {
#ifdef CPE_X86
    if (has_f16c()) {
        f32_to_f16_f16c(src, dst, count);
        return;
    }
#endif
    cpe_f32_to_f16_scalar(src, dst, count);
}

void cpe_f32_to_bf16(const float *src, uint16_t *dst, size_t count) {
    for (size_t i = 0; i < count; i++) {
        uint32_t x = bits_of(src[i]);
        if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x7fffffu)) {
            dst[i] = (uint16_t)((x >> 16) | 0x40u);  // quiet NaN
            continue;
        }
        x += 0x7fffu + ((x >> 16) & 1u);  // round to nearest, ties to even
        dst[i] = (uint16_t)(x >> 16);
    }
}
