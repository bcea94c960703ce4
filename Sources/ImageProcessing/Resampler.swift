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

enum Resampler {
    static let precisionBits = 22

    /// Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height shrinks by more than
    /// twice as many pixels as the width does.
    @inline(__always)
    static func verticalFirst(_ width: Int, _ height: Int, _ outWidth: Int, _ outHeight: Int) -> Bool {
        (height - outHeight) > 0 && (height - outHeight) > (width - outWidth) * 2
    }

    @inline(__always)
    static func clip8(_ value: Int32) -> UInt8 {
        let shifted = value >> Int32(precisionBits)
        return shifted <= 0 ? 0 : shifted >= 255 ? 255 : UInt8(truncatingIfNeeded: shifted)
    }

    /// Resizes an 8-bit interleaved image (`channels` bytes a pixel) of `width x height` to `outWidth x outHeight`,
    /// computing only the output pixels in `columns x rows`; returns them packed, `columns.count * channels` bytes a
    /// row. `src` may hold only a window of the source whose top-left pixel is (`originX`, `originY`), rows
    /// `stride` bytes apart; it must cover every source pixel those outputs read.
    static func resample8(
        _ src: UnsafeBufferPointer<UInt8>, width: Int, height: Int, channels: Int,
        outWidth: Int, outHeight: Int, columns: Range<Int>, rows: Range<Int>,
        originX: Int = 0, originY: Int = 0, stride: Int? = nil
    ) -> [UInt8] {
        let srcStride = stride ?? width * channels
        let needHorizontal = outWidth != width
        let needVertical = outHeight != height
        let outRowBytes = columns.count * channels
        var out = [UInt8](repeating: 0, count: outRowBytes * rows.count)

        if needHorizontal && needVertical && verticalFirst(width, height, outWidth, outHeight) {
            let horizontal = ResampleAxis(inSize: width, outSize: outWidth, outputs: columns)
            let vertical = ResampleAxis(inSize: height, outSize: outHeight, outputs: rows)
            let sourceColumns = horizontal.inputSpan
            let middleRowBytes = sourceColumns.count * channels
            var middle = [UInt8](repeating: 0, count: middleRowBytes * rows.count)
            let verticalFixed = vertical.fixedPoint(), horizontalFixed = horizontal.fixedPoint()
            middle.withUnsafeMutableBufferPointer { dst in
                verticalFixed.withUnsafeBufferPointer { k in
                    verticalPass(
                        src, stride: srcStride, firstRow: originY,
                        columnOffset: (sourceColumns.lowerBound - originX) * channels,
                        rowBytes: middleRowBytes, axis: vertical, k: k, rows: rows, dst: dst)
                }
            }
            middle.withUnsafeBufferPointer { mid in
                out.withUnsafeMutableBufferPointer { dst in
                    horizontalFixed.withUnsafeBufferPointer { k in
                        horizontalPass(
                            mid, stride: middleRowBytes, rows: 0..<rows.count, rowBase: 0, channels: channels,
                            axis: horizontal, k: k, columns: columns, dst: dst, inputColumnBase: sourceColumns.lowerBound)
                    }
                }
            }
            return out
        }

        let vertical = needVertical ? ResampleAxis(inSize: height, outSize: outHeight, outputs: rows) : nil
        let sourceRows = vertical?.inputSpan ?? rows
        // Horizontal pass over the source rows the vertical pass will read.
        var horizontalOut: [UInt8] = []
        if needHorizontal {
            let axis = ResampleAxis(inSize: width, outSize: outWidth, outputs: columns)
            let fixed = axis.fixedPoint()
            horizontalOut = [UInt8](repeating: 0, count: outRowBytes * sourceRows.count)
            horizontalOut.withUnsafeMutableBufferPointer { dst in
                fixed.withUnsafeBufferPointer { k in
                    horizontalPass(
                        src, stride: srcStride, rows: sourceRows, rowBase: originY, channels: channels, axis: axis,
                        k: k, columns: columns, dst: dst, inputColumnBase: originX)
                }
            }
        }
        // The vertical pass reads either the horizontal output or the source window.
        let middleStride = needHorizontal ? outRowBytes : srcStride
        let middleFirstRow = needHorizontal ? sourceRows.lowerBound : originY
        let middleColumnOffset = needHorizontal ? 0 : (columns.lowerBound - originX) * channels
        horizontalOut.withUnsafeBufferPointer { horizontal in
            let middle = needHorizontal ? horizontal : src
            out.withUnsafeMutableBufferPointer { dst in
                if let vertical {
                    let fixed = vertical.fixedPoint()
                    fixed.withUnsafeBufferPointer { k in
                        verticalPass(
                            middle, stride: middleStride, firstRow: middleFirstRow, columnOffset: middleColumnOffset,
                            rowBytes: outRowBytes, axis: vertical, k: k, rows: rows, dst: dst)
                    }
                } else {
                    for (i, y) in rows.enumerated() {
                        let from = (y - middleFirstRow) * middleStride + middleColumnOffset
                        for b in 0..<outRowBytes { dst[i * outRowBytes + b] = middle[from + b] }
                    }
                }
            }
        }
        return out
    }

