import CKernels
import Foundation
import InferenceCore
import Testing

@testable import CPUBackend

/// Each hand-written op against a naive double-precision reference.
///
/// Tolerances (absolute unless said): exp 3e-7 relative; GELU 3e-7·max(1, |x|) (A&S 7.1.26 erfc is good to 1.5e-7);
/// QuickGELU 2e-7·max(1, |x|); LayerNorm 2e-6 on O(1) outputs; softmax 1e-6; im2col exact; GEMM 2e-6·√K·max|A||B|.
@Suite("CPU kernels")
struct CPUKernelTests {
    @Test func expMatchesFoundation() {
        var worst: Double = 0
        var x: Float = -87
        while x < 88 {
            let v = VectorMath.exp(FloatVector(repeating: x))[0]
            worst = max(worst, abs(Double(v) - Foundation.exp(Double(x))) / Foundation.exp(Double(x)))
            x += 0.0137
        }
        #expect(worst < 3e-7, "worst relative error \(worst)")
        // Saturates instead of producing NaN or inf.
        #expect(VectorMath.exp(FloatVector(repeating: 1000))[0].isFinite)
        #expect(VectorMath.exp(FloatVector(repeating: -1000))[0] >= 0)
    }

    @Test(arguments: [Activation.gelu, .quickGELU])
    func activationMatchesReference(_ activation: Activation) {
        let values = stride(from: -12.0, through: 12.0, by: 0.0071).map { Float($0) } + [0, -0.0, 1e-8, -1e-8, 40, -40]
        var data = values
        data.withUnsafeMutableBufferPointer { p in
            switch activation {
            case .gelu: CPUKernels.gelu(p.baseAddress!, count: p.count)
            case .quickGELU: CPUKernels.quickGELU(p.baseAddress!, count: p.count)
            }
        }
        let tolerance = activation == .gelu ? 3e-7 : 2e-7
        for (x, got) in zip(values, data) {
            let xd = Double(x)
            let expected = activation == .gelu ? 0.5 * xd * (1 + erf(xd / 2.0.squareRoot())) : xd / (1 + exp(-1.702 * xd))
            #expect(abs(Double(got) - expected) <= tolerance * max(1, abs(xd)), "\(activation)(\(x)): \(got) vs \(expected)")
        }
    }

    @Test(arguments: [1, 7, 8, 100, 768])
    func layerNormMatchesReference(width: Int) {
        var random = SplitMix64(seed: UInt64(width))
        let rows = 5, stride = width + 3
        let input = (0..<rows * stride).map { _ in 3 * random.symmetric() + 0.5 }
        let weight = (0..<width).map { _ in 1 + 0.2 * random.symmetric() }
        let bias = (0..<width).map { _ in 0.2 * random.symmetric() }
        var output = [Float](repeating: .nan, count: rows * width)
        CPUKernels.layerNorm(
            input, inputStride: stride, into: &output, outputStride: width, rows: rows, width: width, weight: weight,
            bias: bias, epsilon: 1e-5)
        let expected = referenceLayerNorm(input, stride: stride, rows: rows, width: width, weight: weight, bias: bias)
        let comparison = Comparison(expected: expected, got: output)
        #expect(comparison.maxAbsError < 2e-6, "\(comparison)")
    }

    @Test func layerNormInPlace() {
        var random = SplitMix64(seed: 3)
        let width = 37
        let input = (0..<2 * width).map { _ in random.symmetric() }
        let ones = [Float](repeating: 1, count: width), zeros = [Float](repeating: 0, count: width)
        var separate = [Float](repeating: 0, count: input.count)
        CPUKernels.layerNorm(input, inputStride: width, into: &separate, outputStride: width, rows: 2, width: width,
                             weight: ones, bias: zeros, epsilon: 1e-5)
        var inPlace = input
        inPlace.withUnsafeMutableBufferPointer { p in
            CPUKernels.layerNorm(p.baseAddress!, inputStride: width, into: p.baseAddress!, outputStride: width, rows: 2,
                                 width: width, weight: ones, bias: zeros, epsilon: 1e-5)
        }
        #expect(inPlace == separate)
    }

