/// Heap bytes for tensors made at load time: HF q/k/v concatenations and transposes (in the checkpoint dtype)
/// and synthetic weights.
final class ByteStorage: @unchecked Sendable {
    // Written once by its maker before the first TensorData view of it exists, read-only afterwards.
    let bytes: UnsafeMutableRawBufferPointer

    init(count: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        fill(UnsafeMutableRawBufferPointer(rebasing: bytes[0..<count]))
    }

    /// Allocates `count` bytes the caller initialises before any view of them is made.
    init(uninitializedCount count: Int) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 64)
    }

    deinit { bytes.deallocate() }
}
