import Foundation
import InferenceCore
import SafeTensors
import Testing

@testable import CLIPModel

@Suite("Loading open_clip hub directories")
struct LoadOpenCLIPTests {
    let spec = TinyModels.spec

    @Test(arguments: [DType.f32, .f16, .bf16])
    func loadsEveryVisualTensorInOpenCLIPOrientation(dtype: DType) throws {
        let dir = try TemporaryDirectory(name: "tiny-openclip")
        try TinyModels.writeOpenCLIP(dir, dtype: dtype)
        let model = try CLIPModelLoader.load(dir.url.path)

        #expect(model.name == "tiny-openclip")
        #expect(model.reference == dir.url.path)
        #expect(model.layout == .openCLIP)
        #expect(model.spec == spec)
        #expect(model.architecture == nil)
        #expect(!model.isSynthetic)
        #expect(model.checkpointDType == dtype)
        // Only visual tensors count: the text tower stays on disk.
        #expect(model.weightBytes == spec.parameterCount * dtype.byteSize)
        #expect(model.weights.blocks.count == 2)

        func expectValues(_ tensor: TensorData, _ name: String, shape: [Int]) {
            #expect(tensor.shape == shape, "\(name)")
            #expect(tensor.dtype == dtype, "\(name)")
            #expect(tensor.floats() == rounded(TinyModels.values(name, count: tensor.elementCount), dtype), "\(name)")
        }
        let w = spec.width
        expectValues(model.weights.patchEmbedding, "visual.conv1.weight", shape: [w, 3 * 8 * 8])
        expectValues(model.weights.classEmbedding, "visual.class_embedding", shape: [w])
        expectValues(model.weights.positionalEmbedding, "visual.positional_embedding", shape: [17, w])
        expectValues(model.weights.projection, "visual.proj", shape: [w, 16])
        expectValues(model.weights.blocks[1].qkvWeight, "visual.transformer.resblocks.1.attn.in_proj_weight", shape: [3 * w, w])
        expectValues(model.weights.blocks[1].fc2Weight, "visual.transformer.resblocks.1.mlp.c_proj.weight", shape: [w, 256])
        expectValues(model.weights.lnPostBias, "visual.ln_post.bias", shape: [w])
    }

