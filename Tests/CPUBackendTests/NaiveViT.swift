import Foundation
import InferenceCore

/// open_clip's `VisionTransformer.forward` written as plainly as possible in Double: the oracle the CPU engine is
/// checked against, layer by layer.
struct NaiveViT {
    let spec: VisionTowerSpec
    let weights: VisionWeights

    /// Every layer's output for `count` images, with the engine's `LayerOutput` names and shapes.
    func layers(pixels: [Float], count: Int) -> [(name: String, values: [Double])] {
        let s = spec, t = s.tokens, w = s.width, p = s.patchSize, g = s.gridSize, size = s.imageSize
        let conv = weights.patchEmbedding.floats().map(Double.init)
        let cls = weights.classEmbedding.floats().map(Double.init)
        let pos = weights.positionalEmbedding.floats().map(Double.init)
        var out: [(String, [Double])] = []
        var x = [Double](repeating: 0, count: count * t * w)
        for b in 0..<count {
            for token in 0..<t {
                for o in 0..<w {
                    var v = 0.0
                    if token == 0 {
                        v = cls[o]
                    } else {
                        let gy = (token - 1) / g, gx = (token - 1) % g
                        for c in 0..<3 { for ky in 0..<p { for kx in 0..<p {
                            let pixel = pixels[b * 3 * size * size + c * size * size + (gy * p + ky) * size + gx * p + kx]
                            v += Double(pixel) * conv[o * s.patchDim + c * p * p + ky * p + kx]
                        } } }
                    }
                    x[(b * t + token) * w + o] = v + pos[token * w + o]
                }
            }
        }
        out.append(("embeddings", x))
        x = layerNorm(x, rows: count * t, weights.lnPreWeight, weights.lnPreBias)
        out.append(("ln_pre", x))
        for (i, block) in weights.blocks.enumerated() {
            let h1 = layerNorm(x, rows: count * t, block.ln1Weight, block.ln1Bias)
            let qkv = linear(h1, rows: count * t, block.qkvWeight, block.qkvBias)
            let attended = attention(qkv, count: count)
            let projected = linear(attended, rows: count * t, block.outWeight, block.outBias)
            for j in x.indices { x[j] += projected[j] }
            let h2 = layerNorm(x, rows: count * t, block.ln2Weight, block.ln2Bias)
            var hidden = linear(h2, rows: count * t, block.fc1Weight, block.fc1Bias)
            for j in hidden.indices { hidden[j] = activation(hidden[j]) }
            let mlp = linear(hidden, rows: count * t, block.fc2Weight, block.fc2Bias)
            for j in x.indices { x[j] += mlp[j] }
            out.append(("resblocks.\(i)", x))
        }
        var classTokens = [Double](repeating: 0, count: count * w)
        for b in 0..<count { for o in 0..<w { classTokens[b * w + o] = x[b * t * w + o] } }
        let pooled = layerNorm(classTokens, rows: count, weights.lnPostWeight, weights.lnPostBias)
        out.append(("ln_post", pooled))
        let proj = weights.projection.floats().map(Double.init)
        var embedding = [Double](repeating: 0, count: count * s.embedDim)
        for b in 0..<count { for e in 0..<s.embedDim {
            var v = 0.0
            for k in 0..<w { v += pooled[b * w + k] * proj[k * s.embedDim + e] }
            embedding[b * s.embedDim + e] = v
        } }
        out.append(("projection", embedding))
        return out
    }

    func activation(_ x: Double) -> Double {
        switch spec.activation {
        case .gelu: 0.5 * x * (1 + erf(x / 2.0.squareRoot()))
        case .quickGELU: x / (1 + exp(-1.702 * x))
        }
    }

    func layerNorm(_ x: [Double], rows: Int, _ weight: TensorData, _ bias: TensorData) -> [Double] {
        let w = x.count / rows
        let gamma = weight.floats(), beta = bias.floats()
        var y = x
        for r in 0..<rows {
            let row = x[(r * w)..<((r + 1) * w)]
            let mean = row.reduce(0, +) / Double(w)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(w)
            for i in 0..<w {
                y[r * w + i] = (x[r * w + i] - mean) / (variance + Double(spec.layerNormEpsilon)).squareRoot()
                    * Double(gamma[i]) + Double(beta[i])
            }
        }
        return y
    }

    /// x·Wᵀ + b with W [out, in].
    func linear(_ x: [Double], rows: Int, _ weight: TensorData, _ bias: TensorData) -> [Double] {
        let outputs = weight.shape[0], inputs = weight.shape[1]
        let wt = weight.floats(), b = bias.floats()
        var y = [Double](repeating: 0, count: rows * outputs)
        x.withUnsafeBufferPointer { x in
            for r in 0..<rows { for o in 0..<outputs {
                var v = Double(b[o])
                for k in 0..<inputs { v += x[r * inputs + k] * Double(wt[o * inputs + k]) }
                y[r * outputs + o] = v
            } }
        }
        return y
    }

    /// Softmax(Q·Kᵀ/√hd)·V per image and head, heads concatenated.
    func attention(_ qkv: [Double], count: Int) -> [Double] {
        let t = spec.tokens, w = spec.width, hd = spec.headWidth
        var out = [Double](repeating: 0, count: count * t * w)
        for b in 0..<count { for h in 0..<spec.heads { for i in 0..<t {
            var scores = [Double](repeating: 0, count: t)
            for j in 0..<t {
                var dot = 0.0
                for d in 0..<hd { dot += qkv[(b * t + i) * 3 * w + h * hd + d] * qkv[(b * t + j) * 3 * w + w + h * hd + d] }
                scores[j] = dot / Double(hd).squareRoot()
            }
            let maximum = scores.max()!
            let exps = scores.map { exp($0 - maximum) }
            let sum = exps.reduce(0, +)
            for d in 0..<hd {
                var v = 0.0
                for j in 0..<t { v += exps[j] / sum * qkv[(b * t + j) * 3 * w + 2 * w + h * hd + d] }
                out[(b * t + i) * w + h * hd + d] = v
            }
        } } }
        return out
    }
}
