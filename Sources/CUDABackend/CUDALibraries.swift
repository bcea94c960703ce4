import CCUDA
import InferenceCore
import Synchronization

/// The dlopen'ed CUDA driver, cuBLASLt and NVRTC function tables, loaded once per process.
///
/// Libraries are looked up under their standard names first, then in each folder of the search path
/// (`--cuda-lib-path` / `CLIPSERVE_CUDA_LIB_PATH`, ':'-separated).
public final class CUDALibraries: @unchecked Sendable {
    // @unchecked: the tables are written once in `init` and only read afterwards.
    let driver: ccuda_driver_api
    let cublasLt: ccuda_cublaslt_api
    let nvrtc: ccuda_nvrtc_api

    /// Environment variable naming extra library folders.
    public static let searchPathVariable = "CLIPSERVE_CUDA_LIB_PATH"

    private static let loaded = Mutex<CUDALibraries?>(nil)
    private static let searchPathOverride = Mutex<String?>(nil)

    /// Sets the folders searched after the standard names (before the first load).
    public static func setSearchPath(_ path: String?) {
        searchPathOverride.withLock { $0 = path }
    }

    /// The effective search path: the override, else the environment variable.
    static var searchPath: String? {
        if let path = searchPathOverride.withLock({ $0 }) { return path }
        return getenv(searchPathVariable).map { String(cString: $0) }
    }

    /// The process-wide libraries, loading and initialising the driver on first use.
    public static func shared() throws -> CUDALibraries {
        try loaded.withLock { cached in
            if let cached { return cached }
            let libraries = try CUDALibraries(searchPath: searchPath)
            cached = libraries
            return libraries
        }
    }

    private init(searchPath: String?) throws {
        driver = try Self.load(CCUDA_LIB_DRIVER, ccuda_driver_api(), searchPath)
        cublasLt = try Self.load(CCUDA_LIB_CUBLASLT, ccuda_cublaslt_api(), searchPath)
        nvrtc = try Self.load(CCUDA_LIB_NVRTC, ccuda_nvrtc_api(), searchPath)
        // cuInit failing (no GPU, driver/library mismatch) means CUDA is unavailable here, not a device fault.
        do {
            try check(driver.cuInit!(0), "cuInit")
        } catch let EngineError.device(message) {
            throw EngineError.unavailable(message)
        }
    }

    static func load<Table>(_ library: ccuda_library, _ empty: Table, _ searchPath: String?) throws -> Table {
        var table = empty
        var message = [CChar](repeating: 0, count: 4096)
        let status = withUnsafeMutableBytes(of: &table) { raw in
            ccuda_load(library, searchPath, raw.baseAddress, raw.count, &message, message.count)
        }
        guard status == 0 else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw EngineError.unavailable("cuda: \(text); set --cuda-lib-path or \(searchPathVariable) to its folder")
        }
        return table
    }

    /// Throws `EngineError.device` naming `call`, `detail` and the driver's own error name and text.
    func check(_ result: CUresult, _ call: @autoclosure () -> String, _ detail: @autoclosure () -> String = "") throws {
        guard result != 0 else { return }
        var name: UnsafePointer<CChar>?
        var text: UnsafePointer<CChar>?
        _ = driver.cuGetErrorName!(result, &name)
        _ = driver.cuGetErrorString!(result, &text)
        let extra = detail()
        throw EngineError.device(
            "cuda: \(call())\(extra.isEmpty ? "" : " [\(extra)]") failed: \(name.map { String(cString: $0) } ?? "error \(result)")"
                + " (\(text.map { String(cString: $0) } ?? "no description"))")
    }

    /// Throws naming a failed cuBLASLt call with its shapes and the library's status name.
    func checkBLAS(_ status: cublasStatus_t, _ call: @autoclosure () -> String, _ detail: @autoclosure () -> String = "") throws {
        guard status != 0 else { return }
        let name = cublasLt.cublasLtGetStatusName!(status).map { String(cString: $0) } ?? "status \(status)"
        let text = cublasLt.cublasLtGetStatusString!(status).map { String(cString: $0) } ?? ""
        throw EngineError.device("cublasLt: \(call()) [\(detail())] failed: \(name) (\(text))")
    }

    /// Throws naming a failed NVRTC call and its message.
    func checkNVRTC(_ result: nvrtcResult, _ call: @autoclosure () -> String, log: String = "") throws {
        guard result != 0 else { return }
        let text = nvrtc.nvrtcGetErrorString!(result).map { String(cString: $0) } ?? "error \(result)"
        throw EngineError.device("nvrtc: \(call()) failed: \(text)\(log.isEmpty ? "" : "\n\(log)")")
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
