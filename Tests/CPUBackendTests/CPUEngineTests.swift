import Foundation
import InferenceCore
import Testing

@testable import CPUBackend

/// The whole forward pass against `NaiveViT`, plus batching invariance, concurrency and error paths.
@Suite("CPU engine")
struct CPUEngineTests {
    /// Absolute tolerance for every captured layer of the small tower (values are O(1–10)); fp32 GEMMs with K ≤ 400
    /// against a double-precision reference stay near 1e-5.
    static let layerTolerance = 1e-4

    /// The matmul kernels this CPU can run: OpenBLAS always, AVX-512 where present.
    static let availableKernels = CPUMatmulKernels.allCases.filter { $0 != .avx512 || CPUMatmulKernels.avx512Available }

    @Test(arguments: [Activation.gelu, .quickGELU], availableKernels)
    func everyLayerMatchesNaiveReference(_ activation: Activation, kernels: CPUMatmulKernels) throws {
        let spec = TestModels.smallSpec(activation: activation)
        let weights = TestModels.weights(for: spec)
        let count = 3
        let pixels = TestModels.pixels(for: spec, count: count)
        let engine = try CPUEngine(spec: spec, weights: weights, threads: 2, kernels: kernels)
        #expect(engine.kernels == kernels)
        let context = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: 4))
        let got = try pixels.withUnsafeBufferPointer { try context.captureLayers(pixels: $0, count: count) }
        let expected = NaiveViT(spec: spec, weights: weights).layers(pixels: pixels, count: count)
        #expect(got.map(\.name) == expected.map(\.name))
        for (layer, reference) in zip(got, expected) {
            let comparison = Comparison(expected: reference.values, got: layer.values)
            #expect(layer.shape.reduce(1, *) == layer.values.count)
            #expect(comparison.maxAbsError < Self.layerTolerance, "first diverging layer \(layer.name): \(comparison)")
            if comparison.maxAbsError >= Self.layerTolerance { break }
        }
        #expect(got.first { $0.name == "embeddings" }?.shape == [count, spec.tokens, spec.width])
        #expect(got.first { $0.name == "ln_post" }?.shape == [count, spec.width])
        #expect(got.last?.shape == [count, spec.embedDim])

        // `embed` skips the last block's non-class rows; it must agree with the full pass.
        let embedded = try context.embed(pixels, count: count, normalize: false, embedDim: spec.embedDim)
        let full = got.last!.values.map(Double.init)
        let comparison = Comparison(expected: full, got: embedded)
        #expect(comparison.maxAbsError < 1e-5 * maxAbs(full), "embed vs captureLayers: \(comparison)")
    }

    @Test func normalizedEmbeddingsAreUnitRowsOfTheRawOnes() throws {
        let spec = TestModels.smallSpec()
        let engine = try CPUEngine(spec: spec, weights: TestModels.weights(for: spec), threads: 2)
        let context = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: 2))
        let pixels = TestModels.pixels(for: spec, count: 2)
        let raw = try context.embed(pixels, count: 2, normalize: false, embedDim: spec.embedDim)
        let unit = try context.embed(pixels, count: 2, normalize: true, embedDim: spec.embedDim)
        for r in 0..<2 {
            let row = raw[(r * spec.embedDim)..<((r + 1) * spec.embedDim)]
            let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            for i in 0..<spec.embedDim {
                #expect(abs(unit[r * spec.embedDim + i] - raw[r * spec.embedDim + i] / norm) < 1e-6)
            }
        }
    }

    /// An image's embedding does not depend on its batch or its neighbours (max abs diff < 1e-5 relative).
    @Test(arguments: [0, 4, 8])
    func batchInvariance(position: Int) throws {
        let spec = TestModels.smallSpec()
        let engine = try CPUEngine(spec: spec, weights: TestModels.weights(for: spec), threads: 2)
        let context = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: 16))
        let image = TestModels.pixels(for: spec, count: 1, seed: 99)
        let others = TestModels.pixels(for: spec, count: 8, seed: 5)
        let n = spec.pixelsPerImage
        let batch = Array(others[0..<(position * n)]) + image + Array(others[(position * n)...])
        let alone = try context.embed(image, count: 1, normalize: false, embedDim: spec.embedDim)
        let inBatch = try context.embed(batch, count: 9, normalize: false, embedDim: spec.embedDim)
        let row = Array(inBatch[(position * spec.embedDim)..<((position + 1) * spec.embedDim)])
        let comparison = Comparison(expected: alone.map(Double.init), got: row)
        #expect(comparison.maxAbsError < 1e-5 * maxAbs(alone.map(Double.init)), "\(comparison)")
    }

    /// Two contexts of one engine on two threads at once give exactly the serial results.
    @Test func concurrentContextsMatchSerial() async throws {
        let spec = TestModels.smallSpec()
        let engine = try CPUEngine(spec: spec, weights: TestModels.weights(for: spec), threads: 2)
        let inputs = [TestModels.pixels(for: spec, count: 5, seed: 11), TestModels.pixels(for: spec, count: 5, seed: 12)]
        let serialContext = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: 5))
        let serial = try inputs.map { try serialContext.embed($0, count: 5, normalize: false, embedDim: spec.embedDim) }
        let concurrent = try await withThrowingTaskGroup(of: (Int, [[Float]]).self) { group in
            for (index, input) in inputs.enumerated() {
                group.addTask {
                    let runs = try await runOnThread {
                        let context = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: 5))
                        return try (0..<6).map { _ in try context.embed(input, count: 5, normalize: false, embedDim: spec.embedDim) }
                    }
                    return (index, runs)
                }
            }
            var results = [[[Float]]](repeating: [], count: inputs.count)
            for try await (index, runs) in group { results[index] = runs }
            return results
        }
        for index in inputs.indices {
            for run in concurrent[index] { #expect(run == serial[index], "context \(index) differs from the serial result") }
        }
    }

    @Test func rejectsBadBuffersAndBatches() throws {
        let spec = TestModels.smallSpec(layers: 1)
        let engine = try CPUEngine(spec: spec, weights: TestModels.weights(for: spec), threads: 1)
        let context = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: 2))
        let pixels = TestModels.pixels(for: spec, count: 3)
        #expect(throws: EngineError.batchTooLarge(requested: 3, maximum: 2)) {
            _ = try context.embed(pixels, count: 3, normalize: false, embedDim: spec.embedDim)
        }
        #expect(throws: EngineError.bufferSize(what: "pixels", expected: 2 * spec.pixelsPerImage, got: 3 * spec.pixelsPerImage)) {
            _ = try context.embed(pixels, count: 2, normalize: false, embedDim: spec.embedDim)
        }
        #expect(throws: EngineError.bufferSize(what: "output", expected: spec.embedDim, got: spec.embedDim + 1)) {
            _ = try context.embed(Array(pixels[0..<spec.pixelsPerImage]), count: 1, normalize: false, embedDim: spec.embedDim + 1)
        }
    }

    @Test func rejectsWeightsOfTheWrongShape() throws {
        let spec = TestModels.smallSpec(layers: 1)
        var weights = TestModels.weights(for: spec)
        weights.blocks[0].fc1Weight = TensorData(shape: [spec.mlpWidth, spec.width + 1], values: .init(repeating: 0, count: spec.mlpWidth * (spec.width + 1)))
        #expect(throws: CPUEngineError.weightShape(
            tensor: "visual.transformer.resblocks.0.mlp.c_fc.weight", expected: [spec.mlpWidth, spec.width],
            got: [spec.mlpWidth, spec.width + 1])) {
            _ = try CPUEngine(spec: spec, weights: weights)
        }
    }

    /// BF16 and F16 checkpoints are converted once to F32 and give the same result as the F32 copy of their values.
    @Test(arguments: [DType.bf16, .f16])
    func halfPrecisionWeightsAreConverted(_ dtype: DType) throws {
        let spec = TestModels.smallSpec(layers: 1)
        let f32 = TestModels.weights(for: spec)
        func rounded(_ t: TensorData) -> (half: TensorData, widened: TensorData) {
            let bits = t.floats().map { dtype == .bf16 ? HalfConversion.bf16(from: $0) : HalfConversion.f16(from: $0) }
            let owner = ByteOwner(count: bits.count * 2)
            bits.withUnsafeBytes { owner.bytes.copyMemory(from: $0) }
            let half = TensorData(dtype: dtype, shape: t.shape, bytes: UnsafeRawBufferPointer(owner.bytes), owner: owner)
            return (half, TensorData(shape: t.shape, values: (0..<half.elementCount).map { half.float(at: $0) }))
        }
        let fc1 = rounded(f32.blocks[0].fc1Weight)
        var halfWeights = f32, widenedWeights = f32
        halfWeights.blocks[0].fc1Weight = fc1.half
        widenedWeights.blocks[0].fc1Weight = fc1.widened
        let pixels = TestModels.pixels(for: spec, count: 1)
        let a = try CPUEngine(spec: spec, weights: halfWeights, threads: 1).makeContext(.init(maxBatchSize: 1))
        let b = try CPUEngine(spec: spec, weights: widenedWeights, threads: 1).makeContext(.init(maxBatchSize: 1))
        #expect(try a.embed(pixels, count: 1, normalize: false, embedDim: spec.embedDim)
                == b.embed(pixels, count: 1, normalize: false, embedDim: spec.embedDim))
    }

    @Test func describesItself() throws {
        let spec = TestModels.smallSpec(layers: 1)
        let engine = try CPUEngine(spec: spec, weights: TestModels.weights(for: spec), threads: 2)
        #expect(engine.precision == .fp32)
        #expect(engine.deviceDescription.hasSuffix("2 threads)"))
        let openBLAS = try CPUEngine(spec: spec, weights: TestModels.weights(for: spec), threads: 1, kernels: .openBLAS)
        #expect(openBLAS.deviceDescription.hasPrefix("cpu (OpenBLAS"))
        #expect(openBLAS.deviceDescription.hasSuffix("1 thread)"))
        #expect(engine.kernels == .automatic)
        if engine.kernels == .avx512 { #expect(engine.deviceDescription.hasPrefix("cpu (AVX-512 fp32 kernels")) }
    }

    /// The forced OpenBLAS fallback (what AVX2-only CPUs run) and the AVX-512 kernels give the same embeddings
    /// within fp32 summation-order noise, single- and multi-threaded.
    @Test(.enabled(if: CPUMatmulKernels.avx512Available), arguments: [1, 2])
    func openBLASFallbackMatchesAVX512(threads: Int) throws {
        let spec = TestModels.smallSpec()
        let weights = TestModels.weights(for: spec)
        let pixels = TestModels.pixels(for: spec, count: 5)
        var outputs: [[Float]] = []
        for kernels in [CPUMatmulKernels.openBLAS, .avx512] {
            let engine = try CPUEngine(spec: spec, weights: weights, threads: threads, kernels: kernels)
            let context = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: 5))
            outputs.append(try context.embed(pixels, count: 5, normalize: false, embedDim: spec.embedDim))
        }
        let reference = outputs[0].map(Double.init)
        let comparison = Comparison(expected: reference, got: outputs[1])
        #expect(comparison.maxAbsError < 1e-5 * maxAbs(reference), "\(comparison)")
    }
}

func maxAbs(_ values: [Double]) -> Double { values.reduce(0) { max($0, abs($1)) } }

/// Runs `body` on a dedicated thread (BLAS blocks; keep it off the cooperative pool).
func runOnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Heap bytes for hand-made half-precision tensors.
final class ByteOwner {
    let bytes: UnsafeMutableRawBufferPointer
    init(count: Int) { bytes = .allocate(byteCount: count, alignment: 16) }
    deinit { bytes.deallocate() }
}
