import InferenceCore

/// The hand-written fp32 ops of the CPU backend, on raw row-major buffers; every one is tested against a naive
/// double-precision reference in `CPUKernelTests`.
public enum CPUKernels {
    /// LayerNorm over each of `rows` rows of `width` floats: (x − mean)/√(var + eps)·weight + bias, biased variance.
    ///
    /// Rows start `inputStride` / `outputStride` floats apart, so the class-token rows of a [B, T, W] tensor can be
    /// normalised alone; `input` may equal `output`.
    public static func layerNorm(
        _ input: UnsafePointer<Float>, inputStride: Int, into output: UnsafeMutablePointer<Float>, outputStride: Int,
        rows: Int, width: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, epsilon: Float
    ) {
        let vectorEnd = width & ~7
        for r in 0..<rows {
            let x = input + r * inputStride
            let y = output + r * outputStride
            var acc = FloatVector()
            var i = 0
            while i < vectorEnd { acc += loadVector(x + i); i += 8 }
            var sum = acc.sum()
            while i < width { sum += x[i]; i += 1 }
            let mean = sum / Float(width)
            let meanVector = FloatVector(repeating: mean)
            var sq = FloatVector()
            i = 0
            while i < vectorEnd { let d = loadVector(x + i) - meanVector; sq += d * d; i += 8 }
            var variance = sq.sum()
            while i < width { let d = x[i] - mean; variance += d * d; i += 1 }
            let rstd = 1 / (variance / Float(width) + epsilon).squareRoot()
            let rstdVector = FloatVector(repeating: rstd)
            i = 0
            while i < vectorEnd {
                let v = (loadVector(x + i) - meanVector) * rstdVector * loadVector(weight + i) + loadVector(bias + i)
                storeVector(v, y + i)
                i += 8
            }
            while i < width { y[i] = (x[i] - mean) * rstd * weight[i] + bias[i]; i += 1 }
        }
    }

    /// Numerically stable softmax of each of `rows` rows of `length` floats, in place (rows `stride` floats apart).
    public static func softmaxRows(_ data: UnsafeMutablePointer<Float>, rows: Int, length: Int, stride: Int) {
        for r in 0..<rows {
            let x = data + r * stride
            var maximum = -Float.infinity
            for i in 0..<length { maximum = max(maximum, x[i]) }
            let shift = FloatVector(repeating: maximum)
            var sum: Float = 0
            map(x, count: length) { v in VectorMath.exp(v - shift) }
            for i in 0..<length { sum += x[i] }
            let scale = 1 / sum
            map(x, count: length) { v in v * scale }
        }
    }

    /// `count` floats ← GELU (exact erf form) in place.
    public static func gelu(_ data: UnsafeMutablePointer<Float>, count: Int) {
        map(data, count: count, VectorMath.gelu)
    }

    /// `count` floats ← QuickGELU in place.
    public static func quickGELU(_ data: UnsafeMutablePointer<Float>, count: Int) {
        map(data, count: count, VectorMath.quickGELU)
    }

    /// Adds `bias[0..<count]` to `row[0..<count]`, then applies `activation` if any.
    @inline(__always)
    static func addBias(
        _ row: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, count: Int, activation: Activation?
    ) {
        switch activation {
        case nil: map(row, bias, count: count) { x, b in x + b }
        case .gelu?: map(row, bias, count: count) { x, b in VectorMath.gelu(x + b) }
        case .quickGELU?: map(row, bias, count: count) { x, b in VectorMath.quickGELU(x + b) }
        }
    }

    /// Unfolds `count` images [3, S, S] into patch rows [count·g², 3·p·p], K ordered (channel, ky, kx) like
    /// `conv1.weight` flattened; patches in raster order.
    public static func im2col(
        _ pixels: UnsafePointer<Float>, count: Int, imageSize: Int, patchSize: Int,
        into patches: UnsafeMutablePointer<Float>, rows: Range<Int>? = nil
    ) {
        let grid = imageSize / patchSize, perImage = grid * grid
        let patchDim = 3 * patchSize * patchSize, plane = imageSize * imageSize
        for row in rows ?? 0..<(count * perImage) {
            let b = row / perImage, gy = (row % perImage) / grid, gx = row % grid
            var out = patches + row * patchDim
            for c in 0..<3 {
                var src = pixels + b * 3 * plane + c * plane + gy * patchSize * imageSize + gx * patchSize
                for _ in 0..<patchSize {
                    out.update(from: src, count: patchSize)
                    out += patchSize
                    src += imageSize
                }
            }
        }
    }

    /// `data[i] = f(data[i])` in vectors of 8, the tail through a zero-padded vector.
    @inline(__always)
    static func map(_ data: UnsafeMutablePointer<Float>, count: Int, _ f: (FloatVector) -> FloatVector) {
        var i = 0
        while i + 8 <= count { storeVector(f(loadVector(data + i)), data + i); i += 8 }
        if i < count {
            var tail = FloatVector()
            for j in i..<count { tail[j - i] = data[j] }
            tail = f(tail)
            for j in i..<count { data[j] = tail[j - i] }
        }
    }

    /// `data[i] = f(data[i], other[i])` in vectors of 8, the tail through zero-padded vectors.
    @inline(__always)
    static func map(
        _ data: UnsafeMutablePointer<Float>, _ other: UnsafePointer<Float>, count: Int,
        _ f: (FloatVector, FloatVector) -> FloatVector
    ) {
        var i = 0
        while i + 8 <= count { storeVector(f(loadVector(data + i), loadVector(other + i)), data + i); i += 8 }
        if i < count {
            var tail = FloatVector(), tailOther = FloatVector()
            for j in i..<count { tail[j - i] = data[j]; tailOther[j - i] = other[j] }
            tail = f(tail, tailOther)
            for j in i..<count { data[j] = tail[j - i] }
        }
    }
}
