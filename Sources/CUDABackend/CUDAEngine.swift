import CCUDA
import Dispatch
import InferenceCore

/// Device copies of one residual block's weights. Matrices are in the engine's precision; the QKV bias is too
/// (cuBLASLt's BIAS epilogue reads it in the output type) and also fp32 (`qkvBiasF32`, for the small-batch path; the
/// same buffer in an fp32 engine); every other bias is fp32, and out_proj's and c_proj's also fp16 in an fp16 engine
/// (`outBias16`, `fc2Bias16`: their epilogues write the fp16 residual stream, see `CUDAExecutionContext`).
///
/// ln_1 and ln_2 have no buffers of their own: their gamma is folded into the Linear after them (QKV, c_fc:
/// W' = W·diag(gamma)) and their beta into its bias (b' = b + W·beta), so the LayerNorm kernels only normalise.
/// `qkvRowSums` and `fc1RowSums` hold W'·1 as stored (fp32 sums of the 16-bit values) for the small-batch path, which
/// applies the normalisation after the product (see Kernels/small_batch.cu).
struct CUDABlockWeights {
    let qkvWeight, qkvBias, qkvBiasF32, qkvRowSums, outWeight, outBias: CUDABuffer
    let fc1Weight, fc1Bias, fc1RowSums, fc2Weight, fc2Bias: CUDABuffer
    /// `outBias` and `fc2Bias` in fp16 when the engine is fp16, else nil.
    let outBias16, fc2Bias16: CUDABuffer?
    /// out_proj's bias with V's bias folded in, b_o + W_o·b_v (fp32, and fp16 when the engine is), for the
    /// large-batch path whose QKV GEMM runs without a bias (see `CUDAExecutionContext.forward`).
    let outBiasWithValueBias: CUDABuffer, outBiasWithValueBias16: CUDABuffer?
}

/// A ViT image tower on one GPU: weights uploaded once in the chosen precision and shared read-only by every
/// execution context made from it; the NVRTC-compiled kernels of the device.
public final class CUDAEngine: EmbeddingEngine, @unchecked Sendable {
    // @unchecked: every stored property is written only in `init`; device weights are never written after upload.
    public let spec: VisionTowerSpec
    public let precision: Precision
    public let deviceDescription: String
    public let preferredBatchSizes: [Int]
    let device: CUDADevice
    let kernels: CUDAKernels
    /// Element type of matrices and activations.
    let dtype: DType
    /// conv1's K (3·p·p) rounded up to a multiple of 8 for aligned tensor-core loads.
    let patchK: Int
    let patchEmbedding, classEmbedding, positionalEmbedding, lnPreWeight, lnPreBias: CUDABuffer
    let lnPostWeight, lnPostBias, projection: CUDABuffer
    /// gamma = 1 and beta = 0 for the width: the affine-free LayerNorm before QKV and c_fc (see `CUDABlockWeights`).
    let unitGamma, zeroBeta: CUDABuffer
    /// ln_post folded into proj for the small-batch path (16-bit engines): W', its row sums and b' = proj·beta, as
    /// for ln_1 and QKV. The large-batch path keeps ln_post and `projection` apart.
    let foldedProjection: (weight: CUDABuffer, rowSums: CUDABuffer, bias: CUDABuffer)?
    let blocks: [CUDABlockWeights]
    /// The cuBLASLt algorithm of every matmul shape, timed once and shared by the contexts.
    let matmulChoices = MatmulChoices()
    /// The order normal-priority contexts run their batches in (see `LaunchTurn`).
    let launchTurn = LaunchTurn()
    /// The wgmma c_fc + activation kernel, when this engine and GPU can run it (CUDAExecutionContext.FusedMLP).
    let fusedMLP: CUDAExecutionContext.FusedMLP?

