import CCUDA
import Foundation
import InferenceCore

/// The small-batch transformer block (Kernels/small_batch.cu): five kernels per block instead of eight and none from
/// cuBLASLt, so that each can be a programmatic dependent of the one before it and load its weights while that one
/// still runs. At batch 1 the block is a chain of launch latencies and weight reads, not of arithmetic.
///
/// - `ln_linear`: LayerNorm 1 with the QKV projection and its bias; LayerNorm 2 with c_fc, its bias and the activation
///   (exact-erf GELU or QuickGELU), rounded once to 16 bits. The product runs on the raw rows of the residual
///   stream's 16-bit copy against weights with LayerNorm's gamma folded in; each row's mean and 1/std, taken from the
///   same tile, are applied in the epilogue (see `CUDABlockWeights`). The CTAs of a cluster fetch the rows once for
///   all of them (bulk copies multicast to the cluster).
/// - the tensor-core attention, as in the large-batch path;
/// - `linear_residual`: out_proj and c_proj with their bias, added into the fp32 residual stream, which it also
///   writes rounded to 16 bits into `h` for the next `ln_linear`. K is split over the CTAs of a cluster; the first
///   adds the others' partial sums in rank order, so results do not depend on timing.
///
/// Used on sm_90 and later for 16-bit engines whose width is a multiple of 128 from 512 to 1024 (ViT-B, ViT-B-plus,
/// ViT-L; the widths verified on a GPU are 768, 896 and 1024) when a
/// profile has at most `maxRows` rows (batch × tokens). `CLIPSERVE_SMALL_BATCH_ROWS` sets that bound (default 64:
/// ViT-B-32 at batch 1, the one profile where it measured faster than cuBLASLt); 0 turns the path off.
struct SmallBatchPath {
    static let defaultMaxRows = 64
    /// CTA tile of both kernels.
    static let tileRows = 64, tileColumns = 32
    /// Threads per CTA: 8 warps, two per 16-row slice of the tile (one per half of K).
    static let threads = 256
    /// Largest portable cluster.
    static let maxCluster = 8

    let maxRows: Int

    /// nil when the engine or the device cannot take the path, or it is turned off.
    init?(engine: CUDAEngine, contextRows: Int) {
        let spec = engine.spec, device = engine.device, k = engine.kernels
        let setting = ProcessInfo.processInfo.environment["CLIPSERVE_SMALL_BATCH_ROWS"].flatMap { Int($0) }
        let limit = min(setting ?? Self.defaultMaxRows, contextRows)
        let suffix = CUDAKernels.suffix(engine.dtype)
        guard limit > 0, engine.dtype != .f32, k.has("ln_linear_\(suffix)"), k.has("linear_residual_\(suffix)"),
              spec.width % 128 == 0, (512...1024).contains(spec.width), spec.mlpWidth % 128 == 0,
              Self.lnLinearSharedBytes(k: spec.width) <= device.maxSharedMemoryPerBlock,
              Self.linearResidualSharedBytes(k: spec.mlpWidth, splits: Self.maxCluster) <= device.maxSharedMemoryPerBlock
        else { return nil }
        maxRows = limit
    }

    /// The 16-bit A and W tiles, 8 KB where the second half of K's sums meet the first, the rows' mean and 1/std, and
    /// the mbarrier the A tile's copies complete on.
    static func lnLinearSharedBytes(k: Int) -> Int { (tileRows + tileColumns) * (k + 8) * 2 + 8192 + 2 * tileRows * 4 + 8 }

    /// As `lnLinearSharedBytes` for a slice of K, plus 8 KB for the partial tile the cluster's first CTA reads.
    static func linearResidualSharedBytes(k: Int, splits: Int) -> Int {
        (tileRows + tileColumns) * (k / splits + 8) * 2 + 16384
    }

    /// CTAs per cluster of `ln_linear` over `columnTiles` tiles of 32 output columns: the largest power of two up to
    /// 8 that divides them (each CTA then fetches 1/C of the A tile's rows for all of them).
    static func cluster(columnTiles: Int) -> Int {
        [8, 4, 2, 1].first { columnTiles % $0 == 0 }!
    }

    /// How many CTAs (one cluster) split a K-long reduction: the fewest that bring each slice to 768 columns or
    /// less (each slice a multiple of 64, two warps' halves of 32, and small enough for shared memory). Measured on an
    /// H100 at ViT-B-32 batch 1 (`scripts/device/small_batch_bench.cu`): out_proj (K = 768) 4.4 µs unsplit against
    /// 5.0 in four; c_proj (K = 3072) 7.2 µs in four against 8.1 in three and 11.8 in six.
    static func splits(k: Int, maxSharedBytes: Int) -> Int {
        let valid = (1...maxCluster).filter {
            (k / 64) % $0 == 0 && linearResidualSharedBytes(k: k, splits: $0) <= maxSharedBytes
        }
        return valid.first { k / $0 <= 768 } ?? valid.last ?? maxCluster
    }
}

