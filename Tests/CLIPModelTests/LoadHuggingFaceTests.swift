import Foundation
import InferenceCore
import SafeTensors
import Testing

@testable import CLIPModel

@Suite("Loading Hugging Face transformers CLIP directories")
struct LoadHuggingFaceTests {
    let spec = TinyModels.spec

    @Test(arguments: [DType.f32, .f16, .bf16])
    func stacksQKVAndTransposesTheProjection(dtype: DType) throws {
        let dir = try TemporaryDirectory(name: "tiny-hf")
        try TinyModels.writeHuggingFace(dir, dtype: dtype)
        let model = try CLIPModelLoader.load(dir.url.path)
        #expect(model.name == "tiny-hf")
        #expect(model.layout == .huggingFace)
        #expect(model.spec == spec)
        #expect(model.checkpointDType == dtype)
        #expect(model.weightBytes == spec.parameterCount * dtype.byteSize)

        let w = spec.width, e = spec.embedDim
        func source(_ name: String, _ count: Int) -> [Float] { rounded(TinyModels.values(name, count: count), dtype) }
        for i in 0..<spec.layers {
            let block = model.weights.blocks[i]
            let a = "vision_model.encoder.layers.\(i).self_attn."
            #expect(block.qkvWeight.shape == [3 * w, w] && block.qkvWeight.dtype == dtype)
            #expect(block.qkvWeight.floats()
                == source(a + "q_proj.weight", w * w) + source(a + "k_proj.weight", w * w) + source(a + "v_proj.weight", w * w))
            #expect(block.qkvBias.floats() == source(a + "q_proj.bias", w) + source(a + "k_proj.bias", w) + source(a + "v_proj.bias", w))
            #expect(block.outWeight.floats() == source(a + "out_proj.weight", w * w))
            #expect(block.fc1Weight.floats() == source("vision_model.encoder.layers.\(i).mlp.fc1.weight", spec.mlpWidth * w))
        }
        let projection = model.weights.projection
        #expect(projection.shape == [w, e] && projection.dtype == dtype)
        let hfProjection = source("visual_projection.weight", e * w)  // [E, W]
        let got = projection.floats()
        var transposed = true
        for r in 0..<w { for c in 0..<e where got[r * e + c] != hfProjection[c * w + r] { transposed = false } }
        #expect(transposed)
        #expect(model.weights.patchEmbedding.shape == [w, 192])
        #expect(model.weights.patchEmbedding.floats() == source("vision_model.embeddings.patch_embedding.weight", w * 192))
        #expect(model.weights.positionalEmbedding.floats() == source("vision_model.embeddings.position_embedding.weight", 17 * w))
        #expect(model.weights.lnPreWeight.floats() == source("vision_model.pre_layrnorm.weight", w))
    }

    @Test func readsThePreprocessorAndActivation() throws {
        let dir = try TemporaryDirectory()
        try TinyModels.writeHuggingFace(dir, config: TinyModels.huggingFaceConfig(spec, act: "quick_gelu"))
        let model = try CLIPModelLoader.load(dir.url.path)
        #expect(model.spec.activation == .quickGELU)
        #expect(model.preprocess == PreprocessConfig(size: 32, pipeline: .huggingFace))
    }

    @Test func visionModelWithProjectionConfigAndPrefixedKeysLoad() throws {
        let dir = try TemporaryDirectory()
        var config = TinyModels.huggingFaceVisionConfig(spec)
        config["architectures"] = ["CLIPVisionModelWithProjection"]
        config["projection_dim"] = spec.embedDim
        try TinyModels.writeHuggingFace(dir, config: config, prefix: "model.")
        let model = try CLIPModelLoader.load(dir.url.path)
        #expect(model.spec == spec)
        #expect(model.weights.classEmbedding.floats() == TinyModels.values("vision_model.embeddings.class_embedding", count: 64))
    }

    @Test func transformersDefaultsFillMissingKeys() throws {
        let config = try CLIPModelLoader.huggingFaceSpec(ConfigObject(file: "config.json", path: "", values: [
            "model_type": "clip", "vision_config": [String: Any](),
        ]))
        #expect(config == VisionTowerSpec(imageSize: 224, patchSize: 32, width: 768, layers: 12, headWidth: 64, embedDim: 512, activation: .quickGELU))
        #expect(CLIPArchitectures.name(matching: config) == "ViT-B-32-quickgelu")
    }

    @Test func missingQKVPartNamesTheTensor() throws {
        let dir = try TemporaryDirectory()
        let name = "vision_model.encoder.layers.1.self_attn.k_proj.weight"
        try TinyModels.writeHuggingFace(dir, omit: [name])
        #expect(loadError { try CLIPModelLoader.load(dir.url.path) }
            == .missingTensor(file: dir.file("model.safetensors").path, tensor: name, expectedShape: [64, 64]))
    }

    @Test func projectionShapeIsChecked() throws {
        let dir = try TemporaryDirectory()
        try TinyModels.writeHuggingFace(dir, shapes: ["visual_projection.weight": [64, 16]])
        #expect(loadError { try CLIPModelLoader.load(dir.url.path) }
            == .shapeMismatch(file: dir.file("model.safetensors").path, tensor: "visual_projection.weight", expected: [16, 64], found: [64, 16]))
    }

    /// (label, config.json edit as JSON, preprocessor edit as JSON, expected text).
    static let failures: [(String, String, String, String)] = [
        ("relu activation", #"{"vision_config": {"hidden_act": "relu"}}"#, "{}", "hidden_act = relu"),
        ("SigLIP", #"{"model_type": "siglip"}"#, "{}", "model_type 'siglip'"),
        ("vision model without projection", #"{"architectures": ["CLIPVisionModel"]}"#, "{}", "CLIPVisionModel"),
        ("grayscale", #"{"vision_config": {"num_channels": 1}}"#, "{}", "num_channels"),
        ("heads do not divide", #"{"vision_config": {"num_attention_heads": 3}}"#, "{}", "num_attention_heads"),
        ("bilinear", "{}", #"{"resample": 2}"#, "resample = 2"),
        ("no center crop", "{}", #"{"do_center_crop": false}"#, "do_center_crop"),
        ("resize larger than crop", "{}", #"{"size": {"shortest_edge": 40}}"#, "shortest_edge 40"),
        ("crop differs from tower", "{}", #"{"size": {"shortest_edge": 48}, "crop_size": {"height": 48, "width": 48}}"#, "crop_size"),
        ("height-width size", "{}", #"{"size": {"height": 32, "width": 32}}"#, "shortest_edge"),
        ("odd rescale", "{}", #"{"rescale_factor": 0.5}"#, "rescale_factor"),
    ]

    @Test(arguments: failures)
    func unsupportedSettingsFail(_ label: String, _ configEdit: String, _ processorEdit: String, _ expected: String) throws {
        func merge(_ base: [String: Any], _ json: String) throws -> [String: Any] {
            var out = base
            let edit = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
            for (key, value) in edit {
                if let nested = value as? [String: Any], let current = out[key] as? [String: Any], key == "vision_config" {
                    out[key] = current.merging(nested) { $1 }
                } else {
                    out[key] = value
                }
            }
            return out
        }
        let dir = try TemporaryDirectory()
        try TinyModels.writeHuggingFace(
            dir, config: merge(TinyModels.huggingFaceConfig(spec), configEdit),
            preprocessor: merge(TinyModels.huggingFacePreprocessor, processorEdit))
        let error = try #require(loadError { try CLIPModelLoader.load(dir.url.path) })
        #expect(error.description.contains(expected), "\(label): \(error)")
    }

    @Test func missingFiles() throws {
        let noProcessor = try TemporaryDirectory()
        try TinyModels.writeHuggingFace(noProcessor, preprocessor: nil)
        #expect(loadError { try CLIPModelLoader.load(noProcessor.url.path) }
            == .missingFile(directory: noProcessor.url.path, tried: ["preprocessor_config.json"]))

        let noWeights = try TemporaryDirectory()
        try TinyModels.writeHuggingFace(noWeights)
        try FileManager.default.removeItem(at: noWeights.file("model.safetensors"))
        #expect(loadError { try CLIPModelLoader.load(noWeights.url.path) }
            == .missingFile(directory: noWeights.url.path, tried: ["model.safetensors"]))

        try Data("{}".utf8).write(to: noWeights.file("model.safetensors.index.json"))
        guard case .unsupportedWeightsFormat = loadError({ try CLIPModelLoader.load(noWeights.url.path) }) else {
            Issue.record("sharded checkpoints should be refused"); return
        }
    }

    @Test func openCLIPConfigWithOnlyHFWeightsUsesTheHFLayout() throws {
        // Hub repos such as laion's carry open_clip_config.json, a pickled open_clip .bin and HF model.safetensors.
        let dir = try TemporaryDirectory()
        try TinyModels.writeHuggingFace(dir)
        try dir.writeJSON(["model_cfg": TinyModels.openCLIPModelConfig(spec)], to: "open_clip_config.json")
        #expect(try CLIPModelLoader.load(dir.url.path).layout == .huggingFace)
    }
}
