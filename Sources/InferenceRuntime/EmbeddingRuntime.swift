import InferenceCore
import Logging
import ServiceLifecycle

/// Limits and sizes of the runtime.
public struct RuntimeConfiguration: Sendable, Hashable {
    /// Execution contexts per device (engine), each with its own worker thread.
    public var instances: Int = 1
    /// Contexts (of `instances`, per device) created with high priority for priority-1 requests; useful on a GPU only.
    public var highPriorityInstances: Int = 0
    /// Largest batch, in images.
    public var maxBatchSize: Int = 16
    /// Longest wait for a fuller batch while a context is idle.
    public var maxQueueDelay: Duration = .microseconds(1000)
    /// Most images waiting for a batch (and, separately, for preprocessing); more are rejected.
    public var maxQueueSize: Int = 1024
    /// Default and longest time a request may take; a request may only shorten it.
    public var requestTimeout: Duration = .seconds(30)
    /// Most images in one request.
    public var maxImagesPerRequest: Int = 32
    /// Threads decoding and preprocessing images.
    public var preprocessThreads: Int = 2
    /// Priority levels; 1 is served first, 0 on the wire means `defaultPriority`.
    public var priorityLevels: Int = 2
    /// Level of requests that give priority 0 or none.
    public var defaultPriority: Int = 2
    /// L2-normalise embeddings.
    public var normalize: Bool = true
    /// Run a batch of every size the engine prefers (its CUDA graph profiles, up to `maxBatchSize`; one image when
    /// it prefers none) on every context before reporting ready, so no request waits for a graph capture.
    public var warmUp: Bool = true

    /// Defaults as documented per field.
    public init() {}
}

/// Per-request scheduling wishes.
public struct RequestOptions: Sendable, Hashable {
    /// 1 is the highest; 0 means the default level.
    public var priority: Int
    /// Shortens the server's request timeout; longer values are ignored.
    public var timeout: Duration?

    /// Memberwise init.
    public init(priority: Int = 0, timeout: Duration? = nil) {
        self.priority = priority
        self.timeout = timeout
    }
}

/// Embeddings of one request with its timings (for the x-… response headers).
public struct EmbeddingResult: Sendable {
    /// Images embedded.
    public var count: Int
    /// Floats per embedding.
    public var dimension: Int
    /// `count × dimension` floats in request order.
    public var embeddings: [Float]
    /// Decode + preprocess wall time of the request.
    public var preprocessTime: Duration
    /// Longest queue wait of its images.
    public var queueTime: Duration
    /// Engine time of its batches.
    public var inferenceTime: Duration
    /// Largest batch it rode in.
    public var batchSize: Int
    /// Waiting to enter the batcher's queue (see BatchedEmbeddings).
    public var admissionTime: Duration = .zero
    /// From entering the queue until its embeddings were ready (see BatchedEmbeddings).
    public var answerTime: Duration = .zero
    /// From the answer until its caller was resumed (see BatchedEmbeddings).
    public var resumeTime: Duration = .zero

    /// Embedding `i` as an array.
    public func embedding(_ i: Int) -> ArraySlice<Float> {
        embeddings[(i * dimension)..<((i + 1) * dimension)]
    }
}

/// Whether requests are served now.
public enum Readiness: Sendable, Equatable {
    case ready
    case notReady(String)
}

/// The inference runtime of one engine per device: worker threads owning their execution contexts, the dynamic
/// batcher (which hands each batch to the least loaded device), the preprocessing pool and readiness, run as a
/// swift-service-lifecycle `Service` with graceful shutdown.
public final class EmbeddingRuntime<C: Clock>: Service, Sendable where C.Duration == Duration {
    private enum Phase: Sendable {
        case starting
        case ready
        case failed(String)
        case stopping
        case stopped
    }

    /// The engines, one per device, whose contexts the workers own (`instances` contexts each).
    public let engines: [any EmbeddingEngine]
    /// The first engine: its spec and description stand for all.
    public var engine: any EmbeddingEngine { engines[0] }
    /// The limits in force.
    public let configuration: RuntimeConfiguration
    /// Readings of the devices for `/metrics` (nil on CPU).
    public let telemetry: (any DeviceTelemetry)?
    /// The metrics the runtime records.
    public let metrics: RuntimeMetrics
    private let preprocessor: any ImagePreprocessing
    private let workers: [InferenceWorker]
    let batcher: Batcher<C>
    /// The batcher's limits, with the batch sizes it prefers (the engine's, up to and including the largest batch).
    private let batching: BatcherStateMachine<C.Instant>.Configuration
    private let preprocessPool: BlockingThreadPool
    private let phase = Locked(Phase.starting)
    private let readyWaiters = Locked<[CheckedContinuation<Readiness, Never>]?>([])
    private let clock: C
    private let logger: Logger

