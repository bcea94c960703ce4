import Foundation
import InferenceCore
import SafeTensors
import TestSupport
import Testing

@testable import CLIPModel

/// The committed fixture models (made by open_clip / transformers themselves) load with the manifest's numbers.
@Suite("Loading the fixture models")
struct LoadFixtureTests {
    static let manifestURL = Fixtures.root.appendingPathComponent("manifest.json")

    static var models: [String: [String: Any]] {
        guard let data = try? Data(contentsOf: manifestURL),
              let manifest = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let models = manifest["models"] as? [String: [String: Any]]
        else { return [:] }
        return models
    }

    static var modelNames: [String] { models.keys.sorted() }

    @Test func manifestListsModels() {
        #expect(!Self.modelNames.isEmpty, "no models in \(Self.manifestURL.path)")
    }

    @Test(arguments: modelNames)
    func specLayoutAndPreprocessMatchTheManifest(_ name: String) throws {
        let entry = try #require(Self.models[name])
        let dir = Fixtures.root.appendingPathComponent(try #require(entry["dir"] as? String))
        let model = try CLIPModelLoader.load(dir.path)
        #expect(model.name == name)

        let arch = try #require(entry["architecture"] as? [String: Any])
        func int(_ key: String) -> Int? { arch[key] as? Int }
        let s = model.spec
        #expect(s.imageSize == int("image_size") && s.patchSize == int("patch_size") && s.width == int("width"))
        #expect(s.layers == int("layers") && s.headWidth == int("head_width") && s.heads == int("heads"))
        #expect(s.mlpWidth == int("mlp_width") && s.embedDim == int("embed_dim") && s.tokens == int("tokens"))
        #expect(s.activation.rawValue == arch["activation"] as? String)
        #expect(abs(Double(s.layerNormEpsilon) - ((arch["layer_norm_eps"] as? Double) ?? 0)) < 1e-12)

        let layout = entry["layout"] as? String
        #expect(model.layout == (layout == "transformers" ? .huggingFace : .openCLIP), "\(String(describing: layout))")
        if let dtypes = entry["weights_dtype"] as? [String], dtypes.count == 1 {
            #expect(model.checkpointDType.rawValue == dtypes[0])
        }

        let pre = try #require(entry["preprocess"] as? [String: Any])
        let p = model.preprocess
        #expect(p.size == pre["size"] as? Int)
        #expect(p.mean == (pre["mean"] as? [Double])?.map(Float.init))
        #expect(p.std == (pre["std"] as? [Double])?.map(Float.init))
        #expect(p.resizeMode.rawValue == pre["resize_mode"] as? String)
        #expect(p.fillColor == pre["fill_color"] as? Int)
        #expect(p.interpolation == pre["interpolation"] as? String)
        #expect(p.pipeline.rawValue == pre["pipeline"] as? String)
    }

    @Test(arguments: modelNames)
    func weightsAreTheCheckpointsTensors(_ name: String) throws {
        let entry = try #require(Self.models[name])
        let dir = Fixtures.root.appendingPathComponent(try #require(entry["dir"] as? String))
        let model = try CLIPModelLoader.load(dir.path)
        let w = model.spec.width, e = model.spec.embedDim
        if model.layout == .openCLIP {
            let file = try SafeTensorsFile(url: dir.appendingPathComponent("open_clip_model.safetensors"))
            #expect(model.weights.projection.floats() == (try file.tensor("visual.proj").floats()))
            #expect(model.weights.patchEmbedding.floats() == (try file.tensor("visual.conv1.weight").floats()))
            #expect(model.weights.patchEmbedding.shape == [w, model.spec.patchDim])
            let last = model.spec.layers - 1
            #expect(model.weights.blocks[last].qkvWeight.floats()
                == (try file.tensor("visual.transformer.resblocks.\(last).attn.in_proj_weight").floats()))
            // Views share the mapping: no copy was made.
            let direct = try file.tensor("visual.positional_embedding")
            #expect(model.weights.positionalEmbedding.bytes.count == direct.bytes.count)
        } else {
            let file = try SafeTensorsFile(url: dir.appendingPathComponent("model.safetensors"))
            let prefix = (entry["weight_prefix"] as? String) ?? "vision_model."
            for i in 0..<model.spec.layers {
                let a = prefix + "encoder.layers.\(i).self_attn."
                let q = try file.tensor(a + "q_proj.weight").floats()
                let k = try file.tensor(a + "k_proj.weight").floats()
                let v = try file.tensor(a + "v_proj.weight").floats()
                #expect(model.weights.blocks[i].qkvWeight.floats() == q + k + v, "layer \(i)")
                let bias = try ["q", "k", "v"].flatMap { try file.tensor(a + "\($0)_proj.bias").floats() }
                #expect(model.weights.blocks[i].qkvBias.floats() == bias, "layer \(i)")
            }
            let hf = try file.tensor("visual_projection.weight")
            #expect(hf.shape == [e, w])
            let source = hf.floats(), got = model.weights.projection.floats()
            var mismatches = 0
            for r in 0..<w { for c in 0..<e where got[r * e + c] != source[c * w + r] { mismatches += 1 } }
            #expect(mismatches == 0)
            #expect(model.weights.lnPreWeight.floats() == (try file.tensor(prefix + "pre_layrnorm.weight").floats()))
        }
    }
}
