/// SplitMix64: a small, fast, seeded generator for synthetic weights, benchmark pixels and reproducible test data.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    @usableFromInline var state: UInt64

    /// A generator whose sequence is fixed by `seed`.
    @inlinable
    public init(seed: UInt64) { state = seed }

    /// Next 64 random bits.
    @inlinable @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z &>> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z &>> 31)
    }

    /// Uniform in [0, 1).
    @inlinable
    public mutating func nextUnit() -> Double { Double(next() &>> 11) * 0x1p-53 }

    /// Uniform in [−1, 1).
    @inlinable
    public mutating func symmetric() -> Float { Float(Double(next() &>> 11) * 0x1p-52 - 1) }
}
