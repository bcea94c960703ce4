import ArgumentParser
import CLIPModel
import CPUBackend
import CUDABackend
import Dispatch
import Foundation
import InferenceCore
import SafeTensors
import Synchronization

/// `clipserve verify`: runs models on a backend against the CPU fp32 engine, layer by layer, and exits non-zero when
/// any image's final cosine misses the precision's target.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a backend against the CPU fp32 engine layer by layer (fixtures and random-weight models).")

    @Option(name: .long, parsing: .upToNextOption,
            help: "Models: a directory, random:NAME, or 'fixtures' for every model under --fixtures. Default: fixtures plus random ViT-B-32, ViT-B-16, ViT-L-14, ViT-H-14.")
    var model: [String] = []

    @Option(name: .long, help: "Backend to check: cuda.")
    var backend: String = "cuda"

    @Option(name: .long, help: "Precision: fp32, fp16 or bf16.")
    var precision: Precision = .fp16

    @Option(name: .long, help: "Threads driving the contexts at once in the concurrency check (0 skips it).")
    var concurrency: Int = 0

    @Option(name: .long, help: "Fixture folder (Tests/Fixtures layout).")
    var fixtures: String = "Tests/Fixtures"

    @Option(name: .long, help: "Random images per random-weight model.")
    var images: Int = 2

    @Option(help: ArgumentHelp("GPUs to verify, each against the same CPU reference: all, or ordinals like 0,1.", valueName: "all|0,1"))
    var devices: DeviceSelection = .all

    @Option(
        name: .customLong("cuda-lib-path"),
        help: ArgumentHelp(
            "Directory to search for the CUDA libraries; repeatable (env CLIPSERVE_CUDA_LIB_PATH, colon-separated).",
            valueName: "dir"))
    var cudaLibPathOptions: [String] = []

    @Option(name: .long, help: "After verifying, time device-resident forward passes at these batch sizes (e.g. 1,64,256).")
    var benchBatches: String?

    @Option(name: .long, help: "Forward passes timed per batch size.")
    var benchIterations: Int = 20

    @Flag(name: .long, help: "Print every layer's error, not only the summary per model.")
    var verbose = false

    func run() throws {
        guard backend == "cuda" else { throw ValidationError("only --backend cuda can be verified against the CPU engine") }
        // CLIPSERVE_CUDA_LIB_PATH is already on the command line (`ConfigurableCommand`).
        CUDALibraries.setSearchPath(cudaLibPathOptions.isEmpty ? nil : cudaLibPathOptions.joined(separator: ":"))
        guard CUDAEngine.isAvailable else {
            do { _ = try CUDAEngine.describeDevices() } catch { throw VerifyFailure(message: "CUDA unavailable: \(error)") }
            throw VerifyFailure(message: "CUDA unavailable: no GPU")
        }
        for line in try CUDAEngine.describeDevices() { print(line) }
        let ordinals: [Int]
        do {
            ordinals = try devices.ordinals(available: try CUDAEngine.availableDeviceCount())
        } catch {
            throw VerifyFailure(message: String(describing: error))
        }
        let target: Float = precision == .fp32 ? 0.99999 : 0.9995
        var references = model
        if references.isEmpty { references = ["fixtures", "random:ViT-B-32", "random:ViT-B-16", "random:ViT-L-14", "random:ViT-H-14"] }
        references = references.flatMap { $0 == "fixtures" ? fixtureModels() : [$0] }
        var failures: [String] = []
        var summary: [String] = []
        for reference in references {
            for result in try verify(reference: reference, ordinals: ordinals, target: target) {
                summary.append(result.line)
                if !result.passed { failures.append(reference) }
            }
        }
        print("\n== summary (\(precision.rawValue), GPUs \(ordinals.map(String.init).joined(separator: ",")), target cosine >= \(target)) ==")
        summary.forEach { print($0) }
        if !failures.isEmpty {
            throw VerifyFailure(message: "FAILED: \(Array(Set(failures)).sorted().joined(separator: ", "))")
        }
        print("all models passed")
    }

    private func fixtureModels() -> [String] {
        let folder = URL(fileURLWithPath: fixtures).appendingPathComponent("models")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.sorted().map { folder.appendingPathComponent($0).path }
    }

    /// Inputs for a model: the fixture's `input.S` tensors when an expected file exists, else seeded random pixels.
    private func inputs(for loaded: LoadedModel, reference: String) throws -> (names: [String], pixels: [[Float]], expected: SafeTensorsFile?) {
        let name = URL(fileURLWithPath: reference).lastPathComponent
        let expectedURL = URL(fileURLWithPath: fixtures).appendingPathComponent("expected/\(name).safetensors")
        if !reference.hasPrefix("random:"), FileManager.default.fileExists(atPath: expectedURL.path) {
            let file = try SafeTensorsFile(url: expectedURL)
            let stems = file.names.filter { $0.hasPrefix("input.") }.map { String($0.dropFirst(6)) }.sorted()
            return (stems, try stems.map { try file.tensor("input.\($0)").floats() }, file)
        }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let count = loaded.spec.pixelsPerImage
        let pixels = (0..<images).map { _ in
            (0..<count).map { _ -> Float in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(Double(state >> 11) / Double(1 << 53)) * 4 - 2
            }
        }
        return ((0..<images).map { "random\($0)" }, pixels, nil)
    }

    /// Checks `reference` on each GPU of `ordinals` against one CPU fp32 reference; one summary line per GPU.
    private func verify(reference: String, ordinals: [Int], target: Float) throws -> [(passed: Bool, line: String)] {
        print("\n== \(reference) ==")
        let loaded = try CLIPModelLoader.load(reference)
        print(loaded.summary)
        let spec = loaded.spec
        let cpu = try CPUEngine(spec: spec, weights: loaded.weights)
        let (names, pixels, expected) = try inputs(for: loaded, reference: reference)
        let cpuContext = try cpu.makeContext(ExecutionContextConfiguration(maxBatchSize: 1))
        let cpuLayers = try pixels.map { image in
            try image.withUnsafeBufferPointer { try cpuContext.captureLayers(pixels: $0, count: 1) }
        }
        return try ordinals.map { ordinal in
            try verify(
                reference: reference, loaded: loaded, ordinal: ordinal, names: names, pixels: pixels,
                cpuLayers: cpuLayers, expected: expected, target: target)
        }
    }

    private func verify(
        reference: String, loaded: LoadedModel, ordinal: Int, names: [String], pixels: [[Float]],
        cpuLayers allCPULayers: [[LayerOutput]], expected: SafeTensorsFile?, target: Float
    ) throws -> (passed: Bool, line: String) {
        let spec = loaded.spec
        let started = Date()
        let gpu = try CUDAEngine(spec: spec, weights: loaded.weights, precision: precision, deviceOrdinal: ordinal)
        print("gpu engine ready in \(String(format: "%.2f", Date().timeIntervalSince(started))) s: \(gpu.deviceDescription)")
        if let reason = gpu.tensorCoreAttentionError { print("tensor-core attention unavailable, using the scalar kernel: \(reason)") }
        let gpuContext = try gpu.makeContext(ExecutionContextConfiguration(maxBatchSize: max(8, names.count)))
        var worstCosine: Float = 1
        var worstLayer = ("", Float(0))
        var servedEmbeddings: [[Float]] = []
        for (index, name) in names.enumerated() {
            let image = pixels[index]
            let gpuLayers = try image.withUnsafeBufferPointer { try gpuContext.captureLayers(pixels: $0, count: 1) }
            let cpuLayers = allCPULayers[index]
            let reference = Dictionary(cpuLayers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for layer in gpuLayers {
                guard let cpuLayer = reference[layer.name] else { continue }
                let error = maxAbsDifference(layer.values, cpuLayer.values)
                let scale = cpuLayer.values.reduce(Float(0)) { max($0, abs($1)) }
                if error > worstLayer.1 { worstLayer = (layer.name, error) }
                if verbose || layer.name == "ln_post" || layer.name == "projection" || layer.name == "embeddings" {
                    print("  \(name) \(layer.name): max|gpu-cpu| = \(format(error)) (max|cpu| = \(format(scale)))")
                }
            }
            let g = gpuLayers.last!.values, c = cpuLayers.last!.values
            let cosineCPU = cosine(g, c)
            var line = "  \(name): cosine(gpu, cpu fp32) = \(String(format: "%.7f", cosineCPU))"
            if let expected, let openCLIP = try? expected.tensor("embedding.\(name)").floats() {
                line += ", cosine(gpu, open_clip) = \(String(format: "%.7f", cosine(g, openCLIP)))"
            }
            // The served path (graph replay, pinned copies) must match the captured eager pass.
            let served = try gpuContext.embed(image, count: 1, normalize: false, embedDim: spec.embedDim)
            line += ", |embed - capture| = \(format(maxAbsDifference(served, g)))"
            print(line)
            servedEmbeddings.append(served)
            worstCosine = min(worstCosine, cosineCPU, cosine(served, c))
        }
        // Batching invariance: the whole set in one batch against one image at a time.
        let all = pixels.flatMap { $0 }
        let batched = try gpuContext.embed(all, count: names.count, normalize: true, embedDim: spec.embedDim)
        var batchDifference: Float = 0
        for (index, image) in pixels.enumerated() {
            let single = try gpuContext.embed(image, count: 1, normalize: true, embedDim: spec.embedDim)
            let row = Array(batched[(index * spec.embedDim)..<((index + 1) * spec.embedDim)])
            batchDifference = max(batchDifference, maxAbsDifference(single, row))
            worstCosine = min(worstCosine, cosine(single, row))
        }
        print("  batch of \(names.count) vs one at a time (normalised): max diff \(format(batchDifference))")
        // Large batches take other kernels (one attention CTA per head and image; on Hopper the wgmma attention and
        // the fused c_fc + GELU): the set repeated to such a batch, each row against the CPU and against the image
        // served alone.
        let large = max(gpu.wholeHeadAttentionBatch, gpu.fusedMLPBatch ?? 0, names.count)
        let largeContext = try gpu.makeContext(ExecutionContextConfiguration(maxBatchSize: large))
        let repeated = (0..<large).flatMap { pixels[$0 % names.count] }
        let largeBatch = try largeContext.embed(repeated, count: large, normalize: false, embedDim: spec.embedDim)
        var largeCosine: Float = 1, largeDifference: Float = 0
        for row in 0..<large {
            let values = Array(largeBatch[(row * spec.embedDim)..<((row + 1) * spec.embedDim)])
            largeCosine = min(largeCosine, cosine(values, allCPULayers[row % names.count].last!.values))
            largeDifference = max(largeDifference, maxAbsDifference(values, servedEmbeddings[row % names.count]))
        }
        worstCosine = min(worstCosine, largeCosine)
        print(
            "  batch of \(large) (the set repeated): worst cosine(gpu, cpu fp32) \(String(format: "%.7f", largeCosine)), "
                + "max diff vs one at a time \(format(largeDifference))")
        let byteMismatches = try byteInputCheck(context: gpuContext, loaded: loaded, count: names.count)
        print("  RGB bytes normalised on the GPU vs on the host: \(byteMismatches) values differ")
        var passed = worstCosine >= target && byteMismatches == 0
        if concurrency > 0 {
            let mismatches = try concurrencyCheck(engine: gpu, pixels: pixels, embedDim: spec.embedDim)
            print("  concurrency \(concurrency): \(mismatches) results differ from the serial result")
            passed = passed && mismatches == 0
        }
        var line = "\(passed ? "PASS" : "FAIL") \(reference) on cuda:\(ordinal): worst cosine \(String(format: "%.7f", worstCosine)), "
            + "largest layer error \(format(worstLayer.1)) at \(worstLayer.0)"
        if let benchBatches {
            line += try bench(engine: gpu, batches: benchBatches)
        }
        return (passed, line)
    }

    /// Decoded images reach the GPU as bytes and are normalised there: a batch of random bytes that way must give
    /// bit for bit the embeddings of the same bytes normalised on the host and uploaded as values.
    private func byteInputCheck(context: any ExecutionContext, loaded: LoadedModel, count: Int) throws -> Int {
        let spec = loaded.spec, per = spec.pixelsPerImage
        let normalization = PixelNormalization(loaded.preprocess)
        var generator = SplitMix64(seed: 0xB17E5)
        let bytes = (0..<(count * per)).map { _ in UInt8(generator.nextUnit() * 255.99) }
        var values = [Float](repeating: 0, count: count * per)
        bytes.withUnsafeBufferPointer { source in
            values.withUnsafeMutableBufferPointer { normalization.expand(source, plane: spec.imageSize * spec.imageSize, into: $0) }
        }
        let fromValues = try context.embed(values, count: count, normalize: true, embedDim: spec.embedDim)
        guard let staging = context.byteStagingBuffer(count: count) else {
            throw CLIError("cuda context offers no byte input")
        }
        bytes.withUnsafeBytes { staging.base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        var fromBytes = [Float](repeating: .nan, count: count * spec.embedDim)
        try fromBytes.withUnsafeMutableBufferPointer { out in
            try context.embedStagedBytes(count: count, normalization: normalization, normalize: true, into: out)
        }
        return zip(fromValues, fromBytes).filter { $0.bitPattern != $1.bitPattern }.count
    }

    /// `concurrency` threads embed images one at a time through a pool of contexts; every result must equal the
    /// serial result bit for bit.
    private func concurrencyCheck(engine: CUDAEngine, pixels: [[Float]], embedDim: Int) throws -> Int {
        let contexts = try (0..<min(concurrency, 8)).map { i in
            ContextBox(try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: 4, priority: i % 2 == 0 ? .normal : .high)))
        }
        let serial = try pixels.map { try contexts[0].context.embed($0, count: 1, normalize: true, embedDim: embedDim) }
        let pool = Mutex(contexts)
        let mismatches = Atomic<Int>(0)
        let failures = Mutex<[String]>([])
        let rounds = 8
        DispatchQueue.concurrentPerform(iterations: concurrency) { worker in
            for round in 0..<rounds {
                // More threads than contexts: spin until one is free (the check is about correctness, not speed).
                var taken: ContextBox?
                while taken == nil { taken = pool.withLock { $0.popLast() } }
                let index = (worker + round) % pixels.count
                do {
                    let result = try taken!.context.embed(pixels[index], count: 1, normalize: true, embedDim: embedDim)
                    if result != serial[index] { mismatches.add(1, ordering: .relaxed) }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                    mismatches.add(1, ordering: .relaxed)
                }
                pool.withLock { $0.append(taken!) }
            }
        }
        if let first = failures.withLock({ $0.first }) { print("  concurrency error: \(first)") }
        return mismatches.load(ordering: .relaxed)
    }

    /// Device-resident throughput (CUDA events around graph replays, no host copies), as the PyTorch peers measure.
    private func bench(engine: CUDAEngine, batches: String) throws -> String {
        let sizes = batches.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard let largest = sizes.max() else { return "" }
        let context = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: largest))
        guard let cuda = context as? CUDAExecutionContext else { return "" }
        var parts: [String] = []
        if let stages = try? cuda.profileStages(batch: largest) {
            let total = stages.reduce(0) { $0 + $1.milliseconds }
            print("  stage profile, batch \(largest), eager (\(String(format: "%.2f", total)) ms):")
            for (stage, ms) in stages {
                print("    \(stage.padding(toLength: 20, withPad: " ", startingAt: 0)) \(String(format: "%8.3f", ms)) ms  \(String(format: "%5.1f", ms / total * 100))%")
            }
        }
        for size in sizes {
            let seconds = try cuda.timeDeviceResident(batch: size, iterations: benchIterations)
            let rate = Double(size) / seconds
            print("  bench batch \(size): \(String(format: "%.3f", seconds * 1000)) ms/batch, \(String(format: "%.0f", rate)) img/s")
            parts.append("b\(size) \(String(format: "%.0f", rate)) img/s (\(String(format: "%.2f", seconds * 1000)) ms)")
        }
        return "; " + parts.joined(separator: ", ")
    }
}

/// Moves a context between the worker threads of the concurrency check.
private final class ContextBox: @unchecked Sendable {
    // @unchecked: a box is held by one thread at a time; the pool's Mutex hands it over.
    let context: any ExecutionContext
    init(_ context: any ExecutionContext) { self.context = context }
}

/// A verification failure: prints its message and exits non-zero.
struct VerifyFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

private func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    var worst: Float = 0
    for i in a.indices { worst = max(worst, abs(a[i] - b[i])) }
    return worst
}

private func cosine(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return 0 }
    var dot: Double = 0, na: Double = 0, nb: Double = 0
    for i in a.indices {
        dot += Double(a[i]) * Double(b[i])
        na += Double(a[i]) * Double(a[i])
        nb += Double(b[i]) * Double(b[i])
    }
    return na > 0 && nb > 0 ? Float(dot / (na.squareRoot() * nb.squareRoot())) : 0
}

private func format(_ value: Float) -> String { String(format: "%.3g", value) }
