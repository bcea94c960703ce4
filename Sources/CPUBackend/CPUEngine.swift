import Foundation
import InferenceCore

/// Problems with the weights or settings handed to `CPUEngine`.
public enum CPUEngineError: Error, CustomStringConvertible, Equatable {
    /// A tensor whose shape does not match the spec.
    case weightShape(tensor: String, expected: [Int], got: [Int])
    /// A spec or setting the engine cannot run.
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case let .weightShape(tensor, expected, got):
            "cpu engine: tensor \(tensor) has shape \(got), expected \(expected)"
        case let .invalidConfiguration(message): "cpu engine: \(message)"
        }
    }
}

/// The weights of one residual block as F32 pointers ready for either GEMM (Linear weights [out, in], used as Bᵀ, so
/// no copy is needed: the AVX-512 GEMM packs each worker's columns per call, as OpenBLAS does).
struct CPUBlockWeights {
    let ln1Weight, ln1Bias, qkvWeight, qkvBias, outWeight, outBias: UnsafePointer<Float>
    let ln2Weight, ln2Bias, fc1Weight, fc1Bias, fc2Weight, fc2Bias: UnsafePointer<Float>
}

/// A ViT image tower on the CPU in fp32: every matmul on clipserve's AVX-512 GEMM (`CKernels`, with bias, GELU,
/// QuickGELU and residual adds fused) where the CPU has AVX-512, else on OpenBLAS; vectorised element-wise ops;
/// all spread over `threads` workers.
///
/// F32 checkpoint tensors are read in place from the caller's storage (the checkpoint's mmap); F16/BF16 ones are
/// converted once here. Immutable after `init`, so contexts on different threads share it.
public final class CPUEngine: EmbeddingEngine, @unchecked Sendable {
    // @unchecked: every stored property is written only in `init`; the pointees are never written after it.
    public let spec: VisionTowerSpec
    public let precision: Precision = .fp32
    public let preferredBatchSizes: [Int] = []
    public let deviceDescription: String
    /// Workers each forward pass is spread over.
    public let threads: Int
    /// What runs the matmuls.
    public let kernels: CPUMatmulKernels

    let patchEmbedding, classEmbedding, positionalEmbedding: UnsafePointer<Float>
    let lnPreWeight, lnPreBias, lnPostWeight, lnPostBias, projection: UnsafePointer<Float>
    let blocks: [CPUBlockWeights]
    /// Keeps the storage behind every pointer above alive.
    private let owners: [AnyObject]

