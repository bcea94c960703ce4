import CPixelEncoding
import InferenceCore
import Testing

@Suite("Pixel encoding")
struct PixelEncodingTests {
    /// Random model-input-like values plus every hard case: ties, subnormals, overflow, infinities, NaN, zeros.
    static let values: [Float] = {
        var generator = SplitMix64(seed: 7)
        var values: [Float] = (0..<20_000).map { _ in Float(Double(generator.next() >> 11) / Double(1 << 53)) * 8 - 4 }
        values += (0..<2_000).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: generator.next())) }
        values += [0, -0, 1, -1, 65504, 65519.99, 65520, -65520, 1e-8, -3e-8, 5.96e-8, 2.98e-8, 6.1e-5, 6.0e-5,
                   .infinity, -.infinity, .nan, .leastNormalMagnitude, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        // Exact ties between two halves (normal and subnormal) must round to even.
        for bits in stride(from: UInt16(0x0001), to: 0x7bff, by: 97) {
            let low = Float(Float16(bitPattern: bits)), high = Float(Float16(bitPattern: bits + 1))
            values.append((low + high) / 2)
        }
        return values
    }()

    @Test func float16MatchesSwiftRoundToNearestEven() {
        let values = Self.values
        var fast = [UInt16](repeating: 0, count: values.count), scalar = fast
        cpe_f32_to_f16(values, &fast, values.count)
        cpe_f32_to_f16_scalar(values, &scalar, values.count)
        for (i, value) in values.enumerated() {
            let expected = Float16(value)
            if expected.isNaN {
                #expect(Float16(bitPattern: fast[i]).isNaN && Float16(bitPattern: scalar[i]).isNaN, "\(value)")
            } else {
                #expect(fast[i] == expected.bitPattern, "F16C path, \(value)")
                #expect(scalar[i] == expected.bitPattern, "portable path, \(value)")
            }
        }
    }

    @Test func bfloat16RoundsToNearestEven() {
        let values = Self.values
        var encoded = [UInt16](repeating: 0, count: values.count)
        cpe_f32_to_bf16(values, &encoded, values.count)
        for (i, value) in values.enumerated() {
            let decoded = Float(bitPattern: UInt32(encoded[i]) << 16)
            if value.isNaN {
                #expect(decoded.isNaN)
                continue
            }
            // The nearest bf16 value (ties to the even one), found from the two neighbours by exact arithmetic.
            let truncated = value.bitPattern & 0xffff_0000
            let down = Float(bitPattern: truncated), up = Float(bitPattern: truncated + 0x1_0000)
            // Past the largest bf16, "up" is infinity, which IEEE rounding treats as 2^128 (so FLT_MAX overflows).
            let upValue = up.isInfinite ? (value < 0 ? -0x1p128 : 0x1p128) : Double(up)
            let dDown = Double(value) - Double(down), dUp = upValue - Double(value)
            let expected: Float =
                if value.isInfinite { value }
                else if abs(dDown) < abs(dUp) { down }
                else if abs(dUp) < abs(dDown) { up }
                else { (truncated >> 16) & 1 == 0 ? down : up }
            #expect(decoded.bitPattern == expected.bitPattern, "\(value)")
        }
    }
}
