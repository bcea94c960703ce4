import CCUDA
import Foundation
import InferenceCore

/// Compiles CUDA C to a CUBIN for one architecture with NVRTC, caching the result on disk under
/// `$CLIPSERVE_CACHE/kernels` (default `~/.cache/clipserve/kernels`), keyed by a hash of (source, arch, NVRTC
/// version, options).
struct NVRTCCompiler {
    let libraries: CUDALibraries

    /// NVRTC's version as "major.minor".
    var version: String {
        var major: Int32 = 0, minor: Int32 = 0
        _ = libraries.nvrtc.nvrtcVersion!(&major, &minor)
        return "\(major).\(minor)"
    }

    /// Folder holding cached CUBINs.
    static var cacheDirectory: URL {
        if let root = ProcessInfo.processInfo.environment["CLIPSERVE_CACHE"], !root.isEmpty {
            return URL(fileURLWithPath: root).appendingPathComponent("kernels")
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/clipserve/kernels")
    }

    /// The CUBIN for `source`, from the cache when present. `name` labels errors and the cache file.
    func cubin(source: String, name: String, architecture: String, defines: [String] = []) throws -> (bytes: [UInt8], cached: Bool) {
        let options = ["--gpu-architecture=\(architecture)", "--std=c++17"] + defines.map { "-D\($0)" }
        let key = fnv1a64("\(source)\u{0}\(architecture)\u{0}\(version)\u{0}\(options.joined(separator: " "))")
        let file = Self.cacheDirectory.appendingPathComponent("\(name)-\(architecture)-\(String(key, radix: 16)).cubin")
        if let data = try? Data(contentsOf: file), !data.isEmpty { return ([UInt8](data), true) }

        let n = libraries.nvrtc
        var program: nvrtcProgram?
        try libraries.checkNVRTC(n.nvrtcCreateProgram!(&program, source, name + ".cu", 0, nil, nil), "nvrtcCreateProgram(\(name))")
        defer { _ = n.nvrtcDestroyProgram!(&program) }
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let result = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer { pointers in
            n.nvrtcCompileProgram!(program, Int32(pointers.count), pointers.baseAddress)
        }
        var logSize = 0
        _ = n.nvrtcGetProgramLogSize!(program, &logSize)
        var log = [CChar](repeating: 0, count: max(logSize, 1))
        _ = n.nvrtcGetProgramLog!(program, &log)
        let logText = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        try libraries.checkNVRTC(
            result, "nvrtcCompileProgram(\(name).cu, \(options.joined(separator: " ")), NVRTC \(version))", log: logText)
        var size = 0
        try libraries.checkNVRTC(n.nvrtcGetCUBINSize!(program, &size), "nvrtcGetCUBINSize(\(name))")
        var bytes = [UInt8](repeating: 0, count: size)
        try bytes.withUnsafeMutableBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { chars in
                try libraries.checkNVRTC(n.nvrtcGetCUBIN!(program, chars.baseAddress), "nvrtcGetCUBIN(\(name))")
            }
        }
        // The cache is an optimisation: failing to write it is not an error.
        try? FileManager.default.createDirectory(at: Self.cacheDirectory, withIntermediateDirectories: true)
        let temporary = file.appendingPathExtension("tmp\(getpid())")
        if (try? Data(bytes).write(to: temporary)) != nil {
            _ = try? FileManager.default.replaceItemAt(file, withItemAt: temporary)
            if !FileManager.default.fileExists(atPath: file.path) { try? FileManager.default.moveItem(at: temporary, to: file) }
        }
        return (bytes, false)
    }
}

/// 64-bit FNV-1a of the UTF-8 bytes of `text`.
func fnv1a64(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
    }
    return hash
}
