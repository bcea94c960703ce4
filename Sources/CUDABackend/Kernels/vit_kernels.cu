// clipserve ViT kernels, compiled at start-up with NVRTC for the device's architecture.
// No CUDA headers: 16-bit values are raw bits converted with PTX cvt; every sum accumulates in fp32.
// Storage types: f32 (float), f16 (IEEE half bits), bf16 (bfloat16 bits). Entry points are `<op>_<dtype>`.

typedef unsigned short u16;
struct f16_t { u16 bits; };
struct bf16_t { u16 bits; };

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(f16_t v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
}
__device__ __forceinline__ float to_float(bf16_t v) { return __uint_as_float(((unsigned)v.bits) << 16); }

template <typename T> __device__ __forceinline__ T from_float(float f);
template <> __device__ __forceinline__ float from_float<float>(float f) { return f; }
template <> __device__ __forceinline__ f16_t from_float<f16_t>(float f) {
    f16_t r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(f));
    return r;
}
template <> __device__ __forceinline__ bf16_t from_float<bf16_t>(float f) {
    bf16_t r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.bits) : "f"(f));
    return r;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Patch extraction for the patch-embedding GEMM: pixels [B, 3, S, S] -> patches [B*G*G, kPadded], both in T (the
// host uploads pixels already rounded to T), column order (channel, ky, kx) like conv1.weight flattened; columns
// past 3*p*p are zero (K padded to 8).
template <typename T>
__device__ void im2col(const T *pixels, T *patches, int batch, int imageSize, int patch, int grid, int kPadded) {
    long total = (long)batch * grid * grid * kPadded;
    int kReal = 3 * patch * patch;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        int k = (int)(i % kPadded);
        long row = i / kPadded;
        float v = 0.f;
        if (k < kReal) {
            int b = (int)(row / (grid * grid)), cell = (int)(row % (grid * grid));
            int py = cell / grid, px = cell % grid;
            int c = k / (patch * patch), rem = k % (patch * patch), ky = rem / patch, kx = rem % patch;
            v = to_float(pixels[(((long)b * 3 + c) * imageSize + py * patch + ky) * imageSize + px * patch + kx]);
        }
        patches[i] = from_float<T>(v);
    }
}

// torchvision's ToTensor + Normalize of a batch uploaded as RGB bytes [B, 3, S, S]: pixels = table[c * 256 + byte],
// the host's own table, so the values equal normalising on the host. blockIdx.y is one channel of one image.
template <typename T>
__device__ void normalize_bytes(const unsigned char *bytes, T *pixels, const float *table, int plane) {
    long base = (long)blockIdx.y * plane;
    const float *channel = table + (blockIdx.y % 3) * 256;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < plane; i += gridDim.x * blockDim.x)
        pixels[base + i] = from_float<T>(channel[bytes[base + i]]);
}

// Mean and 1/sqrt(variance + eps) of a row held in registers, `vectors` float4 per lane, given this lane's sum of
// its values (taken while loading them): two-pass in fp32 over the warp.
template <int MAXV>
__device__ __forceinline__ float2 register_row_stats(const float4 *v, int vectors, int width, float eps, float sum) {
    const float mean = warp_sum(sum) / width;
    float squares = 0.f;
#pragma unroll
    for (int i = 0; i < MAXV; i++) {
        if (i < vectors) {
            const float a = v[i].x - mean, b = v[i].y - mean, c = v[i].z - mean, d = v[i].w - mean;
            squares += (a * a + b * b) + (c * c + d * d);
        }
    }
    return make_float2(mean, rsqrtf(warp_sum(squares) / width + eps));
}

