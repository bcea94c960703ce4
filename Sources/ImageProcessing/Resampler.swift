import CImageKernels

/// Pillow's separable bicubic resampling (`src/libImaging/Resample.c`), reproduced to the bit.
///
/// Coefficients come from `precompute_coeffs` (antialiased support `2 * max(in/out, 1)`, a = -0.5, taps centred at
/// `(x + 0.5) * scale`, each row normalised by its sum); 8-bit modes use them as 22-bit fixed point with a rounding
/// bias and clamp each pass to uint8, 16-bit gray uses doubles and clamps each pass to uint16.
struct ResampleAxis {
    /// Output samples along the axis.
    let outSize: Int
    /// The output samples this table covers; arrays below are indexed from `outputs.lowerBound`.
    let outputs: Range<Int>
    /// Coefficient slots per output sample.
    let ksize: Int
    /// First input sample of each output sample's window.
    private(set) var first: [Int]
    /// Number of input samples in each window.
    private(set) var count: [Int]
    /// `outSize * ksize` normalised weights.
    private(set) var weights: [Double]

    init(inSize: Int, outSize: Int, outputs: Range<Int>) {
        // Pillow passes the box as floats: in1 - in0 is computed in single precision.
        let span = Double(Float(inSize) - Float(0))
        let scale = span / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = 2.0 * filterScale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        let invFilterScale = 1.0 / filterScale
        self.outSize = outSize
        self.outputs = outputs
        self.ksize = ksize
        first = [Int](repeating: 0, count: outputs.count)
        count = [Int](repeating: 0, count: outputs.count)
        weights = [Double](repeating: 0, count: outputs.count * ksize)
        for xx in outputs {
            let slot = xx - outputs.lowerBound
            let center = 0.0 + (Double(xx) + 0.5) * scale
            var xmin = Int(center - support + 0.5)
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            var total = 0.0
            let base = slot * ksize
            for x in 0..<max(xmax, 0) {
                let w = Self.bicubic((Double(x + xmin) - center + 0.5) * invFilterScale)
                weights[base + x] = w
                total += w
            }
            if total != 0.0 {
                for x in 0..<max(xmax, 0) { weights[base + x] /= total }
            }
            first[slot] = xmin
            count[slot] = max(xmax, 0)
        }
    }

    /// Keys' cubic with a = -0.5.
    @inline(__always)
    static func bicubic(_ value: Double) -> Double {
        let a = -0.5
        let x = value < 0 ? -value : value
        if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
        if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0.0
    }

    /// `normalize_coeffs_8bpc`: weights as 22-bit fixed point, rounded half away from zero.
    func fixedPoint() -> [Int32] {
        let one = Double(1 << Resampler.precisionBits)
        return weights.map { w in
            w < 0 ? Int32(-0.5 + w * one) : Int32(0.5 + w * one)
        }
    }

    /// The input samples that the covered outputs read.
    var inputSpan: Range<Int> {
        guard let last = first.indices.last else { return 0..<0 }
        return first[0]..<(first[last] + count[last])
    }
}

/// Which implementation of the 8-bit passes runs; every one gives the same bytes.
enum ResampleKernel: CaseIterable, Sendable {
    /// The fastest the CPU supports (AVX-512BW, AVX2, else portable C).
    case automatic
    case scalar
    case avx2
    case avx512

    var c: cik_kernel {
        switch self {
        case .automatic: CIK_KERNEL_AUTO
        case .scalar: CIK_KERNEL_SCALAR
        case .avx2: CIK_KERNEL_AVX2
        case .avx512: CIK_KERNEL_AVX512
        }
    }

    /// Whether this CPU runs this kernel itself rather than a slower fallback.
    var isSupported: Bool { self == .automatic || cik_resolve_kernel(c) == c }
}

enum Resampler {
    static let precisionBits = Int(CIK_PRECISION_BITS)

    /// Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height shrinks by more than
    /// twice as many pixels as the width does.
    @inline(__always)
    static func verticalFirst(_ width: Int, _ height: Int, _ outWidth: Int, _ outHeight: Int) -> Bool {
        (height - outHeight) > 0 && (height - outHeight) > (width - outWidth) * 2
    }

