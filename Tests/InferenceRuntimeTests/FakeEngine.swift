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
    let preferredBatchSizes: [Int]
    let gate = Gate()
    let failNext = Atomic<Bool>(false)
    /// First pixel of every image, batch by batch, in the order the batches ran.
    let batches = Locked<[[Float]]>([])
    /// The encoding contexts' staging buffers use (as CUDA's pinned upload buffer), nil for none; and how many
    /// batches went through one.
    let staging: PixelEncoding?
    let stagedBatches = Atomic<Int>(0)
    /// Whether contexts take batches of RGB bytes and normalise them themselves (as a CUDA context does), and how
    /// many batches came that way.
    let takesBytes: Bool
    let byteBatches = Atomic<Int>(0)

    /// `imageSize` 8 by default; bigger images make batches big enough for the runtime's parallel fill.
    init(staging: PixelEncoding? = nil, takesBytes: Bool = false, imageSize: Int = 8, preferredBatchSizes: [Int] = []) {
        self.staging = staging
        self.takesBytes = takesBytes
        self.preferredBatchSizes = preferredBatchSizes
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
    private let staging: UnsafeMutableRawPointer?
    private let byteStaging: UnsafeMutableRawPointer?

    init(engine: FakeEngine, maxBatchSize: Int) {
        self.engine = engine
        self.maxBatchSize = maxBatchSize
        staging = engine.staging.map { encoding in
            let bytes = maxBatchSize * engine.spec.pixelsPerImage * encoding.byteSize
            let memory = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            memory.initializeMemory(as: UInt8.self, repeating: 0xff, count: bytes)  // NaN until written
            return memory
        }
        byteStaging = engine.takesBytes ? UnsafeMutableRawPointer.allocate(
            byteCount: maxBatchSize * engine.spec.pixelsPerImage, alignment: 64) : nil
    }

    deinit {
        staging?.deallocate()
        byteStaging?.deallocate()
    }

    func byteStagingBuffer(count: Int) -> StagingBuffer? {
        guard let byteStaging, count <= maxBatchSize else { return nil }
        return StagingBuffer(base: byteStaging, encoding: .uint8, capacity: maxBatchSize * engine.spec.pixelsPerImage)
    }

    /// Normalises the staged bytes with the table (as a GPU would) and embeds those.
    func embedStagedBytes(
        count: Int, normalization: PixelNormalization, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        engine.byteBatches.add(1, ordering: .relaxed)
        let values = count * engine.spec.pixelsPerImage
        var floats = [Float](repeating: .nan, count: values)
        floats.withUnsafeMutableBufferPointer { out in
            normalization.expand(
                UnsafeBufferPointer(start: byteStaging!.assumingMemoryBound(to: UInt8.self), count: values),
                plane: engine.spec.imageSize * engine.spec.imageSize, into: out)
        }
        try floats.withUnsafeBufferPointer { try embed(pixels: $0, count: count, normalize: normalize, into: output) }
    }

    func stagingBuffer(count: Int) -> StagingBuffer? {
        guard let staging, let encoding = engine.staging, count <= maxBatchSize else { return nil }
        return StagingBuffer(base: staging, encoding: encoding, capacity: maxBatchSize * engine.spec.pixelsPerImage)
    }

    /// Decodes the staged values back to floats (as a GPU would read them) and embeds those.
    func embedStaged(count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>) throws {
        engine.stagedBatches.add(1, ordering: .relaxed)
        let values = count * engine.spec.pixelsPerImage
        let floats: [Float] =
            switch engine.staging! {
            case .float32: Array(UnsafeBufferPointer(start: staging!.assumingMemoryBound(to: Float.self), count: values))
            case .float16:
                UnsafeBufferPointer(start: staging!.assumingMemoryBound(to: Float16.self), count: values).map(Float.init)
            case .bfloat16:
                UnsafeBufferPointer(start: staging!.assumingMemoryBound(to: UInt16.self), count: values)
                    .map { Float(bitPattern: UInt32($0) << 16) }
            case .uint8: preconditionFailure("the fake's float staging buffer is never a byte buffer")
            }
        try floats.withUnsafeBufferPointer { try embed(pixels: $0, count: count, normalize: normalize, into: output) }
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

/// Preprocessing for the fake engine: the image bytes are `[seed]`, anything else is a bad image; every pixel is the
/// seed, which normalises to `seed × scale` (by default the seed itself).
struct FakePreprocessor: ImagePreprocessing {
    let pixelsPerImage: Int
    var scale: Float = 1

    var normalization: PixelNormalization {
        PixelNormalization(table: (0..<(3 * 256)).map { Float($0 % 256) * scale })
    }

    func pixelBytes(from bytes: [UInt8]) throws -> [UInt8] {
        guard bytes.count == 1 else { throw FakeImageError() }
        return [UInt8](repeating: bytes[0], count: pixelsPerImage)
    }
}

struct FakeImageError: Error, CustomStringConvertible {
    var description: String { "not a fake image" }
}