    @Test(arguments: [1, 5, 50, 257])
    func softmaxMatchesReference(length: Int) {
        var random = SplitMix64(seed: UInt64(length))
        let rows = 3
        // Row 0 ordinary logits, row 1 large ones (stability), row 2 a constant.
        var data = (0..<length).map { _ in 4 * random.symmetric() }
        data += (0..<length).map { _ in 80 + 10 * random.symmetric() }
        data += [Float](repeating: -3, count: length)
        let input = data
        data.withUnsafeMutableBufferPointer { CPUKernels.softmaxRows($0.baseAddress!, rows: rows, length: length, stride: length) }
        var expected: [Double] = []
        for r in 0..<rows {
            let row = input[(r * length)..<((r + 1) * length)].map(Double.init)
            let m = row.max()!
            let e = row.map { exp($0 - m) }
            let s = e.reduce(0, +)
            expected += e.map { $0 / s }
        }
        let comparison = Comparison(expected: expected, got: data)
        #expect(comparison.maxAbsError < 1e-6, "\(comparison)")
    }

    @Test func im2colMatchesIndexFormula() {
        let count = 2, size = 12, p = 4, g = size / p
        let pixels = (0..<count * 3 * size * size).map { Float($0) }
        var patches = [Float](repeating: .nan, count: count * g * g * 3 * p * p)
        CPUKernels.im2col(pixels, count: count, imageSize: size, patchSize: p, into: &patches)
        for b in 0..<count { for gy in 0..<g { for gx in 0..<g { for c in 0..<3 { for ky in 0..<p { for kx in 0..<p {
            let row = b * g * g + gy * g + gx, column = c * p * p + ky * p + kx
            let expected = pixels[b * 3 * size * size + c * size * size + (gy * p + ky) * size + gx * p + kx]
            #expect(patches[row * 3 * p * p + column] == expected)
        } } } } } }
    }

    struct GEMMCase: CustomTestStringConvertible, Sendable {
        var m, n, k, threads: Int
        var transposeB: Bool
        var beta: Float
        var activation: Activation?
        var kernels: CPUMatmulKernels = .openBLAS
        var bias = true
        var testDescription: String {
            "\(kernels.rawValue) m\(m) n\(n) k\(k) threads\(threads) transB \(transposeB) beta \(beta) "
                + (bias ? activation?.rawValue ?? "bias" : "no bias")
        }
    }

    /// Shapes for both GEMMs: M, N, K off the 14×32 tile (and K = 1), both layouts of B, the residual add (beta 1),
    /// every epilogue, K past the AVX-512 GEMM's 4096 block, several thread splits (by columns and by rows).
    static let gemmShapes: [GEMMCase] = [
        GEMMCase(m: 1, n: 7, k: 3, threads: 2, transposeB: true, beta: 0, activation: nil),
        GEMMCase(m: 37, n: 300, k: 100, threads: 2, transposeB: true, beta: 0, activation: .gelu),
        GEMMCase(m: 600, n: 130, k: 50, threads: 3, transposeB: true, beta: 1, activation: nil),
        GEMMCase(m: 1100, n: 40, k: 20, threads: 2, transposeB: false, beta: 1, activation: .quickGELU),
        GEMMCase(m: 9, n: 512, k: 64, threads: 4, transposeB: false, beta: 0, activation: nil),
        GEMMCase(m: 15, n: 33, k: 1, threads: 2, transposeB: true, beta: 0, activation: .gelu),
        GEMMCase(m: 29, n: 31, k: 1, threads: 1, transposeB: false, beta: 1, activation: nil),
        GEMMCase(m: 13, n: 97, k: 17, threads: 2, transposeB: true, beta: 1, activation: nil, bias: false),
        GEMMCase(m: 43, n: 65, k: 513, threads: 2, transposeB: true, beta: 0, activation: .quickGELU),
        GEMMCase(m: 3, n: 45, k: 4200, threads: 2, transposeB: true, beta: 1, activation: nil),
        GEMMCase(m: 520, n: 16, k: 33, threads: 2, transposeB: false, beta: 0, activation: .gelu),
    ]

    static let gemmCases: [GEMMCase] = gemmShapes.flatMap { shape in
        CPUMatmulKernels.allCases.filter { $0 != .avx512 || CPUMatmulKernels.avx512Available }.map { kernels in
            var c = shape
            c.kernels = kernels
            return c
        }
    }