    private static func horizontalPass(
        _ src: UnsafeBufferPointer<UInt8>, stride: Int, rows: Range<Int>, rowBase: Int, channels: Int, axis: ResampleAxis,
        k: UnsafeBufferPointer<Int32>, columns: Range<Int>, dst: UnsafeMutableBufferPointer<UInt8>,
        inputColumnBase: Int = 0
    ) {
        let bias = Int32(1) << Int32(precisionBits - 1)
        let ksize = axis.ksize
        let outRowBytes = columns.count * channels
        guard let s = src.baseAddress, let d = dst.baseAddress, let kk = k.baseAddress else { return }
        axis.first.withUnsafeBufferPointer { first in
            axis.count.withUnsafeBufferPointer { count in
                var r = 0
                if channels == 3 {
                    // RGB, two rows at a time: each coefficient is loaded once for both (same sums, same order).
                    while r + 1 < rows.count {
                        let line0 = s + (rows.lowerBound + r - rowBase) * stride
                        let line1 = line0 + stride
                        var out0 = d + r * outRowBytes
                        var out1 = out0 + outRowBytes
                        for slot in 0..<columns.count {
                            let n = count[slot]
                            let w = kk + slot * ksize
                            let offset = (first[slot] - inputColumnBase) * 3
                            var p0 = line0 + offset, p1 = line1 + offset
                            var a0 = bias, a1 = bias, a2 = bias, b0 = bias, b1 = bias, b2 = bias
                            for t in 0..<n {
                                let c = w[t]
                                a0 &+= Int32(p0[0]) &* c
                                a1 &+= Int32(p0[1]) &* c
                                a2 &+= Int32(p0[2]) &* c
                                b0 &+= Int32(p1[0]) &* c
                                b1 &+= Int32(p1[1]) &* c
                                b2 &+= Int32(p1[2]) &* c
                                p0 += 3
                                p1 += 3
                            }
                            out0[0] = clip8(a0)
                            out0[1] = clip8(a1)
                            out0[2] = clip8(a2)
                            out1[0] = clip8(b0)
                            out1[1] = clip8(b1)
                            out1[2] = clip8(b2)
                            out0 += 3
                            out1 += 3
                        }
                        r += 2
                    }
                }
                for (r, y) in rows.enumerated().dropFirst(r) {
                    let line = s + (y - rowBase) * stride
                    var out = d + r * outRowBytes
                    for slot in 0..<columns.count {
                        let xmin = first[slot], n = count[slot]
                        let w = kk + slot * ksize
                        var p = line + (xmin - inputColumnBase) * channels
                        switch channels {
                        case 1:
                            var s0 = bias
                            for t in 0..<n { s0 &+= Int32(p[t]) &* w[t] }
                            out[0] = clip8(s0)
                        case 3:
                            var s0 = bias, s1 = bias, s2 = bias
                            for t in 0..<n {
                                let c = w[t]
                                s0 &+= Int32(p[0]) &* c
                                s1 &+= Int32(p[1]) &* c
                                s2 &+= Int32(p[2]) &* c
                                p += 3
                            }
                            out[0] = clip8(s0)
                            out[1] = clip8(s1)
                            out[2] = clip8(s2)
                        case 4:
                            var s0 = bias, s1 = bias, s2 = bias, s3 = bias
                            for t in 0..<n {
                                let c = w[t]
                                s0 &+= Int32(p[0]) &* c
                                s1 &+= Int32(p[1]) &* c
                                s2 &+= Int32(p[2]) &* c
                                s3 &+= Int32(p[3]) &* c
                                p += 4
                            }
                            out[0] = clip8(s0)
                            out[1] = clip8(s1)
                            out[2] = clip8(s2)
                            out[3] = clip8(s3)
                        default:
                            for c in 0..<channels {
                                var acc = bias
                                for t in 0..<n { acc &+= Int32(p[t * channels + c]) &* w[t] }
                                out[c] = clip8(acc)
                            }
                        }
                        out += channels
                    }
                }
            }
        }
    }

    private static func verticalPass(
        _ src: UnsafeBufferPointer<UInt8>, stride: Int, firstRow: Int, columnOffset: Int, rowBytes: Int,
        axis: ResampleAxis, k: UnsafeBufferPointer<Int32>, rows: Range<Int>, dst: UnsafeMutableBufferPointer<UInt8>
    ) {
        let bias = Int32(1) << Int32(precisionBits - 1)
        guard let s = src.baseAddress, let d = dst.baseAddress, let kk = k.baseAddress else { return }
        var acc = [Int32](repeating: 0, count: rowBytes)
        acc.withUnsafeMutableBufferPointer { accBuffer in
            guard let a = accBuffer.baseAddress else { return }
            for (r, yy) in rows.enumerated() {
                for i in 0..<rowBytes { a[i] = bias }
                let slot = yy - axis.outputs.lowerBound
                let ymin = axis.first[slot], n = axis.count[slot]
                let w = kk + slot * axis.ksize
                for t in 0..<n {
                    let c = w[t]
                    let line = s + (ymin + t - firstRow) * stride + columnOffset
                    for i in 0..<rowBytes { a[i] &+= Int32(line[i]) &* c }
                }
                let out = d + r * rowBytes
                for i in 0..<rowBytes { out[i] = clip8(a[i]) }
            }
        }
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