// The embeddings and ln_pre in one pass: row r of x = LayerNorm((t == 0 ? class_embedding : patchOut[b, t - 1, :]) +
// positional[t, :]) (t = r % tokens, b = r / tokens), fp32 unless x is null; when x16 is not null the row is also
// written rounded to T there (the small-batch block's 16-bit copy of the residual stream, or the 16-bit residual
// stream itself when x is null). One warp per row, two-pass mean/variance in fp32, the row held in registers (float4
// per lane) when width % 128 == 0 and width <= 4 * 32 * MAXV, else read three times (from L1 after the first).
template <typename T, int MAXV>
__device__ void embed_layernorm(const float *patchOut, const float *classEmbedding, const float *positional,
                                const float *gamma, const float *beta, float *x, T *x16, int rows, int tokens,
                                int width, float eps) {
    const int index = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (index >= rows) return;
    const int warp = rows - 1 - index;  // last row first (see layernorm)
    const int t = warp % tokens;
    const float *source = t == 0 ? classEmbedding : patchOut + ((long)(warp / tokens) * (tokens - 1) + t - 1) * width;
    const float *position = positional + (long)t * width;
    float *out = x == nullptr ? nullptr : x + (long)warp * width;
    T *out16 = x16 == nullptr ? nullptr : x16 + (long)warp * width;
    if (width % 128 == 0 && width <= 128 * MAXV) {
        const int vectors = width >> 7;
        float4 v[MAXV];
        float sum = 0.f;
#pragma unroll
        for (int i = 0; i < MAXV; i++) {
            if (i < vectors) {
                const float4 s = ((const float4 *)source)[i * 32 + lane], p = ((const float4 *)position)[i * 32 + lane];
                v[i] = make_float4(s.x + p.x, s.y + p.y, s.z + p.z, s.w + p.w);
                sum += (v[i].x + v[i].y) + (v[i].z + v[i].w);
            }
        }
        const float2 stats = register_row_stats<MAXV>(v, vectors, width, eps, sum);
        const float mean = stats.x, inv = stats.y;
#pragma unroll
        for (int i = 0; i < MAXV; i++) {
            if (i < vectors) {
                const int c = (i * 32 + lane) * 4;
                const float4 g = *(const float4 *)(gamma + c), b = *(const float4 *)(beta + c);
                const float4 o = make_float4((v[i].x - mean) * inv * g.x + b.x, (v[i].y - mean) * inv * g.y + b.y,
                                             (v[i].z - mean) * inv * g.z + b.z, (v[i].w - mean) * inv * g.w + b.w);
                if (out != nullptr) *(float4 *)(out + c) = o;
                if (out16 != nullptr) {
                    struct alignas(4 * sizeof(T)) Four { T v[4]; } h;
                    h.v[0] = from_float<T>(o.x);
                    h.v[1] = from_float<T>(o.y);
                    h.v[2] = from_float<T>(o.z);
                    h.v[3] = from_float<T>(o.w);
                    *(Four *)(out16 + c) = h;
                }
            }
        }
        return;
    }
    float sum = 0.f;
    for (int i = lane; i < width; i += 32) sum += source[i] + position[i];
    const float mean = warp_sum(sum) / width;
    float squares = 0.f;
    for (int i = lane; i < width; i += 32) {
        const float d = source[i] + position[i] - mean;
        squares += d * d;
    }
    const float inv = rsqrtf(warp_sum(squares) / width + eps);
    for (int i = lane; i < width; i += 32) {
        const float v = (source[i] + position[i] - mean) * inv * gamma[i] + beta[i];
        if (out != nullptr) out[i] = v;
        if (out16 != nullptr) out16[i] = from_float<T>(v);
    }
}

// LayerNorm of TI rows (fp32, or the 16-bit residual stream; row r starts at x + r * inStride) into T rows of
// `width`; one warp per row, two-pass mean/variance in fp32. In place is allowed when T is TI and inStride == width.
// Used for widths the register version below cannot hold (not a multiple of 128, or over 1280).
template <typename T, typename TI = float>
__device__ void layernorm(const TI *x, long inStride, T *y, const float *gamma, const float *beta, int rows,
                          int width, float eps) {
    const int index = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (index >= rows) return;
    // Last row first: the GEMM after this reads from row 0 on, which then is what was written last and may still be
    // in L2, and the first rows read here are the last the GEMM before wrote. (Every pass between two GEMMs runs
    // backwards: LayerNorm, bias + GELU, the attention's images.)
    const int warp = rows - 1 - index;
    const TI *row = x + (long)warp * inStride;
    // Lane-contiguous scalar accesses (fully coalesced); the row stays in L1 between the passes.
    float sum = 0.f;
    for (int i = lane; i < width; i += 32) sum += to_float(row[i]);
    float mean = warp_sum(sum) / width;
    float squares = 0.f;
    for (int i = lane; i < width; i += 32) {
        float d = to_float(row[i]) - mean;
        squares += d * d;
    }
    float inv = rsqrtf(warp_sum(squares) / width + eps);
    T *out = y + (long)warp * width;
    for (int i = lane; i < width; i += 32) out[i] = from_float<T>((to_float(row[i]) - mean) * inv * gamma[i] + beta[i]);
}

