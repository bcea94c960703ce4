import CCUDA
import Foundation
import InferenceCore

/// One GPU: its ordinal, name, compute capability and retained primary context.
public final class CUDADevice: @unchecked Sendable {
    // @unchecked: all fields are immutable after init; the driver's primary context is thread-safe to bind.
    /// Device ordinal as the driver numbers it.
    public let ordinal: Int
    /// Marketing name, e.g. "NVIDIA H100 80GB HBM3".
    public let name: String
    /// Compute capability (major, minor).
    public let computeCapability: (major: Int, minor: Int)
    /// Streaming multiprocessors.
    public let multiprocessors: Int
    /// Device memory in bytes.
    public let totalMemory: Int
    /// Largest dynamic shared memory one block may opt in to, bytes.
    public let maxSharedMemoryPerBlock: Int
    /// PCI address as NVML writes it (`00000000:17:00.0`): how NVML finds this GPU whatever order either numbers them.
    public let pciBusID: String
    let libraries: CUDALibraries
    let device: CUdevice
    let context: CUcontext

    /// Whether a CUDA driver and at least one GPU are usable here (never throws).
    public static var isAvailable: Bool { ((try? count()) ?? 0) > 0 }

    /// Number of GPUs the driver sees.
    public static func count() throws -> Int {
        let libraries = try CUDALibraries.shared()
        var n: Int32 = 0
        try libraries.check(libraries.driver.cuDeviceGetCount!(&n), "cuDeviceGetCount")
        return Int(n)
    }

    /// Opens GPU `ordinal` and retains its primary context.
    public init(ordinal: Int) throws {
        let libraries = try CUDALibraries.shared()
        let d = libraries.driver
        let count = try Self.count()
        guard ordinal >= 0, ordinal < count else {
            throw EngineError.unavailable("cuda: no GPU \(ordinal); the driver sees \(count)")
        }
        var device: CUdevice = 0
        try libraries.check(d.cuDeviceGet!(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        var nameBytes = [CChar](repeating: 0, count: 256)
        try libraries.check(d.cuDeviceGetName!(&nameBytes, 256, device), "cuDeviceGetName")
        func attribute(_ id: Int32, _ label: String) throws -> Int {
            var value: Int32 = 0
            try libraries.check(d.cuDeviceGetAttribute!(&value, id, device), "cuDeviceGetAttribute(\(label))")
            return Int(value)
        }
        computeCapability = (
            try attribute(Int32(CCUDA_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR), "major"),
            try attribute(Int32(CCUDA_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR), "minor"))
        multiprocessors = try attribute(Int32(CCUDA_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT), "SMs")
        maxSharedMemoryPerBlock = try attribute(
            Int32(CCUDA_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN), "shared memory opt-in")
        pciBusID = String(
            format: "%08X:%02X:%02X.0", try attribute(Int32(CCUDA_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID), "PCI domain"),
            try attribute(Int32(CCUDA_DEVICE_ATTRIBUTE_PCI_BUS_ID), "PCI bus"),
            try attribute(Int32(CCUDA_DEVICE_ATTRIBUTE_PCI_DEVICE_ID), "PCI device"))
        var bytes = 0
        try libraries.check(d.cuDeviceTotalMem!(&bytes, device), "cuDeviceTotalMem")
        totalMemory = bytes
        var context: CUcontext?
        try libraries.check(d.cuDevicePrimaryCtxRetain!(&context, device), "cuDevicePrimaryCtxRetain(\(ordinal))")
        guard let context else { throw EngineError.device("cuda: cuDevicePrimaryCtxRetain returned no context") }
        self.ordinal = ordinal
        self.name = String(decoding: nameBytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.libraries = libraries
        self.device = device
        self.context = context
    }

    deinit { _ = libraries.driver.cuDevicePrimaryCtxRelease!(device) }

    /// Makes this device's context current on the calling thread (cheap; done before every batch).
    func bind() throws {
        try libraries.check(libraries.driver.cuCtxSetCurrent!(context), "cuCtxSetCurrent(cuda:\(ordinal))")
    }

    /// `sm_XY` for NVRTC.
    var architecture: String { "sm_\(computeCapability.major)\(computeCapability.minor)" }

    /// Allocates `bytes` of device memory.
    func allocate(_ bytes: Int, _ what: String) throws -> CUDABuffer {
        try bind()
        var pointer: CUdeviceptr = 0
        try libraries.check(
            libraries.driver.cuMemAlloc!(&pointer, max(bytes, 256)), "cuMemAlloc(\(bytes) bytes for \(what))",
            "cuda:\(ordinal)")
        return CUDABuffer(device: self, pointer: pointer, bytes: bytes)
    }
}

/// Device memory freed when the last reference goes.
final class CUDABuffer: @unchecked Sendable {
    // @unchecked: immutable handle; the memory is written only by the stream that owns the buffer.
    let device: CUDADevice
    let pointer: CUdeviceptr
    let bytes: Int

    init(device: CUDADevice, pointer: CUdeviceptr, bytes: Int) {
        self.device = device
        self.pointer = pointer
        self.bytes = bytes
    }

    deinit {
        _ = device.libraries.driver.cuCtxSetCurrent!(device.context)
        _ = device.libraries.driver.cuMemFree!(pointer)
    }

    /// Synchronous upload of `data` to the start of the buffer.
    func upload(_ data: UnsafeRawBufferPointer, _ what: String) throws {
        precondition(data.count <= bytes)
        try device.bind()
        try device.libraries.check(
            device.libraries.driver.cuMemcpyHtoD!(pointer, data.baseAddress!, data.count), "cuMemcpyHtoD(\(what))",
            "\(data.count) bytes")
    }
}
