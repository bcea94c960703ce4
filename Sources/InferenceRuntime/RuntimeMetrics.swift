import CoreMetrics
import Metrics

/// One reading of one accelerator, filled by an engine that can read device counters (NVML on CUDA).
public struct DeviceSample: Sendable {
    /// Label value, e.g. "cuda:0".
    public var device: String
    /// Busy fraction over the last sample period, 0...1.
    public var utilization: Double?
    /// Device memory in use, in bytes.
    public var memoryUsedBytes: Double?
    /// Device memory in total, in bytes.
    public var memoryTotalBytes: Double?
    /// Temperature in degrees Celsius.
    public var temperatureCelsius: Double?
    /// Power draw in watts.
    public var powerWatts: Double?

    /// Memberwise init.
    public init(
        device: String, utilization: Double? = nil, memoryUsedBytes: Double? = nil, memoryTotalBytes: Double? = nil,
        temperatureCelsius: Double? = nil, powerWatts: Double? = nil
    ) {
        self.device = device
        self.utilization = utilization
        self.memoryUsedBytes = memoryUsedBytes
        self.memoryTotalBytes = memoryTotalBytes
        self.temperatureCelsius = temperatureCelsius
        self.powerWatts = powerWatts
    }
}

/// The hook for GPU gauges: an engine that can read its devices (NVML) provides one; `/metrics` samples it on
/// every scrape.
public protocol DeviceTelemetry: Sendable {
    /// Current readings, one per device.
    func samples() -> [DeviceSample]
}

/// Every metric clipserve exports, made from one `MetricsFactory` (the Prometheus one in the server, so each
/// app can have its own registry).
public struct RuntimeMetrics: Sendable {
    let factory: any MetricsFactory
    /// Images admitted for embedding.
    let images: Counter
    /// Batches run.
    let batches: Counter
    /// Images waiting in the batcher's queue.
    let queueDepth: Gauge
    /// Time from enqueue to the start of the image's batch.
    let queueTime: Timer
    /// Decode + preprocess time of one image.
    let preprocessTime: Timer
    /// Engine time of one batch.
    let inferenceTime: Timer
    /// Images per batch.
    let batchSize: Recorder

    /// Metrics registered with `factory`.
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        images = Counter(label: "clipserve_images_total", factory: factory)
        batches = Counter(label: "clipserve_batches_total", factory: factory)
        queueDepth = Gauge(label: "clipserve_queue_depth", factory: factory)
        queueTime = Timer(label: "clipserve_queue_time_seconds", factory: factory)
        preprocessTime = Timer(label: "clipserve_preprocess_time_seconds", factory: factory)
        inferenceTime = Timer(label: "clipserve_inference_time_seconds", factory: factory)
        batchSize = Recorder(label: "clipserve_batch_size", factory: factory)
    }

    /// Counts one finished HTTP request by outcome (`success`, `client_error`, `rejected`, `timeout`, `error`).
    public func recordRequest(outcome: String, latency: Duration) {
        Counter(label: "clipserve_requests_total", dimensions: [("outcome", outcome)], factory: factory).increment()
        Timer(label: "clipserve_request_latency_seconds", factory: factory).record(duration: latency)
    }

    /// Copies the readings of `telemetry` into gauges (called before each scrape).
    public func recordDevices(_ telemetry: any DeviceTelemetry) {
        for sample in telemetry.samples() {
            let dims = [("device", sample.device)]
            let values: [(String, Double?)] = [
                ("clipserve_gpu_utilization_ratio", sample.utilization),
                ("clipserve_gpu_memory_used_bytes", sample.memoryUsedBytes),
                ("clipserve_gpu_memory_total_bytes", sample.memoryTotalBytes),
                ("clipserve_gpu_temperature_celsius", sample.temperatureCelsius),
                ("clipserve_gpu_power_watts", sample.powerWatts),
            ]
            for case let (label, value?) in values {
                Gauge(label: label, dimensions: dims, factory: factory).record(value)
            }
        }
    }
}
