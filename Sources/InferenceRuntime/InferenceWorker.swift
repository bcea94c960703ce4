import InferenceCore

/// One execution context and the one thread that owns it: the context is created, used and released on that
/// thread only, so blocking BLAS or CUDA calls never run on the cooperative pool.
final class InferenceWorker: Sendable {
    /// Position in the runtime's worker list.
    let index: Int
    /// The context's scheduling class.
    let priority: ContextPriority
    /// Index of the engine (device) whose context this worker owns.
    let device: Int
    private let thread: BlockingThreadPool
    private let slot: ContextSlot

    /// Holds the context; read and written only by jobs on `thread` (a single thread, one job at a time).
    private final class ContextSlot: @unchecked Sendable {
        var context: (any ExecutionContext)?
        var input: [Float] = []
        var output: [Float] = []
    }

    init(index: Int, priority: ContextPriority, device: Int = 0) {
        self.index = index
        self.priority = priority
        self.device = device
        thread = BlockingThreadPool(name: "clipserve-infer-\(index)", threads: 1)
        slot = ContextSlot()
    }

    /// Creates the context on the worker thread.
    func start(engine: any EmbeddingEngine, maxBatchSize: Int) async throws {
        let slot = self.slot
        let priority = self.priority
        try await thread.run {
            slot.context = try engine.makeContext(
                ExecutionContextConfiguration(maxBatchSize: maxBatchSize, priority: priority))
        }
    }

    /// Runs one batch on the worker thread: `fill` writes the batch's pixels into the input buffer, then the
    /// embeddings (`count × embedDim` floats) or the error go to `done`, still on the worker thread.
    ///
    /// The input buffer is, in order of preference: the context's byte staging buffer when `bytes` is given (every
    /// image of the batch is RGB bytes, normalised on the device with that table); its own staging buffer, in its
    /// encoding; a float array of the worker's.
    func run(
        count: Int, pixelsPerImage: Int, embedDim: Int, normalize: Bool, bytes normalization: PixelNormalization? = nil,
        fill: @escaping @Sendable (StagingBuffer) -> Void,
        done: @escaping @Sendable (Result<[Float], any Error>, Duration) -> Void
    ) {
        let slot = self.slot
        let accepted = thread.submit {
            let clock = ContinuousClock()
            let start = clock.now
            let result = Result { () throws -> [Float] in
                guard let context = slot.context else { throw EngineError.unavailable("execution context released") }
                slot.output = .init(repeating: 0, count: count * embedDim)
                if let normalization, let staging = context.byteStagingBuffer(count: count),
                    staging.encoding == .uint8, staging.capacity >= count * pixelsPerImage
                {
                    // RGB bytes straight into the (pinned) upload buffer: a quarter of a float copy.
                    fill(staging)
                    try slot.output.withUnsafeMutableBufferPointer { output in
                        try context.embedStagedBytes(
                            count: count, normalization: normalization, normalize: normalize, into: output)
                    }
                    return slot.output
                }
                if let staging = context.stagingBuffer(count: count), staging.capacity >= count * pixelsPerImage {
                    // The context's own (pinned) upload buffer: one host copy of the pixels instead of two.
                    fill(staging)
                    try slot.output.withUnsafeMutableBufferPointer { output in
                        try context.embedStaged(count: count, normalize: normalize, into: output)
                    }
                    return slot.output
                }
                if slot.input.count < count * pixelsPerImage { slot.input = .init(repeating: 0, count: count * pixelsPerImage) }
                try slot.input.withUnsafeMutableBufferPointer { input in
                    let batchInput = UnsafeMutableBufferPointer(rebasing: input[0..<(count * pixelsPerImage)])
                    fill(StagingBuffer(base: UnsafeMutableRawPointer(input.baseAddress!), encoding: .float32, capacity: input.count))
                    try slot.output.withUnsafeMutableBufferPointer { output in
                        try context.embed(
                            pixels: UnsafeBufferPointer(batchInput), count: count, normalize: normalize, into: output)
                    }
                }
                return slot.output
            }
            done(result, start.duration(to: clock.now))
        }
        if !accepted { done(.failure(EngineError.unavailable("inference worker \(index) stopped")), .zero) }
    }

    /// Releases the context on its thread and ends the thread (after the batch in flight, if any).
    func stop() async {
        let slot = self.slot
        _ = try? await thread.run { slot.context = nil }
        await thread.shutdown()
    }
}