// Values 4·i to 4·i + 3 of `row` as fp32: one 16-byte load of fp32, one 8-byte load of 16-bit values.
__device__ __forceinline__ float4 load_float4(const float *row, int i) { return ((const float4 *)row)[i]; }
template <typename T> __device__ __forceinline__ float4 load_float4(const T *row, int i) {
    struct alignas(4 * sizeof(T)) Four { T v[4]; };
    const Four h = ((const Four *)row)[i];
    return make_float4(to_float(h.v[0]), to_float(h.v[1]), to_float(h.v[2]), to_float(h.v[3]));
}

// The same LayerNorm with the row held in registers (float4 per lane, up to 4·32·MAXV = 1280 columns; width % 128 ==
// 0): one read of the row from memory, 16-byte loads of fp32 input (8-byte of 16-bit), 8-byte stores of 16-bit
// output. On H200 it took ViT-L-14's LayerNorms at batch 256 from 6.87 to 4.99 ms in all (3.9 TB/s).
template <typename T, int MAXV, typename TI = float>
__device__ void layernorm_registers(const TI *x, long inStride, T *y, const float *gamma, const float *beta, int rows,
                                    int width, float eps) {
    const int index = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (index >= rows) return;
    const int warp = rows - 1 - index;  // last row first (see layernorm)
    const TI *row = x + (long)warp * inStride;
    const int vectors = width >> 7;  // float4 per lane
    float4 v[MAXV];
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < MAXV; i++) {
        if (i < vectors) {
            v[i] = load_float4(row, i * 32 + lane);
            sum += (v[i].x + v[i].y) + (v[i].z + v[i].w);
        }
    }
    const float2 stats = register_row_stats<MAXV>(v, vectors, width, eps, sum);
    const float mean = stats.x, inv = stats.y;
    T *out = y + (long)warp * width;
#pragma unroll
    for (int i = 0; i < MAXV; i++) {
        if (i < vectors) {
            const int c = (i * 32 + lane) * 4;
            const float4 g = *(const float4 *)(gamma + c), b = *(const float4 *)(beta + c);
            struct alignas(4 * sizeof(T)) Four { T v[4]; } o;
            o.v[0] = from_float<T>((v[i].x - mean) * inv * g.x + b.x);
            o.v[1] = from_float<T>((v[i].y - mean) * inv * g.y + b.y);
            o.v[2] = from_float<T>((v[i].z - mean) * inv * g.z + b.z);
            o.v[3] = from_float<T>((v[i].w - mean) * inv * g.w + b.w);
            *(Four *)(out + c) = o;
        }
    }
}

// h = act(h + bias) in place on [rows, cols] T; act is erf GELU (quick == 0) or QuickGELU (activation.cu). Rows are
// strided over blocks; each thread handles up to 4 packs of 8 consecutive columns (16-byte accesses, cols % 8 == 0)
// per step, all four loaded before any is computed so the loads overlap (the pass is bound by memory bandwidth).
template <typename T> struct __align__(16) Pack8 { T v[8]; };
template <typename T>
__device__ void bias_gelu(T *h, const float *bias, long rows, int cols, int quick) {
    const int vectors = cols >> 3;
    for (long index = blockIdx.x; index < rows; index += gridDim.x) {
        Pack8<T> *line = (Pack8<T> *)(h + (rows - 1 - index) * cols);  // last row first (see layernorm)
        for (int v0 = threadIdx.x; v0 < vectors; v0 += 4 * blockDim.x) {
            Pack8<T> pack[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int v = v0 + u * blockDim.x;
                if (v < vectors) pack[u] = line[v];
            }
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int v = v0 + u * blockDim.x;
                if (v >= vectors) break;
                const float4 b0 = ((const float4 *)bias)[2 * v], b1 = ((const float4 *)bias)[2 * v + 1];
                const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    float x = to_float(pack[u].v[j]) + b[j];
                    x = mlp_activation(x, quick);
                    pack[u].v[j] = from_float<T>(x);
                }
                line[v] = pack[u];
            }
        }
    }
}

