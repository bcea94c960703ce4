import CBLAS
import CKernels
import Foundation
import InferenceCore

/// One worker's state for `CPUEngine`: a workspace sized for `maxBatchSize` images, never shared between threads.
public final class CPUExecutionContext: ExecutionContext {
    public let maxBatchSize: Int
    private let engine: CPUEngine
    private let workspace: Workspace
    /// Seconds spent per op since profiling was enabled; nil while disabled.
    private var opSeconds: [String: Double]?

    init(engine: CPUEngine, maxBatchSize: Int) throws {
        guard maxBatchSize >= 1 else {
            throw CPUEngineError.invalidConfiguration("maxBatchSize must be at least 1, got \(maxBatchSize)")
        }
        self.engine = engine
        self.maxBatchSize = maxBatchSize
        workspace = Workspace(spec: engine.spec, maxBatchSize: maxBatchSize, threads: engine.threads)
    }

    public func embed(
        pixels: UnsafeBufferPointer<Float>, count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        try validate(pixels: pixels, count: count)
        let embedDim = engine.spec.embedDim
        guard output.count == count * embedDim else {
            throw EngineError.bufferSize(what: "output", expected: count * embedDim, got: output.count)
        }
        guard count > 0, let out = output.baseAddress else { return }
        forward(pixels: pixels.baseAddress!, count: count, classTokenOnlyInLastBlock: true, into: out, capture: nil)
        if normalize { time("l2_normalize") { l2NormalizeRows(output, rows: count, dim: embedDim) } }
    }

    public func captureLayers(pixels: UnsafeBufferPointer<Float>, count: Int) throws -> [LayerOutput] {
        try validate(pixels: pixels, count: count)
        guard count > 0 else { return [] }
        var layers: [LayerOutput] = []
        var embedding = [Float](repeating: 0, count: count * engine.spec.embedDim)
        embedding.withUnsafeMutableBufferPointer { out in
            forward(pixels: pixels.baseAddress!, count: count, classTokenOnlyInLastBlock: false, into: out.baseAddress!) {
                name, shape, values in
                layers.append(LayerOutput(name: name, shape: shape, values: Array(UnsafeBufferPointer(start: values, count: shape.reduce(1, *)))))
            }
        }
        layers.append(LayerOutput(name: "projection", shape: [count, engine.spec.embedDim], values: embedding))
        return layers
    }

    /// Starts (or restarts) timing each op of every forward pass.
    public func enableProfiling() { opSeconds = [:] }

    /// Seconds per op since `enableProfiling()`, largest first.
    public func profile() -> [(op: String, seconds: Double)] {
        (opSeconds ?? [:]).map { (op: $0.key, seconds: $0.value) }.sorted { $0.seconds > $1.seconds }
    }

    private func validate(pixels: UnsafeBufferPointer<Float>, count: Int) throws {
        guard count <= maxBatchSize else { throw EngineError.batchTooLarge(requested: count, maximum: maxBatchSize) }
        guard count >= 0 else { throw EngineError.bufferSize(what: "pixels", expected: 0, got: pixels.count) }
        let expected = count * engine.spec.pixelsPerImage
        guard pixels.count == expected else {
            throw EngineError.bufferSize(what: "pixels", expected: expected, got: pixels.count)
        }
    }

