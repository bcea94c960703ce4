import SafeTensors

/// Why a model reference could not be loaded; every case names the file, tensor or setting at fault.
public enum ModelLoadError: Error, CustomStringConvertible, Equatable {
    /// The reference is neither `random:NAME` nor an existing directory.
    case notFound(reference: String, detail: String)
    /// `random:NAME` with a name that is not in `CLIPArchitectures`.
    case unknownArchitecture(name: String, known: [String])
    /// A required file is absent; `tried` lists the names looked for, in order.
    case missingFile(directory: String, tried: [String])
    /// Weights exist only in a format clipserve cannot read (pickled `.bin`, sharded checkpoints).
    case unsupportedWeightsFormat(path: String, detail: String)
    /// A config file is not valid JSON or a key has the wrong type or value.
    case badConfig(file: String, detail: String)
    /// The config asks for an architecture feature clipserve does not implement.
    case unsupportedFeature(file: String, feature: String)
    /// An expected tensor is absent from the checkpoint.
    case missingTensor(file: String, tensor: String, expectedShape: [Int])
    /// A tensor has a different shape than the config implies.
    case shapeMismatch(file: String, tensor: String, expected: [Int], found: [Int])
    /// A tensor that contradicts the config (e.g. more blocks than `layers`).
    case unexpectedTensor(file: String, tensor: String, detail: String)
    /// The checkpoint itself is unreadable (truncated, malformed, unsupported dtype).
    case checkpoint(SafeTensorsError)

    public var description: String {
        switch self {
        case let .notFound(reference, detail):
            "cannot load model '\(reference)': \(detail)"
        case let .unknownArchitecture(name, known):
            "unknown architecture '\(name)' for random weights; known: \(known.joined(separator: ", "))"
        case let .missingFile(directory, tried):
            "model directory \(directory) has none of: \(tried.joined(separator: ", "))"
        case let .unsupportedWeightsFormat(path, detail):
            "unsupported weights file \(path): \(detail)"
        case let .badConfig(file, detail):
            "bad config \(file): \(detail)"
        case let .unsupportedFeature(file, feature):
            "\(file): \(feature) is not supported by clipserve (plain CLIP ViT towers only)"
        case let .missingTensor(file, tensor, expectedShape):
            "checkpoint \(file) is missing tensor '\(tensor)' (expected shape \(expectedShape))"
        case let .shapeMismatch(file, tensor, expected, found):
            "checkpoint \(file): tensor '\(tensor)' has shape \(found), expected \(expected)"
        case let .unexpectedTensor(file, tensor, detail):
            "checkpoint \(file) has unexpected tensor '\(tensor)': \(detail)"
        case let .checkpoint(error):
            error.description
        }
    }
}