// Multi-head self-attention reading Q, K, V strided from the fused QKV output [B*S, 3W] (Q | K | V, heads
// contiguous inside each), writing [B*S, W]. One CTA per (q-tile, head, image), one thread per query row,
// K/V streamed through shared memory in tiles of KEY_TILE keys, online softmax exact in fp32.
#define KEY_TILE 32
template <typename T, int D>
__device__ void attention(const T *qkv, T *out, int tokens, int heads, float scale) {
    extern __shared__ float shared[];
    float *keys = shared, *values = shared + KEY_TILE * D;
    int b = blockIdx.z, h = blockIdx.y, query = blockIdx.x * blockDim.x + threadIdx.x;
    int width = heads * D;
    long stride = 3L * width;
    const T *base = qkv + (long)b * tokens * stride;
    bool active = query < tokens;
    float q[D], acc[D];
#pragma unroll
    for (int d = 0; d < D; d++) {
        q[d] = active ? to_float(base[query * stride + h * D + d]) * scale : 0.f;
        acc[d] = 0.f;
    }
    float runningMax = __int_as_float(0xff800000), runningSum = 0.f;
    for (int k0 = 0; k0 < tokens; k0 += KEY_TILE) {
        int n = min(KEY_TILE, tokens - k0);
        __syncthreads();
        for (int i = threadIdx.x; i < n * D; i += blockDim.x) {
            int r = i / D, c = i % D;
            const T *src = base + (long)(k0 + r) * stride + h * D + c;
            keys[i] = to_float(src[width]);
            values[i] = to_float(src[2 * width]);
        }
        __syncthreads();
        if (!active) continue;
        float s[KEY_TILE];
        float tileMax = __int_as_float(0xff800000);
#pragma unroll
        for (int j = 0; j < KEY_TILE; j++) {
            float dot = __int_as_float(0xff800000);
            if (j < n) {
                dot = 0.f;
#pragma unroll
                for (int d = 0; d < D; d++) dot += q[d] * keys[j * D + d];
            }
            s[j] = dot;
            tileMax = fmaxf(tileMax, dot);
        }
        float newMax = fmaxf(runningMax, tileMax);
        float correction = expf(runningMax - newMax);
        runningSum *= correction;
#pragma unroll
        for (int d = 0; d < D; d++) acc[d] *= correction;
#pragma unroll
        for (int j = 0; j < KEY_TILE; j++) {
            if (j < n) {
                float p = expf(s[j] - newMax);
                runningSum += p;
#pragma unroll
                for (int d = 0; d < D; d++) acc[d] += p * values[j * D + d];
            }
        }
        runningMax = newMax;
    }
    if (!active) return;
    float inv = 1.f / runningSum;
    T *dst = out + ((long)b * tokens + query) * width + h * D;
#pragma unroll
    for (int d = 0; d < D; d++) dst[d] = from_float<T>(acc[d] * inv);
}

