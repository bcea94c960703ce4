// Conversion of model-input pixels (fp32) to the 16-bit encodings a GPU engine uploads, so a batch crosses PCIe at
// half the bytes. Both round to nearest, ties to even, exactly as the GPU's cvt.rn does.
#ifndef CPIXELENCODING_H
#define CPIXELENCODING_H

#include <stddef.h>
#include <stdint.h>

/// IEEE binary16 bits of `src[i]` into `dst[i]` (subnormals kept, overflow to ±inf, NaN stays NaN).
/// F16C when the CPU has it (chosen at run time), portable C otherwise.
void cpe_f32_to_f16(const float *src, uint16_t *dst, size_t count);

/// bfloat16 bits of `src[i]` into `dst[i]` (the upper half of the fp32 bits, rounded; NaN stays NaN).
void cpe_f32_to_bf16(const float *src, uint16_t *dst, size_t count);

/// The portable path of cpe_f32_to_f16, for tests.
void cpe_f32_to_f16_scalar(const float *src, uint16_t *dst, size_t count);

#endif
