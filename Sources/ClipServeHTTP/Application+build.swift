import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import InferenceRuntime
import Logging
import Prometheus

/// Everything the HTTP layer needs to know besides the runtime.
public struct HTTPConfiguration: Sendable {
    /// Address to bind.
    public var host: String = "0.0.0.0"
    /// TCP port.
    public var port: Int = 8000
    /// Name the model is served under (`model` in OpenAI requests, `{name}` in KServe paths).
    public var modelName: String = "clip"
    /// Version reported and accepted in KServe paths.
    public var modelVersion: String = "1"
    /// Largest request body in bytes, enforced while the body streams in.
    public var maxBodySize: Int = 64 << 20
    /// Bearer token required on every route but health, metrics and the status page; nil = no authentication.
    public var apiKey: String?
    /// Architecture name shown on the status page (e.g. "ViT-B-32"); nil when unknown.
    public var architecture: String?
    /// One-line model description shown on the status page; nil for none.
    public var modelSummary: String?
    /// Backend name shown on the status page ("cpu", "cuda"); nil when unknown.
    public var backend: String?

    /// Defaults as documented per field.
    public init() {}
}

/// Route families, for the error shape and the auth exemption.
enum Routes {
    /// OpenAI-style routes answer errors in OpenAI's shape.
    static func usesOpenAIErrors(_ path: String) -> Bool {
        path.hasPrefix("/v1/") || path == "/embeddings" || path == "/models"
    }

    /// Probes, metrics and the status page need no API key.
    static func isOpen(_ path: String) -> Bool {
        path == "/health" || path == "/v2/health/live" || path == "/v2/health/ready" || path == "/metrics"
            || path == "/" || path == "/status.json"
    }
}

/// Builds the whole server: routes, middleware and the runtime as a service of the application's `ServiceGroup`
/// (the runtime shuts down after the HTTP server has stopped accepting and answered what it accepted).
/// `status` collects the status page's figures; its sampler runs in the same group.
public func buildApplication<C: Clock>(
    runtime: EmbeddingRuntime<C>, configuration: HTTPConfiguration,
    registry: PrometheusCollectorRegistry, status: StatusRecorder = StatusRecorder(),
    logger: Logger = Logger(label: "clipserve.http"),
    onServerRunning: @escaping @Sendable (_ port: Int?) async -> Void = { _ in }
) -> some ApplicationProtocol where C.Duration == Duration {
    let router = Router(context: ServeRequestContext.self)
    router.middlewares.add(ServingMiddleware(metrics: runtime.metrics, status: status, logger: logger))
    if let key = configuration.apiKey, !key.isEmpty {
        router.middlewares.add(BearerAuthMiddleware(apiKey: key))
    }
    let server = EmbeddingHandlers(runtime: runtime, configuration: configuration, status: status)
    server.addOpenAIRoutes(to: router)
    server.addKServeRoutes(to: router)
    server.addEmbedRoutes(to: router)
    server.addStatusRoutes(to: router, recorder: status)
    router.get("/metrics") { _, _ -> Response in
        if let telemetry = runtime.telemetry { runtime.metrics.recordDevices(telemetry) }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 << 10)
        registry.emit(into: &buffer)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
    }
    router.get("/health") { _, _ -> Response in
        switch runtime.readiness {
        case .ready: Response(status: .ok)
        case .notReady: Response(status: .serviceUnavailable)
        }
    }
    return Application(
        router: router,
        server: .http1(additionalChannelHandlers: [ConnectionWatcher()]),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "clipserve"),
        services: [
            runtime,
            StatusSampler(recorder: status, queueDepth: { runtime.queuedImages }, telemetry: runtime.telemetry),
        ],
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port) },
        logger: logger)
}

/// A Prometheus registry and the runtime metrics that write into it, for `/metrics`.
public struct ServerMetrics: Sendable {
    /// What `/metrics` serves.
    public let registry: PrometheusCollectorRegistry
    /// The runtime's and the HTTP layer's metrics, registered in `registry`.
    public let runtime: RuntimeMetrics

    /// A fresh registry (not the process-global one, so several servers can live in one process).
    public init() {
        registry = PrometheusCollectorRegistry()
        runtime = RuntimeMetrics(factory: PrometheusMetricsFactory(registry: registry))
    }
}

/// The request handlers, shared by the three API families.
struct EmbeddingHandlers<C: Clock>: Sendable where C.Duration == Duration {
    let runtime: EmbeddingRuntime<C>
    let configuration: HTTPConfiguration
    /// Counts the embedded images for the status page.
    let status: StatusRecorder

    /// The body, refusing more than `maxBodySize` bytes (from Content-Length at once, else while it streams in).
    func collectBody(_ request: Request) async throws -> ByteBuffer {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > configuration.maxBodySize {
            throw APIError(.contentTooLarge, "request body of \(declared) bytes exceeds the limit of \(configuration.maxBodySize)")
        }
        do {
            return try await request.body.collect(upTo: configuration.maxBodySize)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, "request body exceeds the limit of \(configuration.maxBodySize) bytes")
        }
    }

    /// Rejects requests while not ready, before reading their bodies.
    func requireReady() throws {
        if case let .notReady(why) = runtime.readiness {
            throw APIError(.serviceUnavailable, "server not ready: \(why)", headers: [.retryAfter: "1"])
        }
    }

    /// Waits for `operation` (cancelled if the client goes away) and counts its images for the status page.
    func embedding(
        _ context: ServeRequestContext, _ operation: @escaping @Sendable () async throws -> EmbeddingResult
    ) async throws -> EmbeddingResult {
        let result = try await context.cancellingOnDisconnect(operation)
        status.recordImages(result.count)
        return result
    }

    /// Timing headers of a finished request.
    static func timingHeaders(_ result: EmbeddingResult) -> HTTPFields {
        [
            .queueTime: format(result.queueTime), .inferenceTime: format(result.inferenceTime),
            .preprocessTime: format(result.preprocessTime), .batchSize: String(result.batchSize),
        ]
    }

    private static func format(_ duration: Duration) -> String {
        String(format: "%.3f", duration.milliseconds)
    }
}

extension EmbeddingHandlers {
    /// Scheduling options from the request headers (`x-priority`).
    /// The header every embedding route accepts: `x-priority: 1` is served first, 0 means the default.
    static func headerOptions(_ headers: HTTPFields) throws -> RequestOptions {
        var options = RequestOptions()
        if let value = headers[.xPriority] {
            guard let priority = Int(value.trimmingCharacters(in: .whitespaces)), priority >= 0 else {
                throw APIError.badRequest("x-priority must be a non-negative integer, got '\(value)'")
            }
            options.priority = priority
        }
        return options
    }
}

extension HTTPField.Name {
    /// `x-priority`: a request's scheduling priority (1 = highest, 0 = default).
    static let xPriority = HTTPField.Name("x-priority")!
}
