import Foundation
import InferenceCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One entry of a safetensors header.
public struct SafeTensorInfo: Sendable, Hashable {
    /// The tensor's name, verbatim.
    public let name: String
    /// The dtype string from the header (`F32`, `I64`, …).
    public let dtypeName: String
    /// The loadable element type, or nil when `dtypeName` is not F32, F16 or BF16.
    public var dtype: DType? { DType(rawValue: dtypeName) }
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// Byte range relative to the start of the data section.
    public let dataOffsets: Range<Int>

    /// Number of elements.
    public var elementCount: Int { shape.reduce(1, *) }
    /// Bytes the tensor occupies.
    public var byteCount: Int { dataOffsets.count }
}

/// A read-only, memory-mapped safetensors file whose tensors are zero-copy views.
///
/// `@unchecked Sendable`: the mapping is read-only (`PROT_READ`, `MAP_PRIVATE`) and every stored property is
/// immutable after `init`; views keep the file object (and so the mapping) alive through `TensorData.owner`.
public final class SafeTensorsFile: @unchecked Sendable {
    /// Largest header the format allows (the reference implementation's limit).
    public static let maxHeaderBytes = 100 * 1024 * 1024

    /// Path the file was opened from.
    public let path: String
    /// Size of the file in bytes.
    public let fileSize: Int
    /// The `__metadata__` string map (empty when absent).
    public let metadata: [String: String]
    /// Tensor names in data order.
    public let names: [String]

    private let entries: [String: SafeTensorInfo]
    private let mapping: UnsafeRawBufferPointer
    private let dataStart: Int

    /// Maps `url` and validates its header and every entry.
    public convenience init(url: URL) throws {
        try self.init(path: url.path)
    }