    @Test func mergesPreprocessConfigOverOpenCLIPDefaults() throws {
        let dir = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(dir, preprocess: ["mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "resize_mode": "squash", "interpolation": "bicubic", "fill_color": 7, "size": 32])
        let p = try CLIPModelLoader.load(dir.url.path).preprocess
        #expect(p == PreprocessConfig(size: 32, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], resizeMode: .squash, fillColor: 7, pipeline: .openCLIP))

        let plain = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(plain, preprocess: nil)
        #expect(try CLIPModelLoader.load(plain.url.path).preprocess == PreprocessConfig(size: 32))
    }

    @Test func acceptsABareConfigAndFallbackWeightNames() throws {
        let dir = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(dir, weightsName: "open_clip_pytorch_model.safetensors")
        try dir.writeJSON(TinyModels.openCLIPModelConfig(spec), to: "open_clip_config.json")
        let model = try CLIPModelLoader.load("local-dir:" + dir.url.path)
        #expect(model.spec == spec)
        #expect(model.preprocess == PreprocessConfig(size: 32))
    }

    @Test func quickGELUAndKnownArchitecturesAreRecognised() throws {
        var quick = spec
        quick.activation = .quickGELU
        let dir = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(dir, spec: quick)
        #expect(try CLIPModelLoader.load(dir.url.path).spec.activation == .quickGELU)
        let b32 = try #require(CLIPArchitectures.spec(named: "ViT-B-32"))
        let config = try CLIPModelLoader.openCLIPSpec(ConfigObject(file: "x", path: "", values: [
            "embed_dim": 512, "vision_cfg": ["image_size": 224, "layers": 12, "width": 768, "patch_size": 32],
        ]))
        #expect(config == b32)
        #expect(CLIPArchitectures.name(matching: config) == "ViT-B-32")
    }

    /// (label, "vision_cfg.key" or "key", JSON value, text the error must contain).
    static let unsupported: [(String, String, String, String)] = [
        ("layer scale", "vision_cfg.ls_init_value", "0.0001", "ls_init_value"),
        ("attentional pooler", "vision_cfg.attentional_pool", "true", "attentional_pool"),
        ("average pooling", "vision_cfg.pool_type", "\"avg\"", "pool_type"),
        ("no ln_pre", "vision_cfg.no_ln_pre", "true", "no_ln_pre"),
        ("final ln after pool", "vision_cfg.final_ln_after_pool", "true", "final_ln_after_pool"),
        ("token output", "vision_cfg.output_tokens", "true", "output_tokens"),
        ("sin-cos positions", "vision_cfg.pos_embed_type", "\"sin_cos_2d\"", "pos_embed_type"),
        ("timm tower", "vision_cfg.timm_model_name", "\"vit_base_patch16_224\"", "timm_model_name"),
        ("act kwargs", "vision_cfg.act_kwargs", "{\"approximate\": \"tanh\"}", "act_kwargs"),
        ("norm kwargs", "vision_cfg.norm_kwargs", "{\"eps\": 1e-6}", "norm_kwargs"),
        ("qk norm", "vision_cfg.qk_norm", "true", "qk_norm"),
        ("custom block", "vision_cfg.block_type", "\"custom\"", "block_type"),
        ("unknown vision key", "vision_cfg.fancy_new_thing", "1", "vision_cfg.fancy_new_thing"),
        ("non-square image", "vision_cfg.image_size", "[32, 48]", "non-square"),
        ("ResNet tower", "vision_cfg.layers", "[3, 4, 6, 3]", "ModifiedResNet"),
        ("SigLIP logit bias", "init_logit_bias", "-10", "SigLIP"),
        ("custom text", "custom_text", "true", "custom_text"),
        ("CoCa", "multimodal_cfg", "{\"width\": 16}", "CoCa"),
        ("indivisible patch", "vision_cfg.image_size", "36", "not divisible"),
    ]

    @Test(arguments: unsupported)
    func unsupportedConfigFeaturesFailAtLoad(_ label: String, _ key: String, _ json: String, _ expected: String) throws {
        var config = TinyModels.openCLIPModelConfig(spec)
        let value = try JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])
        if key.hasPrefix("vision_cfg.") {
            var vision = config["vision_cfg"] as! [String: Any]
            vision[String(key.dropFirst("vision_cfg.".count))] = value
            config["vision_cfg"] = vision
        } else {
            config[key] = value
        }
        let dir = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(dir, config: config)
        let error = try #require(loadError { try CLIPModelLoader.load(dir.url.path) })
        #expect(error.description.contains(expected), "\(label): \(error)")
        #expect(error.description.contains("open_clip_config.json"), "\(label): \(error)")
    }