    /// Why the tensor-core attention kernel could not be built (the scalar kernel is used instead), if it could not.
    public var tensorCoreAttentionError: String? { kernels.tensorCoreAttentionError }
    /// The smallest batch whose attention runs one CTA per (head, image): at least four per SM. From there on, on
    /// Hopper with head width 64, attention is the wgmma kernel; below it, the mma.sync kernel spreads a head's query
    /// tiles over several CTAs.
    public var wholeHeadAttentionBatch: Int { (4 * device.multiprocessors + spec.heads - 1) / spec.heads }
    /// The smallest batch whose c_fc runs as the fused wgmma kernel (bias and activation in its epilogue), nil when
    /// none does here (not Hopper, fp32, CLIPSERVE_MLP_GEMM=cublaslt, or widths it does not take).
    public var fusedMLPBatch: Int? {
        guard let fusedMLP else { return nil }
        return (1...1 << 16).first { fusedMLP.runs(rows: $0 * spec.tokens, mlpWidth: spec.mlpWidth) }
    }

    /// Whether a CUDA driver and a GPU are usable here.
    public static var isAvailable: Bool { CUDADevice.isAvailable }

    /// The GPU's ordinal as the CUDA driver numbers it (`cuda:N`).
    public var ordinal: Int { device.ordinal }

    /// The GPU's PCI address, for NVML.
    public var pciBusID: String { device.pciBusID }

    /// GPUs the driver sees (0 when CUDA is unavailable).
    public static var deviceCount: Int { (try? CUDADevice.count()) ?? 0 }

    /// GPUs the driver sees; throws `EngineError.unavailable` naming the missing library or driver problem.
    public static func availableDeviceCount() throws -> Int { try CUDADevice.count() }

    /// One line per GPU: "cuda:N NAME (sm_XY, SMs, GiB)".
    public static func describeDevices() throws -> [String] {
        try (0..<CUDADevice.count()).map { i in
            let d = try CUDADevice(ordinal: i)
            return "cuda:\(i) \(d.name) (\(d.architecture), \(d.multiprocessors) SMs, \(d.totalMemory >> 30) GiB)"
        }
    }

