/// The weights of one residual block, in open_clip's orientation.
public struct VisionBlockWeights: Sendable {
    /// `ln_1` weight and bias, [W].
    public var ln1Weight, ln1Bias: TensorData
    /// Fused Q,K,V projection [3W, W] (rows Q then K then V) and its bias [3W].
    public var qkvWeight, qkvBias: TensorData
    /// Attention output projection [W, W] and bias [W].
    public var outWeight, outBias: TensorData
    /// `ln_2` weight and bias, [W].
    public var ln2Weight, ln2Bias: TensorData
    /// `mlp.c_fc` [M, W] and bias [M].
    public var fc1Weight, fc1Bias: TensorData
    /// `mlp.c_proj` [W, M] and bias [W].
    public var fc2Weight, fc2Bias: TensorData

    /// Memberwise init.
    public init(
        ln1Weight: TensorData, ln1Bias: TensorData, qkvWeight: TensorData, qkvBias: TensorData,
        outWeight: TensorData, outBias: TensorData, ln2Weight: TensorData, ln2Bias: TensorData,
        fc1Weight: TensorData, fc1Bias: TensorData, fc2Weight: TensorData, fc2Bias: TensorData
    ) {
        self.ln1Weight = ln1Weight
        self.ln1Bias = ln1Bias
        self.qkvWeight = qkvWeight
        self.qkvBias = qkvBias
        self.outWeight = outWeight
        self.outBias = outBias
        self.ln2Weight = ln2Weight
        self.ln2Bias = ln2Bias
        self.fc1Weight = fc1Weight
        self.fc1Bias = fc1Bias
        self.fc2Weight = fc2Weight
        self.fc2Bias = fc2Bias
    }

    /// Every tensor of the block, for byte counting and uploads.
    public var all: [TensorData] {
        [ln1Weight, ln1Bias, qkvWeight, qkvBias, outWeight, outBias, ln2Weight, ln2Bias,
         fc1Weight, fc1Bias, fc2Weight, fc2Bias]
    }
}

/// All weights of a ViT image tower, already mapped from the checkpoint's naming to open_clip's orientation.
///
/// Immutable once built; every execution context of a device reads the same instance.
public struct VisionWeights: Sendable {
    /// `conv1.weight` flattened to [W, 3·p·p], K ordered (channel, ky, kx).
    public var patchEmbedding: TensorData
    /// `class_embedding`, [W].
    public var classEmbedding: TensorData
    /// `positional_embedding`, [tokens, W].
    public var positionalEmbedding: TensorData
    /// `ln_pre` weight and bias, [W].
    public var lnPreWeight, lnPreBias: TensorData
    /// The residual blocks in order.
    public var blocks: [VisionBlockWeights]
    /// `ln_post` weight and bias, [W].
    public var lnPostWeight, lnPostBias: TensorData
    /// `proj`, [W, embedDim] (input-major, not transposed like a Linear weight).
    public var projection: TensorData

    /// Memberwise init.
    public init(
        patchEmbedding: TensorData, classEmbedding: TensorData, positionalEmbedding: TensorData,
        lnPreWeight: TensorData, lnPreBias: TensorData, blocks: [VisionBlockWeights],
        lnPostWeight: TensorData, lnPostBias: TensorData, projection: TensorData
    ) {
        self.patchEmbedding = patchEmbedding
        self.classEmbedding = classEmbedding
        self.positionalEmbedding = positionalEmbedding
        self.lnPreWeight = lnPreWeight
        self.lnPreBias = lnPreBias
        self.blocks = blocks
        self.lnPostWeight = lnPostWeight
        self.lnPostBias = lnPostBias
        self.projection = projection
    }

    /// Total bytes of all tensors as stored.
    public var byteCount: Int {
        let top = [patchEmbedding, classEmbedding, positionalEmbedding, lnPreWeight, lnPreBias,
                   lnPostWeight, lnPostBias, projection]
        return (top + blocks.flatMap(\.all)).reduce(0) { $0 + $1.bytes.count }
    }
}
