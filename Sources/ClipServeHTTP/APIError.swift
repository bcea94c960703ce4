import Foundation
import HTTPTypes
import Hummingbird
import InferenceRuntime
import NIOCore

/// An error answered to the client as JSON: OpenAI's shape under the OpenAI routes, `{"error": "..."}` elsewhere
/// (KServe v2 as Triton writes it).
public struct APIError: HTTPResponseError, CustomStringConvertible {
    /// HTTP status.
    public var status: HTTPResponse.Status
    /// Human-readable message.
    public var message: String
    /// OpenAI `type`.
    public var type: String
    /// OpenAI `code`.
    public var code: String?
    /// Extra response headers (Retry-After, WWW-Authenticate).
    public var headers: HTTPFields

    /// An error with `status` and `message`.
    public init(
        _ status: HTTPResponse.Status, _ message: String, type: String? = nil, code: String? = nil,
        headers: HTTPFields = [:]
    ) {
        self.status = status
        self.message = message
        self.type = type ?? (status.code >= 500 ? "server_error" : "invalid_request_error")
        self.code = code
        self.headers = headers
    }

    public var description: String { "\(status.code): \(message)" }

    /// 400 with `message`.
    static func badRequest(_ message: String) -> APIError { APIError(.badRequest, message) }

    /// The error for a runtime failure.
    init(_ error: RuntimeError) {
        switch error {
        case .queueFull:
            self.init(.serviceUnavailable, error.description, type: "overloaded_error", headers: [.retryAfter: "1"])
        case .notReady, .shuttingDown:
            self.init(.serviceUnavailable, error.description, type: "unavailable_error", headers: [.retryAfter: "1"])
        case .timedOut:
            self.init(.gatewayTimeout, error.description, type: "timeout_error")
        case .cancelled:
            self.init(.init(code: 499, reasonPhrase: "Client Closed Request"), error.description)
        case .noImages, .tooManyImages, .badImage, .badPixels, .invalidPriority:
            self.init(.badRequest, error.description)
        case .engineFailed:
            self.init(.internalServerError, error.description)
        }
    }

    /// Maps anything a handler throws to the error the client sees.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError: return error
        case let error as RuntimeError: return APIError(error)
        case is NIOTooManyBytesError: return APIError(.contentTooLarge, "request body exceeds the maximum body size")
        case let error as HTTPError:
            return APIError(error.status, error.body ?? error.status.reasonPhrase, headers: error.headers)
        case let error as any HTTPResponseError:
            return APIError(error.status, String(describing: error))
        case is DecodingError:
            return APIError(.badRequest, "invalid JSON body: \(describe(error as! DecodingError))")
        default:
            return APIError(.internalServerError, "internal error: \(error)")
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body: Data
        if Routes.usesOpenAIErrors(request.uri.path) {
            body = try JSONSerialization.data(withJSONObject: [
                "error": [
                    "message": message, "type": type, "param": NSNull(),
                    "code": code.map { $0 as Any } ?? NSNull(),
                ] as [String: Any]
            ])
        } else {
            body = try JSONSerialization.data(withJSONObject: ["error": message])
        }
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

private func describe(_ error: DecodingError) -> String {
    switch error {
    case let .typeMismatch(_, context), let .valueNotFound(_, context), let .keyNotFound(_, context),
        let .dataCorrupted(context):
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}

extension HTTPField.Name {
    static let retryAfter = Self("Retry-After")!
    static let inferenceHeaderContentLength = Self("Inference-Header-Content-Length")!
    static let queueTime = Self("x-queue-time")!
    static let inferenceTime = Self("x-inference-time")!
    static let preprocessTime = Self("x-preprocess-time")!
    static let batchSize = Self("x-batch-size")!
}
