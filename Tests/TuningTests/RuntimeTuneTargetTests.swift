import Foundation
import InferenceCore
import InferenceRuntime
import Synchronization
import Testing
import Tuning

@testable import clipserve

/// A tiny deterministic engine (as the runtime tests' fake engine): each embedding is a weighted sum of its image's
/// pixels; it counts the contexts alive so a test can see that a candidate released them.
final class CountingEngine: EmbeddingEngine, Sendable {
    let spec = VisionTowerSpec(imageSize: 8, patchSize: 4, width: 16, layers: 1, headWidth: 8, embedDim: 4)
    let deviceDescription = "counting fake"
    let precision = Precision.fp32
    let preferredBatchSizes: [Int] = []
    let liveContexts = Atomic<Int>(0)
    let largestBatch = Atomic<Int>(0)

    func makeContext(_ configuration: ExecutionContextConfiguration) throws -> any ExecutionContext {
        CountingContext(engine: self, maxBatchSize: configuration.maxBatchSize)
    }
}

final class CountingContext: ExecutionContext {
    let engine: CountingEngine
    let maxBatchSize: Int

    init(engine: CountingEngine, maxBatchSize: Int) {
        self.engine = engine
        self.maxBatchSize = maxBatchSize
        engine.liveContexts.add(1, ordering: .relaxed)
    }

    deinit { engine.liveContexts.subtract(1, ordering: .relaxed) }

    func embed(
        pixels: UnsafeBufferPointer<Float>, count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        guard count <= maxBatchSize else { throw EngineError.batchTooLarge(requested: count, maximum: maxBatchSize) }
        engine.largestBatch.max(count, ordering: .relaxed)
        let per = engine.spec.pixelsPerImage, dim = engine.spec.embedDim
        for image in 0..<count {
            for j in 0..<dim { output[image * dim + j] = 0 }
            for i in 0..<per { output[image * dim + i % dim] += pixels[image * per + i] * Float(i % 7 + 1) }
        }
    }

    func captureLayers(pixels: UnsafeBufferPointer<Float>, count: Int) throws -> [LayerOutput] { [] }
}

/// The byte is the pixel value.
struct BytePreprocessor: ImagePreprocessing {
    let pixelsPerImage: Int

    var normalization: PixelNormalization { PixelNormalization(table: (0..<(3 * 256)).map { Float($0 % 256) / 255 }) }

    func pixelBytes(from bytes: [UInt8]) throws -> [UInt8] {
        [UInt8](repeating: bytes.first ?? 0, count: pixelsPerImage)
    }
}

/// `clipserve tune`'s real target (runtime, batcher, closed-loop clients) over a fake engine. Nothing here asserts
/// on timings: only on what was measured and that each candidate's runtime stopped and released its contexts.
@Suite("RuntimeTuneTarget")
struct RuntimeTuneTargetTests {
    func target(_ engine: CountingEngine, images: Bool) -> RuntimeTuneTarget {
        let load: RuntimeTuneTarget.Load =
            images
            ? .images((0..<5).map { [UInt8($0 * 40)] })
            : .pixels((0..<3).map { [UInt8](repeating: UInt8($0), count: engine.spec.pixelsPerImage) })
        var base = RuntimeConfiguration()
        base.preprocessThreads = 2
        return RuntimeTuneTarget(
            engine: engine, preprocessor: BytePreprocessor(pixelsPerImage: engine.spec.pixelsPerImage), load: load,
            base: base, highPriorityContextWhenSeveral: false, readDevice: nil)
    }

