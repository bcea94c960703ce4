/// Why a safetensors file could not be opened or a tensor could not be read; every case names the file.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened, stat'ed or mapped; `reason` is the system's message.
    case cannotOpen(path: String, reason: String)
    /// The file ends before the header or the data it announces.
    case truncated(path: String, detail: String)
    /// The header is not the JSON object the format requires.
    case malformedHeader(path: String, detail: String)
    /// One header entry is inconsistent (shape vs. byte span, offsets outside the data, overlap).
    case invalidEntry(path: String, tensor: String, detail: String)
    /// No tensor of that name in the file.
    case tensorNotFound(path: String, tensor: String)
    /// The tensor exists but its element type cannot be loaded (only F32, F16 and BF16 can).
    case unsupportedDType(path: String, tensor: String, dtype: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            "cannot open safetensors file \(path): \(reason)"
        case let .truncated(path, detail):
            "safetensors file \(path) is truncated: \(detail)"
        case let .malformedHeader(path, detail):
            "safetensors file \(path) has a malformed header: \(detail)"
        case let .invalidEntry(path, tensor, detail):
            "safetensors file \(path), tensor '\(tensor)': \(detail)"
        case let .tensorNotFound(path, tensor):
            "safetensors file \(path) has no tensor '\(tensor)'"
        case let .unsupportedDType(path, tensor, dtype):
            "safetensors file \(path), tensor '\(tensor)': dtype \(dtype) is not supported (only F32, F16 and BF16 load)"
        }
    }
}
