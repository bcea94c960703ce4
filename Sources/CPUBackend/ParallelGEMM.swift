import CBLAS
import CKernels
import Dispatch
import Foundation
import InferenceCore

/// Which code runs the CPU backend's matmuls.
public enum CPUMatmulKernels: String, Sendable, CaseIterable, CustomStringConvertible {
    /// clipserve's own fp32 GEMM (`Sources/CKernels/gemm.c`): an AVX-512 FMA 14×32 micro-kernel with bias, GELU and
    /// QuickGELU fused into the tile's only store. Needs AVX-512F/DQ and FMA.
    case avx512
    /// One single-threaded OpenBLAS `cblas_sgemm` per tile, then the epilogue in Swift.
    case openBLAS = "openblas"

    /// Environment variable that overrides the automatic choice: `avx512` or `openblas`.
    public static let environmentVariable = "CLIPSERVE_CPU_KERNELS"

    /// Whether this CPU can run `avx512`.
    public static let avx512Available: Bool = ck_avx512_available() != 0

    /// `avx512` where the CPU has it, else `openblas`.
    public static var automatic: CPUMatmulKernels { avx512Available ? .avx512 : .openBLAS }

    /// The choice in `CLIPSERVE_CPU_KERNELS` (nil when unset or empty), or an error naming the bad value.
    static func fromEnvironment() throws -> CPUMatmulKernels? {
        guard let value = ProcessInfo.processInfo.environment[environmentVariable], !value.isEmpty else { return nil }
        guard let kernels = CPUMatmulKernels(rawValue: value.lowercased()) else {
            throw CPUEngineError.invalidConfiguration(
                "\(environmentVariable)=\(value) is not one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return kernels
    }

    public var description: String {
        switch self {
        case .avx512: "AVX-512 fp32 kernels"
        case .openBLAS: "\(OpenBLASRuntime.version) \(OpenBLASRuntime.coreName)"
        }
    }
}

/// Runs `body(chunk, range)` over `0..<count` cut into at most `threads` contiguous chunks, one per worker; the
/// chunk index (below `threads`) picks a worker's scratch space.
@inline(__always)
func parallelChunks(_ count: Int, threads: Int, _ body: (_ chunk: Int, _ range: Range<Int>) -> Void) {
    let chunks = min(threads, count)
    guard chunks > 1 else {
        if count > 0 { body(0, 0..<count) }
        return
    }
    withoutActuallyEscaping(body) { body in
        // The chunks touch disjoint data or only read shared data; the caller waits for all of them.
        let shared = UnsafeSendable(body)
        DispatchQueue.concurrentPerform(iterations: chunks) { i in
            shared.value(i, (count * i / chunks)..<(count * (i + 1) / chunks))
        }
    }
}

/// What a tile of a GEMM gets right after `cblas_sgemm` wrote it, while it is still in cache.
enum GEMMEpilogue {
    /// Nothing.
    case none
    /// Adds a bias per output column.
    case bias(UnsafePointer<Float>)
    /// Adds a bias per output column, then an activation.
    case biasActivation(UnsafePointer<Float>, Activation)
}

/// C[m, n] = alpha·A[m, k]·op(B) + beta·C, row-major, split into tiles that each run a single-threaded
/// GEMM on one worker followed by the epilogue on the same tile (fused into the GEMM with `.avx512`, which takes
/// alpha = 1 and beta ∈ {0, 1} only).
///
/// The split is over output columns first (each worker streams only its share of the weights and packs the small
/// activation matrix itself), then over row blocks of at most 512 rows so a tile stays near cache size for the epilogue.
/// `transposeB` means B is stored [n, k] (a Linear weight); otherwise [k, n].
func parallelGEMM(
    m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
    epilogue: GEMMEpilogue = .none, threads: Int, kernels: CPUMatmulKernels = .automatic
) {
    guard m > 0, n > 0 else { return }
    if kernels == .avx512 {
        precondition(alpha == 1 && (beta == 0 || beta == 1), "the AVX-512 GEMM takes alpha 1 and beta 0 or 1")
        return avx512GEMM(
            m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB, accumulate: beta == 1, c: c,
            ldc: ldc, epilogue: epilogue, threads: threads)
    }
    _ = OpenBLASRuntime.coreName  // OpenBLAS's own pool pinned to one thread before the first call.
    let columnParts = threads > 1 && n >= 64 * threads ? threads : 1
    var rowBlocks = max(1, (m + 511) / 512)
    if columnParts == 1 { rowBlocks = max(rowBlocks, min(threads, (m + 63) / 64)) }
    parallelChunks(columnParts * rowBlocks, threads: threads) { _, tasks in
        for task in tasks {
            let part = task / rowBlocks, block = task % rowBlocks
            // Column boundaries on multiples of 16 keep every tile's B slice aligned to the kernel's panel width.
            let n0 = part == 0 ? 0 : (n * part / columnParts) & ~15
            let n1 = part == columnParts - 1 ? n : (n * (part + 1) / columnParts) & ~15
            let m0 = m * block / rowBlocks, m1 = m * (block + 1) / rowBlocks
            guard n1 > n0, m1 > m0 else { continue }
            let bSlice = transposeB ? b + n0 * ldb : b + n0
            let cTile = c + m0 * ldc + n0
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                Int32(m1 - m0), Int32(n1 - n0), Int32(k), alpha, a + m0 * lda, Int32(lda),
                bSlice, Int32(ldb), beta, cTile, Int32(ldc)
            )
            switch epilogue {
            case .none: break
            case let .bias(bias):
                applyBias(cTile, ldc: ldc, rows: m1 - m0, bias: bias + n0, columns: n1 - n0, activation: nil)
            case let .biasActivation(bias, activation):
                applyBias(cTile, ldc: ldc, rows: m1 - m0, bias: bias + n0, columns: n1 - n0, activation: activation)
            }
        }
    }
}

/// `parallelGEMM` on `ck_sgemm`: the columns are cut on 32-column panel boundaries into one part per worker (each
/// packs only its share of the weights), or, when there are too few columns, the rows are.
private func avx512GEMM(
    m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue, threads: Int
) {
    let bias: UnsafePointer<Float>?, kind: ck_epilogue
    switch epilogue {
    case .none: (bias, kind) = (nil, CK_EPILOGUE_NONE)
    case let .bias(pointer): (bias, kind) = (pointer, CK_EPILOGUE_BIAS)
    case let .biasActivation(pointer, .gelu): (bias, kind) = (pointer, CK_EPILOGUE_BIAS_GELU)
    case let .biasActivation(pointer, .quickGELU): (bias, kind) = (pointer, CK_EPILOGUE_BIAS_QUICKGELU)
    }
    let panels = (n + 31) / 32
    let columnParts = min(threads, panels)
    let rowParts = columnParts > 1 ? 1 : min(threads, max(1, m / 14))
    parallelChunks(columnParts * rowParts, threads: threads) { _, tasks in
        for task in tasks {
            let part = task / rowParts, block = task % rowParts
            let n0 = min(n, panels * part / columnParts * 32), n1 = min(n, panels * (part + 1) / columnParts * 32)
            let m0 = m * block / rowParts, m1 = m * (block + 1) / rowParts
            guard n1 > n0, m1 > m0 else { continue }
            ck_sgemm(
                Int32(m1 - m0), Int32(n0), Int32(n1), Int32(k), a + m0 * lda, lda, b, ldb, transposeB ? 1 : 0,
                c + m0 * ldc, ldc, accumulate ? 1 : 0, bias, kind)
        }
    }
}

/// Adds `bias` (and an activation) to each of `rows` rows of `columns` floats, `ldc` apart.
private func applyBias(
    _ tile: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, bias: UnsafePointer<Float>, columns: Int,
    activation: Activation?
) {
    for r in 0..<rows {
        let row: UnsafeMutablePointer<Float> = tile + r * ldc
        CPUKernels.addBias(row, bias, count: columns, activation: activation)
    }
}