    @Test(arguments: [
        ("patch dropout is identity at eval", "patch_dropout", "0.5"),
        ("square image_size pair", "image_size", "[32, 32]"),
        ("explicit defaults", "pool_type", "\"tok\""),
        ("null layer scale", "ls_init_value", "null"),
        ("default block", "block_type", "\"default\""),
        ("attentional pool off", "attentional_pool", "false"),
    ])
    func harmlessSettingsLoad(_ label: String, _ key: String, _ json: String) throws {
        var config = TinyModels.openCLIPModelConfig(spec)
        var vision = config["vision_cfg"] as! [String: Any]
        vision[key] = try JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])
        config["vision_cfg"] = vision
        let dir = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(dir, config: config)
        #expect(try CLIPModelLoader.load(dir.url.path).spec == spec, "\(label)")
    }

    @Test func customTextFalseIsAPlainCLIP() throws {
        var config = TinyModels.openCLIPModelConfig(spec)
        config["custom_text"] = false
        let dir = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(dir, config: config)
        #expect(try CLIPModelLoader.load(dir.url.path).spec == spec)
    }

    @Test func missingTensorNamesTensorAndExpectedShape() throws {
        let dir = try TemporaryDirectory()
        let name = "visual.transformer.resblocks.1.mlp.c_fc.bias"
        try TinyModels.writeOpenCLIP(dir, omit: [name])
        let error = loadError { try CLIPModelLoader.load(dir.url.path) }
        #expect(error == .missingTensor(file: dir.file("open_clip_model.safetensors").path, tensor: name, expectedShape: [256]))
        #expect(error?.description.contains(name) == true)
    }

    @Test func wrongShapeNamesExpectedAndFound() throws {
        let dir = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(dir, shapes: ["visual.proj": [64, 8]])
        let error = loadError { try CLIPModelLoader.load(dir.url.path) }
        #expect(error == .shapeMismatch(file: dir.file("open_clip_model.safetensors").path, tensor: "visual.proj", expected: [64, 16], found: [64, 8]))
        #expect(error?.description == "checkpoint \(dir.file("open_clip_model.safetensors").path): tensor 'visual.proj' has shape [64, 8], expected [64, 16]")
    }

    @Test func moreBlocksThanConfiguredIsAnError() throws {
        let dir = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(dir, extra: [("visual.transformer.resblocks.2.ln_1.weight", "F32", [64])])
        guard case .unexpectedTensor(_, let tensor, _) = loadError({ try CLIPModelLoader.load(dir.url.path) }) else {
            Issue.record("expected unexpectedTensor"); return
        }
        #expect(tensor == "visual.transformer.resblocks.2.ln_1.weight")
    }

    @Test func unsupportedDTypeInVisualTensorNamesIt() throws {
        let dir = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(dir, omit: ["visual.proj"], extra: [("visual.proj", "F64", [64, 16])])
        let error = loadError { try CLIPModelLoader.load(dir.url.path) }
        #expect(error == .checkpoint(.unsupportedDType(path: dir.file("open_clip_model.safetensors").path, tensor: "visual.proj", dtype: "F64")))
    }

    @Test func truncatedCheckpointIsACheckpointError() throws {
        let dir = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(dir)
        let url = dir.file("open_clip_model.safetensors")
        let data = try Data(contentsOf: url)
        try data.prefix(data.count / 2).write(to: url)
        guard case .checkpoint(let inner) = loadError({ try CLIPModelLoader.load(dir.url.path) }) else {
            Issue.record("expected a checkpoint error"); return
        }
        #expect(inner.description.contains(url.path))
    }

    @Test func missingAndUnreadableFiles() throws {
        let empty = try TemporaryDirectory()
        #expect(loadError { try CLIPModelLoader.load(empty.url.path) }
            == .missingFile(directory: empty.url.path, tried: ["open_clip_config.json", "config.json"]))

        let noWeights = try TemporaryDirectory()
        try noWeights.writeJSON(["model_cfg": TinyModels.openCLIPModelConfig(spec)], to: "open_clip_config.json")
        #expect(loadError { try CLIPModelLoader.load(noWeights.url.path) }
            == .missingFile(directory: noWeights.url.path, tried: ["open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "model.safetensors"]))

        try Data([0x80, 0x02]).write(to: noWeights.file("open_clip_pytorch_model.bin"))
        guard case .unsupportedWeightsFormat(let path, _) = loadError({ try CLIPModelLoader.load(noWeights.url.path) }) else {
            Issue.record("expected unsupportedWeightsFormat"); return
        }
        #expect(path.hasSuffix("open_clip_pytorch_model.bin"))

        let badJSON = try TemporaryDirectory()
        try Data("{\"model_cfg\": ".utf8).write(to: badJSON.file("open_clip_config.json"))
        #expect(loadError { try CLIPModelLoader.load(badJSON.url.path) }
            == .badConfig(file: badJSON.file("open_clip_config.json").path, detail: "not valid JSON"))

        let wrongType = try TemporaryDirectory()
        var config = TinyModels.openCLIPModelConfig(spec)
        config["embed_dim"] = "sixteen"
        try TinyModels.writeOpenCLIP(wrongType, config: config)
        let typeError = loadError { try CLIPModelLoader.load(wrongType.url.path) }?.description ?? ""
        #expect(typeError.contains("'model_cfg.embed_dim' is not an integer"), "\(typeError)")
    }

    @Test(arguments: [
        (["interpolation": "bilinear"] as [String: any Sendable], "interpolation"),
        (["size": 48], "size"),
        (["resize_mode": "stretch"], "resize_mode"),
        (["mean": [0.5, 0.5]], "mean"),
        (["std": [0.5, 0, 0.5]], "std"),
        (["mode": "L"], "mode"),
    ])
    func badPreprocessConfigsFail(_ overlay: [String: any Sendable], _ expected: String) throws {
        let dir = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(dir, preprocess: overlay)
        let error = try #require(loadError { try CLIPModelLoader.load(dir.url.path) })
        #expect(error.description.contains(expected), "\(error)")
    }

    @Test func referencesThatAreNotDirectories() throws {
        let dir = try TemporaryDirectory()
        try TinyModels.writeOpenCLIP(dir)
        guard case .notFound = loadError({ try CLIPModelLoader.load(dir.file("open_clip_config.json").path) }) else {
            Issue.record("a file reference should be notFound"); return
        }
        guard case .notFound = loadError({ try CLIPModelLoader.load("/nonexistent/model-\(UUID())") }) else {
            Issue.record("a missing path should be notFound"); return
        }
        guard case .notFound = loadError({ try CLIPModelLoader.load("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K") }) else {
            Issue.record("hf-hub should be refused"); return
        }
    }
}
