/// Numeric precision an engine computes in.
public enum Precision: String, Sendable, Hashable, CaseIterable, Codable {
    case fp32, fp16, bf16
}

/// Scheduling class of an execution context; on a GPU it maps to the stream priority.
public enum ContextPriority: String, Sendable, Hashable, Codable {
    /// Requests with priority 1 (urgent).
    case high
    /// Everything else.
    case normal
}

/// Options for a new execution context.
public struct ExecutionContextConfiguration: Sendable, Hashable {
    /// Largest batch the context's workspace is sized for, in images.
    public var maxBatchSize: Int
    /// Scheduling class of the context.
    public var priority: ContextPriority

    /// Defaults: batch 64, normal priority.
    public init(maxBatchSize: Int = 64, priority: ContextPriority = .normal) {
        self.maxBatchSize = maxBatchSize
        self.priority = priority
    }
}

/// One layer's output captured for verification, [count, rows, width] flattened.
public struct LayerOutput: Sendable {
    /// Canonical name: `embeddings`, `ln_pre`, `resblocks.{i}`, `ln_post` (class token only), `projection`.
    public var name: String
    /// Shape of `values`.
    public var shape: [Int]
    /// Row-major values.
    public var values: [Float]

    /// Memberwise init.
    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// Weights of one model on one device, loaded once and shared read-only by that device's execution contexts
/// (TensorRT's engine).
public protocol EmbeddingEngine: Sendable {
    /// The architecture the engine runs.
    var spec: VisionTowerSpec { get }
    /// Human-readable backend and device, e.g. "cpu (OpenBLAS, 2 threads)" or "cuda:0 NVIDIA H100 80GB HBM3".
    var deviceDescription: String { get }
    /// Precision the engine computes in.
    var precision: Precision { get }
    /// Batch sizes the engine is optimised for (CUDA graph profiles); the batcher prefers them.
    var preferredBatchSizes: [Int] { get }
    /// Creates an execution context: its own workspace (and stream); used by one thread at a time.
    func makeContext(_ configuration: ExecutionContextConfiguration) throws -> any ExecutionContext
}

/// Per-inference state (TensorRT's execution context): workspace, stream, plans.
///
/// Not `Sendable`: a context belongs to exactly one worker thread for its whole life.
public protocol ExecutionContext: AnyObject {
    /// Largest batch this context accepts.
    var maxBatchSize: Int { get }

    /// Embeds `count` preprocessed images.
    ///
    /// - Parameters:
    ///   - pixels: `count × 3 × H × W` normalised floats, row-major.
    ///   - count: images in the batch, 1...maxBatchSize.
    ///   - normalize: L2-normalise each embedding.
    ///   - output: receives `count × embedDim` floats.
    func embed(
        pixels: UnsafeBufferPointer<Float>, count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>
    ) throws

    /// Runs the forward pass once and returns every layer's output, for layer-by-layer verification.
    func captureLayers(pixels: UnsafeBufferPointer<Float>, count: Int) throws -> [LayerOutput]

    /// The context's own input buffer for a batch of `count` images (pinned host memory on CUDA, holding pixels in
    /// the encoding the device reads), or nil when it has none: a caller that writes the batch there and calls
    /// `embedStaged` saves one copy of every pixel.
    func stagingBuffer(count: Int) -> StagingBuffer?

    /// Embeds the `count` images written into `stagingBuffer(count:)`; same contract as `embed` otherwise.
    func embedStaged(count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>) throws

    /// The context's input buffer for a batch of `count` images as RGB bytes (`PixelEncoding.uint8`), when the
    /// device normalises bytes itself; nil otherwise (the caller then writes normalised values into
    /// `stagingBuffer(count:)`).
    func byteStagingBuffer(count: Int) -> StagingBuffer?

