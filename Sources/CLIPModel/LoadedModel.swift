import InferenceCore

/// Where a model's weights came from, which decides tensor names and preprocessing.
public enum CheckpointLayout: String, Sendable, Hashable, Codable {
    /// An open_clip hub directory: `open_clip_config.json` + `open_clip_model.safetensors`.
    case openCLIP = "open_clip"
    /// A Hugging Face transformers CLIP directory: `config.json` + `model.safetensors` + `preprocessor_config.json`.
    case huggingFace = "huggingface"
    /// Deterministic random weights for a named architecture (`random:NAME`).
    case synthetic
}

/// A model ready to hand to a backend: its architecture, preprocessing and host weights.
public struct LoadedModel: Sendable {
    /// Name the server reports (directory name, or the architecture for `random:`).
    public var name: String
    /// The reference it was loaded from, verbatim.
    public var reference: String
    /// Checkpoint layout.
    public var layout: CheckpointLayout
    /// open_clip config name whose vision tower this is, when one matches.
    public var architecture: String?
    /// Shapes of the tower.
    public var spec: VisionTowerSpec
    /// How to turn images into model input.
    public var preprocess: PreprocessConfig
    /// The weights, in open_clip's orientation.
    public var weights: VisionWeights
    /// True for `random:` weights, whose embeddings mean nothing.
    public var isSynthetic: Bool
    /// Element type holding most of the weight bytes (every tensor keeps its checkpoint dtype).
    public var checkpointDType: DType
    /// Bytes of all vision tensors as held in memory.
    public var weightBytes: Int

    /// One line for logs and `inspect`.
    public var summary: String {
        let params = String(format1: Double(spec.parameterCount) / 1e6)
        let mb = String(format1: Double(weightBytes) / 1e6)
        let gflops = String(format2: spec.flopsPerImage / 1e9)
        let arch = architecture ?? "custom ViT"
        let kind = isSynthetic ? "SYNTHETIC random weights (embeddings are meaningless)" : "\(layout.rawValue) checkpoint"
        return "\(name): \(arch), \(kind), \(params) M params, \(checkpointDType.rawValue) \(mb) MB, "
            + "\(gflops) GFLOPs/image, \(spec.imageSize) px, \(spec.tokens) tokens, \(spec.heads) heads, "
            + "embed \(spec.embedDim), \(spec.activation.rawValue)"
    }
}

extension String {
    /// `value` with one decimal, without Foundation's locale-dependent formatting.
    init(format1 value: Double) { self = String(fixed: value, decimals: 1) }
    /// `value` with two decimals.
    init(format2 value: Double) { self = String(fixed: value, decimals: 2) }

    private init(fixed value: Double, decimals: Int) {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = Int(scaled / scale)
        let fraction = Int(scaled) - whole * Int(scale)
        var digits = String(fraction)
        while digits.count < decimals { digits = "0" + digits }
        self = (value < 0 ? "-" : "") + "\(whole).\(digits)"
    }
}

extension VisionWeights {
    /// Every tensor, for byte counting and dtype statistics.
    var allTensors: [TensorData] {
        [patchEmbedding, classEmbedding, positionalEmbedding, lnPreWeight, lnPreBias, lnPostWeight, lnPostBias, projection]
            + blocks.flatMap(\.all)
    }

    /// The dtype holding the most bytes.
    var dominantDType: DType {
        var bytes: [DType: Int] = [:]
        for tensor in allTensors { bytes[tensor.dtype, default: 0] += tensor.bytes.count }
        return bytes.max { $0.value < $1.value }?.key ?? .f32
    }
}