    /// A runtime over `engine`; nothing runs until `run()`.
    public convenience init(
        engine: any EmbeddingEngine, preprocessor: any ImagePreprocessing, configuration: RuntimeConfiguration,
        clock: C, metrics: RuntimeMetrics = RuntimeMetrics(), telemetry: (any DeviceTelemetry)? = nil,
        logger: Logger = Logger(label: "clipserve.runtime")
    ) {
        self.init(
            engines: [engine], preprocessor: preprocessor, configuration: configuration, clock: clock,
            metrics: metrics, telemetry: telemetry, logger: logger)
    }

    /// A runtime over one engine per device (at least one, all of the same model): `configuration.instances`
    /// contexts on each; nothing runs until `run()`.
    public init(
        engines: [any EmbeddingEngine], preprocessor: any ImagePreprocessing, configuration: RuntimeConfiguration,
        clock: C, metrics: RuntimeMetrics = RuntimeMetrics(), telemetry: (any DeviceTelemetry)? = nil,
        logger: Logger = Logger(label: "clipserve.runtime")
    ) {
        precondition(!engines.isEmpty, "EmbeddingRuntime needs at least one engine")
        precondition(engines.allSatisfy { $0.spec == engines[0].spec }, "every engine must run the same model")
        var configuration = configuration
        configuration.instances = max(1, configuration.instances)
        configuration.maxBatchSize = max(1, configuration.maxBatchSize)
        configuration.priorityLevels = max(1, configuration.priorityLevels)
        configuration.defaultPriority = min(max(1, configuration.defaultPriority), configuration.priorityLevels)
        self.engines = engines
        self.configuration = configuration
        self.preprocessor = preprocessor
        self.telemetry = telemetry
        self.metrics = metrics
        self.clock = clock
        self.logger = logger
        let high = min(configuration.highPriorityInstances, configuration.instances)
        let perDevice = configuration.instances
        workers = (0..<(engines.count * perDevice)).map {
            InferenceWorker(index: $0, priority: $0 % perDevice < high ? .high : .normal, device: $0 / perDevice)
        }
        preprocessPool = BlockingThreadPool(
            name: "clipserve-preprocess", threads: configuration.preprocessThreads,
            maxBacklog: configuration.maxQueueSize)
        batching = .init(
            maxBatchSize: configuration.maxBatchSize, maxQueueDelay: configuration.maxQueueDelay,
            maxQueueSize: configuration.maxQueueSize, priorityLevels: configuration.priorityLevels,
            preferredBatchSizes: engines[0].preferredBatchSizes)
        batcher = Batcher(
            configuration: batching, workers: workers, pixelsPerImage: engines[0].spec.pixelsPerImage, embedDim: engines[0].spec.embedDim,
            normalize: configuration.normalize, normalization: preprocessor.normalization, clock: clock,
            metrics: metrics)
    }

    /// The model's tower.
    public var spec: VisionTowerSpec { engine.spec }

    /// Ready once warm, until an engine failure or shutdown.
    public var readiness: Readiness {
        if let failure = batcher.failure { return .notReady("engine failed: \(failure)") }
        return phase.withLock { phase in
            switch phase {
            case .ready: .ready
            case .starting: .notReady("warming up")
            case let .failed(message): .notReady("engine failed: \(message)")
            case .stopping, .stopped: .notReady("shutting down")
            }
        }
    }

    /// Images waiting for a batch.
    public var queuedImages: Int { batcher.queuedImages }

    /// Creates the contexts on their threads, warms up, serves until graceful shutdown, then drains the queue,
    /// finishes the batches in flight and releases the contexts.
    public func run() async throws {
        do {
            for worker in workers {
                try await worker.start(engine: engines[worker.device], maxBatchSize: configuration.maxBatchSize)
            }
            if configuration.warmUp { try await warmUp() }
        } catch {
            phase.withLock { $0 = .failed(String(describing: error)) }
            resumeReadyWaiters()
            logger.error("engine start failed: \(error)")
            await stopThreads()
            throw error
        }
        phase.withLock { if case .starting = $0 { $0 = .ready } }
        resumeReadyWaiters()
        logger.info("ready: \(workers.count) context(s) on \(engines.map(\.deviceDescription).joined(separator: ", "))")
        await withGracefulShutdownHandler {
            await batcher.runTimers()
        } onGracefulShutdown: { [self] in
            phase.withLock { $0 = .stopping }
            batcher.shutdown()
        }
        phase.withLock { $0 = .stopping }
        batcher.failAll(.shuttingDown)
        await stopThreads()
        phase.withLock { $0 = .stopped }
        resumeReadyWaiters()
        logger.info("runtime stopped")
    }

