import CCUDA
import Synchronization
import InferenceCore

/// `Y[m, n] = X[m, k] · Wᵀ (+ bias[n]) (+ Y)` for row-major X and a Linear weight W [n, k], on cuBLASLt.
///
/// In cuBLASLt's column-major terms that is Dᵀ = op_T(W) · Xᵀ: A = W (k × n, transposed), B = X (k × m), D = n × m.
/// Accumulation and scaling are fp32 (CUBLAS_COMPUTE_32F, never TF32); inputs are the engine's precision and the
/// output either the same or fp32 (the residual stream, unless an fp16 engine keeps it in fp16). Bias is added by the
/// BIAS epilogue and the residual by beta = 1 with C = D (exact into fp32).
struct MatmulShape: Hashable, CustomStringConvertible {
    /// Rows of X and Y.
    var m: Int
    /// Output features (rows of W).
    var n: Int
    /// Input features.
    var k: Int
    /// Element type of X and W.
    var input: DType
    /// Element type of Y (and of the bias, which cuBLASLt reads in the output type).
    var output: DType
    /// Whether a bias is added by the epilogue.
    var bias: Bool
    /// Elements from one row of Y to the next when not n: the last block writes the class tokens alone, T·W apart.
    var outputStride: Int? = nil

    /// Leading dimension of Y.
    var ldY: Int { outputStride ?? n }

    var description: String {
        "m=\(m) n=\(n) k=\(k) \(input.rawValue)->\(output.rawValue)\(bias ? " +bias" : "")"
            + (outputStride.map { " ldY=\($0)" } ?? "")
    }
}

/// One cuBLASLt configuration for a shape: descriptors, the heuristic's candidate algorithms (best guess first)
/// and the one in use (the first, until `use` picks another, e.g. the fastest measured).
final class MatmulPlan {
    let shape: MatmulShape
    let libraries: CUDALibraries
    let desc: cublasLtMatmulDesc_t
    let a, b, d: cublasLtMatrixLayout_t
    /// What the heuristic offered, in its order of preference.
    let candidates: [cublasLtMatmulAlgo_t]
    private(set) var algorithm: cublasLtMatmulAlgo_t

    static func cudaType(_ dtype: DType) -> Int32 {
        switch dtype {
        case .f32: Int32(CCUDA_R_32F)
        case .f16: Int32(CCUDA_R_16F)
        case .bf16: Int32(CCUDA_R_16BF)
        }
    }

    /// Descriptors for `shape` and up to `candidates` algorithms that fit in `workspaceLimit` bytes of workspace.
    init(shape: MatmulShape, handle: cublasLtHandle_t, workspaceLimit: Int, libraries: CUDALibraries,
         sampleBias: CUdeviceptr, candidates wanted: Int = 1) throws {
        self.shape = shape
        self.libraries = libraries
        let lt = libraries.cublasLt
        var desc: cublasLtMatmulDesc_t?
        try libraries.checkBLAS(
            lt.cublasLtMatmulDescCreate!(&desc, Int32(CCUBLAS_COMPUTE_32F), Int32(CCUDA_R_32F)), "cublasLtMatmulDescCreate", "\(shape)")
        self.desc = desc!
        func set<T: BitwiseCopyable>(_ attribute: Int32, _ value: T, _ label: String) throws {
            var value = value
            try libraries.checkBLAS(
                lt.cublasLtMatmulDescSetAttribute!(desc, attribute, &value, MemoryLayout<T>.size),
                "cublasLtMatmulDescSetAttribute(\(label))", "\(shape)")
        }
        try set(Int32(CCUBLASLT_MATMUL_DESC_TRANSA), Int32(CCUBLAS_OP_T), "TRANSA")
        try set(Int32(CCUBLASLT_MATMUL_DESC_TRANSB), Int32(CCUBLAS_OP_N), "TRANSB")
        try set(
            Int32(CCUBLASLT_MATMUL_DESC_EPILOGUE),
            UInt32(shape.bias ? CCUBLASLT_EPILOGUE_BIAS : CCUBLASLT_EPILOGUE_DEFAULT), "EPILOGUE")
        if shape.bias { try set(Int32(CCUBLASLT_MATMUL_DESC_BIAS_POINTER), sampleBias, "BIAS_POINTER") }

        func layout(_ type: DType, rows: Int, cols: Int, ld: Int, _ label: String) throws -> cublasLtMatrixLayout_t {
            var layout: cublasLtMatrixLayout_t?
            try libraries.checkBLAS(
                lt.cublasLtMatrixLayoutCreate!(&layout, Self.cudaType(type), UInt64(rows), UInt64(cols), Int64(ld)),
                "cublasLtMatrixLayoutCreate(\(label))", "\(shape)")
            return layout!
        }
        a = try layout(shape.input, rows: shape.k, cols: shape.n, ld: shape.k, "W")
        b = try layout(shape.input, rows: shape.k, cols: shape.m, ld: shape.k, "X")
        d = try layout(shape.output, rows: shape.n, cols: shape.m, ld: shape.ldY, "Y")

        var preference: cublasLtMatmulPreference_t?
        try libraries.checkBLAS(lt.cublasLtMatmulPreferenceCreate!(&preference), "cublasLtMatmulPreferenceCreate", "\(shape)")
        defer { _ = lt.cublasLtMatmulPreferenceDestroy!(preference) }
        var limit = UInt64(workspaceLimit)
        try libraries.checkBLAS(
            lt.cublasLtMatmulPreferenceSetAttribute!(
                preference, Int32(CCUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES), &limit, MemoryLayout<UInt64>.size),
            "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)", "\(shape)")
        var results = [cublasLtMatmulHeuristicResult_t](repeating: .init(), count: max(1, wanted))
        var returned: Int32 = 0
        try libraries.checkBLAS(
            lt.cublasLtMatmulAlgoGetHeuristic!(handle, desc, a, b, d, d, preference, Int32(results.count), &results, &returned),
            "cublasLtMatmulAlgoGetHeuristic", "\(shape)")
        let usable = results.prefix(Int(returned)).filter { $0.state == 0 && $0.workspaceSize <= workspaceLimit }
        guard let first = usable.first else {
            throw EngineError.device("cublasLt: no algorithm for \(shape) within \(workspaceLimit) bytes of workspace")
        }
        candidates = usable.map(\.algo)
        algorithm = first.algo
    }

