import Foundation
import InferenceCore
import Logging
import ServiceLifecycle
import TestSupport
import Testing

@testable import InferenceRuntime

/// Runs `runtime` in a service group for `body`, then shuts it down gracefully.
func withRunningRuntime<C: Clock>(
    _ runtime: EmbeddingRuntime<C>, _ body: @Sendable (ServiceGroup) async throws -> Void
) async throws where C.Duration == Duration {
    let group = ServiceGroup(services: [runtime], logger: Logger(label: "test"))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        #expect(await runtime.startupFinished() == .ready)
        try await body(group)
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}

/// Waits (yielding, never sleeping) until `condition` holds; records an issue if it never does.
func eventually(_ condition: () -> Bool, sourceLocation: SourceLocation = #_sourceLocation) async {
    for _ in 0..<20_000_000 {
        if condition() { return }
        await Task.yield()
    }
    Issue.record("condition never held", sourceLocation: sourceLocation)
}

@Suite("EmbeddingRuntime")
struct EmbeddingRuntimeTests {
    func configuration(
        instances: Int = 1, maxBatch: Int = 4, queue: Int = 64, timeout: Duration = .seconds(60)
    ) -> RuntimeConfiguration {
        var configuration = RuntimeConfiguration()
        configuration.instances = instances
        configuration.maxBatchSize = maxBatch
        configuration.maxQueueDelay = .zero
        configuration.maxQueueSize = queue
        configuration.requestTimeout = timeout
        configuration.normalize = false
        return configuration
    }

    func runtime(_ engine: FakeEngine, _ configuration: RuntimeConfiguration) -> EmbeddingRuntime<ContinuousClock> {
        EmbeddingRuntime(
            engine: engine, preprocessor: FakePreprocessor(pixelsPerImage: engine.spec.pixelsPerImage),
            configuration: configuration)
    }

    @Test(arguments: [1, 3])
    func requestIsSplitAcrossBatchesAndReassembledInOrder(instances: Int) async throws {
        let engine = FakeEngine()
        let runtime = runtime(engine, configuration(instances: instances, maxBatch: 2))
        try await withRunningRuntime(runtime) { _ in
            let seeds: [UInt8] = [5, 1, 9, 3, 7]
            let result = try await runtime.embed(images: seeds.map { [$0] })
            #expect(result.count == 5)
            for (i, seed) in seeds.enumerated() {
                let alone = engine.reference(engine.pixels(seeds: [Float(seed)])[...])
                #expect(Array(result.embedding(i)) == alone, "image \(i)")
            }
            #expect(engine.batches.withLock { $0.dropFirst(instances).allSatisfy { $0.count <= 2 } })
        }
    }

    @Test func everyDeviceGetsContextsAndBatches() async throws {
        // Two engines stand for two GPUs; two contexts each. While a batch is held on the first engine, every later
        // request goes to the second one, whose in-flight count is lower, although the first still has an idle
        // context.
        let first = FakeEngine(), second = FakeEngine()
        let runtime = EmbeddingRuntime(
            engines: [first, second], preprocessor: FakePreprocessor(pixelsPerImage: first.spec.pixelsPerImage),
            configuration: configuration(instances: 2, maxBatch: 1, queue: 64))
        #expect(runtime.engines.count == 2)
        try await withRunningRuntime(runtime) { _ in
            let warm = (first.batches.withLock(\.count), second.batches.withLock(\.count))
            #expect(warm == (2, 2), "one warm-up batch per context, two contexts per engine")
            first.gate.close()
            second.gate.close()
            let held = Task { try await runtime.embed(images: [[3]]).embeddings }
            // The first batch goes to device 0 (both idle: the lower index); it waits at device 0's gate.
            await eventually { first.gate.waiting.load(ordering: .relaxed) == 1 }
            second.gate.open()
            for seed: UInt8 in [5, 7, 11] {
                let embedding = try await runtime.embed(images: [[seed]]).embeddings
                #expect(embedding == second.reference(second.pixels(seeds: [Float(seed)])[...]), "seed \(seed)")
            }
            #expect(second.batches.withLock(\.count) == 2 + 3, "device 1 has nothing in flight: it takes them all")
            #expect(first.gate.waiting.load(ordering: .relaxed) == 1)
            first.gate.open()
            #expect(try await held.value == first.reference(first.pixels(seeds: [3])[...]))
            #expect(first.batches.withLock(\.count) == 2 + 1)
        }
    }