// Attention of each image's class token alone, for the last block: the tower's output is ln_post and the projection
// of that token, so the other tokens' outputs of the last block are never read. One warp per (head, image), 4 heads
// per CTA: the lanes share out the keys for the scores (kept in shared memory, `tokens` floats a warp), then the
// dimensions for P·V. Exact softmax in fp32. Writes the class tokens' attention output compactly, [B, W].
// queryBias, when not null, is added to the query (the QKV GEMM ran without its bias: see attention_wgmma.cu).
template <typename T, int D>
__device__ void attention_class_token(const T *qkv, T *out, int tokens, int heads, float scale, const float *queryBias) {
    extern __shared__ float classScores[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, h = blockIdx.x * (blockDim.x >> 5) + warp, b = blockIdx.y;
    if (h >= heads) return;
    float *scores = classScores + warp * tokens;
    const int width = heads * D;
    const long stride = 3L * width;
    const T *base = qkv + (long)b * tokens * stride + h * D;
    float q[D];
#pragma unroll
    for (int d = 0; d < D; d++) q[d] = (to_float(base[d]) + (queryBias ? queryBias[h * D + d] : 0.f)) * scale;
    float mx = __int_as_float(0xff800000);
    for (int j = lane; j < tokens; j += 32) {
        const Pack8<T> *key = (const Pack8<T> *)(base + (long)j * stride + width);
        float dot = 0.f;
#pragma unroll
        for (int v = 0; v < D / 8; v++) {
            const Pack8<T> pack = key[v];
#pragma unroll
            for (int i = 0; i < 8; i++) dot += q[8 * v + i] * to_float(pack.v[i]);
        }
        scores[j] = dot;
        mx = fmaxf(mx, dot);
    }
    for (int offset = 16; offset > 0; offset >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, offset));
    float sum = 0.f;
    for (int j = lane; j < tokens; j += 32) {
        const float p = expf(scores[j] - mx);
        scores[j] = p;
        sum += p;
    }
    const float inv = 1.f / warp_sum(sum);
    __syncwarp();
    float acc[(D + 31) / 32];
#pragma unroll
    for (int i = 0; i < (D + 31) / 32; i++) acc[i] = 0.f;
    for (int j = 0; j < tokens; j++) {
        const float p = scores[j];
        const T *value = base + (long)j * stride + 2 * width;
#pragma unroll
        for (int i = 0; i < (D + 31) / 32; i++) {
            if (lane + 32 * i < D) acc[i] += p * to_float(value[lane + 32 * i]);
        }
    }
#pragma unroll
    for (int i = 0; i < (D + 31) / 32; i++) {
        if (lane + 32 * i < D) out[(long)b * width + h * D + lane + 32 * i] = from_float<T>(acc[i] * inv);
    }
}

// Keeps the GPU busy for `nanoseconds`: work enqueued behind it then runs back to back, so a stage profile of a small
// batch measures the GPU rather than the host's launch rate.
extern "C" __global__ void spin(long long nanoseconds) {
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < (unsigned long long)nanoseconds);
}

// Row-wise L2 normalisation of [rows, dim] fp32, one CTA per row (rows with zero norm stay zero).
extern "C" __global__ void l2norm_f32(float *y, int dim) {
    __shared__ float partial[32];
    float *row = y + (long)blockIdx.x * dim;
    float sum = 0.f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) sum += row[i] * row[i];
    sum = warp_sum(sum);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = sum;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
        v = warp_sum(v);
        if (threadIdx.x == 0) partial[0] = v;
    }
    __syncthreads();
    float norm = sqrtf(partial[0]);
    if (norm <= 0.f) return;
    float inv = 1.f / norm;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) row[i] *= inv;
}

#define CLIPSERVE_LAYERNORM(T, NAME)                                                                              \
    extern "C" __global__ void layernorm_##NAME(const float *x, long inStride, T *y, const float *gamma,           \
                                                const float *beta, int rows, int width, float eps) {               \
        layernorm<T>(x, inStride, y, gamma, beta, rows, width, eps);                                               \
    }                                                                                                              \
    extern "C" __global__ void layernorm_registers_##NAME(const float *x, long inStride, T *y, const float *gamma, \
                                                          const float *beta, int rows, int width, float eps) {     \
        layernorm_registers<T, 10>(x, inStride, y, gamma, beta, rows, width, eps);                                 \
    }

// The same LayerNorms reading the 16-bit residual stream (16-bit engines).
#define CLIPSERVE_LAYERNORM_FROM16(T, NAME)                                                                       \
    extern "C" __global__ void layernorm_from16_##NAME(const T *x, long inStride, T *y, const float *gamma,        \
                                                       const float *beta, int rows, int width, float eps) {        \
        layernorm<T, T>(x, inStride, y, gamma, beta, rows, width, eps);                                            \
    }                                                                                                              \
    extern "C" __global__ void layernorm_registers_from16_##NAME(const T *x, long inStride, T *y,                  \
            const float *gamma, const float *beta, int rows, int width, float eps) {                               \
        layernorm_registers<T, 10, T>(x, inStride, y, gamma, beta, rows, width, eps);                              \
    }