    /// Runs `algorithm` from now on (one of `candidates`).
    func use(_ algorithm: cublasLtMatmulAlgo_t) {
        self.algorithm = algorithm
    }

    deinit {
        let lt = libraries.cublasLt
        _ = lt.cublasLtMatrixLayoutDestroy!(a)
        _ = lt.cublasLtMatrixLayoutDestroy!(b)
        _ = lt.cublasLtMatrixLayoutDestroy!(d)
        _ = lt.cublasLtMatmulDescDestroy!(desc)
    }

    /// Enqueues the product on `stream`; `accumulate` adds into the existing Y (beta = 1).
    func run(
        handle: cublasLtHandle_t, weight: CUdeviceptr, input: CUdeviceptr, output: CUdeviceptr, bias: CUdeviceptr?,
        accumulate: Bool, workspace: CUdeviceptr, workspaceLimit: Int, stream: CUstream?, label: String
    ) throws {
        let lt = libraries.cublasLt
        if shape.bias {
            var pointer = bias ?? 0
            try libraries.checkBLAS(
                lt.cublasLtMatmulDescSetAttribute!(desc, Int32(CCUBLASLT_MATMUL_DESC_BIAS_POINTER), &pointer, 8),
                "cublasLtMatmulDescSetAttribute(BIAS_POINTER)", "\(label) \(shape)")
        }
        var alpha: Float = 1, beta: Float = accumulate ? 1 : 0
        let status = withUnsafePointer(to: &algorithm) { algo in
            lt.cublasLtMatmul!(
                handle, desc, &alpha, UnsafeRawPointer(bitPattern: UInt(weight)), a,
                UnsafeRawPointer(bitPattern: UInt(input)), b, &beta, UnsafeRawPointer(bitPattern: UInt(output)), d,
                UnsafeMutableRawPointer(bitPattern: UInt(output)), d, algo,
                UnsafeMutableRawPointer(bitPattern: UInt(workspace)), workspaceLimit, stream)
        }
        try libraries.checkBLAS(status, "cublasLtMatmul(\(label))", "\(shape)")
    }
}

/// The algorithm each matmul shape runs on one engine (GPU), chosen once by timing the heuristic's candidates and
/// shared by every context: contexts then compute bit-identical results, and only the first pays for the timing.
final class MatmulChoices: Sendable {
    private let chosen = Mutex<[MatmulShape: cublasLtMatmulAlgo_t]>([:])

    /// The algorithm for `shape`: the one already chosen, else `measure()`'s pick (if two contexts measure the same
    /// shape at once, the first to finish wins for both).
    func algorithm(for shape: MatmulShape, measure: () throws -> cublasLtMatmulAlgo_t) rethrows -> cublasLtMatmulAlgo_t {
        if let known = chosen.withLock({ $0[shape] }) { return known }
        let measured = try measure()
        return chosen.withLock { table in
            if let first = table[shape] { return first }
            table[shape] = measured
            return measured
        }
    }
}
