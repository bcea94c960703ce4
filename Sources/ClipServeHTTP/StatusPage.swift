import Foundation
import HTTPTypes
import Hummingbird
import InferenceCore
import InferenceRuntime
import NIOCore

/// `GET /status.json`: what the server runs, and one sample per second of the last minutes.
struct StatusDocument: Encodable {
    struct Server: Encodable {
        var model: String
        var architecture: String?
        /// The tower's shape, e.g. "224 px · patch 32 · 12 × 768 · 87.8 M params".
        var tower: String
        var summary: String?
        var backend: String?
        var devices: String
        var precision: String
        var instances: Int
        var maxBatchSize: Int
        var maxQueueSize: Int
        var embeddingDimension: Int
        var imageSize: Int
        var authRequired: Bool
        /// "gpu" (NVML) or "cpu" (the process's share of `cpuCores`).
        var utilizationSource: String
        var cpuCores: Int
        var gpuMemoryTotalBytes: Double?
    }

    struct Totals: Encodable {
        var requests: Int
        var images: Int
        var errors: Int
    }

    /// Columns of the per-second samples, oldest first; `second` counts from the server's start.
    struct Series: Encodable {
        var second: [Int] = []
        var requestsPerSecond: [Int] = []
        var imagesPerSecond: [Int] = []
        var errorsPerSecond: [Int] = []
        var latencyP50Ms: [Double?] = []
        var latencyP99Ms: [Double?] = []
        var queueDepth: [Int?] = []
        var utilization: [Double?] = []
        var memoryUsedBytes: [Double?] = []
    }

    var server: Server
    var ready: Bool
    var readiness: String
    var uptimeSeconds: Double
    var queueDepth: Int
    var intervalSeconds = 1
    var historySeconds: Int
    var totals: Totals
    var series: Series
    var errors: [RecordedError]
}

extension EmbeddingHandlers {
    /// `GET /` (the page) and `GET /status.json` (its data). Both are open like `/metrics`: they show what
    /// `/metrics` shows, never the API key.
    func addStatusRoutes(to router: Router<ServeRequestContext>, recorder: StatusRecorder) {
        let page = ByteBuffer(string: StatusPage.html(modelName: configuration.modelName))
        router.get("/") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                body: .init(byteBuffer: page))
        }
        router.get("/status.json") { _, _ -> Response in
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = .sortedKeys
            let body = try encoder.encode(statusDocument(recorder))
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    static func describe(_ spec: VisionTowerSpec) -> String {
        let millions = Double(spec.parameterCount) / 1e6
        let params = millions >= 10 ? String(Int(millions.rounded())) : String(Double(Int(millions * 10)) / 10)
        return "\(spec.imageSize) px · patch \(spec.patchSize) · \(spec.layers) × \(spec.width) · \(params) M params"
    }

    func statusDocument(_ recorder: StatusRecorder) -> StatusDocument {
        let snapshot = recorder.snapshot()
        var series = StatusDocument.Series()
        for sample in snapshot.seconds {
            series.second.append(sample.second)
            series.requestsPerSecond.append(sample.requests)
            series.imagesPerSecond.append(sample.images)
            series.errorsPerSecond.append(sample.errors)
            series.latencyP50Ms.append(sample.latencyP50)
            series.latencyP99Ms.append(sample.latencyP99)
            series.queueDepth.append(sample.gauges?.queueDepth)
            series.utilization.append(sample.gauges?.utilization)
            series.memoryUsedBytes.append(sample.gauges?.memoryUsedBytes)
        }
        let devices = runtime.telemetry?.samples() ?? []
        let memoryTotals = devices.compactMap(\.memoryTotalBytes)
        let readiness: String
        switch runtime.readiness {
        case .ready: readiness = "ready"
        case let .notReady(why): readiness = why
        }
        let server = StatusDocument.Server(
            model: configuration.modelName, architecture: configuration.architecture, tower: Self.describe(runtime.spec),
            summary: configuration.modelSummary, backend: configuration.backend,
            devices: runtime.engines.map(\.deviceDescription).joined(separator: ", "),
            precision: runtime.engine.precision.rawValue,
            instances: runtime.configuration.instances, maxBatchSize: runtime.configuration.maxBatchSize,
            maxQueueSize: runtime.configuration.maxQueueSize, embeddingDimension: runtime.spec.embedDim,
            imageSize: runtime.spec.imageSize, authRequired: configuration.apiKey.map { !$0.isEmpty } ?? false,
            utilizationSource: devices.isEmpty ? "cpu" : "gpu", cpuCores: CPUUtilization.cores,
            gpuMemoryTotalBytes: memoryTotals.isEmpty ? nil : memoryTotals.reduce(0, +))
        return StatusDocument(
            server: server, ready: runtime.readiness == .ready, readiness: readiness, uptimeSeconds: recorder.uptime,
            queueDepth: runtime.queuedImages, historySeconds: recorder.historySeconds,
            totals: .init(
                requests: snapshot.totals.requests, images: snapshot.totals.images, errors: snapshot.totals.errors),
            series: series, errors: snapshot.errors)
    }
}
