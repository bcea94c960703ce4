/// The activation between the two MLP matrices of every block.
public enum Activation: String, Sendable, Hashable, Codable {
    /// `nn.GELU()`: x·Φ(x) with the exact erf.
    case gelu
    /// open_clip's `QuickGELU`: x·sigmoid(1.702·x).
    case quickGELU = "quick_gelu"
}

/// Shapes of a plain CLIP ViT image tower (open_clip `VisionTransformer` with `pool_type='tok'`).
public struct VisionTowerSpec: Sendable, Hashable, Codable {
    /// Input side in pixels (square).
    public var imageSize: Int
    /// Patch side in pixels.
    public var patchSize: Int
    /// Residual width W.
    public var width: Int
    /// Number of residual blocks.
    public var layers: Int
    /// Width of one attention head.
    public var headWidth: Int
    /// Hidden width of the MLP.
    public var mlpWidth: Int
    /// Output embedding size (columns of `proj`).
    public var embedDim: Int
    /// MLP activation.
    public var activation: Activation
    /// LayerNorm epsilon.
    public var layerNormEpsilon: Float

    /// Builds a spec; `mlpWidth` defaults to 4·width and `headWidth` to 64.
    public init(
        imageSize: Int, patchSize: Int, width: Int, layers: Int, headWidth: Int = 64, mlpWidth: Int? = nil,
        embedDim: Int, activation: Activation = .gelu, layerNormEpsilon: Float = 1e-5
    ) {
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.width = width
        self.layers = layers
        self.headWidth = headWidth
        self.mlpWidth = mlpWidth ?? width * 4
        self.embedDim = embedDim
        self.activation = activation
        self.layerNormEpsilon = layerNormEpsilon
    }

    /// Attention heads (width / headWidth).
    public var heads: Int { width / headWidth }
    /// Patches per side.
    public var gridSize: Int { imageSize / patchSize }
    /// Sequence length: patches plus the class token.
    public var tokens: Int { gridSize * gridSize + 1 }
    /// Length of one flattened patch, 3·p·p, ordered (channel, ky, kx).
    public var patchDim: Int { 3 * patchSize * patchSize }
    /// Floats in one preprocessed image [3, H, W].
    public var pixelsPerImage: Int { 3 * imageSize * imageSize }

    /// Parameter count of the tower.
    public var parameterCount: Int {
        let w = width, m = mlpWidth
        let block = 4 * w + (3 * w * w + 3 * w) + (w * w + w) + (m * w + m) + (w * m + w)
        return w * patchDim + w + tokens * w + 2 * w + layers * block + 2 * w + w * embedDim
    }

    /// Floating-point operations (2 × multiply-adds) for one image, counted as open_clip's profile does.
    public var flopsPerImage: Double {
        let s = Double(tokens), w = Double(width), m = Double(mlpWidth)
        let patch = Double(gridSize * gridSize) * w * Double(patchDim)
        let perLayer = s * (3 * w * w + w * w + 2 * w * m) + 2 * s * s * w
        return 2 * (patch + Double(layers) * perLayer + w * Double(embedDim))
    }
}
