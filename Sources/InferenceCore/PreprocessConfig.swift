/// How open_clip fits an image to the model's input square.
public enum ResizeMode: String, Sendable, Hashable, Codable {
    /// Resize the shorter side to the target, then center-crop (open_clip's default).
    case shortest
    /// Resize the longer side to the target, then center-pad with `fillColor`.
    case longest
    /// Resize both sides to the target, ignoring aspect ratio.
    case squash
}

/// Whose pipeline the preprocessing reproduces; they differ in two details.
public enum PreprocessPipeline: String, Sendable, Hashable, Codable {
    /// open_clip / torchvision: resize, center crop with `round((H - S) / 2)` (half to even), then convert to RGB.
    case openCLIP = "open_clip"
    /// transformers' `CLIPImageProcessor`: convert to RGB first, center crop with `(H - S) // 2`.
    case huggingFace = "transformers"
}

/// open_clip's `PreprocessCfg` for inference.
public struct PreprocessConfig: Sendable, Hashable, Codable {
    /// Target side in pixels.
    public var size: Int
    /// Per-channel mean subtracted after scaling to [0, 1].
    public var mean: [Float]
    /// Per-channel standard deviation divided by after subtracting the mean.
    public var std: [Float]
    /// Interpolation name; only "bicubic" is implemented.
    public var interpolation: String
    /// Fit mode.
    public var resizeMode: ResizeMode
    /// Padding value (0–255) used by `longest`.
    public var fillColor: Int
    /// Which library's pipeline to match.
    public var pipeline: PreprocessPipeline

    /// open_clip's OpenAI mean.
    public static let openAIMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    /// open_clip's OpenAI std.
    public static let openAIStd: [Float] = [0.26862954, 0.26130258, 0.27577711]

    /// Defaults are open_clip's `PreprocessCfg` defaults.
    public init(
        size: Int = 224, mean: [Float] = PreprocessConfig.openAIMean, std: [Float] = PreprocessConfig.openAIStd,
        interpolation: String = "bicubic", resizeMode: ResizeMode = .shortest, fillColor: Int = 0,
        pipeline: PreprocessPipeline = .openCLIP
    ) {
        self.size = size
        self.mean = mean
        self.std = std
        self.interpolation = interpolation
        self.resizeMode = resizeMode
        self.fillColor = fillColor
        self.pipeline = pipeline
    }
}
