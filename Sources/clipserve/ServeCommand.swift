import ArgumentParser
import CUDABackend
import CLIPModel
import ClipServeHTTP
import Foundation
import ImageProcessing
import InferenceCore
import InferenceRuntime
import Logging

/// `clipserve serve`: loads a model, builds its engine and serves the OpenAI, KServe v2 and /embed APIs until
/// SIGINT/SIGTERM, then shuts down gracefully (stop accepting, answer everything accepted, exit 0).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve image embeddings over HTTP (OpenAI, KServe v2 / Triton, /embed).",
        discussion: """
            Every option can also be set in a JSON file (--config FILE, or CLIPSERVE_CONFIG), keyed by its long \
            name ({"max-batch-size": 64, "no-normalize": true, "cuda-lib-path": ["/a"]}), and in an environment \
            variable CLIPSERVE_<NAME> (CLIPSERVE_MAX_BATCH_SIZE=64). A flag beats the environment, which beats the \
            file. --print-config shows the result and where each value came from.
            """)

    @OptionGroup var model: ModelOptions

    @Option(help: "Address to bind.")
    var host = "0.0.0.0"

    @Option(help: "TCP port (0 picks a free one; the chosen port is printed).")
    var port = 8000

    @Option(help: "Name the model is served under (default: the model's own name).")
    var modelName: String?

    @Option(help: "Execution contexts (each with its own worker thread) per device; every selected GPU gets this many.")
    var instances = 1

    @Option(help: "Largest batch, in images.")
    var maxBatchSize = 16

    @Option(help: "Longest wait for a fuller batch while a context is idle, in microseconds.")
    var maxQueueDelay = 1000

    @Option(help: "Most images waiting for a batch; more are answered 503 with Retry-After.")
    var maxQueueSize = 1024

    @Option(help: "Request timeout in milliseconds (a request may only shorten it); expired requests get 504.")
    var requestTimeout = 30_000

    @Option(help: "Largest request body in bytes, enforced while it streams in (413 beyond).")
    var maxBodySize = 64 << 20

    @Option(help: "Most images in one request (400 beyond).")
    var maxImagesPerRequest = 32

    @Option(help: "Bearer token required on every route but health and metrics (env CLIPSERVE_API_KEY).")
    var apiKey: String?

    @Option(help: "Threads decoding and preprocessing images (default: the processors this process may use).")
    var preprocessThreads: Int?

    @Flag(help: "Return embeddings as the model computes them instead of L2-normalised.")
    var noNormalize = false

    @OptionGroup var configFile: ConfigFileOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        for (name, value) in [
            ("--instances", instances), ("--max-batch-size", maxBatchSize), ("--max-queue-size", maxQueueSize),
            ("--request-timeout", requestTimeout), ("--max-body-size", maxBodySize),
            ("--max-images-per-request", maxImagesPerRequest), ("--preprocess-threads", preprocessThreads ?? 1),
        ] where value < 1 {
            throw ValidationError("\(name) must be at least 1, got \(value)")
        }
        guard maxQueueDelay >= 0 else { throw ValidationError("--max-queue-delay must be >= 0 µs") }
    }

    func run() async throws {
        var logger = Logger(label: "clipserve")
        logger.logLevel = .info
        let loaded = try CLIPModelLoader.load(model.model)
        let engines = try EngineFactory.makeAll(options: model, model: loaded)
        let engine = engines[0]

        var runtimeConfiguration = RuntimeConfiguration()
        runtimeConfiguration.instances = instances
        // On a GPU with several contexts, one high-priority stream serves priority-1 requests.
        runtimeConfiguration.highPriorityInstances = EngineFactory.backendName(of: engine) == "cuda" && instances > 1 ? 1 : 0
        runtimeConfiguration.maxBatchSize = maxBatchSize
        runtimeConfiguration.maxQueueDelay = .microseconds(maxQueueDelay)
        runtimeConfiguration.maxQueueSize = maxQueueSize
        runtimeConfiguration.requestTimeout = .milliseconds(requestTimeout)
        runtimeConfiguration.maxImagesPerRequest = maxImagesPerRequest
        runtimeConfiguration.preprocessThreads = preprocessThreads ?? ProcessInfo.processInfo.activeProcessorCount
        runtimeConfiguration.normalize = !noNormalize

        var http = HTTPConfiguration()
        http.host = host
        http.port = port
        http.modelName = modelName ?? loaded.name
        http.maxBodySize = maxBodySize
        http.apiKey = apiKey.flatMap { $0.isEmpty ? nil : $0 }
        http.architecture = loaded.architecture
        http.modelSummary = loaded.summary
        http.backend = EngineFactory.backendName(of: engine)

        let metrics = ServerMetrics()
        let runtime = EmbeddingRuntime(
            engines: engines, preprocessor: ImagePreprocessor(config: loaded.preprocess),
            configuration: runtimeConfiguration, metrics: metrics.runtime,
            telemetry: NVMLTelemetry.forEngines(engines), logger: logger)
        logger.info(
            "serving \(http.modelName) (\(loaded.summary)) on \(engines.map(\.deviceDescription).joined(separator: ", ")), \(instances) instance(s) per device")
        let host = self.host
        let app = buildApplication(
            runtime: runtime, configuration: http, registry: metrics.registry, logger: logger,
            onServerRunning: { port in
                let local = host == "0.0.0.0" || host == "::" ? "localhost" : host
                let base = "http://\(local):\(port ?? 0)"
                FileHandle.standardOutput.write(Data("""
                    clipserve listening on http://\(host):\(port ?? 0)
                    status page: \(base)/
                    try: curl -s -H 'Content-Type: image/jpeg' --data-binary @examples/rgb_baseline.jpg \(base)/embed

                    """.utf8))
            })
        try await app.runService()
        logger.info("clipserve stopped")
    }
}

/// NVML's per-GPU readings as the runtime's device telemetry, sampled on every `/metrics` scrape.
struct NVMLTelemetry: DeviceTelemetry {
    let monitor: GPUMonitor

    /// Telemetry for the GPUs of CUDA engines, under their CUDA ordinals; nil for the CPU or when NVML cannot be
    /// loaded or does not find a GPU (the gauges are then absent).
    static func forEngines(_ engines: [any EmbeddingEngine]) -> NVMLTelemetry? {
        let gpus = engines.compactMap { $0 as? CUDAEngine }.map { (ordinal: $0.ordinal, pciBusID: $0.pciBusID) }
        guard !gpus.isEmpty, let monitor = try? GPUMonitor(devices: gpus) else { return nil }
        return NVMLTelemetry(monitor: monitor)
    }

    func samples() -> [DeviceSample] {
        monitor.sample().map { gpu in
            DeviceSample(
                device: "cuda:\(gpu.index)", utilization: Double(gpu.utilizationPercent) / 100,
                memoryUsedBytes: Double(gpu.memoryUsedBytes), memoryTotalBytes: Double(gpu.memoryTotalBytes),
                powerWatts: gpu.powerWatts)
        }
    }
}