    @Test(arguments: [nil, PixelEncoding.float32, .float16])
    func bigBatchesFilledBySeveralThreadsKeepEveryImageInItsRow(staging: PixelEncoding?) async throws {
        // 224×224 images: a batch of 8 is 1.2 M floats, over the runtime's parallel-fill threshold. The seeds are
        // small integers, exact in every encoding. The fake engine's per-pixel reference is slow under
        // ThreadSanitizer with other suites running, hence the long request timeout: this test is about rows.
        let engine = FakeEngine(staging: staging, imageSize: 224)
        #expect(8 * engine.spec.pixelsPerImage >= 1 << 20)
        let runtime = runtime(engine, configuration(instances: 1, maxBatch: 8, timeout: .seconds(600)))
        try await withRunningRuntime(runtime) { _ in
            let seeds: [UInt8] = [9, 1, 8, 2, 7, 3, 6, 4]
            let result = try await runtime.embed(images: seeds.map { [$0] })
            #expect(result.batchSize == 8)
            for (i, seed) in seeds.enumerated() {
                #expect(Array(result.embedding(i)) == engine.reference(engine.pixels(seeds: [Float(seed)])[...]), "image \(i)")
            }
        }
    }

    @Test(arguments: [PixelEncoding.float32, .float16, .bfloat16])
    func stagingBufferCarriesTheBatchInItsEncoding(encoding: PixelEncoding) async throws {
        // A context with its own upload buffer gets every batch written there, rounded to its encoding.
        let engine = FakeEngine(staging: encoding)
        let runtime = runtime(engine, configuration(instances: 2, maxBatch: 3))
        let scale: Float = 1.0 / 3  // not exact in 16 bits: the rounding shows
        try await withRunningRuntime(runtime) { _ in
            let images = (0..<7).map { i in [Float](repeating: Float(i + 1) * scale, count: engine.spec.pixelsPerImage) }
            for (i, pixels) in images.enumerated() {
                let result = try await runtime.embed(pixels: pixels, count: 1)
                #expect(
                    Array(result.embedding(0)) == engine.reference(engine.pixels(seeds: [rounded(pixels[0], encoding)])[...]),
                    "image \(i)")
            }
            #expect(engine.stagedBatches.load(ordering: .relaxed) == engine.batches.withLock(\.count))
        }
    }

    /// `value` rounded to nearest even in `encoding`, as the runtime's writers round.
    func rounded(_ value: Float, _ encoding: PixelEncoding) -> Float {
        switch encoding {
        case .float32, .uint8: value
        case .float16: Float(Float16(value))
        case .bfloat16: Float(bitPattern: (value.bitPattern + 0x7fff + ((value.bitPattern >> 16) & 1)) & 0xffff_0000)
        }
    }

    @Test(arguments: [PixelEncoding.float32, .float16, .bfloat16])
    func decodedImagesReachAFloatStagingBufferNormalisedThenRounded(encoding: PixelEncoding) async throws {
        // Decoded images travel as bytes; a context that does not normalise bytes itself gets them through the
        // preprocessor's table, rounded to its encoding: what preprocessing straight to floats would have given.
        let engine = FakeEngine(staging: encoding)
        let runtime = EmbeddingRuntime(
            engine: engine, preprocessor: FakePreprocessor(pixelsPerImage: engine.spec.pixelsPerImage, scale: 1.0 / 3),
            configuration: configuration(instances: 2, maxBatch: 3))
        try await withRunningRuntime(runtime) { _ in
            let seeds: [UInt8] = [1, 2, 5, 128, 200, 254, 255]
            let result = try await runtime.embed(images: seeds.map { [$0] })
            for (i, seed) in seeds.enumerated() {
                let value = rounded(Float(seed) * (1.0 / 3), encoding)
                #expect(Array(result.embedding(i)) == engine.reference(engine.pixels(seeds: [value])[...]), "image \(i)")
            }
            #expect(engine.byteBatches.load(ordering: .relaxed) == 0)
            // The rounding shows: some values are not exact in 16 bits.
            #expect(encoding == .float32 || seeds.contains { rounded(Float($0) * (1.0 / 3), encoding) != Float($0) * (1.0 / 3) })
        }
    }

    @Test func aContextThatNormalisesBytesGetsDecodedImagesAsBytesAndMixedBatchesAsValues() async throws {
        let engine = FakeEngine(staging: .float16, takesBytes: true)
        let scale: Float = 1.0 / 3
        let runtime = EmbeddingRuntime(
            engine: engine, preprocessor: FakePreprocessor(pixelsPerImage: engine.spec.pixelsPerImage, scale: scale),
            configuration: configuration(instances: 1, maxBatch: 4))
        try await withRunningRuntime(runtime) { _ in
            let warmUp = engine.byteBatches.load(ordering: .relaxed)
            #expect(warmUp >= 1, "warm-up takes the byte path where the context has one")
            // Bytes only: uploaded as bytes, normalised by the context with the preprocessor's table (in fp32).
            let seeds: [UInt8] = [3, 7, 250]
            let result = try await runtime.embed(images: seeds.map { [$0] })
            for (i, seed) in seeds.enumerated() {
                #expect(Array(result.embedding(i)) == engine.reference(engine.pixels(seeds: [Float(seed) * scale])[...]))
            }
            #expect(engine.byteBatches.load(ordering: .relaxed) == warmUp + 1)
            #expect(engine.stagedBatches.load(ordering: .relaxed) == 0)
            // Raw bytes from a client take the same path.
            let raw = try await runtime.embed(
                pixelBytes: [UInt8](repeating: 9, count: engine.spec.pixelsPerImage), count: 1)
            #expect(Array(raw.embedding(0)) == engine.reference(engine.pixels(seeds: [9 * scale])[...]))
            await #expect(throws: RuntimeError.self) { try await runtime.embed(pixelBytes: [1, 2, 3], count: 1) }

            // A batch holding a float tensor and a decoded image goes through the value buffer: both rounded to fp16.
            engine.gate.close()
            let blocker = Task { try await runtime.embed(images: [[1]]) }
            await eventually { engine.gate.waiting.load(ordering: .relaxed) == 1 }
            let tensor = Task {
                try await runtime.embed(pixels: [Float](repeating: 0.1, count: engine.spec.pixelsPerImage), count: 1)
            }
            let image = Task { try await runtime.embed(images: [[100]]) }
            await eventually { runtime.queuedImages == 2 }
            engine.gate.open()
            _ = try await blocker.value
            let fromTensor = try await tensor.value, fromImage = try await image.value
            #expect(fromTensor.batchSize == 2 && fromImage.batchSize == 2)
            #expect(Array(fromTensor.embedding(0)) == engine.reference(engine.pixels(seeds: [rounded(0.1, .float16)])[...]))
            #expect(
                Array(fromImage.embedding(0))
                    == engine.reference(engine.pixels(seeds: [rounded(100 * scale, .float16)])[...]))
            #expect(engine.stagedBatches.load(ordering: .relaxed) == 1)
        }
    }

    @Test func concurrentRequestsEachGetTheirOwnEmbeddings() async throws {
        let engine = FakeEngine()
        let runtime = runtime(engine, configuration(instances: 2, maxBatch: 8, queue: 1024))
        try await withRunningRuntime(runtime) { _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for request in 0..<64 {
                    group.addTask {
                        let seeds = (0..<(request % 3 + 1)).map { UInt8((request * 7 + $0) % 251) }
                        let result = try await runtime.embed(images: seeds.map { [$0] })
                        for (i, seed) in seeds.enumerated() {
                            #expect(Array(result.embedding(i)) == engine.reference(engine.pixels(seeds: [Float(seed)])[...]))
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    /// Requests that find the batcher's lock taken wait in its intake instead of blocking their thread, and the
    /// lock's holder queues them when it lets go: each gets its own embeddings, and one cancelled while it waits
    /// there is answered `cancelled` and never reaches a batch.
    @Test func requestsArrivingWhileTheLockIsHeldWaitInTheIntake() async throws {
        let engine = FakeEngine()
        let runtime = runtime(engine, configuration(instances: 2, maxBatch: 8, queue: 1024))
        try await withRunningRuntime(runtime) { _ in
            let batcher = runtime.batcher
            let holding = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
            let holder = Thread {
                batcher.holdingStateLock {
                    holding.signal()
                    release.wait()
                }
            }
            holder.start()
            holding.wait()
            let seeds = (0..<40).map { UInt8($0 + 1) }
            let requests = seeds.map { seed in Task { try await runtime.embed(images: [[seed]]) } }
            let doomed = Task { try await runtime.embed(images: [[200]]) }
            await eventually { batcher.requestsInIntake == seeds.count + 1 }
            doomed.cancel()  // answered at once, from the intake, while the lock is still held
            await #expect(throws: RuntimeError.cancelled) { try await doomed.value }
            #expect(batcher.requestsInIntake == seeds.count)
            release.signal()
            for (seed, request) in zip(seeds, requests) {
                let result = try await request.value
                #expect(Array(result.embedding(0)) == engine.reference(engine.pixels(seeds: [Float(seed)])[...]))
            }
            #expect(batcher.requestsInIntake == 0)
            #expect(runtime.queuedImages == 0)
            #expect(engine.batches.withLock { $0.flatMap { $0 }.contains(200) } == false)
        }
    }

    @Test func deadlineExpiringWhileTheBatchRunsIsAnsweredAtOnce() async throws {
        let engine = FakeEngine()
        let clock = ManualClock()
        let runtime = EmbeddingRuntime(
            engine: engine, preprocessor: FakePreprocessor(pixelsPerImage: engine.spec.pixelsPerImage),
            configuration: configuration(maxBatch: 1, timeout: .milliseconds(50)), clock: clock)
        try await withRunningRuntime(runtime) { _ in
            engine.gate.close()
            let running = Task { try await runtime.embed(images: [[1]]) }
            await eventually { engine.gate.waiting.load(ordering: .relaxed) == 1 }
            let queued = Task { try await runtime.embed(images: [[2]]) }
            await eventually { runtime.queuedImages == 1 }
            await eventually { clock.sleeperCount >= 1 }
            clock.advance(by: .milliseconds(50))
            // Both are answered while the engine is still blocked in the first batch.
            await #expect(throws: RuntimeError.timedOut(after: .milliseconds(50))) { try (await running.result).get() }
            await #expect(throws: RuntimeError.timedOut(after: .milliseconds(50))) { try (await queued.result).get() }
            #expect(engine.gate.waiting.load(ordering: .relaxed) == 1)
            #expect(runtime.queuedImages == 0)
            engine.gate.open()
            let after = try await runtime.embed(images: [[3]])
            #expect(Array(after.embedding(0)) == engine.reference(engine.pixels(seeds: [3])[...]))
        }
    }

    @Test func rearmedTimersDoNotPileUp() async throws {
        // Every request waits for the queue delay, then its batch re-arms the timer for its far deadline. The next
        // request's earlier delay replaces that sleeper instead of adding one: sleepers stay at one or two however
        // many requests go by (they used to grow by one per request, each sleeping until its request's timeout).
        let engine = FakeEngine()
        let clock = ManualClock()
        var configuration = configuration(maxBatch: 8, timeout: .seconds(60))
        configuration.maxQueueDelay = .milliseconds(10)
        let runtime = EmbeddingRuntime(
            engine: engine, preprocessor: FakePreprocessor(pixelsPerImage: engine.spec.pixelsPerImage),
            configuration: configuration, clock: clock)
        try await withRunningRuntime(runtime) { _ in
            for seed in 1...30 {
                let request = Task { try await runtime.embed(images: [[UInt8(seed)]]) }
                await eventually { runtime.queuedImages == 1 }
                #expect(clock.sleeperCount <= 2, "request \(seed)")
                clock.advance(by: .milliseconds(10))
                let result = try await request.value
                #expect(Array(result.embedding(0)) == engine.reference(engine.pixels(seeds: [Float(seed)])[...]))
            }
            await eventually { clock.sleeperCount <= 1 }
        }
    }

    @Test func cancelledRequestLeavesTheQueue() async throws {
        let engine = FakeEngine()
        let runtime = runtime(engine, configuration(maxBatch: 1))
        try await withRunningRuntime(runtime) { _ in
            engine.gate.close()
            let running = Task { try await runtime.embed(images: [[1]]) }
            await eventually { engine.gate.waiting.load(ordering: .relaxed) == 1 }
            let waiting = Task { try await runtime.embed(images: [[2], [3]]) }
            await eventually { runtime.queuedImages == 2 }
            waiting.cancel()
            await #expect(throws: RuntimeError.cancelled) { try await waiting.value }
            #expect(runtime.queuedImages == 0)
            engine.gate.open()
            _ = try (await running.result).get()
            #expect(engine.batches.withLock { $0.flatMap { $0 }.contains(2) } == false)
        }
    }

    /// A request whose task is cancelled before it reaches the batcher is answered `cancelled` and leaves nothing
    /// behind (the cancellation check and the enqueue share one critical section).
    @Test func requestCancelledBeforeItIsQueuedIsAnsweredAndForgotten() async throws {
        let engine = FakeEngine()
        let runtime = runtime(engine, configuration(maxBatch: 2))
        try await withRunningRuntime(runtime) { _ in
            let pixels = engine.pixels(seeds: [7])
            let warmUpBatches = engine.batches.withLock { $0.count }
            for _ in 0..<50 {
                let cancelled = Task {
                    withUnsafeCurrentTask { $0?.cancel() }
                    return try await runtime.embed(pixels: pixels, count: 1)
                }
                await #expect(throws: RuntimeError.cancelled) { try await cancelled.value }
            }
            #expect(runtime.queuedImages == 0)
            let result = try await runtime.embed(pixels: pixels, count: 1)
            #expect(Array(result.embedding(0)) == engine.reference(pixels[...]))
            #expect(engine.batches.withLock { $0.count } == warmUpBatches + 1)
        }
    }

    /// Before it reports ready, every context has run a batch of each size the engine prefers below the largest
    /// batch, and the largest batch (a CUDA context captures its graphs then, not under the first requests).
    @Test func warmUpRunsEveryPreferredBatchSizeOnEveryContext() async throws {
        let engine = FakeEngine(preferredBatchSizes: [1, 2, 4, 8, 16])
        var configuration = configuration(instances: 2, maxBatch: 6)
        configuration.warmUp = true
        let runtime = runtime(engine, configuration)
        #expect(runtime.warmUpBatchSizes == [1, 2, 4, 6])
        try await withRunningRuntime(runtime) { _ in
            #expect(engine.batches.withLock { $0.map(\.count) } == [1, 2, 4, 6, 1, 2, 4, 6])
            #expect(engine.batches.withLock { $0.allSatisfy { $0.allSatisfy { $0 == 0 } } })
        }
        #expect(EmbeddingRuntime(
            engine: FakeEngine(), preprocessor: FakePreprocessor(pixelsPerImage: 1), configuration: configuration
        ).warmUpBatchSizes == [1])
    }

    @Test func fullQueueRejects() async throws {
        let engine = FakeEngine()
        let runtime = runtime(engine, configuration(maxBatch: 1, queue: 2))
        try await withRunningRuntime(runtime) { _ in
            engine.gate.close()
            let running = Task { try await runtime.embed(images: [[1]]) }
            await eventually { engine.gate.waiting.load(ordering: .relaxed) == 1 }
            let queued = Task { try await runtime.embed(images: [[2], [3]]) }
            await eventually { runtime.queuedImages == 2 }
            await #expect(throws: RuntimeError.queueFull(capacity: 2)) { try await runtime.embed(images: [[4]]) }
            engine.gate.open()
            _ = try (await running.result).get()
            _ = try (await queued.result).get()
        }
    }

    @Test func priorityOneIsServedFirst() async throws {
        let engine = FakeEngine()
        let runtime = runtime(engine, configuration(maxBatch: 1))
        try await withRunningRuntime(runtime) { _ in
            engine.gate.close()
            let first = Task { try await runtime.embed(images: [[1]]) }
            await eventually { engine.gate.waiting.load(ordering: .relaxed) == 1 }
            let normal = Task { try await runtime.embed(images: [[2]], options: .init(priority: 2)) }
            await eventually { runtime.queuedImages == 1 }
            let urgent = Task { try await runtime.embed(images: [[3]], options: .init(priority: 1)) }
            await eventually { runtime.queuedImages == 2 }
            engine.gate.open()
            _ = try (await first.result).get()
            _ = try (await normal.result).get()
            _ = try (await urgent.result).get()
            #expect(engine.batches.withLock { Array($0.suffix(3)) } == [[1], [3], [2]])
        }
    }

    @Test func badImageNamesItsIndex() async throws {
        let engine = FakeEngine()
        let runtime = runtime(engine, configuration())
        try await withRunningRuntime(runtime) { _ in
            await #expect(throws: RuntimeError.badImage(index: 1, message: "not a fake image")) {
                try await runtime.embed(images: [[1], [1, 2]])
            }
            await #expect(throws: RuntimeError.tooManyImages(count: 40, limit: 32)) {
                try await runtime.embed(images: Array(repeating: [1], count: 40))
            }
            await #expect(throws: RuntimeError.invalidPriority(7, levels: 2)) {
                try await runtime.embed(images: [[1]], options: .init(priority: 7))
            }
            _ = try await runtime.embed(images: [[1]])
        }
    }

    @Test func engineFailureTurnsReadinessOff() async throws {
        let engine = FakeEngine()
        let runtime = runtime(engine, configuration())
        try await withRunningRuntime(runtime) { _ in
            #expect(runtime.readiness == .ready)
            engine.failNext.store(true, ordering: .relaxed)
            await #expect(throws: RuntimeError.engineFailed("injected failure")) {
                try await runtime.embed(images: [[1]])
            }
            #expect(runtime.readiness != .ready)
            await #expect(throws: RuntimeError.self) { try await runtime.embed(images: [[1]]) }
        }
    }

    @Test func gracefulShutdownAnswersEverythingAccepted() async throws {
        let engine = FakeEngine()
        let runtime = runtime(engine, configuration(maxBatch: 2))
        let group = ServiceGroup(services: [runtime], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            #expect(await runtime.startupFinished() == .ready)
            engine.gate.close()
            let requests = (1...5).map { seed in Task { try await runtime.embed(images: [[UInt8(seed)]]) } }
            await eventually { engine.gate.waiting.load(ordering: .relaxed) == 1 && runtime.queuedImages == 4 }
            await group.triggerGracefulShutdown()
            await eventually { runtime.readiness != .ready }
            await #expect(throws: RuntimeError.shuttingDown) { try await runtime.embed(images: [[9]]) }
            engine.gate.open()
            for (i, request) in requests.enumerated() {
                let result = try await request.value
                #expect(Array(result.embedding(0)) == engine.reference(engine.pixels(seeds: [Float(i + 1)])[...]))
            }
            try await tasks.waitForAll()
        }
    }
}
