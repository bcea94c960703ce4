/// Element types clipserve reads from checkpoints and computes in.
public enum DType: String, Sendable, Hashable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"

    /// Size of one element in bytes.
    public var byteSize: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        }
    }

    /// `value` as this type stores it (round to nearest even), back as a Float.
    @inline(__always)
    public func rounded(_ value: Float) -> Float {
        switch self {
        case .f32: value
        case .f16: HalfConversion.float(fromF16: HalfConversion.f16(from: value))
        case .bf16: HalfConversion.float(fromBF16: HalfConversion.bf16(from: value))
        }
    }
}

/// Converts between the 16-bit formats and `Float` without relying on hardware support.
public enum HalfConversion {
    /// bfloat16 bits → Float (exact).
    @inline(__always)
    public static func float(fromBF16 bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Float → bfloat16 bits, round to nearest even (NaN stays NaN).
    @inline(__always)
    public static func bf16(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
        let rounding = ((bits >> 16) & 1) + 0x7FFF
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// IEEE binary16 bits → Float (exact).
    @inline(__always)
    public static func float(fromF16 bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }

    /// Float → IEEE binary16 bits, round to nearest even.
    @inline(__always)
    public static func f16(from value: Float) -> UInt16 {
        Float16(value).bitPattern
    }
}
