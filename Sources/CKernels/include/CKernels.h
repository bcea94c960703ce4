// Hand-written fp32 kernels of the CPU backend (AVX-512, chosen at run time; see gemm.c).
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What `ck_sgemm` applies to each output tile after its last K block, while it is still in registers.
typedef enum {
    CK_EPILOGUE_NONE = 0,
    /// + bias[column]
    CK_EPILOGUE_BIAS = 1,
    /// GELU (exact erf form) of (· + bias[column])
    CK_EPILOGUE_BIAS_GELU = 2,
    /// QuickGELU, x·sigmoid(1.702·x), of (· + bias[column])
    CK_EPILOGUE_BIAS_QUICKGELU = 3,
} ck_epilogue;

/// 1 when this CPU runs the AVX-512 kernels (AVX-512F and FMA), else 0 (callers fall back to BLAS).
int ck_avx512_available(void);

/// C[0..<m, n0..<n1] = (accumulate ? C : 0) + A[m, k]·op(B)[k, n0..<n1], then the epilogue; row-major.
///
/// op(B) is Bᵀ with B stored [n, k] (`transpose_b` = 1, a Linear weight) or B stored [k, n]. Only columns
/// n0..<n1 of C are touched, so callers split N over threads. `bias` is indexed by absolute column (may be NULL
/// for CK_EPILOGUE_NONE). With `accumulate`, the bias is added to A·B before C's old value (a residual add).
/// Requires ck_avx512_available(); k ≥ 1.
void ck_sgemm(int m, int n0, int n1, int k, const float *a, long lda, const float *b, long ldb, int transpose_b,
              float *c, long ldc, int accumulate, const float *bias, ck_epilogue epilogue);

/// `count` floats ← epilogue(x + bias[i]) in place, AVX-512 (requires ck_avx512_available()).
void ck_bias_activation(float *x, const float *bias, int count, ck_epilogue epilogue);

/// Attention of one head: out[i, :] = softmax_j(scale · q_i·k_j) · V for i < queries, j < tokens, head width
/// `head_width`; q, k, v rows are `ld` floats apart, out rows `ldo` apart. `scratch` holds queries × tokens floats.
void ck_attention_head(int queries, int tokens, int head_width, const float *q, const float *k, const float *v, long ld,
                       float scale, float *out, long ldo, float *scratch);

/// LayerNorm of `rows` rows of `width` floats (rows `in_stride` / `out_stride` apart; in may equal out):
/// (x − mean)/√(var + eps)·weight + bias, biased variance, two passes in fp32 like the Swift kernel.
void ck_layer_norm(const float *in, long in_stride, float *out, long out_stride, int rows, int width,
                   const float *weight, const float *bias, float epsilon);

#ifdef __cplusplus
}
#endif
