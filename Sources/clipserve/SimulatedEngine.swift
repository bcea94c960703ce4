import Foundation
import InferenceCore
import Synchronization

/// An engine that stands for a device of known speed, to measure the serving runtime's own overhead on any machine
/// (`clipserve bench runtime`): each context owns a staging buffer for fp16 values or RGB bytes, as a CUDA context's
/// pinned upload buffer. The device works like a GPU's queue: a batch is appended to its timeline, starting when the
/// work queued before it ends, and takes `microsecondsPerImage` per image of its profile (the next power of two, as
/// CUDA graphs pad) plus a fixed `launchMicroseconds`; the context's thread sleeps until its batch is done. So the
/// device never idles while work is queued, however slowly the host wakes the waiting thread (a lock handed from
/// thread to thread took about 1 ms on a 2-core VM and made the device look idle). Embeddings are the first
/// `embedDim` staged values of each image (normalised, for bytes), so a result still depends on its own pixels.
final class SimulatedEngine: EmbeddingEngine, Sendable {
    let spec: VisionTowerSpec
    let deviceDescription: String
    let precision = Precision.fp16
    let preferredBatchSizes: [Int]
    let microsecondsPerImage: Double
    let launchMicroseconds: Double
    /// When the work queued so far ends: one device, batches in turn.
    let queueEnd = Mutex<ContinuousClock.Instant>(.now)
    /// Simulated device time spent so far, in microseconds.
    let busyMicroseconds = Atomic<Int>(0)

    init(spec: VisionTowerSpec, microsecondsPerImage: Double, launchMicroseconds: Double = 30) {
        self.spec = spec
        self.microsecondsPerImage = microsecondsPerImage
        self.launchMicroseconds = launchMicroseconds
        deviceDescription = "simulated device (\(microsecondsPerImage) µs per image, batches padded to powers of two)"
        preferredBatchSizes = (0..<10).map { 1 << $0 }
    }

    /// Images per second the simulated device gives at batch `size` (a power of two).
    func imagesPerSecond(batch size: Int) -> Double {
        Double(size) / ((Double(size) * microsecondsPerImage + launchMicroseconds) * 1e-6)
    }

    func makeContext(_ configuration: ExecutionContextConfiguration) throws -> any ExecutionContext {
        SimulatedContext(engine: self, maxBatchSize: configuration.maxBatchSize)
    }
}

final class SimulatedContext: ExecutionContext {
    let engine: SimulatedEngine
    let maxBatchSize: Int
    private let staging: UnsafeMutableRawPointer

    init(engine: SimulatedEngine, maxBatchSize: Int) {
        self.engine = engine
        self.maxBatchSize = maxBatchSize
        let bytes = maxBatchSize * engine.spec.pixelsPerImage * 2
        staging = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        staging.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
    }

    deinit { staging.deallocate() }

    func stagingBuffer(count: Int) -> StagingBuffer? {
        guard count >= 1, count <= maxBatchSize else { return nil }
        return StagingBuffer(base: staging, encoding: .float16, capacity: maxBatchSize * engine.spec.pixelsPerImage)
    }

    func embedStaged(count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>) throws {
        try occupyDevice(count: count)
        let values = staging.assumingMemoryBound(to: Float16.self)
        let dim = engine.spec.embedDim, per = engine.spec.pixelsPerImage
        for image in 0..<count {
            for j in 0..<dim { output[image * dim + j] = Float(values[image * per + j]) }
        }
    }

    func byteStagingBuffer(count: Int) -> StagingBuffer? {
        guard count >= 1, count <= maxBatchSize else { return nil }
        return StagingBuffer(base: staging, encoding: .uint8, capacity: maxBatchSize * engine.spec.pixelsPerImage)
    }

    func embedStagedBytes(
        count: Int, normalization: PixelNormalization, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        try occupyDevice(count: count)
        let bytes = staging.assumingMemoryBound(to: UInt8.self)
        let dim = engine.spec.embedDim, per = engine.spec.pixelsPerImage
        let plane = engine.spec.imageSize * engine.spec.imageSize
        for image in 0..<count {
            for j in 0..<dim { output[image * dim + j] = normalization.table[j / plane % 3 * 256 + Int(bytes[image * per + j])] }
        }
    }

    /// Queues a batch of `count` images (its profile's size) on the simulated device and waits until it is done.
    private func occupyDevice(count: Int) throws {
        guard count >= 1, count <= maxBatchSize else {
            throw EngineError.batchTooLarge(requested: count, maximum: maxBatchSize)
        }
        var profile = 1
        while profile < count { profile *= 2 }
        let microseconds = Int(
            (Double(min(profile, maxBatchSize)) * engine.microsecondsPerImage + engine.launchMicroseconds).rounded())
        let clock = ContinuousClock()
        let now = clock.now
        let done = engine.queueEnd.withLock { end in
            end = max(end, now).advanced(by: .microseconds(microseconds))
            return end
        }
        engine.busyMicroseconds.add(microseconds, ordering: .relaxed)
        let wait = now.duration(to: done)
        if wait > .zero { usleep(UInt32(wait.components.seconds * 1_000_000 + wait.components.attoseconds / 1_000_000_000_000)) }
    }

    func embed(
        pixels: UnsafeBufferPointer<Float>, count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        guard let buffer = stagingBuffer(count: count) else {
            throw EngineError.batchTooLarge(requested: count, maximum: maxBatchSize)
        }
        let per = engine.spec.pixelsPerImage
        let halves = buffer.base.assumingMemoryBound(to: Float16.self)
        for i in 0..<(count * per) { halves[i] = Float16(pixels[i]) }
        try embedStaged(count: count, normalize: normalize, into: output)
    }

    func captureLayers(pixels: UnsafeBufferPointer<Float>, count: Int) throws -> [LayerOutput] { [] }
}