    /// Maps the file at `path` and validates its header and every entry.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SafeTensorsError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw SafeTensorsError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError.cannotOpen(path: path, reason: "not a regular file")
        }
        let size = Int(st.st_size)
        fileSize = size
        guard size >= 8 else {
            throw SafeTensorsError.truncated(path: path, detail: "\(size) bytes, shorter than the 8-byte header length")
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw SafeTensorsError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        let mapping = UnsafeRawBufferPointer(start: UnsafeRawPointer(base), count: size)
        do {
            let parsed = try Self.parseHeader(mapping, path: path)
            self.mapping = mapping
            dataStart = parsed.dataStart
            entries = parsed.entries
            names = parsed.order
            metadata = parsed.metadata
        } catch {
            munmap(base, size)
            throw error
        }
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: mapping.baseAddress), mapping.count)
    }

    /// The header entry for `name`, or nil.
    public func info(_ name: String) -> SafeTensorInfo? { entries[name] }

    /// Whether the file has a tensor called `name`.
    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// A zero-copy view of tensor `name`; throws when absent or not F32/F16/BF16.
    public func tensor(_ name: String) throws -> TensorData {
        guard let info = entries[name] else { throw SafeTensorsError.tensorNotFound(path: path, tensor: name) }
        guard let dtype = info.dtype else {
            throw SafeTensorsError.unsupportedDType(path: path, tensor: name, dtype: info.dtypeName)
        }
        let bytes = UnsafeRawBufferPointer(rebasing: mapping[(dataStart + info.dataOffsets.lowerBound)..<(dataStart + info.dataOffsets.upperBound)])
        return TensorData(dtype: dtype, shape: info.shape, bytes: bytes, owner: self)
    }

    /// Raw bytes of tensor `name` whatever its dtype (for tools and tests).
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let info = entries[name] else { throw SafeTensorsError.tensorNotFound(path: path, tensor: name) }
        return UnsafeRawBufferPointer(rebasing: mapping[(dataStart + info.dataOffsets.lowerBound)..<(dataStart + info.dataOffsets.upperBound)])
    }

    /// Element sizes of every dtype the format defines; others are malformed.
    static let elementBytes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
        "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4,
        "I64": 8, "U64": 8, "F64": 8, "C64": 8,
    ]

    private struct ParsedHeader {
        var dataStart: Int
        var entries: [String: SafeTensorInfo]
        var order: [String]
        var metadata: [String: String]
    }

    private static func parseHeader(_ file: UnsafeRawBufferPointer, path: String) throws -> ParsedHeader {
        let size = file.count
        let declared = file.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard declared <= UInt64(maxHeaderBytes) else {
            throw SafeTensorsError.malformedHeader(
                path: path, detail: "header length \(declared) exceeds the \(maxHeaderBytes)-byte limit")
        }
        let headerLength = Int(declared)
        guard headerLength >= 2 else {
            throw SafeTensorsError.malformedHeader(path: path, detail: "header length \(headerLength) is too small")
        }
        guard 8 + headerLength <= size else {
            throw SafeTensorsError.truncated(
                path: path, detail: "header of \(headerLength) bytes announced but only \(size - 8) bytes follow")
        }
        let headerBytes = Data(UnsafeRawBufferPointer(rebasing: file[8..<(8 + headerLength)]))
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw SafeTensorsError.malformedHeader(path: path, detail: "header does not start with '{'")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes)
        } catch {
            throw SafeTensorsError.malformedHeader(path: path, detail: "header is not valid JSON")
        }
        guard let object = json as? [String: Any] else {
            throw SafeTensorsError.malformedHeader(path: path, detail: "header is not a JSON object")
        }

        let dataStart = 8 + headerLength
        let dataSize = size - dataStart
        var metadata: [String: String] = [:]
        var entries: [String: SafeTensorInfo] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else {
                    throw SafeTensorsError.malformedHeader(path: path, detail: "__metadata__ is not an object")
                }
                for (key, item) in map {
                    guard let string = item as? String else {
                        throw SafeTensorsError.malformedHeader(
                            path: path, detail: "__metadata__ value for '\(key)' is not a string")
                    }
                    metadata[key] = string
                }
                continue
            }
            entries[name] = try parseEntry(name: name, value: value, dataSize: dataSize, path: path)
        }

        let order = entries.values.sorted {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name)
                < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name)
        }
        var previous: SafeTensorInfo?
        for info in order {
            if let previous, info.dataOffsets.lowerBound < previous.dataOffsets.upperBound {
                throw SafeTensorsError.invalidEntry(
                    path: path, tensor: info.name,
                    detail: "data_offsets \(info.dataOffsets) overlap tensor '\(previous.name)' at \(previous.dataOffsets)")
            }
            if !info.dataOffsets.isEmpty { previous = info }
        }
        return ParsedHeader(dataStart: dataStart, entries: entries, order: order.map(\.name), metadata: metadata)
    }

    private static func parseEntry(name: String, value: Any, dataSize: Int, path: String) throws -> SafeTensorInfo {
        func invalid(_ detail: String) -> SafeTensorsError {
            .invalidEntry(path: path, tensor: name, detail: detail)
        }
        guard let fields = value as? [String: Any] else { throw invalid("entry is not a JSON object") }
        guard let dtypeName = fields["dtype"] as? String else { throw invalid("missing or non-string 'dtype'") }
        guard let elementSize = elementBytes[dtypeName] else { throw invalid("unknown dtype '\(dtypeName)'") }
        guard let shapeValues = fields["shape"] as? [Any] else { throw invalid("missing or non-array 'shape'") }
        var shape: [Int] = []
        for dim in shapeValues {
            guard let n = exactInt(dim), n >= 0 else { throw invalid("shape \(shapeValues) has a non-integer or negative dimension") }
            shape.append(n)
        }
        guard let offsetValues = fields["data_offsets"] as? [Any], offsetValues.count == 2,
              let begin = exactInt(offsetValues[0]), let end = exactInt(offsetValues[1])
        else { throw invalid("'data_offsets' is not a pair of integers") }
        guard begin >= 0, begin <= end else { throw invalid("data_offsets [\(begin), \(end)] are not ordered") }
        guard end <= dataSize else {
            throw invalid("data_offsets [\(begin), \(end)] run past the end of the data section (\(dataSize) bytes)")
        }
        var expected = elementSize
        for dim in shape {
            let (product, overflow) = expected.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw invalid("shape \(shape) overflows") }
            expected = product
        }
        guard expected == end - begin else {
            throw invalid("shape \(shape) of \(dtypeName) needs \(expected) bytes but data_offsets [\(begin), \(end)] span \(end - begin)")
        }
        return SafeTensorInfo(name: name, dtypeName: dtypeName, shape: shape, dataOffsets: begin..<end)
    }

    /// An exact integer from a JSON number (rejects strings and fractions such as 1.5).
    private static func exactInt(_ value: Any) -> Int? {
        if let n = value as? Int { return n }
        if let number = value as? NSNumber {
            let d = number.doubleValue
            guard d.rounded() == d, abs(d) < 9.0e15 else { return nil }
            return Int(d)
        }
        return nil
    }
}