    @Test(arguments: [false, true])
    func measuresACandidateThenReleasesItsContexts(images: Bool) async throws {
        let engine = CountingEngine()
        let candidate = Candidate(instances: 2, maxBatchSize: 4, maxQueueDelayMicroseconds: 500)
        var measured: [Tuning.Measurement] = []
        try await target(engine, images: images).withCandidate(candidate) { probe in
            #expect(engine.liveContexts.load(ordering: .relaxed) == 2)
            for concurrency in [1, 8] {
                measured.append(try await probe.measure(concurrency: concurrency, seconds: 0.2))
            }
        }
        #expect(engine.liveContexts.load(ordering: .relaxed) == 0)
        #expect(engine.largestBatch.load(ordering: .relaxed) <= 4)
        for point in measured {
            #expect(point.requests > 0)
            #expect(point.errors == 0)
            #expect(point.imagesPerSecond > 0)
            #expect(point.p50Milliseconds <= point.p99Milliseconds)
            #expect(point.meanBatchSize >= 1 && point.meanBatchSize <= 4)
            #expect(point.cpuUtilization != nil)
            #expect(point.deviceUtilization == nil)
            // Where the latency went: the mean queue wait and batch time are reported.
            let queue = try #require(point.meanQueueMilliseconds), batch = try #require(point.meanBatchMilliseconds)
            #expect(queue >= 0 && batch > 0)
            // and how the latency splits around the batcher: the answer (queue, batch, bookkeeping) holds the queue
            // wait and the batch (each summed in whole microseconds, hence the slack), and the latency holds the
            // admission and the answer.
            let latency = try #require(point.meanLatencyMilliseconds)
            let admission = try #require(point.meanAdmissionMilliseconds), answer = try #require(point.meanAnswerMilliseconds)
            let resume = try #require(point.meanResumeMilliseconds)
            #expect(admission >= 0 && resume >= 0)
            #expect(answer + 0.002 >= queue + batch)
            #expect(latency + 0.003 >= admission + answer + resume)
        }
        // One client never has company: every batch holds its single image.
        #expect(measured[0].meanBatchSize == 1)
    }

    // A point runs a warm-up first (a quarter of its window, at most 1 s) and counts only the window after it.
    @Test func aPointWarmsUpBeforeItsWindow() async throws {
        #expect(RuntimeProbe.warmUpSeconds(window: 2) == 0.5)
        #expect(RuntimeProbe.warmUpSeconds(window: 8) == 1)
        let engine = CountingEngine()
        let candidate = Candidate(instances: 1, maxBatchSize: 4, maxQueueDelayMicroseconds: 0)
        try await target(engine, images: false).withCandidate(candidate) { probe in
            let clock = ContinuousClock(), began = clock.now
            let point = try await probe.measure(concurrency: 4, seconds: 0.4)
            #expect(began.duration(to: clock.now) >= .milliseconds(500), "0.1 s of warm-up, then the 0.4 s window")
            #expect(point.requests > 0 && point.errors == 0 && point.imagesPerSecond > 0)
        }
    }

    @Test func tunesTheRealRuntimeEndToEnd() async throws {
        let engine = CountingEngine()
        let space = SearchSpace(instances: [1, 2], batchSizes: [1, 4, 16], delaysMicroseconds: [0, 1000], concurrencyCap: 16)
        var settings = Tuner.Settings(space: space, p99BudgetMilliseconds: 5_000, budgetSeconds: 60, pointSeconds: 0.05)
        settings.minimumGain = 0.5  // a fake this fast is noise-bound; only large steps count
        let clock = ContinuousClock(), began = clock.now
        let elapsed: @Sendable () -> Double = {
            let (seconds, attoseconds) = (clock.now - began).components
            return Double(seconds) + Double(attoseconds) * 1e-18
        }
        let outcome = await Tuner(settings: settings, elapsed: elapsed)
            .run(target: target(engine, images: true))
        #expect(engine.liveContexts.load(ordering: .relaxed) == 0)
        #expect(outcome.results.allSatisfy { $0.failure == nil })
        #expect(outcome.results.first?.candidate == .serveDefault)
        let chosen = try #require(outcome.chosen)
        #expect(chosen.fitsBudget)
        for (candidate, point) in outcome.points {
            #expect(point.errors == 0 && point.requests > 0, "\(candidate) c=\(point.concurrency)")
            #expect(point.meanBatchSize <= Double(candidate.maxBatchSize) + 1e-9)
        }
    }
}
