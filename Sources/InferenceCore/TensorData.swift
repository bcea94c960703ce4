/// An immutable, typed, row-major tensor in host memory.
///
/// The bytes belong to `owner` (an mmap of a checkpoint, or an array made at load time), which stays alive as long
/// as any view of it does. Values are never written after creation, so sharing across threads is safe.
public struct TensorData: @unchecked Sendable {
    /// Element type of `bytes`.
    public let dtype: DType
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// The raw little-endian elements, exactly `elementCount * dtype.byteSize` bytes.
    public let bytes: UnsafeRawBufferPointer
    /// Keeps the storage behind `bytes` alive; immutable after init.
    public let owner: AnyObject

    /// Wraps bytes owned by `owner`; the caller guarantees the size matches.
    public init(dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, owner: AnyObject) {
        precondition(bytes.count == shape.reduce(1, *) * dtype.byteSize, "tensor byte count does not match shape")
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
        self.owner = owner
    }

    /// Copies `values` into new storage owned by the returned tensor.
    public init(shape: [Int], values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "value count \(values.count) does not match shape \(shape)")
        let storage = FloatStorage(values)
        self.init(dtype: .f32, shape: shape, bytes: storage.rawBytes, owner: storage)
    }

    /// Number of elements.
    public var elementCount: Int { shape.reduce(1, *) }

    /// Element `i` as a Float.
    @inline(__always)
    public func float(at i: Int) -> Float {
        switch dtype {
        case .f32: bytes.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
        case .f16: HalfConversion.float(fromF16: bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
        case .bf16: HalfConversion.float(fromBF16: bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
        }
    }

    /// All elements converted to Float (a copy).
    public func floats() -> [Float] {
        if dtype == .f32 {
            return [Float](unsafeUninitializedCapacity: elementCount) { buffer, count in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: bytes)
                count = elementCount
            }
        }
        return (0..<elementCount).map { float(at: $0) }
    }

    /// Runs `body` over the elements as Float without copying when they already are F32 and aligned.
    public func withFloats<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        if dtype == .f32, Int(bitPattern: bytes.baseAddress) % MemoryLayout<Float>.alignment == 0 {
            return try body(bytes.bindMemory(to: Float.self))
        }
        return try floats().withUnsafeBufferPointer(body)
    }

    /// A tensor with the same bytes and a different shape of equal element count.
    public func reshaped(_ newShape: [Int]) -> TensorData {
        TensorData(dtype: dtype, shape: newShape, bytes: bytes, owner: owner)
    }
}

/// Heap storage for tensors made at run time (converted, concatenated or synthetic weights).
public final class FloatStorage: @unchecked Sendable {
    /// The buffer; written only inside `init`, read-only afterwards.
    public let pointer: UnsafeMutableBufferPointer<Float>
    /// Number of valid elements.
    public let count: Int

    /// Copies `values` into a new allocation.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count) { buffer in _ = buffer.initialize(from: values) }
    }

    /// Allocates `count` zeroed floats and lets `fill` write them once.
    public init(count: Int, fill: (UnsafeMutableBufferPointer<Float>) -> Void) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0)
        fill(UnsafeMutableBufferPointer(rebasing: pointer[0..<count]))
    }

    /// The initialised bytes.
    public var rawBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: pointer.baseAddress, count: count * MemoryLayout<Float>.stride)
    }

    deinit { pointer.deallocate() }
}
