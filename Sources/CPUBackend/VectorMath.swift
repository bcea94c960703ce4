/// Eight floats: two SSE registers on the baseline x86-64 target, one AVX register where the compiler may use it.
typealias FloatVector = SIMD8<Float>
typealias BitsVector = SIMD8<UInt32>

@inline(__always)
func loadVector(_ p: UnsafePointer<Float>) -> FloatVector {
    UnsafeRawPointer(p).loadUnaligned(as: FloatVector.self)
}

@inline(__always)
func storeVector(_ v: FloatVector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: FloatVector.self)
}

/// Vectorised math used by the element-wise kernels; relative errors are tested against Foundation in `VectorMathTests`.
enum VectorMath {
    /// e^x, relative error below 3e-7 (Cephes `expf` polynomial, round-to-nearest range reduction).
    ///
    /// Avoids `rounded()` and float→int conversions: on the baseline x86-64 target those become per-lane calls.
    @inline(__always)
    static func exp(_ x: FloatVector) -> FloatVector {
        let x = x.clamped(lowerBound: FloatVector(repeating: -87.33654), upperBound: FloatVector(repeating: 88.37626))
        // Adding 1.5·2^23 rounds x·log2(e) to an integer n held in the low mantissa bits of t.
        let magic = FloatVector(repeating: 12_582_912)
        let t = x * 1.442_695_04 + magic
        let n = t - magic
        let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
        var p = FloatVector(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        let exponent = (unsafeBitCast(t, to: BitsVector.self) &- 0x4B40_0000 &+ 127) &<< 23
        return p * unsafeBitCast(exponent, to: FloatVector.self)
    }

    /// |x|.
    @inline(__always)
    static func abs(_ x: FloatVector) -> FloatVector {
        unsafeBitCast(unsafeBitCast(x, to: BitsVector.self) & 0x7FFF_FFFF, to: FloatVector.self)
    }

    /// erfc(z) for z ≥ 0, absolute error below 1.5e-7 (Abramowitz & Stegun 7.1.26, the formula PyTorch's
    /// vectorised CPU `erf` uses too).
    @inline(__always)
    static func erfcNonNegative(_ z: FloatVector) -> FloatVector {
        let t = 1 / (1 + 0.327_591_1 * z)
        var p = FloatVector(repeating: 1.061_405_429)
        p = p * t - 1.453_152_027
        p = p * t + 1.421_413_741
        p = p * t - 0.284_496_736
        p = p * t + 0.254_829_592
        return p * t * exp(-z * z)
    }

    /// `nn.GELU()`: x·Φ(x) = 0.5·x·(1 + erf(x/√2)), written through erfc(|x|/√2).
    @inline(__always)
    static func gelu(_ x: FloatVector) -> FloatVector {
        let halfTail = 0.5 * x * erfcNonNegative(abs(x) * 0.707_106_781_186_547_5)
        return halfTail.replacing(with: x - halfTail, where: x .>= 0)
    }

    /// open_clip's `QuickGELU`: x·sigmoid(1.702·x).
    @inline(__always)
    static func quickGELU(_ x: FloatVector) -> FloatVector {
        x / (1 + exp(-1.702 * x))
    }
}
