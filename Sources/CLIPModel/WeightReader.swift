import InferenceCore
import SafeTensors

/// Reads tensors of one checkpoint under a name prefix, checking each shape (candle's `vs.pp`).
struct WeightReader {
    let file: SafeTensorsFile
    let prefix: String

    /// A reader whose names are prefixed with `component.`.
    func scoped(_ component: String) -> WeightReader {
        WeightReader(file: file, prefix: prefix + component + ".")
    }

    /// Tensor `prefix + name`, which must have exactly `shape`.
    func callAsFunction(_ name: String, _ shape: [Int]) throws -> TensorData {
        let full = prefix + name
        guard let info = file.info(full) else {
            throw ModelLoadError.missingTensor(file: file.path, tensor: full, expectedShape: shape)
        }
        guard info.shape == shape else {
            throw ModelLoadError.shapeMismatch(file: file.path, tensor: full, expected: shape, found: info.shape)
        }
        do {
            return try file.tensor(full)
        } catch let error as SafeTensorsError {
            throw ModelLoadError.checkpoint(error)
        }
    }
}

/// Heap bytes for tensors rebuilt at load time in their checkpoint dtype (HF q/k/v concatenation, transposes).
final class ByteStorage: @unchecked Sendable {
    // Written only inside `init`, read-only afterwards.
    let bytes: UnsafeMutableRawBufferPointer

    init(count: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        fill(UnsafeMutableRawBufferPointer(rebasing: bytes[0..<count]))
    }

    deinit { bytes.deallocate() }
}

extension TensorData {
    /// Rows of several same-dtype tensors stacked along the first axis, in `parts` order (a copy, dtype kept).
    static func concatenated(_ parts: [TensorData], name: String, file: String) throws -> TensorData {
        let dtype = parts[0].dtype
        guard parts.allSatisfy({ $0.dtype == dtype }) else {
            throw ModelLoadError.badConfig(
                file: file, detail: "\(name): parts have different dtypes \(parts.map(\.dtype.rawValue))")
        }
        let total = parts.reduce(0) { $0 + $1.bytes.count }
        let storage = ByteStorage(count: total) { out in
            var offset = 0
            for part in parts {
                UnsafeMutableRawBufferPointer(rebasing: out[offset..<(offset + part.bytes.count)]).copyMemory(from: part.bytes)
                offset += part.bytes.count
            }
        }
        let rows = parts.reduce(0) { $0 + $1.shape[0] }
        let shape = [rows] + parts[0].shape.dropFirst()
        return TensorData(dtype: dtype, shape: shape, bytes: UnsafeRawBufferPointer(rebasing: storage.bytes[0..<total]), owner: storage)
    }

    /// The transpose of a 2-D tensor (a copy, dtype kept).
    func transposed() -> TensorData {
        let rows = shape[0], cols = shape[1], size = dtype.byteSize
        let total = bytes.count
        let source = bytes
        let storage = ByteStorage(count: total) { out in
            for r in 0..<rows {
                for c in 0..<cols {
                    let from = (r * cols + c) * size, to = (c * rows + r) * size
                    for b in 0..<size { out[to + b] = source[from + b] }
                }
            }
        }
        return TensorData(dtype: dtype, shape: [cols, rows], bytes: UnsafeRawBufferPointer(rebasing: storage.bytes[0..<total]), owner: storage)
    }
}
