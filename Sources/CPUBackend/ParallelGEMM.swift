import CBLAS
import Dispatch
import InferenceCore

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
/// `cblas_sgemm` on one worker followed by the epilogue on the same tile.
///
/// The split is over output columns first (each worker streams only its share of the weights and packs the small
/// activation matrix itself), then over row blocks of at most 512 rows so a tile stays near cache size for the epilogue.
/// `transposeB` means B is stored [n, k] (a Linear weight); otherwise [k, n].
func parallelGEMM(
    m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
    epilogue: GEMMEpilogue = .none, threads: Int
) {
    guard m > 0, n > 0 else { return }
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
