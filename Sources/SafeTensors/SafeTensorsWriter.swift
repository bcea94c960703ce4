import Foundation
import InferenceCore

/// Builds a safetensors file in memory (tests and tools; the server never writes checkpoints).
public struct SafeTensorsWriter: Sendable {
    private struct Entry: Sendable {
        var name: String
        var dtypeName: String
        var shape: [Int]
        var bytes: [UInt8]
    }

    private var entries: [Entry] = []
    /// The `__metadata__` map written into the header.
    public var metadata: [String: String] = [:]

    /// An empty writer.
    public init() {}

    /// Adds a tensor given its raw little-endian bytes and any dtype name (for writing unsupported dtypes too).
    public mutating func add(_ name: String, dtypeName: String, shape: [Int], bytes: [UInt8]) {
        entries.append(Entry(name: name, dtypeName: dtypeName, shape: shape, bytes: bytes))
    }

    /// Adds `values` stored as `dtype` (converted with round-to-nearest-even for F16/BF16).
    public mutating func add(_ name: String, shape: [Int], values: [Float], dtype: DType = .f32) {
        precondition(values.count == shape.reduce(1, *), "value count does not match shape \(shape)")
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * dtype.byteSize)
        for value in values {
            switch dtype {
            case .f32: withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            case .f16: withUnsafeBytes(of: HalfConversion.f16(from: value).littleEndian) { bytes.append(contentsOf: $0) }
            case .bf16: withUnsafeBytes(of: HalfConversion.bf16(from: value).littleEndian) { bytes.append(contentsOf: $0) }
            }
        }
        add(name, dtypeName: dtype.rawValue, shape: shape, bytes: bytes)
    }

    /// The header JSON and data in file order; the header is space-padded to a multiple of 8 bytes.
    public func data() -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for entry in entries {
            header[entry.name] = [
                "dtype": entry.dtypeName, "shape": entry.shape, "data_offsets": [offset, offset + entry.bytes.count],
            ] as [String: Any]
            offset += entry.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for entry in entries { out.append(contentsOf: entry.bytes) }
        return out
    }

    /// Writes the file atomically.
    public func write(to url: URL) throws {
        try data().write(to: url, options: .atomic)
    }
}
