@testable import ImageProcessing
import InferenceCore
import Testing

/// The 8-bit resampler's shortcuts against its plain forms, on seeded random images: every SIMD kernel gives the
/// scalar kernel's bytes, and computing only a crop (from a window of the source) gives the crop of the full resize.
/// The fixture parity suites tie the scalar kernel to Pillow.
@Suite("Resample kernels")
struct ResampleKernelTests {
    struct Case: CustomStringConvertible {
        var width, height, channels, outWidth, outHeight: Int
        var columns, rows: Range<Int>
        var pixels: [UInt8]
        var description: String {
            "\(width)x\(height)x\(channels) -> \(outWidth)x\(outHeight) crop \(columns) x \(rows)"
        }
    }

    /// Sizes from 1 to a few hundred pixels, up- and downscaling, both pass orders, 1 to 4 channels.
    static func randomCases(seed: UInt64, count: Int) -> [Case] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { i in
            let width = Int.random(in: 1...(i % 4 == 0 ? 400 : 90), using: &rng)
            let height = Int.random(in: 1...(i % 4 == 1 ? 400 : 90), using: &rng)
            let channels = Int.random(in: 1...4, using: &rng)
            let outWidth = Bool.random(using: &rng) ? width : Int.random(in: 1...160, using: &rng)
            let outHeight = Int.random(in: 1...160, using: &rng)
            let x0 = Int.random(in: 0..<outWidth, using: &rng), y0 = Int.random(in: 0..<outHeight, using: &rng)
            let columns = x0..<Int.random(in: (x0 + 1)...outWidth, using: &rng)
            let rows = y0..<Int.random(in: (y0 + 1)...outHeight, using: &rng)
            let pixels = (0..<(width * height * channels)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            return Case(
                width: width, height: height, channels: channels, outWidth: outWidth, outHeight: outHeight,
                columns: columns, rows: rows, pixels: pixels)
        }
    }

    static func resample(_ c: Case, columns: Range<Int>, rows: Range<Int>, kernel: ResampleKernel) -> [UInt8] {
        c.pixels.withUnsafeBufferPointer { src in
            Resampler.resample8(
                src, width: c.width, height: c.height, channels: c.channels, outWidth: c.outWidth,
                outHeight: c.outHeight, columns: columns, rows: rows, kernel: kernel)
        }
    }

    @Test("SIMD kernels give the scalar kernel's bytes", arguments: [ResampleKernel.avx2, .avx512, .automatic])
    func simdMatchesScalar(_ kernel: ResampleKernel) {
        if !kernel.isSupported { print("resample kernel \(kernel) not supported here; checking its fallback") }
        for c in Self.randomCases(seed: 11, count: 300) {
            let scalar = Self.resample(c, columns: c.columns, rows: c.rows, kernel: .scalar)
            let simd = Self.resample(c, columns: c.columns, rows: c.rows, kernel: kernel)
            #expect(simd == scalar, "\(kernel) \(c): \(firstDifference(simd, scalar))")
        }
    }

    @Test("a crop computed alone equals the same crop of the full resize", arguments: [ResampleKernel.scalar, .automatic])
    func cropEqualsFullResizeCropped(_ kernel: ResampleKernel) {
        for c in Self.randomCases(seed: 12, count: 200) {
            let full = Self.resample(c, columns: 0..<c.outWidth, rows: 0..<c.outHeight, kernel: kernel)
            let crop = Self.resample(c, columns: c.columns, rows: c.rows, kernel: kernel)
            let expected = Self.crop(full, rowBytes: c.outWidth * c.channels, c.columns, c.rows, channels: c.channels)
            #expect(crop == expected, "\(kernel) \(c): \(firstDifference(crop, expected))")
        }
    }

    @Test("a crop read from a window of the source equals the crop from the whole source")
    func windowEqualsWholeSource() {
        for c in Self.randomCases(seed: 13, count: 200) {
            let expected = Self.resample(c, columns: c.columns, rows: c.rows, kernel: .automatic)
            // The source pixels those outputs read, plus a random margin, as the JPEG decoder's window would be.
            var rng = SplitMix64(seed: UInt64(c.pixels.count))
            let sourceColumns = c.outWidth == c.width
                ? c.columns : ResampleAxis(inSize: c.width, outSize: c.outWidth, outputs: c.columns).inputSpan
            let sourceRows = c.outHeight == c.height
                ? c.rows : ResampleAxis(inSize: c.height, outSize: c.outHeight, outputs: c.rows).inputSpan
            let x0 = max(0, sourceColumns.lowerBound - Int.random(in: 0...3, using: &rng))
            let x1 = min(c.width, sourceColumns.upperBound + Int.random(in: 0...3, using: &rng))
            let y0 = max(0, sourceRows.lowerBound - Int.random(in: 0...3, using: &rng))
            let y1 = min(c.height, sourceRows.upperBound + Int.random(in: 0...3, using: &rng))
            let window = Self.crop(c.pixels, rowBytes: c.width * c.channels, x0..<x1, y0..<y1, channels: c.channels)
            let got = window.withUnsafeBufferPointer { src in
                Resampler.resample8(
                    src, width: c.width, height: c.height, channels: c.channels, outWidth: c.outWidth,
                    outHeight: c.outHeight, columns: c.columns, rows: c.rows, originX: x0, originY: y0,
                    stride: (x1 - x0) * c.channels)
            }
            #expect(got == expected, "\(c) window \(x0)..<\(x1) x \(y0)..<\(y1): \(firstDifference(got, expected))")
        }
    }

    static func crop(_ pixels: [UInt8], rowBytes: Int, _ columns: Range<Int>, _ rows: Range<Int>, channels: Int) -> [UInt8] {
        rows.flatMap { y in pixels[(y * rowBytes + columns.lowerBound * channels)..<(y * rowBytes + columns.upperBound * channels)] }
    }

    func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String {
        guard a.count == b.count else { return "\(a.count) bytes vs \(b.count)" }
        guard let i = a.indices.first(where: { a[$0] != b[$0] }) else { return "equal" }
        return "byte \(i): \(a[i]) vs \(b[i]), \(a.indices.filter { a[$0] != b[$0] }.count) differ"
    }
}