    /// Uploads `weights` to GPU `deviceOrdinal` in `precision` and compiles the kernels for it.
    public init(spec: VisionTowerSpec, weights: VisionWeights, precision: Precision = .fp16, deviceOrdinal: Int = 0) throws {
        guard CUDAKernels.supportedHeadWidths.contains(spec.headWidth) else {
            throw EngineError.unavailable(
                "cuda: head width \(spec.headWidth) is not supported (attention is built for \(CUDAKernels.supportedHeadWidths))")
        }
        guard spec.width % spec.headWidth == 0, spec.imageSize % spec.patchSize == 0, weights.blocks.count == spec.layers else {
            throw EngineError.unavailable("cuda: inconsistent spec or weights (\(weights.blocks.count) blocks for \(spec))")
        }
        guard spec.width % 8 == 0, spec.mlpWidth % 8 == 0, spec.embedDim % 8 == 0 else {
            throw EngineError.unavailable("cuda: width, MLP width and embed dim must be multiples of 8 (\(spec))")
        }
        let device = try CUDADevice(ordinal: deviceOrdinal)
        self.device = device
        self.spec = spec
        self.precision = precision
        dtype = switch precision {
        case .fp32: .f32
        case .fp16: .f16
        case .bf16: .bf16
        }
        kernels = try CUDAKernels(device: device, dtype: dtype)
        fusedMLP = CUDAExecutionContext.fusedMLP(kernels: kernels, dtype: dtype, spec: spec)
        let attention = kernels.tensorCoreAttentionError != nil ? "scalar attention"
            : spec.headWidth == 64 && kernels.has("attention_wgmma_d64_\(CUDAKernels.suffix(dtype))") ? "wgmma/mma.sync attention"
            : "mma.sync attention"
        deviceDescription = "cuda:\(deviceOrdinal) \(device.name) (\(device.architecture), \(precision.rawValue), \(attention))"
        // Every power of two: the batcher keeps those up to a context's largest batch and adds that batch itself.
        preferredBatchSizes = (0..<20).map { 1 << $0 }

        let w = spec.width, m = spec.mlpWidth, dtype = dtype
        patchK = (spec.patchDim + 7) / 8 * 8
        func upload(_ tensor: TensorData, _ name: String, _ shape: [Int], as type: DType, padColumnsTo: Int? = nil,
                    transpose: Bool = false) throws -> CUDABuffer {
            let flat = tensor.shape.reduce(1, *)
            guard flat == shape.reduce(1, *) else {
                throw EngineError.device("cuda: tensor \(name) has shape \(tensor.shape), expected \(shape)")
            }
            let bytes = Self.convert(tensor, rows: shape.first ?? 1, columns: flat / max(shape.first ?? 1, 1), to: type,
                                     padColumnsTo: padColumnsTo, transpose: transpose)
            let buffer = try device.allocate(bytes.count, name)
            try bytes.withUnsafeBytes { try buffer.upload($0, name) }
            return buffer
        }
        patchEmbedding = try upload(weights.patchEmbedding, "visual.conv1.weight", [w, spec.patchDim], as: dtype, padColumnsTo: patchK)
        classEmbedding = try upload(weights.classEmbedding, "visual.class_embedding", [w], as: .f32)
        positionalEmbedding = try upload(weights.positionalEmbedding, "visual.positional_embedding", [spec.tokens, w], as: .f32)
        lnPreWeight = try upload(weights.lnPreWeight, "visual.ln_pre.weight", [w], as: .f32)
        lnPreBias = try upload(weights.lnPreBias, "visual.ln_pre.bias", [w], as: .f32)
        lnPostWeight = try upload(weights.lnPostWeight, "visual.ln_post.weight", [w], as: .f32)
        lnPostBias = try upload(weights.lnPostBias, "visual.ln_post.bias", [w], as: .f32)
        // proj is [W, E] input-major; store it as a Linear weight [E, W] so every GEMM has the same orientation.
        projection = try upload(weights.projection, "visual.proj", [w, spec.embedDim], as: dtype, transpose: true)
        if dtype == .f32 {
            foldedProjection = nil
        } else {
            let e = spec.embedDim, p = weights.projection.floats()  // [W, E]
            let linear = TensorData(shape: [e, w], values: (0..<(e * w)).map { i in p[(i % w) * e + i / w] })
            let folded = Self.foldLayerNorm(
                weight: linear, bias: TensorData(shape: [e], values: [Float](repeating: 0, count: e)),
                gamma: weights.lnPostWeight, beta: weights.lnPostBias, rows: e, columns: w, type: dtype)
            foldedProjection = (
                try upload(folded.weight, "visual.proj (ln_post.weight folded in)", [e, w], as: dtype),
                try upload(folded.rowSums, "visual.proj row sums", [e], as: .f32),
                try upload(folded.bias, "visual.proj · ln_post.bias", [e], as: .f32))
        }
        unitGamma = try upload(TensorData(shape: [w], values: [Float](repeating: 1, count: w)), "LayerNorm gamma = 1", [w], as: .f32)
        zeroBeta = try upload(TensorData(shape: [w], values: [Float](repeating: 0, count: w)), "LayerNorm beta = 0", [w], as: .f32)
        blocks = try weights.blocks.enumerated().map { i, block in
            let p = "visual.transformer.resblocks.\(i)."
            // Folding reads these directly, so their sizes are checked here (upload checks the others).
            for (tensor, name, shape) in [(block.ln1Weight, "ln_1.weight", [w]), (block.ln1Bias, "ln_1.bias", [w]),
                                          (block.ln2Weight, "ln_2.weight", [w]), (block.ln2Bias, "ln_2.bias", [w]),
                                          (block.qkvWeight, "attn.in_proj_weight", [3 * w, w]),
                                          (block.qkvBias, "attn.in_proj_bias", [3 * w]),
                                          (block.outWeight, "attn.out_proj.weight", [w, w]),
                                          (block.outBias, "attn.out_proj.bias", [w]),
                                          (block.fc1Weight, "mlp.c_fc.weight", [m, w]), (block.fc1Bias, "mlp.c_fc.bias", [m])]
            where tensor.elementCount != shape.reduce(1, *) {
                throw EngineError.device("cuda: tensor \(p + name) has shape \(tensor.shape), expected \(shape)")
            }
            let qkv = Self.foldLayerNorm(
                weight: block.qkvWeight, bias: block.qkvBias, gamma: block.ln1Weight, beta: block.ln1Bias, rows: 3 * w,
                columns: w, type: dtype)
            let fc1 = Self.foldLayerNorm(
                weight: block.fc1Weight, bias: block.fc1Bias, gamma: block.ln2Weight, beta: block.ln2Bias, rows: m,
                columns: w, type: dtype)
            let qkvBias = try upload(qkv.bias, p + "attn.in_proj_bias (ln_1.bias folded in)", [3 * w], as: dtype)
            func upload16(_ bias: TensorData, _ name: String) throws -> CUDABuffer? {
                dtype == .f16 ? try upload(bias, p + name + " (fp16)", [w], as: dtype) : nil
            }
            let outWithValueBias = Self.foldValueBias(
                outWeight: block.outWeight, outBias: block.outBias, valueBias: Array(qkv.bias.floats()[(2 * w)...]),
                width: w)
            return CUDABlockWeights(
                qkvWeight: try upload(qkv.weight, p + "attn.in_proj_weight (ln_1.weight folded in)", [3 * w, w], as: dtype),
                qkvBias: qkvBias,
                qkvBiasF32: dtype == .f32 ? qkvBias : try upload(qkv.bias, p + "attn.in_proj_bias (ln_1.bias folded in)", [3 * w], as: .f32),
                qkvRowSums: try upload(qkv.rowSums, p + "attn.in_proj_weight row sums", [3 * w], as: .f32),
                outWeight: try upload(block.outWeight, p + "attn.out_proj.weight", [w, w], as: dtype),
                outBias: try upload(block.outBias, p + "attn.out_proj.bias", [w], as: .f32),
                fc1Weight: try upload(fc1.weight, p + "mlp.c_fc.weight (ln_2.weight folded in)", [m, w], as: dtype),
                fc1Bias: try upload(fc1.bias, p + "mlp.c_fc.bias (ln_2.bias folded in)", [m], as: .f32),
                fc1RowSums: try upload(fc1.rowSums, p + "mlp.c_fc.weight row sums", [m], as: .f32),
                fc2Weight: try upload(block.fc2Weight, p + "mlp.c_proj.weight", [w, m], as: dtype),
                fc2Bias: try upload(block.fc2Bias, p + "mlp.c_proj.bias", [w], as: .f32),
                outBias16: try upload16(block.outBias, "attn.out_proj.bias"),
                fc2Bias16: try upload16(block.fc2Bias, "mlp.c_proj.bias"),
                outBiasWithValueBias: try upload(outWithValueBias, p + "attn.out_proj.bias + W_o·b_v", [w], as: .f32),
                outBiasWithValueBias16: try upload16(outWithValueBias, "attn.out_proj.bias + W_o·b_v"))
        }
        // Pageable uploads may still be in flight when cuMemcpyHtoD returns; contexts use non-blocking streams.
        try device.libraries.check(device.libraries.driver.cuCtxSynchronize!(), "cuCtxSynchronize after weight upload")
    }

