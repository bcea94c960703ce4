import CBLAS

/// Process-wide OpenBLAS set-up, done once before the first CPU engine runs a matmul on OpenBLAS (the
/// `CPUMatmulKernels.openBLAS` path: AVX2-only CPUs, or `CLIPSERVE_CPU_KERNELS=openblas`).
///
/// clipserve parallelises every matmul itself (one single-threaded `cblas_sgemm` per tile, see `parallelGEMM`), so
/// OpenBLAS's own pool is set to one thread: a second pool spinning on the same cores slowed the element-wise ops
/// between matmuls. The kernel family is OpenBLAS's choice (`OPENBLAS_CORETYPE` overrides it).
enum OpenBLASRuntime {
    /// The kernel family OpenBLAS runs ("Cooperlake", "SkylakeX", "Haswell", ...), after set-up.
    static let coreName: String = {
        openblas_set_num_threads(1)
        return openblas_get_corename().map { String(cString: $0) } ?? "unknown kernels"
    }()

    /// "OpenBLAS 0.3.21" from `openblas_get_config()`, without the build flags.
    static var version: String {
        guard let config = openblas_get_config() else { return "OpenBLAS" }
        return String(cString: config).split(separator: " ").prefix(2).joined(separator: " ")
    }
}