#define CLIPSERVE_CLASS_TOKEN_ATTENTION(T, NAME, D)                                                               \
    extern "C" __global__ void attention_class_d##D##_##NAME(const T *qkv, T *out, int tokens, int heads,         \
                                                             float scale, const float *queryBias) {                \
        attention_class_token<T, D>(qkv, out, tokens, heads, scale, queryBias);                                    \
    }

#define CLIPSERVE_ENTRY_POINTS(T, NAME)                                                                           \
    extern "C" __global__ void im2col_##NAME(const T *pixels, T *patches, int batch, int imageSize, int patch,     \
                                             int grid, int kPadded) {                                              \
        im2col<T>(pixels, patches, batch, imageSize, patch, grid, kPadded);                                        \
    }                                                                                                              \
    extern "C" __global__ void normalize_bytes_##NAME(const unsigned char *bytes, T *pixels, const float *table,   \
                                                      int plane) {                                                 \
        normalize_bytes<T>(bytes, pixels, table, plane);                                                           \
    }                                                                                                              \
    extern "C" __global__ void embed_layernorm_##NAME(const float *patchOut, const float *classEmbedding,          \
            const float *positional, const float *gamma, const float *beta, float *x, T *x16, int rows, int tokens, \
            int width, float eps) {                                                                                \
        embed_layernorm<T, 10>(patchOut, classEmbedding, positional, gamma, beta, x, x16, rows, tokens, width, eps);\
    }                                                                                                              \
    extern "C" __global__ void bias_gelu_##NAME(T *h, const float *bias, long rows, int cols, int quick) {        \
        bias_gelu<T>(h, bias, rows, cols, quick);                                                                  \
    }                                                                                                              \
    extern "C" __global__ void attention_d16_##NAME(const T *qkv, T *out, int tokens, int heads, float scale) {   \
        attention<T, 16>(qkv, out, tokens, heads, scale);                                                          \
    }                                                                                                              \
    extern "C" __global__ void attention_d32_##NAME(const T *qkv, T *out, int tokens, int heads, float scale) {   \
        attention<T, 32>(qkv, out, tokens, heads, scale);                                                          \
    }                                                                                                              \
    extern "C" __global__ void attention_d64_##NAME(const T *qkv, T *out, int tokens, int heads, float scale) {   \
        attention<T, 64>(qkv, out, tokens, heads, scale);                                                          \
    }                                                                                                              \
    extern "C" __global__ void attention_d80_##NAME(const T *qkv, T *out, int tokens, int heads, float scale) {   \
        attention<T, 80>(qkv, out, tokens, heads, scale);                                                          \
    }                                                                                                              \
    CLIPSERVE_CLASS_TOKEN_ATTENTION(T, NAME, 16)                                                                   \
    CLIPSERVE_CLASS_TOKEN_ATTENTION(T, NAME, 32)                                                                   \
    CLIPSERVE_CLASS_TOKEN_ATTENTION(T, NAME, 64)                                                                   \
    CLIPSERVE_CLASS_TOKEN_ATTENTION(T, NAME, 80)

// Only the engine's precision is built (NVRTC option -DCLIPSERVE_F32 / _F16 / _BF16): it keeps start-up short.
#ifdef CLIPSERVE_F32
CLIPSERVE_LAYERNORM(float, f32)
CLIPSERVE_ENTRY_POINTS(float, f32)
#endif
#ifdef CLIPSERVE_F16
CLIPSERVE_LAYERNORM(f16_t, f16)
CLIPSERVE_LAYERNORM_FROM16(f16_t, f16)
CLIPSERVE_ENTRY_POINTS(f16_t, f16)
#endif
#ifdef CLIPSERVE_BF16
CLIPSERVE_LAYERNORM(bf16_t, bf16)
CLIPSERVE_LAYERNORM_FROM16(bf16_t, bf16)
CLIPSERVE_ENTRY_POINTS(bf16_t, bf16)
#endif
