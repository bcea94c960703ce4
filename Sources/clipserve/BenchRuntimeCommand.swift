import ArgumentParser
import CLIPModel
import Foundation
import InferenceCore
import InferenceRuntime
import Tuning

/// `clipserve bench runtime`: the serving runtime (batcher, worker threads, batch fill) against a simulated device.
struct BenchRuntimeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime",
        abstract: "Measure the serving runtime's own overhead against a simulated device of known speed.",
        discussion: """
            Runs the real runtime (dynamic batcher, one worker thread per context, batches written into each \
            context's staging buffer, as RGB bytes, by several threads) over a simulated device that takes \
            --device-us-per-image per image of each batch's power-of-two profile, batches queued one after another \
            as on a GPU stream (the device never waits for a host thread to wake), and drives it \
            in-process with closed-loop clients sending 224 px preprocessed pixels (bytes), one image per request, as \
            `clipserve tune` does. Reports images/s, latency, mean batch and CPU use per concurrency, the share of \
            the time the simulated device was busy, and images/s as a share of the device's own speed at the largest \
            batch: what the host side of the server leaves of a GPU of that speed (24 µs per image is about \
            ViT-B-32 on an H200 at batch 256). Needs no GPU.

            With --engine, the same runtime and clients drive the real engine of --model (--backend, --precision, \
            --devices as elsewhere) instead: a fixed configuration measured as `tune` measures its candidates, with \
            the GPU's utilisation (NVML) in place of the simulated device's busy share.
            """)

    @Flag(help: "Drive the real engine of --model instead of the simulated device.")
    var engine = false

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Contexts made high-priority, as tune makes one of several on a GPU (0 by default here).")
    var highPriorityInstances = 0

    @Option(help: "Simulated device time per image of a batch's profile, in microseconds.")
    var deviceUsPerImage: Double = 24

    @Option(help: "Execution contexts.")
    var instances = 2

    @Option(help: "Largest batch, in images.")
    var maxBatchSize = 256

    @Option(help: "Longest wait for a fuller batch while a context is idle, in microseconds (as serve's).")
    var maxQueueDelay = 1000

    @Option(help: "Closed-loop clients, or a comma-separated list run in turn.")
    var concurrency = BatchSizeList([1024])

    @Option(help: "Seconds per concurrency.")
    var seconds: Double = 4

    @Flag(help: "Print one JSON object per concurrency, one per line.")
    var json = false

    func validate() throws {
        guard deviceUsPerImage > 0 else { throw ValidationError("--device-us-per-image must be positive") }
        guard instances >= 1, maxBatchSize >= 1 else { throw ValidationError("--instances and --max-batch-size must be at least 1") }
        guard maxQueueDelay >= 0 else { throw ValidationError("--max-queue-delay must not be negative") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive, got \(seconds)") }
        guard highPriorityInstances >= 0, highPriorityInstances < instances || highPriorityInstances == 0 else {
            throw ValidationError("--high-priority-instances must be below --instances")
        }
    }

    func run() async throws {
        let simulated: SimulatedEngine?
        let driven: any EmbeddingEngine
        if engine {
            let loaded = try CLIPModelLoader.load(modelOptions.model)
            (simulated, driven) = (nil, try EngineFactory.make(options: modelOptions, model: loaded))
        } else {
            let spec = VisionTowerSpec(imageSize: 224, patchSize: 32, width: 768, layers: 12, headWidth: 64, embedDim: 512)
            let device = SimulatedEngine(spec: spec, microsecondsPerImage: deviceUsPerImage)
            (simulated, driven) = (device, device)
        }
        let spec = driven.spec
        var generator = SplitMix64(seed: 0x7E57)
        let pixels = (0..<8).map { _ in (0..<spec.pixelsPerImage).map { _ in UInt8(generator.nextUnit() * 255.99) } }
        var base = RuntimeConfiguration()
        base.requestTimeout = .seconds(600)
        base.maxQueueSize = max(base.maxQueueSize, 2 * (concurrency.sizes.max() ?? 1))
        base.highPriorityInstances = highPriorityInstances
        let target = RuntimeTuneTarget(
            engine: driven, preprocessor: PassThroughPreprocessor(), load: .pixels(pixels), base: base,
            highPriorityContextWhenSeveral: false,
            readDevice: simulated == nil ? RuntimeTuneTarget.deviceReader(for: driven) : nil)
        let candidate = Candidate(instances: instances, maxBatchSize: maxBatchSize, maxQueueDelayMicroseconds: maxQueueDelay)
        if !json {
            print("clipserve bench runtime: \(candidate), \(highPriorityInstances) high-priority, over "
                + "\(simulated == nil ? "" : "a ")\(driven.deviceDescription), \(ProcessInfo.processInfo.activeProcessorCount) cores")
            print(simulated == nil
                ? "clients  images/s  p50 ms  p99 ms  mean batch  CPU cores  GPU utilisation"
                : "clients  images/s  p50 ms  p99 ms  mean batch  CPU cores  device busy  of device at max batch")
        }
        try await target.withCandidate(candidate) { probe in
            for clients in concurrency.sizes {
                let busyBefore = simulated?.busyMicroseconds.load(ordering: .relaxed) ?? 0
                let clock = ContinuousClock(), began = clock.now
                let point = try await probe.measure(concurrency: clients, seconds: seconds)
                let wall = (clock.now - began).seconds
                let cores = (point.cpuUtilization ?? 0) * Double(ProcessInfo.processInfo.activeProcessorCount)
                var fields: [String: Any] = [
                    "concurrency": clients, "images_per_second": point.imagesPerSecond,
                    "p50_ms": point.p50Milliseconds, "p99_ms": point.p99Milliseconds,
                    "mean_batch": point.meanBatchSize, "cpu_cores": cores, "errors": point.errors,
                ]
                fields["mean_queue_ms"] = point.meanQueueMilliseconds
                fields["mean_batch_ms"] = point.meanBatchMilliseconds
                fields["mean_latency_ms"] = point.meanLatencyMilliseconds
                fields["mean_admission_ms"] = point.meanAdmissionMilliseconds
                fields["mean_answer_ms"] = point.meanAnswerMilliseconds
                fields["mean_resume_ms"] = point.meanResumeMilliseconds
                var line = String(
                    format: "%7d  %8.0f  %6.1f  %6.1f  %10.1f  %9.2f", clients, point.imagesPerSecond,
                    point.p50Milliseconds, point.p99Milliseconds, point.meanBatchSize, cores)
                if let simulated {
                    // Share of the wall time the simulated device was running batches (padding included, as on a GPU).
                    let busy = Double(simulated.busyMicroseconds.load(ordering: .relaxed) - busyBefore) * 1e-6 / wall
                    let own = simulated.imagesPerSecond(batch: maxBatchSize)
                    fields["device_busy"] = busy
                    fields["device_images_per_second_at_max_batch"] = own
                    line += String(format: "  %9.1f%%  %9.1f%%", 100 * busy, 100 * point.imagesPerSecond / own)
                } else {
                    fields["model"] = modelOptions.model
                    fields["gpu_utilization"] = point.deviceUtilization
                    line += point.deviceUtilization.map { String(format: "  %13.1f%%", 100 * $0) } ?? "  n/a"
                }
                if json {
                    let data = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    print(line)
                }
            }
        }
    }
}

/// The runtime needs a preprocessor; `bench runtime` sends pixels only, so only its normalisation is used.
private struct PassThroughPreprocessor: ImagePreprocessing {
    let normalization = PixelNormalization(PreprocessConfig())

    func pixelBytes(from bytes: [UInt8]) throws -> [UInt8] {
        throw CLIError("bench runtime sends preprocessed pixels only")
    }
}
