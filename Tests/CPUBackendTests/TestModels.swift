import InferenceCore

/// Deterministic random weights and inputs for small towers, built with `TensorData(shape:values:)`.
enum TestModels {
    /// A tower small enough for a double-precision reference, with odd sizes that exercise vector tails
    /// (width 100 = 12·8 + 4), several heads, column splits (3W = 300 ≥ 64·threads) and uneven grids.
    static func smallSpec(activation: Activation = .gelu, layers: Int = 2) -> VisionTowerSpec {
        VisionTowerSpec(
            imageSize: 36, patchSize: 6, width: 100, layers: layers, headWidth: 25, mlpWidth: 400, embedDim: 40,
            activation: activation, layerNormEpsilon: 1e-5)
    }

    /// Weights with roughly the scales of a trained CLIP tower (so activations stay O(1)).
    static func weights(for spec: VisionTowerSpec, seed: UInt64 = 1) -> VisionWeights {
        var random = SplitMix64(seed: seed)
        let w = spec.width, m = spec.mlpWidth
        func tensor(_ shape: [Int], scale: Float, offset: Float = 0) -> TensorData {
            TensorData(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in offset + scale * random.symmetric() })
        }
        let matrixScale = 1.7 / Float(w).squareRoot()
        let blocks = (0..<spec.layers).map { _ in
            VisionBlockWeights(
                ln1Weight: tensor([w], scale: 0.1, offset: 1), ln1Bias: tensor([w], scale: 0.1),
                qkvWeight: tensor([3 * w, w], scale: matrixScale), qkvBias: tensor([3 * w], scale: 0.05),
                outWeight: tensor([w, w], scale: matrixScale), outBias: tensor([w], scale: 0.05),
                ln2Weight: tensor([w], scale: 0.1, offset: 1), ln2Bias: tensor([w], scale: 0.1),
                fc1Weight: tensor([m, w], scale: matrixScale), fc1Bias: tensor([m], scale: 0.05),
                fc2Weight: tensor([w, m], scale: 1.7 / Float(m).squareRoot()), fc2Bias: tensor([w], scale: 0.05))
        }
        return VisionWeights(
            patchEmbedding: tensor([w, spec.patchDim], scale: 1.7 / Float(spec.patchDim).squareRoot()),
            classEmbedding: tensor([w], scale: 0.5), positionalEmbedding: tensor([spec.tokens, w], scale: 0.2),
            lnPreWeight: tensor([w], scale: 0.1, offset: 1), lnPreBias: tensor([w], scale: 0.1), blocks: blocks,
            lnPostWeight: tensor([w], scale: 0.1, offset: 1), lnPostBias: tensor([w], scale: 0.1),
            projection: tensor([w, spec.embedDim], scale: matrixScale))
    }

    /// `count` images of normalised-looking pixels in [−2, 2].
    static func pixels(for spec: VisionTowerSpec, count: Int, seed: UInt64 = 7) -> [Float] {
        var random = SplitMix64(seed: seed)
        return (0..<count * spec.pixelsPerImage).map { _ in 2 * random.symmetric() }
    }
}

/// Largest |expected − got| and where, plus the first few pairs, for failure messages.
struct Comparison: CustomStringConvertible {
    let maxAbsError: Double
    let worstIndex: Int
    let pairs: [(Int, Double, Double)]

    init(expected: [Double], got: [Float]) {
        precondition(expected.count == got.count, "compared \(expected.count) with \(got.count) values")
        var worst = 0.0, index = 0
        for i in expected.indices where abs(expected[i] - Double(got[i])) > worst || got[i].isNaN {
            worst = got[i].isNaN ? .infinity : abs(expected[i] - Double(got[i]))
            index = i
        }
        maxAbsError = worst
        worstIndex = index
        let around = max(0, index - 1)..<min(expected.count, index + 3)
        pairs = around.map { ($0, expected[$0], Double(got[$0])) }
    }

    var description: String {
        "max |error| \(maxAbsError) at index \(worstIndex); expected vs got: "
            + pairs.map { "[\($0.0)] \($0.1) vs \($0.2)" }.joined(separator: ", ")
    }
}
