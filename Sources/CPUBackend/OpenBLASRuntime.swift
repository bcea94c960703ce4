import CBLAS
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Process-wide OpenBLAS set-up, done once before the first CPU engine runs a matmul.
///
/// clipserve parallelises every matmul itself (one single-threaded `cblas_sgemm` per tile, see `ParallelGEMM`), so
/// OpenBLAS's own pool is set to one thread: two pools spinning on two cores slowed every element-wise op.
enum OpenBLASRuntime {
    /// The kernel family OpenBLAS runs ("SkylakeX", "Haswell", ...), after `configure` ran.
    static let coreName: String = configure()

    /// "OpenBLAS 0.3.21" from `openblas_get_config()`, without the build flags.
    static var version: String {
        guard let config = openblas_get_config() else { return "OpenBLAS" }
        let words = String(cString: config).split(separator: " ")
        return words.prefix(2).joined(separator: " ")
    }

    /// Picks AVX-512 kernels where this OpenBLAS does not know the CPU, then sets one BLAS thread.
    ///
    /// OpenBLAS 0.3.21 (Debian 12) predates AMD Zen 4/5 and falls back to its AVX2 "Haswell" kernels on them, which
    /// run sgemm at a third of the speed of its "SkylakeX" kernels on the same cores. Newer OpenBLAS releases choose
    /// SkylakeX for these CPUs themselves; we do the same through the documented `OPENBLAS_CORETYPE` variable and
    /// OpenBLAS's exported re-initialisation entry points, found with dlsym so a build without DYNAMIC_ARCH is left
    /// alone. A user's own `OPENBLAS_CORETYPE` always wins.
    private static func configure() -> String {
        let current = openblas_get_corename().map { String(cString: $0) } ?? "unknown"
        if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
           ["Haswell", "Zen", "Sandybridge"].contains(current),
           cpuHasAVX512(),
           let initSymbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gotoblas_dynamic_init"),
           let quitSymbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gotoblas_dynamic_quit")
        {
            typealias VoidFunction = @convention(c) () -> Void
            setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
            unsafeBitCast(quitSymbol, to: VoidFunction.self)()
            unsafeBitCast(initSymbol, to: VoidFunction.self)()
            unsetenv("OPENBLAS_CORETYPE")
        }
        openblas_set_num_threads(1)
        return openblas_get_corename().map { String(cString: $0) } ?? current
    }

    /// Whether the kernel reports the AVX-512 subsets OpenBLAS's SkylakeX kernels use.
    private static func cpuHasAVX512() -> Bool {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return false }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        return ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
    }
}
