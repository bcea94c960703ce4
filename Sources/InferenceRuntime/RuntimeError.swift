/// Why the runtime did not produce embeddings for a request; each case maps to one HTTP status.
public enum RuntimeError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The queue holds `capacity` images already (HTTP 503 + Retry-After).
    case queueFull(capacity: Int)
    /// Not ready: warming up, or an engine failure turned readiness off (HTTP 503).
    case notReady(String)
    /// Graceful shutdown has begun; no new work is accepted (HTTP 503).
    case shuttingDown
    /// The request's deadline passed before its embeddings were ready (HTTP 504).
    case timedOut(after: Duration)
    /// The caller went away.
    case cancelled
    /// The request carries no image.
    case noImages
    /// More images than `maxImagesPerRequest` (HTTP 400).
    case tooManyImages(count: Int, limit: Int)
    /// Image `index` of the request could not be decoded or preprocessed (HTTP 400).
    case badImage(index: Int, message: String)
    /// Preprocessed pixels of the wrong size (HTTP 400).
    case badPixels(String)
    /// A priority outside `0...levels` (HTTP 400).
    case invalidPriority(Int, levels: Int)
    /// The engine failed while running a batch (HTTP 500); readiness is off afterwards.
    case engineFailed(String)

    public var description: String {
        switch self {
        case let .queueFull(capacity): "queue full (\(capacity) images waiting); retry later"
        case let .notReady(why): "server not ready: \(why)"
        case .shuttingDown: "server is shutting down"
        case let .timedOut(after): "request timed out after \(after.milliseconds) ms"
        case .cancelled: "request cancelled"
        case .noImages: "request contains no image"
        case let .tooManyImages(count, limit): "request has \(count) images; at most \(limit) are allowed"
        case let .badImage(index, message): "image \(index): \(message)"
        case let .badPixels(message): message
        case let .invalidPriority(value, levels): "priority \(value) is outside 0...\(levels) (1 is the highest, 0 the default)"
        case let .engineFailed(message): "inference failed: \(message)"
        }
    }
}

extension Duration {
    /// The duration in (fractional) milliseconds.
    public var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e3 + Double(attoseconds) * 1e-15
    }

    /// The duration in (fractional) seconds.
    public var seconds: Double { milliseconds / 1e3 }
}