    /// Resizes an 8-bit interleaved image (`channels` bytes a pixel) of `width x height` to `outWidth x outHeight`,
    /// computing only the output pixels in `columns x rows`; returns them packed, `columns.count * channels` bytes a
    /// row. `src` may hold only a window of the source whose top-left pixel is (`originX`, `originY`), rows
    /// `stride` bytes apart; it must cover every source pixel those outputs read. Every output pixel depends only on
    /// its own row's and column's coefficients, so skipping the others gives Pillow's pixels for the kept ones.
    static func resample8(
        _ src: UnsafeBufferPointer<UInt8>, width: Int, height: Int, channels: Int,
        outWidth: Int, outHeight: Int, columns: Range<Int>, rows: Range<Int>,
        originX: Int = 0, originY: Int = 0, stride: Int? = nil, kernel: ResampleKernel = .automatic
    ) -> [UInt8] {
        let srcStride = stride ?? width * channels
        let needHorizontal = outWidth != width
        let needVertical = outHeight != height
        let outRowBytes = columns.count * channels
        guard !columns.isEmpty, !rows.isEmpty, let base = src.baseAddress else { return [] }
        let srcEnd = base + src.count

        if needHorizontal && needVertical && verticalFirst(width, height, outWidth, outHeight) {
            let horizontal = ResampleAxis(inSize: width, outSize: outWidth, outputs: columns)
            let vertical = ResampleAxis(inSize: height, outSize: outHeight, outputs: rows)
            let sourceColumns = horizontal.inputSpan
            let middleRowBytes = sourceColumns.count * channels
            let middle = uninitializedBytes(middleRowBytes * rows.count) { dst in
                verticalPass(
                    base + (sourceColumns.lowerBound - originX) * channels, stride: srcStride, firstRow: originY,
                    rowBytes: middleRowBytes, axis: vertical, dst: dst, kernel: kernel)
            }
            return middle.withUnsafeBufferPointer { mid in
                guard let m = mid.baseAddress else { return [] }
                return uninitializedBytes(outRowBytes * rows.count) { dst in
                    horizontalPass(
                        m, end: m + mid.count, stride: middleRowBytes, rows: rows.count, channels: channels,
                        axis: horizontal, inputColumnBase: sourceColumns.lowerBound, dst: dst, kernel: kernel)
                }
            }
        }

        let vertical = needVertical ? ResampleAxis(inSize: height, outSize: outHeight, outputs: rows) : nil
        let sourceRows = vertical?.inputSpan ?? rows
        guard needHorizontal else {
            // Vertical pass (or a plain copy) straight from the source window.
            let origin = base + (columns.lowerBound - originX) * channels
            return uninitializedBytes(outRowBytes * rows.count) { dst in
                if let vertical {
                    verticalPass(
                        origin, stride: srcStride, firstRow: originY, rowBytes: outRowBytes, axis: vertical, dst: dst,
                        kernel: kernel)
                } else {
                    for (r, y) in rows.enumerated() {
                        (dst + r * outRowBytes).update(from: origin + (y - originY) * srcStride, count: outRowBytes)
                    }
                }
            }
        }
        // Horizontal pass over the source rows the vertical pass will read, then the vertical pass.
        let axis = ResampleAxis(inSize: width, outSize: outWidth, outputs: columns)
        let horizontalOut = uninitializedBytes(outRowBytes * sourceRows.count) { dst in
            horizontalPass(
                base + (sourceRows.lowerBound - originY) * srcStride, end: srcEnd, stride: srcStride,
                rows: sourceRows.count, channels: channels, axis: axis, inputColumnBase: originX, dst: dst,
                kernel: kernel)
        }
        guard let vertical else { return horizontalOut }
        return horizontalOut.withUnsafeBufferPointer { middle in
            guard let m = middle.baseAddress else { return [] }
            return uninitializedBytes(outRowBytes * rows.count) { dst in
                verticalPass(
                    m, stride: outRowBytes, firstRow: sourceRows.lowerBound, rowBytes: outRowBytes, axis: vertical,
                    dst: dst, kernel: kernel)
            }
        }
    }

