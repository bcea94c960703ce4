import Foundation

/// The serve configuration `clipserve tune` writes and `clipserve serve --config FILE` reads: a JSON object whose
/// keys are serve's long option names.
public struct ServeConfigFile: Sendable, Hashable, Codable {
    /// Who wrote the file, when, and what was measured.
    public var comment: String
    /// `--model`.
    public var model: String
    /// `--backend`: cpu or cuda.
    public var backend: String
    /// `--instances`.
    public var instances: Int
    /// `--max-batch-size`, in images.
    public var maxBatchSize: Int
    /// `--max-queue-delay`, in microseconds.
    public var maxQueueDelay: Int
    /// `--precision` when the tuned engine was given one (omitted from the file otherwise).
    public var precision: String?
    /// `--threads` when the tuned engine was given one (omitted from the file otherwise).
    public var threads: Int?

    /// The keys the file may hold: always all but the last two, which appear only when set.
    public static let keys: Set<String> = [
        "_comment", "model", "backend", "instances", "max-batch-size", "max-queue-delay", "precision", "threads",
    ]

    enum CodingKeys: String, CodingKey {
        case comment = "_comment"
        case model
        case backend
        case instances
        case maxBatchSize = "max-batch-size"
        case maxQueueDelay = "max-queue-delay"
        case precision
        case threads
    }

    /// Memberwise init.
    public init(
        comment: String, model: String, backend: String, instances: Int, maxBatchSize: Int, maxQueueDelay: Int,
        precision: String? = nil, threads: Int? = nil
    ) {
        self.comment = comment
        self.model = model
        self.backend = backend
        self.instances = instances
        self.maxBatchSize = maxBatchSize
        self.maxQueueDelay = maxQueueDelay
        self.precision = precision
        self.threads = threads
    }

    /// The file for `candidate`.
    public init(
        candidate: Candidate, model: String, backend: String, comment: String, precision: String? = nil,
        threads: Int? = nil
    ) {
        self.init(
            comment: comment, model: model, backend: backend, instances: candidate.instances,
            maxBatchSize: candidate.maxBatchSize, maxQueueDelay: candidate.maxQueueDelayMicroseconds,
            precision: precision, threads: threads)
    }

    /// Reads a file's contents.
    public init(jsonData: Data) throws {
        self = try JSONDecoder().decode(Self.self, from: jsonData)
    }

    /// Pretty-printed JSON with sorted keys (so `_comment` comes first) and a final newline.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }

    /// The same settings as a command line.
    public var commandLine: String {
        "clipserve serve --model \(shellQuoted(model)) --backend \(backend) --instances \(instances) "
            + "--max-batch-size \(maxBatchSize) --max-queue-delay \(maxQueueDelay)"
            + (precision.map { " --precision \($0)" } ?? "") + (threads.map { " --threads \($0)" } ?? "")
    }
}

/// `text` as one shell word.
private func shellQuoted(_ text: String) -> String {
    let plain = text.allSatisfy { $0.isLetter || $0.isNumber || "-_./:=@+,".contains($0) }
    return plain && !text.isEmpty ? text : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
