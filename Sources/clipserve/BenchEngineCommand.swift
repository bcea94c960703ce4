import ArgumentParser
import CLIPModel
import CPUBackend
import CUDABackend
import Foundation
import InferenceCore

/// Comma-separated batch sizes, e.g. `1,8,64`.
struct BatchSizeList: ExpressibleByArgument, Sendable {
    let sizes: [Int]

    init(_ sizes: [Int]) { self.sizes = sizes }

    init?(argument: String) {
        let sizes = argument.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
        self.sizes = sizes.compactMap { $0 }
    }

    var defaultValueDescription: String { sizes.map(String.init).joined(separator: ",") }
}

/// `clipserve bench engine`: the engine alone, on random pixels, without preprocessing or HTTP.
struct BenchEngineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Measure an engine's throughput and batch latency on random pixels.",
        discussion: """
            Builds the engine as `serve` would, runs --warmup batches, then timed batches for --seconds per batch \
            size. Reports images/s and the p50/p99 batch latency (nearest rank over every timed batch). On CUDA the \
            timed batches reuse the input the warm-up uploaded (engine only, no host copies), as the PyTorch peers \
            in scripts/bench_gpu_peers.py are measured.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .customLong("batch-size"), help: "Images per batch, or a comma-separated list run in turn (e.g. 1,8,64).")
    var batchSizes = BatchSizeList([8])

    @Option(help: "Seconds of timed batches per batch size.")
    var seconds: Double = 10

    @Option(help: "Untimed batches run first, per batch size.")
    var warmup: Int = 3

    @Flag(help: "Print one JSON object per batch size, one per line.")
    var json = false

    @Flag(help: "Also report time per op (CPU backend only).")
    var profile = false

    func validate() throws {
        guard seconds > 0 else { throw ValidationError("--seconds must be positive, got \(seconds)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative, got \(warmup)") }
    }

    func run() async throws {
        let model = try CLIPModelLoader.load(modelOptions.model)
        let engine = try EngineFactory.make(options: modelOptions, model: model)
        if !json {
            print(model.summary)
            print("engine: \(engine.deviceDescription), precision \(engine.precision.rawValue)")
        }
        for batch in batchSizes.sizes {
            let settings = EngineBenchmark.Settings(batchSize: batch, seconds: seconds, warmup: warmup, profile: profile)
            // BLAS and CUDA synchronisation block: run them on a thread of their own, not the cooperative pool.
            let result = try await runOnDedicatedThread { try EngineBenchmark.run(engine: engine, settings: settings) }
            let report = EngineBenchmark.Report(
                model: modelOptions.model, architecture: model.architecture, backend: EngineFactory.backendName(of: engine),
                device: engine.deviceDescription, precision: engine.precision.rawValue,
                threads: EngineFactory.threads(of: engine), batchSize: batch, result: result,
                flopsPerImage: model.spec.flopsPerImage)
            print(json ? try report.jsonLine() : report.text)
        }
    }
}

/// Runs `body` on a new thread and resumes with its result.
func runOnDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}

/// The timing loop of `bench engine`, apart from argument parsing.
enum EngineBenchmark {
    /// What to run.
    struct Settings: Sendable {
        /// Images per batch.
        var batchSize: Int
        /// Seconds of timed batches.
        var seconds: Double
        /// Untimed batches first.
        var warmup: Int
        /// Collect the CPU engine's per-op times.
        var profile: Bool
    }

    /// What was measured.
    struct Result: Sendable {
        /// Seconds per timed batch, in order.
        var batchSeconds: [Double]
        /// CPU seconds the whole process used during the timed batches (all threads); on a shared machine this
        /// measures the work better than wall time does.
        var processCPUSeconds: Double
        /// Milliseconds per batch per op (CPU with `profile` only), largest first.
        var opMilliseconds: [(op: String, ms: Double)]
    }

    /// Runs warm-up and timed batches of deterministic random pixels on one execution context.
    static func run(engine: any EmbeddingEngine, settings: Settings) throws -> Result {
        let spec = engine.spec, batch = settings.batchSize
        let context = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: batch))
        var generator = SplitMix64(seed: 0x5EED)
        // Roughly the range of normalised pixels (about −1.8 to 2.1).
        let pixels = (0..<batch * spec.pixelsPerImage).map { _ in Float(generator.nextUnit() * 3.8 - 1.8) }
        var output = [Float](repeating: 0, count: batch * spec.embedDim)
        // CUDA: the warm-up embeds upload these pixels once; timed batches then replay the forward pass on the
        // device-resident input (graph launch + stream sync), as the PyTorch peers are measured.
        let cudaContext = context as? CUDAExecutionContext
        var warmedUp = false
        func once() throws {
            if let cudaContext, warmedUp {
                try cudaContext.forwardDeviceResident(count: batch)
                return
            }
            try pixels.withUnsafeBufferPointer { p in
                try output.withUnsafeMutableBufferPointer { o in
                    try context.embed(pixels: p, count: batch, normalize: true, into: o)
                }
            }
        }
        for _ in 0..<max(settings.warmup, 1) { try once() }
        warmedUp = true
        let cpuContext = context as? CPUExecutionContext
        if settings.profile { cpuContext?.enableProfiling() }
        var samples: [Double] = []
        let cpuStart = processCPUTime()
        let clock = ContinuousClock()
        let start = clock.now
        while samples.isEmpty || (clock.now - start).seconds < settings.seconds {
            let t0 = clock.now
            try once()
            samples.append((clock.now - t0).seconds)
        }
        let cpuSeconds = processCPUTime() - cpuStart
        let ops = (cpuContext?.profile() ?? []).map { (op: $0.op, ms: $0.seconds / Double(samples.count) * 1000) }
        return Result(batchSeconds: samples, processCPUSeconds: cpuSeconds, opMilliseconds: ops)
    }

    /// One batch size's numbers, as text or a JSON line.
    struct Report {
        var model: String
        var architecture: String?
        var backend: String
        var device: String
        var precision: String
        var threads: Int?
        var batchSize: Int
        var result: Result
        var flopsPerImage: Double

        var imagesPerSecond: Double { Double(batchSize * result.batchSeconds.count) / result.batchSeconds.reduce(0, +) }
        var p50Milliseconds: Double { percentile(0.50) * 1000 }
        var p99Milliseconds: Double { percentile(0.99) * 1000 }
        /// Process CPU time per image, all threads.
        var cpuMillisecondsPerImage: Double {
            result.processCPUSeconds / Double(batchSize * result.batchSeconds.count) * 1000
        }

        /// Nearest-rank percentile of the batch latencies.
        func percentile(_ q: Double) -> Double {
            let sorted = result.batchSeconds.sorted()
            let rank = Int((q * Double(sorted.count)).rounded(.up))
            return sorted[min(max(rank, 1), sorted.count) - 1]
        }

        var text: String {
            var lines = [
                "batch \(batchSize): \(fixed(imagesPerSecond, 2)) images/s, batch latency p50 \(fixed(p50Milliseconds, 1)) ms, "
                    + "p99 \(fixed(p99Milliseconds, 1)) ms (\(result.batchSeconds.count) batches, "
                    + "\(fixed(cpuMillisecondsPerImage, 1)) CPU ms/image, "
                    + "\(fixed(imagesPerSecond * flopsPerImage / 1e9, 1)) GFLOP/s) | \(model) | \(backend) \(precision)"
                    + (threads.map { " | \($0) threads" } ?? ""),
            ]
            let total = result.opMilliseconds.reduce(0) { $0 + $1.ms }
            for (op, ms) in result.opMilliseconds {
                let share = fixed(ms / total * 100, 1)
                lines.append("  \(op.padding(toLength: 14, withPad: " ", startingAt: 0)) \(fixed(ms, 2)) ms/batch  \(share)%")
            }
            return lines.joined(separator: "\n")
        }

        func jsonLine() throws -> String {
            var object: [String: Any] = [
                "model": model, "backend": backend, "device": device, "precision": precision,
                "batch_size": batchSize, "images_per_second": imagesPerSecond, "p50_ms": p50Milliseconds,
                "p99_ms": p99Milliseconds, "batches": result.batchSeconds.count,
                "seconds": result.batchSeconds.reduce(0, +), "cpu_ms_per_image": cpuMillisecondsPerImage, "gflops_per_second": imagesPerSecond * flopsPerImage / 1e9,
                "threads": threads.map { $0 as Any } ?? NSNull(),
            ]
            if let architecture { object["architecture"] = architecture }
            if !result.opMilliseconds.isEmpty {
                object["op_ms_per_batch"] = Dictionary(uniqueKeysWithValues: result.opMilliseconds.map { ($0.op, $0.ms) })
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            return String(decoding: data, as: UTF8.self)
        }
    }
}

/// CPU time this process has used, all threads, in seconds.
private func processCPUTime() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9
}

/// `value` with `decimals` decimals.
private func fixed(_ value: Double, _ decimals: Int) -> String {
    String(format: "%.\(decimals)f", value)
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) * 1e-18
    }
}