    public func makeContext(_ configuration: ExecutionContextConfiguration) throws -> any ExecutionContext {
        try CUDAExecutionContext(engine: self, configuration: configuration)
    }

    /// A LayerNorm's affine folded into the Linear that reads it: LayerNorm(x)·Wᵀ + b = x̂·W'ᵀ + b' with x̂ the
    /// normalised row, W' = W·diag(gamma) and b' = b + W·beta (summed in Double). `rowSums` are W'·1 over the values
    /// as `type` stores them, so that subtracting mean·rowSums cancels the mean exactly (Kernels/small_batch.cu).
    /// W is `rows × columns` (a Linear weight), gamma and beta have `columns` values, b has `rows`.
    static func foldLayerNorm(
        weight: TensorData, bias: TensorData, gamma: TensorData, beta: TensorData, rows: Int, columns: Int, type: DType
    ) -> (weight: TensorData, bias: TensorData, rowSums: TensorData) {
        let g = gamma.floats(), be = beta.floats(), b = bias.floats()
        var foldedBias = [Float](repeating: 0, count: rows), sums = [Float](repeating: 0, count: rows)
        let folded = foldedBias.withUnsafeMutableBytes { biasBytes in
            sums.withUnsafeMutableBytes { sumBytes in
                let outputs = (bias: UncheckedRaw(biasBytes.baseAddress!), sums: UncheckedRaw(sumBytes.baseAddress!))
                return FloatStorage(count: rows * columns) { buffer in
                    let matrix = UncheckedRaw(UnsafeMutableRawPointer(buffer.baseAddress!))
                    let chunk = max(1, (1 << 16) / max(columns, 1))
                    DispatchQueue.concurrentPerform(iterations: (rows + chunk - 1) / chunk) { c in
                        for r in (c * chunk)..<min(rows, (c + 1) * chunk) {
                            var shift = Double(b[r]), sum: Float = 0
                            for k in 0..<columns {
                                let value = weight.float(at: r * columns + k), scaled = value * g[k]
                                shift += Double(value) * Double(be[k])
                                matrix.pointer.storeBytes(of: scaled, toByteOffset: (r * columns + k) * 4, as: Float.self)
                                sum += type.rounded(scaled)
                            }
                            outputs.bias.pointer.storeBytes(of: Float(shift), toByteOffset: r * 4, as: Float.self)
                            outputs.sums.pointer.storeBytes(of: sum, toByteOffset: r * 4, as: Float.self)
                        }
                    }
                }
            }
        }
        return (TensorData(dtype: .f32, shape: [rows, columns], bytes: folded.rawBytes, owner: folded),
                TensorData(shape: [rows], values: foldedBias), TensorData(shape: [rows], values: sums))
    }

