import CCUDA
import InferenceCore

/// Reads utilisation, memory and power of the GPUs an engine runs on through NVML, for the server's /metrics.
///
/// NVML numbers GPUs in PCI order and ignores `CUDA_VISIBLE_DEVICES`; the CUDA driver puts the fastest first and
/// honours it. Each GPU is therefore found by its PCI address and reported under its CUDA ordinal.
public final class GPUMonitor: @unchecked Sendable {
    // @unchecked: the table and handles are immutable after init; NVML queries are thread-safe.
    /// One GPU's readings.
    public struct Sample: Sendable, Hashable {
        /// CUDA ordinal (`cuda:N`).
        public var index: Int
        /// Marketing name.
        public var name: String
        /// Percent of the last sample period a kernel was running, 0–100.
        public var utilizationPercent: Int
        /// Device memory in use, bytes.
        public var memoryUsedBytes: Int
        /// Device memory in total, bytes.
        public var memoryTotalBytes: Int
        /// Board power draw, watts.
        public var powerWatts: Double
    }

    private let nvml: ccuda_nvml_api
    private let devices: [(index: Int, handle: nvmlDevice_t, name: String)]

    /// Loads NVML and opens the given GPUs: CUDA ordinal and PCI address (`CUDAEngine.ordinal`, `.pciBusID`).
    public init(devices wanted: [(ordinal: Int, pciBusID: String)]) throws {
        let nvml = try CUDALibraries.load(CCUDA_LIB_NVML, ccuda_nvml_api(), CUDALibraries.searchPath)
        func check(_ result: nvmlReturn_t, _ call: String) throws {
            guard result != 0 else { return }
            let text = nvml.nvmlErrorString!(result).map { String(cString: $0) } ?? "error \(result)"
            throw EngineError.device("nvml: \(call) failed: \(text)")
        }
        try check(nvml.nvmlInit!(), "nvmlInit_v2")
        var devices: [(Int, nvmlDevice_t, String)] = []
        for (ordinal, address) in wanted {
            var handle: nvmlDevice_t?
            try check(
                nvml.nvmlDeviceGetHandleByPciBusId!(address, &handle),
                "nvmlDeviceGetHandleByPciBusId_v2(\(address)) for cuda:\(ordinal)")
            var name = [CChar](repeating: 0, count: 256)
            _ = nvml.nvmlDeviceGetName!(handle, &name, 256)
            devices.append(
                (ordinal, handle!, String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)))
        }
        self.nvml = nvml
        self.devices = devices
    }

    deinit { _ = nvml.nvmlShutdown!() }

    /// Current readings of each GPU; a reading NVML cannot give is reported as 0.
    public func sample() -> [Sample] {
        devices.map { device in
            var utilization = ccuda_nvml_utilization()
            var memory = ccuda_nvml_memory()
            var milliwatts: UInt32 = 0
            _ = nvml.nvmlDeviceGetUtilizationRates!(device.handle, &utilization)
            _ = nvml.nvmlDeviceGetMemoryInfo!(device.handle, &memory)
            _ = nvml.nvmlDeviceGetPowerUsage!(device.handle, &milliwatts)
            return Sample(
                index: device.index, name: device.name, utilizationPercent: Int(utilization.gpu),
                memoryUsedBytes: Int(memory.used), memoryTotalBytes: Int(memory.total), powerWatts: Double(milliwatts) / 1000)
        }
    }
}
