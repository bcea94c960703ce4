import Dispatch
import InferenceCore

/// Deterministic random weights for a tower spec (`random:NAME`), for benchmarks and tests without checkpoints.
///
/// Every value depends only on the seed, the tensor's index and its position, never on thread count: the buffer is
/// filled in fixed chunks of `chunkSize` elements, each from its own SplitMix64 stream.
public enum SyntheticWeights {
    /// The seed `random:` models use.
    public static let defaultSeed: UInt64 = 0x5EED_C11F

    private static let chunkSize = 1 << 18

    private enum Distribution {
        /// Approximately normal(0, std) (Irwin–Hall sum of four 16-bit uniforms).
        case normal(Float)
        /// Uniform in [center − spread, center + spread].
        case uniform(center: Float, spread: Float)
    }

    private struct Segment {
        var shape: [Int]
        var offset: Int
        var distribution: Distribution
        var count: Int { shape.reduce(1, *) }
    }

    /// Weights for `spec`, F32, all in one allocation: matrices ~N(0, 0.02), LayerNorm weights 1 ± 0.1, biases ± 0.02
    /// (LayerNorm biases ± 0.1), class and positional embeddings ~N(0, 0.02), `proj` ~N(0, width^-0.5).
    public static func make(spec: VisionTowerSpec, seed: UInt64 = defaultSeed) -> VisionWeights {
        var segments: [Segment] = []
        var total = 0
        func add(_ shape: [Int], _ distribution: Distribution) -> Int {
            segments.append(Segment(shape: shape, offset: total, distribution: distribution))
            total += shape.reduce(1, *)
            return segments.count - 1
        }
        let w = spec.width, m = spec.mlpWidth
        let matrix = Distribution.normal(0.02)
        let bias = Distribution.uniform(center: 0, spread: 0.02)
        let lnWeight = Distribution.uniform(center: 1, spread: 0.1)
        let lnBias = Distribution.uniform(center: 0, spread: 0.1)

        let patch = add([w, spec.patchDim], matrix)
        let cls = add([w], .normal(0.02))
        let pos = add([spec.tokens, w], .normal(0.02))
        let lnPre = (add([w], lnWeight), add([w], lnBias))
        var blockIndices: [[Int]] = []
        for _ in 0..<spec.layers {
            blockIndices.append([
                add([w], lnWeight), add([w], lnBias), add([3 * w, w], matrix), add([3 * w], bias),
                add([w, w], matrix), add([w], bias), add([w], lnWeight), add([w], lnBias),
                add([m, w], matrix), add([m], bias), add([w, m], matrix), add([w], bias),
            ])
        }
        let lnPost = (add([w], lnWeight), add([w], lnBias))
        let proj = add([w, spec.embedDim], .normal(1 / Float(w).squareRoot()))

        var jobs: [(segment: Int, chunk: Int)] = []
        for (index, segment) in segments.enumerated() {
            for chunk in 0..<((segment.count + chunkSize - 1) / chunkSize) { jobs.append((index, chunk)) }
        }
        // Not FloatStorage: its zero-fill would touch every page once more on one thread before the parallel fill.
        let storage = ByteStorage(uninitializedCount: total * MemoryLayout<Float>.size)
        nonisolated(unsafe) let base = storage.bytes.baseAddress!.bindMemory(to: Float.self, capacity: total)
        let frozenSegments = segments, frozenJobs = jobs
        DispatchQueue.concurrentPerform(iterations: jobs.count) { j in
            let (index, chunk) = frozenJobs[j]
            let segment = frozenSegments[index]
            let start = chunk * chunkSize
            let count = min(chunkSize, segment.count - start)
            fill(base + segment.offset + start, count: count, distribution: segment.distribution,
                 seed: seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(chunk) &* 0xD1B5_4A32_D192_ED03))
        }
        func tensor(_ index: Int) -> TensorData {
            let segment = segments[index]
            let bytes = UnsafeRawBufferPointer(start: base + segment.offset, count: segment.count * MemoryLayout<Float>.size)
            return TensorData(dtype: .f32, shape: segment.shape, bytes: bytes, owner: storage)
        }
        return VisionWeights(
            patchEmbedding: tensor(patch), classEmbedding: tensor(cls), positionalEmbedding: tensor(pos),
            lnPreWeight: tensor(lnPre.0), lnPreBias: tensor(lnPre.1),
            blocks: blockIndices.map { t in
                VisionBlockWeights(
                    ln1Weight: tensor(t[0]), ln1Bias: tensor(t[1]), qkvWeight: tensor(t[2]), qkvBias: tensor(t[3]),
                    outWeight: tensor(t[4]), outBias: tensor(t[5]), ln2Weight: tensor(t[6]), ln2Bias: tensor(t[7]),
                    fc1Weight: tensor(t[8]), fc1Bias: tensor(t[9]), fc2Weight: tensor(t[10]), fc2Bias: tensor(t[11]))
            },
            lnPostWeight: tensor(lnPost.0), lnPostBias: tensor(lnPost.1), projection: tensor(proj))
    }

    private static func fill(_ out: UnsafeMutablePointer<Float>, count: Int, distribution: Distribution, seed: UInt64) {
        var generator = SplitMix64(seed: seed)
        switch distribution {
        case let .normal(std):
            // Four 16-bit uniforms from one draw: their sum has mean 2 and variance ≈ 1/3.
            let scale = std * Float(3).squareRoot() / 65_536
            for i in 0..<count {
                let r = generator.next()
                let sum = (r & 0xFFFF) + ((r &>> 16) & 0xFFFF) + ((r &>> 32) & 0xFFFF) + (r &>> 48)
                out[i] = (Float(sum) - 131_070) * scale
            }
        case let .uniform(center, spread):
            for i in 0..<count {
                let u = Float(generator.next() &>> 40) * (1.0 / 16_777_216.0)
                out[i] = center + (2 * u - 1) * spread
            }
        }
    }
}