    /// A byte array of `count` elements whose every element `body` writes.
    private static func uninitializedBytes(_ count: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Void) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress, count > 0 { body(base) }
            initialized = count
        }
    }

    /// `axis.outputs.count` samples from each of `rows` rows starting at `src` (`stride` bytes apart), whose byte 0 is
    /// source column `inputColumnBase`. `end` bounds the kernel's reads.
    private static func horizontalPass(
        _ src: UnsafePointer<UInt8>, end: UnsafePointer<UInt8>, stride: Int, rows: Int, channels: Int,
        axis: ResampleAxis, inputColumnBase: Int, dst: UnsafeMutablePointer<UInt8>, kernel: ResampleKernel
    ) {
        let outs = axis.outputs.count
        let offsets = axis.first.map { Int32(($0 - inputColumnBase) * channels) }
        let counts = axis.count.map { Int32($0) }
        let fixed = axis.fixedPoint()
        cik_horizontal_u8(
            src, stride, end, Int32(rows), Int32(channels), offsets, counts, fixed, Int32(axis.ksize), Int32(outs),
            dst, outs * channels, kernel.c)
    }

    /// Rows `axis.outputs` of `rowBytes` bytes each; `src` is the start of the row holding source row `firstRow`.
    private static func verticalPass(
        _ src: UnsafePointer<UInt8>, stride: Int, firstRow: Int, rowBytes: Int, axis: ResampleAxis,
        dst: UnsafeMutablePointer<UInt8>, kernel: ResampleKernel
    ) {
        let firsts = axis.first.map { Int32($0 - firstRow) }
        let counts = axis.count.map { Int32($0) }
        let fixed = axis.fixedPoint()
        cik_vertical_u8(
            src, stride, Int32(rowBytes), firsts, counts, fixed, Int32(axis.ksize), Int32(axis.outputs.count),
            dst, rowBytes, kernel.c)
    }

    /// Resizes 16-bit gray (Pillow mode I;16) with double-precision weights, clamping each pass to [0, 65535].
    static func resample16(
        _ src: [UInt16], width: Int, height: Int, outWidth: Int, outHeight: Int, columns: Range<Int>, rows: Range<Int>
    ) -> [UInt16] {
        if outWidth != width && outHeight != height && verticalFirst(width, height, outWidth, outHeight) {
            // Vertical pass over the needed source columns, then the horizontal pass: a transposed problem.
            let horizontal = ResampleAxis(inSize: width, outSize: outWidth, outputs: columns)
            let vertical = ResampleAxis(inSize: height, outSize: outHeight, outputs: rows)
            let sourceColumns = horizontal.inputSpan
            var middle = [UInt16](repeating: 0, count: sourceColumns.count * rows.count)
            for (r, yy) in rows.enumerated() {
                let slot = yy - rows.lowerBound
                for (i, x) in sourceColumns.enumerated() {
                    var ss = 0.0
                    for t in 0..<vertical.count[slot] {
                        ss += Double(src[(vertical.first[slot] + t) * width + x]) * vertical.weights[slot * vertical.ksize + t]
                    }
                    middle[r * sourceColumns.count + i] = clip16(ss)
                }
            }
            var out = [UInt16](repeating: 0, count: columns.count * rows.count)
            for r in 0..<rows.count {
                for i in 0..<columns.count {
                    var ss = 0.0
                    let xmin = horizontal.first[i] - sourceColumns.lowerBound
                    for t in 0..<horizontal.count[i] {
                        ss += Double(middle[r * sourceColumns.count + xmin + t]) * horizontal.weights[i * horizontal.ksize + t]
                    }
                    out[r * columns.count + i] = clip16(ss)
                }
            }
            return out
        }
        let vertical = outHeight != height ? ResampleAxis(inSize: height, outSize: outHeight, outputs: rows) : nil
        let sourceRows = vertical?.inputSpan ?? rows
        var middle: [UInt16]
        var middleStride: Int
        var columnOffset: Int
        var firstRow: Int
        if outWidth != width {
            let axis = ResampleAxis(inSize: width, outSize: outWidth, outputs: columns)
            middle = [UInt16](repeating: 0, count: columns.count * sourceRows.count)
            for (r, y) in sourceRows.enumerated() {
                for i in 0..<columns.count {
                    var ss = 0.0
                    let xmin = axis.first[i]
                    for t in 0..<axis.count[i] {
                        ss += Double(src[y * width + xmin + t]) * axis.weights[i * axis.ksize + t]
                    }
                    middle[r * columns.count + i] = clip16(ss)
                }
            }
            middleStride = columns.count
            columnOffset = 0
            firstRow = sourceRows.lowerBound
        } else {
            middle = src
            middleStride = width
            columnOffset = columns.lowerBound
            firstRow = 0
        }
        var out = [UInt16](repeating: 0, count: columns.count * rows.count)
        for (r, yy) in rows.enumerated() {
            for i in 0..<columns.count {
                if let vertical {
                    var ss = 0.0
                    let slot = yy - rows.lowerBound
                    let ymin = vertical.first[slot]
                    for t in 0..<vertical.count[slot] {
                        ss += Double(middle[(ymin + t - firstRow) * middleStride + columnOffset + i])
                            * vertical.weights[slot * vertical.ksize + t]
                    }
                    out[r * columns.count + i] = clip16(ss)
                } else {
                    out[r * columns.count + i] = middle[(yy - firstRow) * middleStride + columnOffset + i]
                }
            }
        }
        return out
    }

    /// `CLIP16(ROUND_UP(ss))`; ROUND_UP adds a single-precision 0.5 and truncates.
    @inline(__always)
    private static func clip16(_ ss: Double) -> UInt16 {
        let rounded = ss >= 0.0 ? ss + Double(Float(0.5)) : ss - Double(Float(0.5))
        guard rounded > 0 else { return 0 }
        guard rounded < 65536 else { return 65535 }
        return UInt16(Int(rounded))
    }

    /// Pillow's NEAREST resize (`ImagingScaleAffine`), whose source positions accumulate `in/out` in doubles.
    /// Returns the source index of each output in `outputs`.
    static func nearestIndices(inSize: Int, outSize: Int, outputs: Range<Int>) -> [Int] {
        let step = Double(Float(inSize) - Float(0)) / Double(outSize)
        var position = 0.0 + step * 0.5
        var indices: [Int] = []
        indices.reserveCapacity(outputs.count)
        for x in 0..<outputs.upperBound {
            if x >= outputs.lowerBound {
                let index = position < 0 ? -1 : Int(position)
                indices.append(min(max(index, 0), inSize - 1))
            }
            position += step
        }
        return indices
    }
}
