import InferenceCore

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
