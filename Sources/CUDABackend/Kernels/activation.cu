// The MLP activations, shared by the vit_kernels program (bias_gelu) and the tensor-core program (gemm_wgmma.cu's
// epilogue): each program is this file followed by its own sources.

// GELU in open_clip's erf form, 0.5·x·(1 + erf(x/√2)), written 0.5·x·(2 − erfc(z)) for x ≥ 0 and 0.5·x·erfc(z) below
// (z = |x|/√2, so the negative tail has no cancellation), with erfc from Abramowitz & Stegun 7.1.26 (absolute
// error ≤ 1.5e-7). Over x in [−12, 12] the result is within 4.2e-7 of the exact value (0.5·x·(1 + erff) rounded to
// fp32 is within 4.5e-7), relative error ≤ 1.7e-4 where |GELU| > 1e-3 (below fp16's resolution), at about half the
// instructions of erff (a bias + GELU pass over the MLP hidden layer is bound by arithmetic, not memory). It is not
// the tanh approximation (which is off by up to 3e-4 absolute).
__device__ __forceinline__ float gelu_erf(float x) {
    const float z = fabsf(x) * 0.7071067811865475f;
    // 1 / (1 + 0.3275911 z) and 2^(−z²·log2 e) in one MUFU instruction each (as __fdividef and exp2f compute them
    // for these arguments, without their range checks: the divisor is at least 1, and exponentials below 2^−126,
    // |x| > 13.3, flush to zero, as 0.5·x·erfc does once rounded to 16 bits anyway)
    float t, e;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(t) : "f"(fmaf(0.3275911f, z, 1.f)));
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(-z * z * 1.4426950408889634f));
    float p = fmaf(t, 1.061405429f, -1.453152027f);
    p = fmaf(p, t, 1.421413741f);
    p = fmaf(p, t, -0.284496736f);
    p = fmaf(p, t, 0.254829592f);
    const float erfc = p * t * e;
    return 0.5f * x * (x >= 0.f ? 2.f - erfc : erfc);
}

// The MLP's activation of a pre-activation value: erf GELU, or QuickGELU (x · sigmoid(1.702 x)) when quick != 0.
__device__ __forceinline__ float mlp_activation(float x, int quick) {
    return quick ? x / (1.f + expf(-1.702f * x)) : gelu_erf(x);
}
