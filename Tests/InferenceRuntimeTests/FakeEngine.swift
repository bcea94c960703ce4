import Foundation
import InferenceRuntime
import InferenceCore
import Synchronization
import TestSupport

/// A deterministic engine for runtime tests: each embedding depends on that image's pixels only; batches can be
/// held at a gate, and the engine can be told to fail.
final class FakeEngine: EmbeddingEngine, Sendable {
    let spec: VisionTowerSpec
    let deviceDescription = "fake"
    let precision = Precision.fp32
    let preferredBatchSizes: [Int] = []
    let gate = Gate()
    let failNext = Atomic<Bool>(false)
    /// First pixel of every image, batch by batch, in the order the batches ran.
    let batches = Locked<[[Float]]>([])
    /// Whether contexts offer a staging buffer (as CUDA's pinned upload buffer), and how many batches used it.
    let staged: Bool
    let stagedBatches = Atomic<Int>(0)

    /// `imageSize` 8 by default; bigger images make batches big enough for the runtime's parallel fill.
    init(staged: Bool = false, imageSize: Int = 8) {
        self.staged = staged
        spec = VisionTowerSpec(imageSize: imageSize, patchSize: 4, width: 16, layers: 1, headWidth: 8, embedDim: 4)
    }

    func makeContext(_ configuration: ExecutionContextConfiguration) throws -> any ExecutionContext {
        FakeContext(engine: self, maxBatchSize: configuration.maxBatchSize)
    }

    /// Embedding of one image alone.
    func reference(_ pixels: ArraySlice<Float>) -> [Float] {
        let dim = spec.embedDim
        var out = [Float](repeating: 0, count: dim)
        for (i, value) in pixels.enumerated() { out[i % dim] += value * Float(i % 7 + 1) }
        return out
    }

    /// `count` images whose pixels are all `seed + i`.
    func pixels(seeds: [Float]) -> [Float] {
        seeds.flatMap { [Float](repeating: $0, count: spec.pixelsPerImage) }
    }
}

final class FakeContext: ExecutionContext {
    let engine: FakeEngine
    let maxBatchSize: Int
    private var staging: [Float]

    init(engine: FakeEngine, maxBatchSize: Int) {
        self.engine = engine
        self.maxBatchSize = maxBatchSize
        staging = .init(repeating: .nan, count: engine.staged ? maxBatchSize * engine.spec.pixelsPerImage : 0)
    }

    func stagingBuffer(count: Int) -> UnsafeMutableBufferPointer<Float>? {
        guard engine.staged, count <= maxBatchSize else { return nil }
        return staging.withUnsafeMutableBufferPointer { $0 }  // the array's storage lives as long as the context
    }

    func embedStaged(count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>) throws {
        engine.stagedBatches.add(1, ordering: .relaxed)
        let floats = count * engine.spec.pixelsPerImage
        try staging.withUnsafeBufferPointer { all in
            try embed(
                pixels: UnsafeBufferPointer(rebasing: all[0..<floats]), count: count, normalize: normalize, into: output)
        }
    }

    func embed(
        pixels: UnsafeBufferPointer<Float>, count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        engine.gate.pass()
        let per = engine.spec.pixelsPerImage, dim = engine.spec.embedDim
        engine.batches.withLock { $0.append((0..<count).map { pixels[$0 * per] }) }
        if engine.failNext.exchange(false, ordering: .relaxed) { throw EngineError.device("injected failure") }
        guard count <= maxBatchSize else { throw EngineError.batchTooLarge(requested: count, maximum: maxBatchSize) }
        for image in 0..<count {
            let values = engine.reference(Array(pixels[(image * per)..<((image + 1) * per)])[...])
            for j in 0..<dim { output[image * dim + j] = values[j] }
        }
    }

    func captureLayers(pixels: UnsafeBufferPointer<Float>, count: Int) throws -> [LayerOutput] { [] }
}

/// Preprocessing for the fake engine: the image bytes are `[seed]`, anything else is a bad image.
struct FakePreprocessor: ImagePreprocessing {
    let pixelsPerImage: Int

    func pixels(from bytes: [UInt8]) throws -> [Float] {
        guard bytes.count == 1 else { throw FakeImageError() }
        return [Float](repeating: Float(bytes[0]), count: pixelsPerImage)
    }
}

struct FakeImageError: Error, CustomStringConvertible {
    var description: String { "not a fake image" }
}