    /// Prepares `weights` for `spec`, checking every tensor's shape.
    ///
    /// - Parameters:
    ///   - threads: workers per forward pass; defaults to the processors this process may run on.
    ///   - kernels: what runs the matmuls; defaults to `CLIPSERVE_CPU_KERNELS` if set, else AVX-512 where the CPU has
    ///     it, else OpenBLAS.
    public init(
        spec: VisionTowerSpec, weights: VisionWeights, threads: Int? = nil, kernels: CPUMatmulKernels? = nil
    ) throws {
        let threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        guard threads >= 1 else { throw CPUEngineError.invalidConfiguration("threads must be at least 1, got \(threads)") }
        guard spec.headWidth > 0, spec.width % spec.headWidth == 0 else {
            throw CPUEngineError.invalidConfiguration(
                "width \(spec.width) is not a multiple of the head width \(spec.headWidth)")
        }
        guard spec.patchSize > 0, spec.imageSize % spec.patchSize == 0 else {
            throw CPUEngineError.invalidConfiguration(
                "image size \(spec.imageSize) is not a multiple of the patch size \(spec.patchSize)")
        }
        guard weights.blocks.count == spec.layers else {
            throw CPUEngineError.invalidConfiguration(
                "the weights have \(weights.blocks.count) residual blocks, the spec \(spec.layers)")
        }
        let kernels = try kernels ?? CPUMatmulKernels.fromEnvironment() ?? .automatic
        if kernels == .avx512 && !CPUMatmulKernels.avx512Available {
            throw CPUEngineError.invalidConfiguration("the avx512 kernels need AVX-512F/DQ and FMA, which this CPU lacks")
        }
        self.spec = spec
        self.threads = threads
        self.kernels = kernels
        deviceDescription = "cpu (\(kernels), \(threads) thread\(threads == 1 ? "" : "s"))"

        var owners: [AnyObject] = []
        let w = spec.width, m = spec.mlpWidth
        func f32(_ tensor: TensorData, _ name: String, _ shape: [Int]) throws -> UnsafePointer<Float> {
            try CPUEngine.float32(tensor, name: name, shape: shape, owners: &owners)
        }
        // The loader flattens conv1 to [W, 3·p·p]; the unflattened [W, 3, p, p] holds the same bytes.
        patchEmbedding = try f32(
            weights.patchEmbedding, "visual.conv1.weight",
            weights.patchEmbedding.shape.count == 4 ? [w, 3, spec.patchSize, spec.patchSize] : [w, spec.patchDim])
        classEmbedding = try f32(weights.classEmbedding, "visual.class_embedding", [w])
        positionalEmbedding = try f32(weights.positionalEmbedding, "visual.positional_embedding", [spec.tokens, w])
        lnPreWeight = try f32(weights.lnPreWeight, "visual.ln_pre.weight", [w])
        lnPreBias = try f32(weights.lnPreBias, "visual.ln_pre.bias", [w])
        lnPostWeight = try f32(weights.lnPostWeight, "visual.ln_post.weight", [w])
        lnPostBias = try f32(weights.lnPostBias, "visual.ln_post.bias", [w])
        projection = try f32(weights.projection, "visual.proj", [w, spec.embedDim])
        blocks = try weights.blocks.enumerated().map { i, block in
            let prefix = "visual.transformer.resblocks.\(i)."
            return CPUBlockWeights(
                ln1Weight: try f32(block.ln1Weight, prefix + "ln_1.weight", [w]),
                ln1Bias: try f32(block.ln1Bias, prefix + "ln_1.bias", [w]),
                qkvWeight: try f32(block.qkvWeight, prefix + "attn.in_proj_weight", [3 * w, w]),
                qkvBias: try f32(block.qkvBias, prefix + "attn.in_proj_bias", [3 * w]),
                outWeight: try f32(block.outWeight, prefix + "attn.out_proj.weight", [w, w]),
                outBias: try f32(block.outBias, prefix + "attn.out_proj.bias", [w]),
                ln2Weight: try f32(block.ln2Weight, prefix + "ln_2.weight", [w]),
                ln2Bias: try f32(block.ln2Bias, prefix + "ln_2.bias", [w]),
                fc1Weight: try f32(block.fc1Weight, prefix + "mlp.c_fc.weight", [m, w]),
                fc1Bias: try f32(block.fc1Bias, prefix + "mlp.c_fc.bias", [m]),
                fc2Weight: try f32(block.fc2Weight, prefix + "mlp.c_proj.weight", [w, m]),
                fc2Bias: try f32(block.fc2Bias, prefix + "mlp.c_proj.bias", [w])
            )
        }
        self.owners = owners
    }

    public func makeContext(_ configuration: ExecutionContextConfiguration) throws -> any ExecutionContext {
        try CPUExecutionContext(engine: self, maxBatchSize: configuration.maxBatchSize)
    }

    /// The tensor as aligned F32: in place when it already is, otherwise converted once into new storage.
    private static func float32(
        _ tensor: TensorData, name: String, shape: [Int], owners: inout [AnyObject]
    ) throws -> UnsafePointer<Float> {
        guard tensor.shape == shape else { throw CPUEngineError.weightShape(tensor: name, expected: shape, got: tensor.shape) }
        owners.append(tensor.owner)
        if tensor.dtype == .f32, let base = tensor.bytes.baseAddress,
           Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
            return base.assumingMemoryBound(to: Float.self)
        }
        let count = tensor.elementCount
        let storage = FloatStorage(count: count) { out in
            // Conversion is done in parallel chunks: a ViT-H-14 checkpoint holds 632 M values.
            let chunk = 1 << 20
            let box = UnsafeSendable(out)
            DispatchQueue.concurrentPerform(iterations: (count + chunk - 1) / chunk) { c in
                for i in (c * chunk)..<min(count, (c + 1) * chunk) { box.value[i] = tensor.float(at: i) }
            }
        }
        owners.append(storage)
        return UnsafePointer(storage.pointer.baseAddress!)
    }
}

/// Carries a pointer into a `concurrentPerform` body whose chunks write disjoint parts of it.
struct UnsafeSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
