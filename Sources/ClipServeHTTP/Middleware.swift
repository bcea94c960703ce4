import HTTPTypes
import Hummingbird
import InferenceRuntime
import Logging

/// Turns every thrown error into its JSON response, and counts and times every request by outcome (for `/metrics`
/// and the status page; the probes, `/metrics` and the status page's own requests are left out of the latter).
struct ServingMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: RuntimeMetrics
    let status: StatusRecorder
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let clock = ContinuousClock()
        let start = clock.now
        let response: Response
        var message: String?
        do {
            response = try await next(request, context)
        } catch {
            let apiError = APIError.from(error)
            if apiError.status.code >= 500 {
                logger.warning("\(request.method) \(request.uri.path): \(apiError.message)")
            }
            message = apiError.message
            response = try apiError.response(from: request, context: context)
        }
        let path = request.uri.path
        let latency = start.duration(to: clock.now)
        if path != "/metrics" {
            metrics.recordRequest(outcome: Self.outcome(response.status), latency: latency)
        }
        if !Routes.isOpen(path) {
            status.recordRequest(
                method: request.method.rawValue, route: path, status: response.status.code, latency: latency,
                message: message ?? response.status.reasonPhrase)
        }
        return response
    }

    static func outcome(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 200..<300: "success"
        case 503: "rejected"
        case 504: "timeout"
        case 400..<500: "client_error"
        default: "error"
        }
    }
}

/// Requires `Authorization: Bearer <key>` on every route but the probes and metrics.
struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let apiKey: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard Routes.isOpen(request.uri.path) else {
            let header = request.headers[.authorization] ?? ""
            let prefix = "Bearer "
            guard header.count > prefix.count, header.lowercased().hasPrefix("bearer "),
                constantTimeEqual(Array(header.utf8.dropFirst(prefix.utf8.count)), Array(apiKey.utf8))
            else {
                throw APIError(
                    .unauthorized, header.isEmpty ? "missing bearer token" : "invalid bearer token",
                    type: "authentication_error", code: "invalid_api_key", headers: [.wwwAuthenticate: "Bearer"])
            }
            return try await next(request, context)
        }
        return try await next(request, context)
    }

    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