    /// Embeds the `count` images written as bytes into `byteStagingBuffer(count:)`, normalising them with
    /// `normalization`; gives the same result as `embedStaged` on the normalised values.
    func embedStagedBytes(
        count: Int, normalization: PixelNormalization, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>
    ) throws
}

extension ExecutionContext {
    /// No staging buffer: callers use `embed(pixels:count:normalize:into:)`.
    public func stagingBuffer(count: Int) -> StagingBuffer? { nil }

    /// Only reachable for contexts that have a staging buffer.
    public func embedStaged(count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>) throws {
        throw EngineError.unavailable("this execution context has no staging buffer")
    }

    /// No byte input: callers normalise on the host.
    public func byteStagingBuffer(count: Int) -> StagingBuffer? { nil }

    /// Only reachable for contexts that have a byte staging buffer.
    public func embedStagedBytes(
        count: Int, normalization: PixelNormalization, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        throw EngineError.unavailable("this execution context does not normalise bytes")
    }

    /// Convenience over `embed(pixels:count:normalize:into:)` for arrays.
    public func embed(_ pixels: [Float], count: Int, normalize: Bool, embedDim: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: count * embedDim)
        try pixels.withUnsafeBufferPointer { p in
            try out.withUnsafeMutableBufferPointer { o in
                try embed(pixels: p, count: count, normalize: normalize, into: o)
            }
        }
        return out
    }
}

/// How pixels are stored in a staging buffer.
public enum PixelEncoding: String, Sendable, Hashable {
    /// 4-byte floats.
    case float32
    /// IEEE binary16 bits, rounded to nearest even (what an fp16 engine reads).
    case float16
    /// bfloat16 bits, rounded to nearest even (what a bf16 engine reads).
    case bfloat16
    /// RGB bytes before normalisation (a context that normalises on the device reads them).
    case uint8

    /// Bytes per pixel value.
    public var byteSize: Int {
        switch self {
        case .float32: 4
        case .float16, .bfloat16: 2
        case .uint8: 1
        }
    }
}

/// A context's input buffer: `capacity` pixel values at `base`, stored as `encoding`. Image `i` of a batch starts at
/// value `i × pixelsPerImage`; writers of different images may run on different threads.
public struct StagingBuffer: @unchecked Sendable {
    // @unchecked: a raw pointer into memory the owning context keeps alive; writers fill disjoint images.
    /// First byte.
    public let base: UnsafeMutableRawPointer
    /// How values are stored.
    public let encoding: PixelEncoding
    /// Values it holds.
    public let capacity: Int

    /// Memberwise init.
    public init(base: UnsafeMutableRawPointer, encoding: PixelEncoding, capacity: Int) {
        self.base = base
        self.encoding = encoding
        self.capacity = capacity
    }
}

/// Errors every backend may raise, with the context a user needs to act on them.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    /// A batch larger than the context's workspace.
    case batchTooLarge(requested: Int, maximum: Int)
    /// Input or output buffer of the wrong length.
    case bufferSize(what: String, expected: Int, got: Int)
    /// The requested backend or feature cannot run here; the message says what is missing.
    case unavailable(String)
    /// The device or library failed; the message carries its own words.
    case device(String)

    public var description: String {
        switch self {
        case let .batchTooLarge(requested, maximum):
            "batch of \(requested) images exceeds this context's maximum of \(maximum)"
        case let .bufferSize(what, expected, got):
            "\(what) buffer holds \(got) floats, expected \(expected)"
        case let .unavailable(message): message
        case let .device(message): message
        }
    }
}

/// L2-normalises each row of a `rows × dim` buffer in place (rows with zero norm stay zero).
public func l2NormalizeRows(_ buffer: UnsafeMutableBufferPointer<Float>, rows: Int, dim: Int) {
    for r in 0..<rows {
        var sum: Float = 0
        for i in 0..<dim { sum += buffer[r * dim + i] * buffer[r * dim + i] }
        let norm = sum.squareRoot()
        guard norm > 0 else { continue }
        let inv = 1 / norm
        for i in 0..<dim { buffer[r * dim + i] *= inv }
    }
}
