/// torchvision's `ToTensor` + `Normalize` for one byte value of one channel, as a table: `table[c * 256 + v]` is
/// `((v / 255) − mean[c]) / std[c]` in Float32. The CPU preprocessor and a GPU that normalises bytes itself read the
/// same table, so both paths give the same floats to the bit.
public struct PixelNormalization: Sendable, Hashable {
    /// 3 × 256 values, channel-major.
    public let table: [Float]

    /// The table of a preprocessing configuration (zeros when it does not name three means and deviations, which
    /// its validation rejects before any image is processed).
    public init(_ config: PreprocessConfig) {
        var table = [Float](repeating: 0, count: 3 * 256)
        if config.mean.count == 3, config.std.count == 3 {
            for c in 0..<3 {
                for v in 0..<256 {
                    table[c * 256 + v] = (Float(v) / 255 - config.mean[c]) / config.std[c]
                }
            }
        }
        self.table = table
    }

    /// A table given value by value (768 floats, channel-major); for tests and simulated preprocessing.
    public init(table: [Float]) {
        precondition(table.count == 3 * 256, "a normalisation table holds 3 × 256 values, got \(table.count)")
        self.table = table
    }

    /// Writes the normalised floats of `count` planar `[3, S, S]` images (`plane` = S × S) from their bytes.
    public func expand(_ bytes: UnsafeBufferPointer<UInt8>, plane: Int, into output: UnsafeMutableBufferPointer<Float>) {
        precondition(output.count >= bytes.count && bytes.count % (3 * plane) == 0)
        table.withUnsafeBufferPointer { lut in
            for start in stride(from: 0, to: bytes.count, by: plane) {
                let channel = (start / plane) % 3 * 256
                for i in start..<(start + plane) { output[i] = lut[channel + Int(bytes[i])] }
            }
        }
    }
}

/// One request's images on their way from preprocessing to an execution context.
public enum ImagePixels: Sendable {
    /// Normalised floats, `count × 3 × S × S` (what a client sends as a tensor).
    case normalized([Float])
    /// RGB bytes before `ToTensor`'s division by 255, planar `count × 3 × S × S` (what decoding produces): a quarter
    /// of the memory, and a GPU uploads them as they are and normalises them itself with `PixelNormalization`.
    case bytes([UInt8])

    /// Pixel values held (3 × S × S per image).
    public var count: Int {
        switch self {
        case let .normalized(values): values.count
        case let .bytes(values): values.count
        }
    }
}