    /// Returns once start-up has finished, with the readiness it ended in.
    public func startupFinished() async -> Readiness {
        await withCheckedContinuation { continuation in
            let waiting = readyWaiters.withLock { waiters -> Bool in
                guard waiters != nil else { return false }
                waiters?.append(continuation)
                return true
            }
            if !waiting { continuation.resume(returning: readiness) }
        }
    }

    private func resumeReadyWaiters() {
        let waiters = readyWaiters.withLock { waiters in
            defer { waiters = nil }
            return waiters ?? []
        }
        let state = readiness
        for waiter in waiters { waiter.resume(returning: state) }
    }

    /// Decodes and preprocesses `images` on the preprocessing pool, then embeds them through the batcher.
    public func embed(images: [[UInt8]], options: RequestOptions = .init()) async throws -> EmbeddingResult {
        let (priority, timeout) = try admit(count: images.count, options: options)
        let start = clock.now
        let pixelsPerImage = spec.pixelsPerImage
        let preprocessor = self.preprocessor
        let pool = preprocessPool
        let metrics = self.metrics
        let pixels = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
            for (index, bytes) in images.enumerated() {
                group.addTask {
                    let clock = ContinuousClock()
                    let begin = clock.now
                    let pixels = try await pool.run { () throws -> [UInt8] in
                        do {
                            return try preprocessor.pixelBytes(from: bytes)
                        } catch let error as RuntimeError {
                            throw error
                        } catch {
                            throw RuntimeError.badImage(index: index, message: String(describing: error))
                        }
                    }
                    metrics.preprocessTime.record(duration: begin.duration(to: clock.now))
                    guard pixels.count == pixelsPerImage else {
                        throw RuntimeError.badPixels(
                            "image \(index): preprocessing produced \(pixels.count) values, expected \(pixelsPerImage)")
                    }
                    return (index, pixels)
                }
            }
            var flat = [UInt8](repeating: 0, count: images.count * pixelsPerImage)
            for try await (index, values) in group {
                flat.replaceSubrange((index * pixelsPerImage)..<((index + 1) * pixelsPerImage), with: values)
            }
            return flat
        }
        let preprocessTime = start.duration(to: clock.now)
        let remaining = timeout - preprocessTime
        guard remaining > .zero else { throw RuntimeError.timedOut(after: timeout) }
        return try await batch(
            pixels: .bytes(pixels), count: images.count, priority: priority, timeout: remaining,
            preprocessTime: preprocessTime)
    }

    /// Embeds `count` images already preprocessed (`count × 3 × S × S` normalised floats).
    public func embed(pixels: [Float], count: Int, options: RequestOptions = .init()) async throws -> EmbeddingResult {
        try await embed(.normalized(pixels), count: count, options: options, what: "pixel_values holds \(pixels.count) floats")
    }

    /// Embeds `count` images already preprocessed up to the bytes (`count × 3 × S × S` RGB bytes, planar, before
    /// `ToTensor`'s division by 255), normalised with the preprocessor's table.
    public func embed(pixelBytes: [UInt8], count: Int, options: RequestOptions = .init()) async throws -> EmbeddingResult {
        try await embed(.bytes(pixelBytes), count: count, options: options, what: "pixel bytes hold \(pixelBytes.count) values")
    }

    /// Checks that `pixels` holds `count` images (`what` describes what it holds for the error) and batches them.
    private func embed(
        _ pixels: ImagePixels, count: Int, options: RequestOptions, what: @autoclosure () -> String
    ) async throws -> EmbeddingResult {
        let (priority, timeout) = try admit(count: count, options: options)
        guard pixels.count == count * spec.pixelsPerImage else {
            throw RuntimeError.badPixels("\(what()), expected \(count) × 3 × \(spec.imageSize) × \(spec.imageSize)")
        }
        return try await batch(pixels: pixels, count: count, priority: priority, timeout: timeout, preprocessTime: .zero)
    }

    private func admit(count: Int, options: RequestOptions) throws -> (priority: Int, timeout: Duration) {
        if case let .notReady(why) = readiness {
            if case .stopping = phase.withLock({ $0 }) { throw RuntimeError.shuttingDown }
            throw RuntimeError.notReady(why)
        }
        guard count > 0 else { throw RuntimeError.noImages }
        guard count <= configuration.maxImagesPerRequest else {
            throw RuntimeError.tooManyImages(count: count, limit: configuration.maxImagesPerRequest)
        }
        guard (0...configuration.priorityLevels).contains(options.priority) else {
            throw RuntimeError.invalidPriority(options.priority, levels: configuration.priorityLevels)
        }
        let priority = options.priority == 0 ? configuration.defaultPriority : options.priority
        var timeout = configuration.requestTimeout
        if let requested = options.timeout, requested > .zero { timeout = min(timeout, requested) }
        return (priority, timeout)
    }

    private func batch(
        pixels: ImagePixels, count: Int, priority: Int, timeout: Duration, preprocessTime: Duration
    ) async throws -> EmbeddingResult {
        metrics.images.increment(by: count)
        let result = try await batcher.submit(pixels: pixels, count: count, priority: priority, timeout: timeout)
        return EmbeddingResult(
            count: count, dimension: spec.embedDim, embeddings: result.embeddings, preprocessTime: preprocessTime,
            queueTime: result.queueTime, inferenceTime: result.inferenceTime, batchSize: result.batchSize,
            admissionTime: result.admissionTime, answerTime: result.answerTime, resumeTime: result.resumeTime)
    }

    /// Batch sizes the warm-up runs: the sizes the batcher cuts batches to (each size the engine prefers up to the
    /// largest batch, and the largest batch), or a single image when the engine prefers none.
    var warmUpBatchSizes: [Int] { batching.preferredBatchSizes.isEmpty ? [1] : batching.preferredBatchSizes }

    /// A batch of all-zero images of every warm-up size on every context, so no request pays for a first run (on CUDA,
    /// the eager pass, matmul timing and graph capture of that batch size's profile). They travel the way decoded
    /// images do: as bytes where the context takes them.
    private func warmUp() async throws {
        let spec = self.spec
        let normalize = configuration.normalize
        for worker in workers {
            for count in warmUpBatchSizes {
                try await warmUp(worker, count: count, spec: spec, normalize: normalize)
            }
        }
    }

    private func warmUp(_ worker: InferenceWorker, count: Int, spec: VisionTowerSpec, normalize: Bool) async throws {
        let normalization = preprocessor.normalization
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            worker.run(
                count: count, pixelsPerImage: spec.pixelsPerImage, embedDim: spec.embedDim, normalize: normalize,
                bytes: normalization,
                fill: { $0.base.initializeMemory(as: UInt8.self, repeating: 0, count: count * spec.pixelsPerImage * $0.encoding.byteSize) },
                done: { result, _ in
                    continuation.resume(with: result.flatMap { embeddings in
                        embeddings.allSatisfy(\.isFinite)
                            ? .success(())
                            : .failure(EngineError.device("warm-up batch of \(count) produced non-finite values"))
                    })
                })
        }
    }

    private func stopThreads() async {
        for worker in workers { await worker.stop() }
        await preprocessPool.shutdown()
    }
}

extension EmbeddingRuntime where C == ContinuousClock {
    /// A runtime over one engine, timed by the continuous clock.
    public convenience init(
        engine: any EmbeddingEngine, preprocessor: any ImagePreprocessing, configuration: RuntimeConfiguration,
        metrics: RuntimeMetrics = RuntimeMetrics(), telemetry: (any DeviceTelemetry)? = nil,
        logger: Logger = Logger(label: "clipserve.runtime")
    ) {
        self.init(
            engines: [engine], preprocessor: preprocessor, configuration: configuration, clock: ContinuousClock(),
            metrics: metrics, telemetry: telemetry, logger: logger)
    }

    /// A runtime over one engine per device, timed by the continuous clock.
    public convenience init(
        engines: [any EmbeddingEngine], preprocessor: any ImagePreprocessing, configuration: RuntimeConfiguration,
        metrics: RuntimeMetrics = RuntimeMetrics(), telemetry: (any DeviceTelemetry)? = nil,
        logger: Logger = Logger(label: "clipserve.runtime")
    ) {
        self.init(
            engines: engines, preprocessor: preprocessor, configuration: configuration, clock: ContinuousClock(),
            metrics: metrics, telemetry: telemetry, logger: logger)
    }
}
