import CommandConfig
import Foundation
import Synchronization

/// Expands the command line's files and directories into image paths, and reads them.
enum ImageFileList {
    /// File extensions a directory is searched for.
    static let extensions: Set<String> = ["jpg", "jpeg", "png", "webp"]

    /// Files as given (any extension), directories as their image files, recursively, sorted by path.
    static func expand(_ inputs: [String]) throws -> [String] {
        var files: [String] = []
        let fm = FileManager.default
        for input in inputs {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: input, isDirectory: &isDirectory) else {
                throw CLIError("\(input): no such file or directory")
            }
            guard isDirectory.boolValue else {
                files.append(input)
                continue
            }
            guard let walker = fm.enumerator(atPath: input) else { throw CLIError("\(input): cannot list directory") }
            var found: [String] = []
            for case let relative as String in walker
            where extensions.contains((relative as NSString).pathExtension.lowercased()) {
                found.append((input as NSString).appendingPathComponent(relative))
            }
            files += found.sorted()
        }
        return files
    }

    /// The whole file, or an error naming it.
    static func read(_ path: String) throws -> Data {
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw CLIError("cannot read file: \((error as NSError).localizedDescription)")
        }
    }
}

/// A command-line failure whose message is shown as is.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// One result per slot, written from many threads (each slot once) and read after they all finish.
final class ResultSlots: Sendable {
    private let storage: Mutex<[Result<Void, any Error>]>

    init(count: Int) {
        storage = Mutex(Array(repeating: .success(()), count: count))
    }

    func set(_ index: Int, _ value: Result<Void, any Error>) {
        storage.withLock { $0[index] = value }
    }

    var values: [Result<Void, any Error>] { storage.withLock { $0 } }
}

/// Lets `concurrentPerform` workers write disjoint slices of one buffer; each index range is written by one thread.
struct UnsafeMutableBufferPointerBox<Element>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Element>
    init(_ buffer: UnsafeMutableBufferPointer<Element>) { self.buffer = buffer }
}

/// Where a command writes its results: a file or stdout.
final class OutputSink {
    private let handle: FileHandle
    private let ownsHandle: Bool

    init(path: String?) throws {
        if let path {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw CLIError("\(path): cannot create output file")
            }
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            ownsHandle = true
        } else {
            handle = FileHandle.standardOutput
            ownsHandle = false
        }
    }

    func write(_ data: Data) throws { try handle.write(contentsOf: data) }

    func close() throws { if ownsHandle { try handle.close() } }
}

/// NumPy's .npy format, version 1.0.
enum NPYWriter {
    /// A little-endian float32 array of `shape`.
    static func float32(_ values: [Float], shape: [Int]) -> Data {
        let dims = shape.count == 1 ? "\(shape[0])," : shape.map(String.init).joined(separator: ", ")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in \n.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93]) + Data("NUMPY".utf8) + Data([1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: header.utf8)
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        return data
    }
}

/// Minimal JSON text for hot output paths.
enum JSONText {
    /// A JSON string literal.
    static func string(_ value: String) -> String { JSONValue.quoted(value) }

    /// A JSON number; non-finite values (which JSON cannot carry) become null.
    static func float(_ value: Float) -> String {
        value.isFinite ? "\(value)" : "null"
    }
}