extension CUDAExecutionContext {
    /// `ln_linear` over `rows` rows of the residual stream's 16-bit copy in `h`, `rowStride` elements apart.
    func launchLNLinear(
        weight: CUDABuffer, rowSums: CUDABuffer, bias: CUDABuffer, output: CUDABuffer, outputF32: Bool, rows: Int,
        rowStride: Int, n: Int, activation: Int32
    ) throws {
        let spec = engine.spec, w = spec.width, columnTiles = n / SmallBatchPath.tileColumns
        try engine.kernels.launch(
            "ln_linear_\(CUDAKernels.suffix(engine.dtype))",
            grid: (columnTiles, (rows + SmallBatchPath.tileRows - 1) / SmallBatchPath.tileRows, 1),
            block: SmallBatchPath.threads, sharedBytes: SmallBatchPath.lnLinearSharedBytes(k: w), stream: stream,
            dependent: true, cluster: (SmallBatchPath.cluster(columnTiles: columnTiles), 1, 1),
            [.pointer(h.pointer), .int64(Int64(rowStride)), .float(spec.layerNormEpsilon), .pointer(weight.pointer),
             .pointer(rowSums.pointer), .pointer(bias.pointer), .pointer(output.pointer), .int32(outputF32 ? 1 : 0),
             .int32(Int32(rows)), .int32(Int32(w)), .int32(Int32(n)), .int32(activation)])
    }

    /// ln_post and the projection of each image's class token as one `ln_linear` (ln_post folded into proj), fp32 out.
    func smallBatchProjection(
        _ folded: (weight: CUDABuffer, rowSums: CUDABuffer, bias: CUDABuffer), batch: Int
    ) throws {
        let spec = engine.spec
        try launchLNLinear(
            weight: folded.weight, rowSums: folded.rowSums, bias: folded.bias, output: embedding, outputF32: true,
            rows: batch, rowStride: spec.tokens * spec.width, n: spec.embedDim, activation: 0)
    }

    /// One transformer block on the small-batch path (see `SmallBatchPath`): reads and updates `x` like the
    /// large-batch block. `attentionLaunch` enqueues the attention kernel from `qkv` into `attention`.
    func smallBatchBlock(
        _ block: CUDABlockWeights, rows: Int, path: SmallBatchPath, attentionLaunch: (Bool) throws -> Void
    ) throws {
        let e = engine, spec = e.spec, k = e.kernels, s = stream
        let suffix = CUDAKernels.suffix(e.dtype), w = spec.width, mw = spec.mlpWidth
        let rowTiles = (rows + SmallBatchPath.tileRows - 1) / SmallBatchPath.tileRows
        let activation: Int32 = spec.activation == .quickGELU ? 2 : 1
        // The residual stream's 16-bit copy lives in `h` (written by embed_layernorm and linear_residual).
        func lnLinear(_ weight: CUDABuffer, _ rowSums: CUDABuffer, _ bias: CUDABuffer, _ output: CUDABuffer, n: Int,
                      activation: Int32) throws {
            try launchLNLinear(weight: weight, rowSums: rowSums, bias: bias, output: output, outputF32: false, rows: rows,
                               rowStride: w, n: n, activation: activation)
        }
        func linearResidual(_ input: CUDABuffer, _ weight: CUDABuffer, _ bias: CUDABuffer, k inner: Int) throws {
            let splits = SmallBatchPath.splits(k: inner, maxSharedBytes: device.maxSharedMemoryPerBlock)
            try k.launch(
                "linear_residual_\(suffix)", grid: (w / SmallBatchPath.tileColumns, splits, rowTiles),
                block: SmallBatchPath.threads, sharedBytes: SmallBatchPath.linearResidualSharedBytes(k: inner, splits: splits),
                stream: s, dependent: true, cluster: (1, splits, 1),
                [.pointer(input.pointer), .pointer(weight.pointer), .pointer(bias.pointer), .pointer(x.pointer),
                 .pointer(h.pointer), .int32(Int32(rows)), .int32(Int32(inner)), .int32(Int32(w))])
        }
        try lnLinear(block.qkvWeight, block.qkvRowSums, block.qkvBiasF32, qkv, n: 3 * w, activation: 0)
        try mark("ln_1+qkv")
        try attentionLaunch(true)
        try mark("attention (mma)")
        try linearResidual(attention, block.outWeight, block.outBias, k: w)
        try mark("out_proj+residual")
        try lnLinear(block.fc1Weight, block.fc1RowSums, block.fc1Bias, mlp, n: mw, activation: activation)
        try mark("ln_2+c_fc+gelu")
        try linearResidual(mlp, block.fc2Weight, block.fc2Bias, k: mw)
        try mark("c_proj+residual")
    }
}
