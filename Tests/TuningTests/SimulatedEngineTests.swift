import Foundation
import InferenceCore
import InferenceRuntime
import Testing
import Tuning

@testable import clipserve

/// `clipserve bench runtime`'s simulated device: results still come from each image's own pixels (through the fp16
/// staging buffer), batches take the device in turn for their profile's time, and the runtime over it stays within
/// what the device allows (checked by invariants, not timings, so a busy CI machine cannot fail it).
@Suite("SimulatedEngine")
struct SimulatedEngineTests {
    let spec = VisionTowerSpec(imageSize: 32, patchSize: 16, width: 64, layers: 1, headWidth: 32, embedDim: 8)

    @Test func embeddingsAreEachImagesOwnStagedPixelsAndTheDeviceTimeIsTheProfiles() throws {
        let engine = SimulatedEngine(spec: spec, microsecondsPerImage: 100, launchMicroseconds: 30)
        let context = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: 8))
        let per = spec.pixelsPerImage
        let pixels = (0..<(3 * per)).map { Float($0 % per) * 0.001 + Float($0 / per) }
        var output = [Float](repeating: .nan, count: 3 * spec.embedDim)
        try pixels.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { out in
                try context.embed(pixels: input, count: 3, normalize: false, into: out)
            }
        }
        for image in 0..<3 {
            for j in 0..<spec.embedDim {
                #expect(output[image * spec.embedDim + j] == Float(Float16(pixels[image * per + j])))
            }
        }
        // Three images run on the profile of four: 4 × 100 + 30 µs.
        #expect(engine.busyMicroseconds.load(ordering: .relaxed) == 430)
        // Bytes: the same device time, and the embeddings are the normalised bytes.
        let normalization = PixelNormalization(PreprocessConfig())
        let staging = try #require(context.byteStagingBuffer(count: 2))
        #expect(staging.encoding == .uint8)
        for i in 0..<(2 * per) { staging.base.storeBytes(of: UInt8(i % 251), toByteOffset: i, as: UInt8.self) }
        var fromBytes = [Float](repeating: .nan, count: 2 * spec.embedDim)
        try fromBytes.withUnsafeMutableBufferPointer { out in
            try context.embedStagedBytes(count: 2, normalization: normalization, normalize: false, into: out)
        }
        for image in 0..<2 {
            for j in 0..<spec.embedDim {
                #expect(fromBytes[image * spec.embedDim + j] == normalization.table[(image * per + j) % 251])
            }
        }
        #expect(engine.busyMicroseconds.load(ordering: .relaxed) == 430 + 230)
        #expect(abs(engine.imagesPerSecond(batch: 4) - 4 / 430e-6) < 1e-6)
        #expect(throws: EngineError.batchTooLarge(requested: 9, maximum: 8)) {
            var big = [Float](repeating: 0, count: 9 * spec.embedDim)
            try big.withUnsafeMutableBufferPointer { out in
                try context.embedStaged(count: 9, normalize: false, into: out)
            }
        }
    }

    @Test func theRuntimeOverItNeverBeatsTheDeviceAndKeepsItBusy() async throws {
        let engine = SimulatedEngine(spec: spec, microsecondsPerImage: 200, launchMicroseconds: 30)
        let pixels = (0..<4).map { seed in [UInt8](repeating: UInt8(seed), count: spec.pixelsPerImage) }
        var base = RuntimeConfiguration()
        base.maxQueueSize = 4096
        let target = RuntimeTuneTarget(
            engine: engine, preprocessor: BytePreprocessor(pixelsPerImage: spec.pixelsPerImage), load: .pixels(pixels),
            base: base, highPriorityContextWhenSeveral: false, readDevice: nil)
        try await target.withCandidate(Candidate(instances: 2, maxBatchSize: 8, maxQueueDelayMicroseconds: 500)) { probe in
            let before = engine.busyMicroseconds.load(ordering: .relaxed)
            let point = try await probe.measure(concurrency: 64, seconds: 0.5)
            let busy = Double(engine.busyMicroseconds.load(ordering: .relaxed) - before) * 1e-6
            #expect(point.errors == 0)
            #expect(point.requests > 0)
            // One device: images/s can never pass its own speed at the largest batch, and every answered image
            // cost the device at least its own 200 µs (padding only adds). Neither depends on how loaded the
            // machine running the test is.
            #expect(point.imagesPerSecond <= engine.imagesPerSecond(batch: 8) * 1.05)
            #expect(busy >= Double(point.requests) * 200e-6 * 0.999, "\(point.requests) images, device ran \(busy) s")
        }
    }
}

/// `clipserve bench runtime --engine`: the same runtime and clients over a real engine (here the CPU one, on a fixture
/// model) at a fixed configuration.
@Suite("bench runtime --engine")
struct BenchRuntimeEngineTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models/oc-tiny").path

    @Test func drivesTheRealEngineOfTheModel() async throws {
        let command = try BenchRuntimeCommand.parse([
            "--engine", "--backend", "cpu", "--model", Self.fixture, "--instances", "2", "--max-batch-size", "4",
            "--concurrency", "1,8", "--seconds", "0.3", "--json",
        ])
        try await command.run()
    }

    @Test func highPriorityContextsMustLeaveANormalOne() {
        #expect(throws: (any Error).self) {
            try BenchRuntimeCommand.parse(["--instances", "2", "--high-priority-instances", "2"])
        }
        #expect(throws: (any Error).self) {
            try BenchRuntimeCommand.parse(["--instances", "1", "--high-priority-instances", "1"])
        }
        #expect((try? BenchRuntimeCommand.parse(["--instances", "3", "--high-priority-instances", "1"])) != nil)
    }
}