    /// out_proj's bias with the attention's V bias folded in: b_o + W_o·b_v (summed in Double). Each row of the
    /// softmax sums to 1, so P·(V + 1·b_vᵀ) = P·V + 1·b_vᵀ, and out_proj maps that b_v to W_o·b_v. (K's bias adds
    /// q·b_k to a whole row of scores, which the softmax ignores.) With both, the QKV GEMM needs Q's bias alone.
    static func foldValueBias(outWeight: TensorData, outBias: TensorData, valueBias: [Float], width: Int) -> TensorData {
        let bo = outBias.floats()
        let folded = (0..<width).map { r in
            var sum = Double(bo[r])
            for k in 0..<width { sum += Double(outWeight.float(at: r * width + k)) * Double(valueBias[k]) }
            return Float(sum)
        }
        return TensorData(shape: [width], values: folded)
    }

    /// The tensor's values as `rows × columns` bytes of `type`, optionally transposed and zero-padded per row.
    static func convert(_ tensor: TensorData, rows: Int, columns: Int, to type: DType, padColumnsTo: Int?,
                        transpose: Bool) -> [UInt8] {
        let outRows = transpose ? columns : rows, outColumns = transpose ? rows : columns
        let stride = padColumnsTo ?? outColumns
        var bytes = [UInt8](repeating: 0, count: outRows * stride * type.byteSize)
        bytes.withUnsafeMutableBytes { raw in
            let out = UncheckedRaw(raw.baseAddress!)
            let chunk = max(1, (1 << 18) / max(outColumns, 1))
            DispatchQueue.concurrentPerform(iterations: (outRows + chunk - 1) / chunk) { c in
                for r in (c * chunk)..<min(outRows, (c + 1) * chunk) {
                    for col in 0..<outColumns {
                        let value = tensor.float(at: transpose ? col * columns + r : r * columns + col)
                        let index = r * stride + col
                        switch type {
                        case .f32: out.pointer.storeBytes(of: value, toByteOffset: index * 4, as: Float.self)
                        case .f16: out.pointer.storeBytes(of: HalfConversion.f16(from: value), toByteOffset: index * 2, as: UInt16.self)
                        case .bf16: out.pointer.storeBytes(of: HalfConversion.bf16(from: value), toByteOffset: index * 2, as: UInt16.self)
                        }
                    }
                }
            }
        }
        return bytes
    }
}

/// A raw pointer handed to `concurrentPerform` chunks that write disjoint bytes of it.
struct UncheckedRaw: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}