    @inline(__always)
    private func time(_ op: String, _ body: () -> Void) {
        guard opSeconds != nil else { return body() }
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        opSeconds![op, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    /// The ViT forward pass of open_clip.md §1.2, writing `count × embedDim` un-normalised embeddings to `output`.
    ///
    /// With `classTokenOnlyInLastBlock`, the last block computes K and V for every token but everything after
    /// attention (and Q) only for the class token, the only row the pooled output reads. `capture` receives
    /// [count, T, W] after the embeddings, ln_pre and every block, and [count, W] after ln_post.
    private func forward(
        pixels: UnsafePointer<Float>, count: Int, classTokenOnlyInLastBlock: Bool,
        into output: UnsafeMutablePointer<Float>,
        capture: ((_ name: String, _ shape: [Int], _ values: UnsafePointer<Float>) -> Void)?
    ) {
        let spec = engine.spec, e = engine, ws = workspace, threads = e.threads
        let b = count, t = spec.tokens, w = spec.width, m = spec.mlpWidth, eps = spec.layerNormEpsilon
        let grid2 = spec.gridSize * spec.gridSize, rows = b * t

        // Patch embedding: im2col then one GEMM against conv1 flattened to [W, 3·p·p].
        time("im2col") {
            parallelChunks(b * grid2, threads: threads) { _, range in
                CPUKernels.im2col(
                    pixels, count: b, imageSize: spec.imageSize, patchSize: spec.patchSize, into: ws.patches, rows: range)
            }
        }
        time("gemm_patch") {
            parallelGEMM(
                m: b * grid2, n: w, k: spec.patchDim, a: ws.patches, lda: spec.patchDim,
                b: e.patchEmbedding, ldb: spec.patchDim, transposeB: true, c: ws.mlp, ldc: w, threads: threads,
                kernels: e.kernels)
        }
        // Class token first, then the patches, plus the positional embedding.
        time("embeddings") {
            parallelChunks(rows, threads: threads) { _, range in
                for r in range {
                    let image = r / t, token = r % t
                    let source = token == 0 ? e.classEmbedding : UnsafePointer(ws.mlp + (image * grid2 + token - 1) * w)
                    let x = ws.x + r * w
                    x.update(from: source, count: w)
                    CPUKernels.addBias(x, e.positionalEmbedding + token * w, count: w, activation: nil)
                }
            }
        }
        capture?("embeddings", [b, t, w], ws.x)
        time("layernorm") { layerNorm(ws.x, w, into: ws.x, w, rows: rows, e.lnPreWeight, e.lnPreBias, eps) }
        capture?("ln_pre", [b, t, w], ws.x)

        for (index, block) in e.blocks.enumerated() {
            let classOnly = classTokenOnlyInLastBlock && index == e.blocks.count - 1
            // Rows that continue after attention: every token, or each image's class token (T rows apart).
            let keptRows = classOnly ? b : rows, keptStride = classOnly ? t * w : w
            time("layernorm") { layerNorm(ws.x, w, into: ws.h, w, rows: rows, block.ln1Weight, block.ln1Bias, eps) }
            time("gemm_qkv") {
                if classOnly {
                    // K and V for every token, Q for the class tokens only.
                    parallelGEMM(
                        m: rows, n: 2 * w, k: w, a: ws.h, lda: w, b: block.qkvWeight + w * w, ldb: w, transposeB: true,
                        c: ws.qkv + w, ldc: 3 * w, epilogue: .bias(block.qkvBias + w), threads: threads,
                        kernels: e.kernels)
                    parallelGEMM(
                        m: b, n: w, k: w, a: ws.h, lda: t * w, b: block.qkvWeight, ldb: w, transposeB: true,
                        c: ws.qkv, ldc: t * 3 * w, epilogue: .bias(block.qkvBias), threads: threads,
                        kernels: e.kernels)
                } else {
                    parallelGEMM(
                        m: rows, n: 3 * w, k: w, a: ws.h, lda: w, b: block.qkvWeight, ldb: w, transposeB: true,
                        c: ws.qkv, ldc: 3 * w, epilogue: .bias(block.qkvBias), threads: threads,
                        kernels: e.kernels)
                }
            }
            time("attention") { attention(count: b, queries: classOnly ? 1 : t) }
            time("gemm_out_proj") {
                parallelGEMM(
                    m: keptRows, n: w, k: w, a: ws.attention, lda: keptStride, b: block.outWeight, ldb: w,
                    transposeB: true, beta: 1, c: ws.x, ldc: keptStride, epilogue: .bias(block.outBias), threads: threads,
                    kernels: e.kernels)
            }
            time("layernorm") {
                layerNorm(ws.x, keptStride, into: ws.h, keptStride, rows: keptRows, block.ln2Weight, block.ln2Bias, eps)
            }
            time("gemm_fc1_act") {
                parallelGEMM(
                    m: keptRows, n: m, k: w, a: ws.h, lda: keptStride, b: block.fc1Weight, ldb: w, transposeB: true,
                    c: ws.mlp, ldc: m, epilogue: .biasActivation(block.fc1Bias, spec.activation), threads: threads,
                    kernels: e.kernels)
            }
            time("gemm_fc2") {
                parallelGEMM(
                    m: keptRows, n: w, k: m, a: ws.mlp, lda: m, b: block.fc2Weight, ldb: m, transposeB: true,
                    beta: 1, c: ws.x, ldc: keptStride, epilogue: .bias(block.fc2Bias), threads: threads,
                    kernels: e.kernels)
            }
            if !classOnly { capture?("resblocks.\(index)", [b, t, w], ws.x) }
        }

        time("layernorm") { layerNorm(ws.x, t * w, into: ws.pooled, w, rows: b, e.lnPostWeight, e.lnPostBias, eps) }
        capture?("ln_post", [b, w], ws.pooled)
        time("gemm_proj") {
            parallelGEMM(
                m: b, n: spec.embedDim, k: w, a: ws.pooled, lda: w, b: e.projection, ldb: spec.embedDim,
                transposeB: false, c: output, ldc: spec.embedDim, threads: threads,
                kernels: e.kernels)
        }
    }

    /// LayerNorm of `rows` rows spread over the workers.
    private func layerNorm(
        _ input: UnsafePointer<Float>, _ inputStride: Int, into output: UnsafeMutablePointer<Float>, _ outputStride: Int,
        rows: Int, _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, _ epsilon: Float
    ) {
        let width = engine.spec.width
        if engine.kernels == .avx512 {
            return parallelChunks(rows, threads: engine.threads) { _, range in
                ck_layer_norm(
                    input + range.lowerBound * inputStride, inputStride, output + range.lowerBound * outputStride,
                    outputStride, Int32(range.count), Int32(width), weight, bias, epsilon)
            }
        }
        parallelChunks(rows, threads: engine.threads) { _, range in
            CPUKernels.layerNorm(
                input + range.lowerBound * inputStride, inputStride: inputStride,
                into: output + range.lowerBound * outputStride, outputStride: outputStride,
                rows: range.count, width: width, weight: weight, bias: bias, epsilon: epsilon)
        }
    }

    /// Multi-head attention of every (image, head) pair from `workspace.qkv` into `workspace.attention`, heads
    /// concatenated; `queries` is T, or 1 when only the class token's output is needed.
    private func attention(count: Int, queries: Int) {
        let spec = engine.spec, ws = workspace
        let t = spec.tokens, w = spec.width, heads = spec.heads, hd = spec.headWidth
        let scale = 1 / Float(hd).squareRoot()
        parallelChunks(count * heads, threads: engine.threads) { chunk, pairs in
            let scores = ws.scores + chunk * t * t
            for pair in pairs {
                let image = pair / heads, head = pair % heads
                let q = UnsafePointer(ws.qkv + image * t * 3 * w + head * hd)
                if engine.kernels == .avx512 {
                    ck_attention_head(
                        Int32(queries), Int32(t), Int32(hd), q, q + w, q + 2 * w, 3 * w, scale,
                        ws.attention + image * t * w + head * hd, w, scores)
                    continue
                }
                // S = scale · Q·Kᵀ, softmax over keys, O = S·V.
                cblas_sgemm(
                    CblasRowMajor, CblasNoTrans, CblasTrans, Int32(queries), Int32(t), Int32(hd), scale,
                    q, Int32(3 * w), q + w, Int32(3 * w), 0, scores, Int32(t))
                CPUKernels.softmaxRows(scores, rows: queries, length: t, stride: t)
                cblas_sgemm(
                    CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(queries), Int32(hd), Int32(t), 1,
                    scores, Int32(t), q + 2 * w, Int32(3 * w), 0, ws.attention + image * t * w + head * hd, Int32(w))
            }
        }
    }
}

/// Activation buffers of one context, sized for its largest batch (llm.c's single activation buffer).
private final class Workspace {
    /// Residual stream [B·T, W].
    let x: UnsafeMutablePointer<Float>
    /// LayerNorm output feeding a GEMM [B·T, W].
    let h: UnsafeMutablePointer<Float>
    /// Fused Q, K, V [B·T, 3W].
    let qkv: UnsafeMutablePointer<Float>
    /// Attention output, heads concatenated [B·T, W].
    let attention: UnsafeMutablePointer<Float>
    /// MLP hidden [B·T, M]; also the patch GEMM's output [B·g², W].
    let mlp: UnsafeMutablePointer<Float>
    /// im2col patches [B·g², 3·p·p].
    let patches: UnsafeMutablePointer<Float>
    /// One [T, T] score matrix per worker.
    let scores: UnsafeMutablePointer<Float>
    /// Class tokens after ln_post [B, W].
    let pooled: UnsafeMutablePointer<Float>
    private let all: [UnsafeMutablePointer<Float>]

    init(spec: VisionTowerSpec, maxBatchSize: Int, threads: Int) {
        let rows = maxBatchSize * spec.tokens, w = spec.width
        let patchRows = maxBatchSize * spec.gridSize * spec.gridSize
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
            p.initialize(repeating: 0, count: count)
            return p
        }
        x = buffer(rows * w)
        h = buffer(rows * w)
        qkv = buffer(rows * 3 * w)
        attention = buffer(rows * w)
        mlp = buffer(max(rows * spec.mlpWidth, patchRows * w))
        patches = buffer(patchRows * spec.patchDim)
        scores = buffer(threads * spec.tokens * spec.tokens)
        pooled = buffer(maxBatchSize * w)
        all = [x, h, qkv, attention, mlp, patches, scores, pooled]
    }

    deinit { for p in all { p.deallocate() } }
}
