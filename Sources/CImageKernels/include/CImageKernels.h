// Pillow's 8-bit fixed-point resampling passes (src/libImaging/Resample.c, ImagingResample{Horizontal,Vertical}_8bpc)
// as C kernels with a portable scalar version and x86-64 AVX2 / AVX-512BW versions picked at run time.
//
// Every version computes the same integer sums (bias + sum of pixel * coefficient in 32-bit two's complement, which
// does not depend on the order of the additions), then shifts by `CIK_PRECISION_BITS` and clamps to [0, 255], so
// all versions give identical bytes.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define CIK_PRECISION_BITS 22

/// Which implementation runs a pass.
typedef enum {
    /// The best the CPU supports.
    CIK_KERNEL_AUTO = 0,
    /// Portable C, one output sample at a time.
    CIK_KERNEL_SCALAR = 1,
    /// x86-64 AVX2 (falls back to scalar where the CPU lacks it).
    CIK_KERNEL_AVX2 = 2,
    /// x86-64 AVX-512F + AVX-512BW (falls back to AVX2, then scalar).
    CIK_KERNEL_AVX512 = 3,
} cik_kernel;

/// The kernel `CIK_KERNEL_AUTO` resolves to on this CPU.
cik_kernel cik_best_kernel(void);

/// The kernel that actually runs when `requested` is asked for on this CPU.
cik_kernel cik_resolve_kernel(cik_kernel requested);

/// Horizontal pass. For each of `rows` rows (`src` rows `src_stride` bytes apart, `dst` rows `dst_stride` apart) and
/// each output sample `o` in `[0, outs)`: reads `count[o]` pixels of `channels` bytes starting at byte
/// `offset[o]` of the row, weights them by `coeffs[o * ksize ...]` (fixed point) and writes `channels` bytes at
/// `dst + o * channels`. `src_end` is one past the last readable source byte: SIMD loads never go past it.
/// `channels` is 1 to 4.
void cik_horizontal_u8(
    const uint8_t *src, ptrdiff_t src_stride, const uint8_t *src_end, int rows, int channels,
    const int32_t *offset, const int32_t *count, const int32_t *coeffs, int ksize, int outs,
    uint8_t *dst, ptrdiff_t dst_stride, cik_kernel kernel);

/// Vertical pass. For each output row `r` in `[0, out_rows)`: `dst + r * dst_stride` gets `row_bytes` bytes, byte
/// `i` being the weighted sum over `t < count[r]` of `src[(first[r] + t) * src_stride + i]` with weights
/// `coeffs[r * ksize + t]`.
void cik_vertical_u8(
    const uint8_t *src, ptrdiff_t src_stride, int row_bytes,
    const int32_t *first, const int32_t *count, const int32_t *coeffs, int ksize, int out_rows,
    uint8_t *dst, ptrdiff_t dst_stride, cik_kernel kernel);