    @Test(arguments: gemmCases)
    func parallelGEMMMatchesReference(_ c: GEMMCase) {
        var random = SplitMix64(seed: UInt64(c.m * 31 + c.n))
        let lda = c.k + 2, ldc = c.n + 5
        let a = (0..<c.m * lda).map { _ in random.symmetric() }
        let b = (0..<c.n * c.k).map { _ in random.symmetric() }
        let bias = (0..<c.n).map { _ in random.symmetric() }
        let initial = (0..<c.m * ldc).map { _ in random.symmetric() }
        var out = initial
        out.withUnsafeMutableBufferPointer { o in
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    bias.withUnsafeBufferPointer { bias in
                        let epilogue: GEMMEpilogue =
                            !c.bias ? .none
                            : c.activation.map { .biasActivation(bias.baseAddress!, $0) } ?? .bias(bias.baseAddress!)
                        parallelGEMM(
                            m: c.m, n: c.n, k: c.k, a: a.baseAddress!, lda: lda, b: b.baseAddress!,
                            ldb: c.transposeB ? c.k : c.n, transposeB: c.transposeB, beta: c.beta, c: o.baseAddress!,
                            ldc: ldc, epilogue: epilogue, threads: c.threads, kernels: c.kernels)
                    }
                }
            }
        }
        var expected: [Double] = [], got: [Float] = []
        for i in 0..<c.m {
            for j in 0..<c.n {
                var v = Double(c.beta) * Double(initial[i * ldc + j]) + (c.bias ? Double(bias[j]) : 0)
                for p in 0..<c.k {
                    v += Double(a[i * lda + p]) * Double(c.transposeB ? b[j * c.k + p] : b[p * c.n + j])
                }
                switch c.activation {
                case nil: break
                case .gelu?: v = 0.5 * v * (1 + erf(v / 2.0.squareRoot()))
                case .quickGELU?: v = v / (1 + exp(-1.702 * v))
                }
                expected.append(v)
                got.append(out[i * ldc + j])
            }
            // Padding columns between rows are never written.
            for j in c.n..<ldc { #expect(out[i * ldc + j] == initial[i * ldc + j]) }
        }
        let comparison = Comparison(expected: expected, got: got)
        #expect(comparison.maxAbsError < 2e-6 * Double(c.k).squareRoot() * 4, "\(comparison)")
    }

    /// The two GEMMs on the same odd-shaped problem agree within the fp32 summation-order tolerance (only where the
    /// CPU has AVX-512; elsewhere the AVX-512 path is never chosen).
    @Test(.enabled(if: CPUMatmulKernels.avx512Available), arguments: [(45, 77, 300), (400, 96, 768), (14, 32, 3072)])
    func avx512AgreesWithOpenBLAS(m: Int, n: Int, k: Int) {
        var random = SplitMix64(seed: UInt64(m * 7 + k))
        let a = (0..<m * k).map { _ in random.symmetric() }
        let b = (0..<n * k).map { _ in random.symmetric() }
        let bias = (0..<n).map { _ in random.symmetric() }
        var results: [[Float]] = []
        for kernels in [CPUMatmulKernels.openBLAS, .avx512] {
            var out = [Float](repeating: 0, count: m * n)
            out.withUnsafeMutableBufferPointer { o in
                bias.withUnsafeBufferPointer { bias in
                    parallelGEMM(
                        m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, transposeB: true, c: o.baseAddress!, ldc: n,
                        epilogue: .biasActivation(bias.baseAddress!, .gelu), threads: 2, kernels: kernels)
                }
            }
            results.append(out)
        }
        let comparison = Comparison(expected: results[0].map(Double.init), got: results[1])
        #expect(comparison.maxAbsError < 2e-6 * Double(k).squareRoot() * 4, "\(comparison)")
    }

    /// The AVX-512 LayerNorm (`ck_layer_norm`) against the double reference, odd widths, strided rows, in place.
    @Test(.enabled(if: CPUMatmulKernels.avx512Available), arguments: [1, 7, 16, 100, 768])
    func avx512LayerNormMatchesReference(width: Int) {
        var random = SplitMix64(seed: UInt64(width) + 11)
        let rows = 5, stride = width + 3
        let input = (0..<rows * stride).map { _ in 3 * random.symmetric() + 0.5 }
        let weight = (0..<width).map { _ in 1 + 0.2 * random.symmetric() }
        let bias = (0..<width).map { _ in 0.2 * random.symmetric() }
        var output = [Float](repeating: .nan, count: rows * width)
        ck_layer_norm(input, stride, &output, width, Int32(rows), Int32(width), weight, bias, 1e-5)
        let expected = referenceLayerNorm(input, stride: stride, rows: rows, width: width, weight: weight, bias: bias)
        let comparison = Comparison(expected: expected, got: output)
        #expect(comparison.maxAbsError < 2e-6, "\(comparison)")
        var inPlace = input
        inPlace.withUnsafeMutableBufferPointer { p in
            ck_layer_norm(p.baseAddress!, stride, p.baseAddress!, stride, Int32(rows), Int32(width), weight, bias, 1e-5)
        }
        for r in 0..<rows { #expect(Array(inPlace[(r * stride)..<(r * stride + width)]) == Array(output[(r * width)..<((r + 1) * width)])) }
    }

    /// One attention head (`ck_attention_head`: Q·Kᵀ, scaled softmax, ·V) against the double reference, for all
    /// queries and for the class token only, with token counts off the tile sizes.
    @Test(.enabled(if: CPUMatmulKernels.avx512Available), arguments: [(1, 1, 8), (50, 50, 64), (1, 50, 64), (37, 37, 25)])
    func avx512AttentionHeadMatchesReference(queries: Int, tokens: Int, headWidth: Int) {
        var random = SplitMix64(seed: UInt64(tokens * 13 + headWidth))
        let width = 3 * headWidth, ld = 3 * width  // one head's slice of a [T, 3W] qkv row
        let qkv = (0..<tokens * ld).map { _ in 2 * random.symmetric() }
        var out = [Float](repeating: .nan, count: queries * width)
        var scratch = [Float](repeating: 0, count: tokens * tokens)
        let scale = 1 / Float(headWidth).squareRoot()
        qkv.withUnsafeBufferPointer { p in
            let q = p.baseAddress!
            ck_attention_head(
                Int32(queries), Int32(tokens), Int32(headWidth), q, q + width, q + 2 * width, ld, scale, &out, width,
                &scratch)
        }
        var expected: [Double] = [], got: [Float] = []
        for i in 0..<queries {
            let logits = (0..<tokens).map { j in
                (0..<headWidth).reduce(0.0) { $0 + Double(qkv[i * ld + $1]) * Double(qkv[j * ld + width + $1]) } * Double(scale)
            }
            let m = logits.max()!
            let e = logits.map { exp($0 - m) }
            let s = e.reduce(0, +)
            for c in 0..<headWidth {
                expected.append((0..<tokens).reduce(0.0) { $0 + e[$1] / s * Double(qkv[$1 * ld + 2 * width + c]) })
                got.append(out[i * width + c])
            }
        }
        let comparison = Comparison(expected: expected, got: got)
        #expect(comparison.maxAbsError < 2e-6, "\(comparison)")
    }

    /// The AVX-512 epilogue's GELU (exact erf form, A&S 7.1.26 erfc) and QuickGELU, with the same tolerances as the
    /// Swift ones: 3e-7·max(1, |x|) and 2e-7·max(1, |x|).
    @Test(.enabled(if: CPUMatmulKernels.avx512Available), arguments: [Activation.gelu, .quickGELU])
    func avx512ActivationMatchesReference(_ activation: Activation) {
        let values = stride(from: -12.0, through: 12.0, by: 0.0071).map { Float($0) } + [0, -0.0, 1e-8, -1e-8, 40, -40]
        var data = values
        let zeros = [Float](repeating: 0, count: values.count)
        let kind = activation == .gelu ? CK_EPILOGUE_BIAS_GELU : CK_EPILOGUE_BIAS_QUICKGELU
        ck_bias_activation(&data, zeros, Int32(data.count), kind)
        let tolerance = activation == .gelu ? 3e-7 : 2e-7
        for (x, got) in zip(values, data) {
            let xd = Double(x)
            let expected = activation == .gelu ? 0.5 * xd * (1 + erf(xd / 2.0.squareRoot())) : xd / (1 + exp(-1.702 * xd))
            #expect(abs(Double(got) - expected) <= tolerance * max(1, abs(xd)), "\(activation)(\(x)): \(got) vs \(expected)")
        }
    }
}

/// LayerNorm in double precision (epsilon 1e-5) of `rows` rows of `width` values, `stride` apart, packed.
func referenceLayerNorm(
    _ input: [Float], stride: Int, rows: Int, width: Int, weight: [Float], bias: [Float]
) -> [Double] {
    var expected: [Double] = []
    for r in 0..<rows {
        let row = (0..<width).map { Double(input[r * stride + $0]) }
        let mean = row.reduce(0, +) / Double(width)
        let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(width)
        expected += (0..<width).map { (row[$0] - mean) / (variance + 1e-5).squareRoot() * Double(weight[$0]) + Double(bias[$0]) }
    }
    return expected
}
