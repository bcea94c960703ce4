import Foundation
import InferenceCore
import SafeTensors

extension CLIPModelLoader {
    /// open_clip hub file names, in `local-dir:` preference order (open_clip's `pretrained.py`).
    static let openCLIPConfigName = "open_clip_config.json"
    static let openCLIPWeightNames = ["open_clip_model.safetensors", "open_clip_pytorch_model.safetensors"]
    static let openCLIPFallbackWeightName = "model.safetensors"
    static let pickledWeightNames = ["open_clip_pytorch_model.bin", "pytorch_model.bin", "open_clip_model.bin"]

    /// Keys of `CLIPVisionCfg` and the values clipserve implements (nil: any value is fine).
    private static let visionDefaults: [String: JSONScalar] = [
        "ls_init_value": .null, "attentional_pool": .bool(false), "no_ln_pre": .bool(false),
        "pos_embed_type": .string("learnable"), "final_ln_after_pool": .bool(false), "pool_type": .string("tok"),
        "output_tokens": .bool(false), "act_kwargs": .null, "norm_kwargs": .null, "qk_norm": .bool(false),
        "scaled_cosine_attn": .bool(false), "scale_heads": .bool(false), "scale_attn_inner": .bool(false),
        "scale_attn": .bool(false), "scale_fc": .bool(false), "timm_model_name": .null,
    ]

    /// A JSON value a config key must have for clipserve to run the model.
    enum JSONScalar: Sendable {
        case null
        case bool(Bool)
        case string(String)

        func matches(_ value: Any) -> Bool {
            switch self {
            case .null: value is NSNull
            case let .bool(b): (value as? Bool) == b
            case let .string(s): (value as? String) == s
            }
        }
    }
    private static let visionIgnored: Set<String> = [
        "image_size", "patch_size", "width", "layers", "head_width", "mlp_ratio", "patch_dropout",
        "attn_pooler_queries", "attn_pooler_heads", "block_type", "timm_model_pretrained", "timm_pool", "timm_proj",
        "timm_proj_bias", "timm_drop", "timm_drop_path", "embed_cls", "input_patchnorm", "global_average_pool",
    ]

    /// Loads an open_clip hub directory.
    static func loadOpenCLIP(directory: URL, reference: String, weightsURL: URL?) throws -> LoadedModel {
        let configURL = directory.appendingPathComponent(openCLIPConfigName)
        let config = try ConfigObject.load(configURL)
        let modelConfig = try config.object("model_cfg") ?? config
        guard modelConfig.has("vision_cfg") else {
            throw modelConfig.error("vision_cfg", "is missing (neither a wrapped model_cfg nor a bare model config)")
        }
        let spec = try openCLIPSpec(modelConfig)
        let preprocess = try openCLIPPreprocess(config.object("preprocess_cfg"), spec: spec, file: configURL.path)

        guard let weightsURL = weightsURL ?? openCLIPWeights(in: directory) else {
            try rejectPickled(in: directory)
            throw ModelLoadError.missingFile(
                directory: directory.path, tried: openCLIPWeightNames + [openCLIPFallbackWeightName])
        }
        let file = try openCheckpoint(weightsURL)
        let weights = try openCLIPWeights(WeightReader(file: file, prefix: "visual."), spec: spec)
        return LoadedModel(
            name: directory.lastPathComponent, reference: reference, layout: .openCLIP,
            architecture: CLIPArchitectures.name(matching: spec), spec: spec, preprocess: preprocess,
            weights: weights, isSynthetic: false, checkpointDType: weights.dominantDType,
            weightBytes: weights.byteCount)
    }

    /// The first open_clip weights file present, or nil.
    static func openCLIPWeights(in directory: URL) -> URL? {
        for name in openCLIPWeightNames + [openCLIPFallbackWeightName] {
            let url = directory.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        return nil
    }

    /// Throws a clear error when the directory only has pickled PyTorch weights.
    static func rejectPickled(in directory: URL) throws {
        for name in pickledWeightNames {
            let url = directory.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path) {
                throw ModelLoadError.unsupportedWeightsFormat(
                    path: url.path,
                    detail: "pickled PyTorch weights are not read; convert them to safetensors "
                        + "(safetensors.torch.save_file(torch.load(path), 'open_clip_model.safetensors'))")
            }
        }
    }

    /// The tower spec from an open_clip model config; anything clipserve does not implement is an error.
    static func openCLIPSpec(_ model: ConfigObject) throws -> VisionTowerSpec {
        let file = model.file
        for key in ["custom_text", "init_logit_bias", "multimodal_cfg"] where model.has(key) {
            let what = key == "multimodal_cfg" ? "CoCa (multimodal_cfg)" : "SigLIP/custom-text models (\(key))"
            throw ModelLoadError.unsupportedFeature(file: file, feature: what)
        }
        guard let vision = try model.object("vision_cfg") else { throw model.error("vision_cfg", "is missing") }
        for key in vision.unknownKeys(Set(visionDefaults.keys).union(visionIgnored)) {
            throw ModelLoadError.unsupportedFeature(file: file, feature: "vision_cfg.\(key)")
        }
        for (key, implemented) in visionDefaults.sorted(by: { $0.key < $1.key }) where vision.has(key) {
            let value = vision.values[key]!
            if !implemented.matches(value) {
                throw ModelLoadError.unsupportedFeature(file: file, feature: "vision_cfg.\(key) = \(value)")
            }
        }
        if let block = try vision.string("block_type"), block != "default" {
            throw ModelLoadError.unsupportedFeature(file: file, feature: "vision_cfg.block_type = \(block)")
        }
        if vision.has("layers"), vision.values["layers"] is [Any] {
            throw ModelLoadError.unsupportedFeature(file: file, feature: "ModifiedResNet vision tower (layers is a list)")
        }
        let imageSize = try vision.squareSize("image_size") ?? 224
        let patchSize = try vision.squareSize("patch_size") ?? 16
        let width = try vision.int("width", default: 768)
        let layers = try vision.int("layers", default: 12)
        let headWidth = try vision.int("head_width", default: 64)
        let mlpRatio = try vision.double("mlp_ratio") ?? 4.0
        guard let embedDim = try model.int("embed_dim") else { throw model.error("embed_dim", "is missing") }
        let quickGELU = try model.bool("quick_gelu") ?? false
        guard imageSize > 0, patchSize > 0, width > 0, layers > 0, headWidth > 0, embedDim > 0, mlpRatio > 0 else {
            throw model.error("vision_cfg", "has a non-positive size")
        }
        guard imageSize % patchSize == 0 else {
            throw ModelLoadError.unsupportedFeature(
                file: file, feature: "image_size \(imageSize) not divisible by patch_size \(patchSize)")
        }
        guard width % headWidth == 0 else {
            throw vision.error("head_width", "\(headWidth) does not divide width \(width)")
        }
        return VisionTowerSpec(
            imageSize: imageSize, patchSize: patchSize, width: width, layers: layers, headWidth: headWidth,
            mlpWidth: Int(Double(width) * mlpRatio), embedDim: embedDim,
            activation: quickGELU ? .quickGELU : .gelu, layerNormEpsilon: 1e-5)
    }

    /// `preprocess_cfg` merged over open_clip's `PreprocessCfg` defaults (size from the tower).
    static func openCLIPPreprocess(_ overlay: ConfigObject?, spec: VisionTowerSpec, file: String) throws -> PreprocessConfig {
        var config = PreprocessConfig(size: spec.imageSize)
        guard let overlay else { return config }
        if let size = try overlay.squareSize("size") {
            guard size == spec.imageSize else {
                throw overlay.error("size", "\(size) differs from the tower's image_size \(spec.imageSize)")
            }
        }
        if let mode = try overlay.string("mode"), mode != "RGB" {
            throw ModelLoadError.unsupportedFeature(file: file, feature: "preprocess_cfg.mode = \(mode)")
        }
        if let mean = try overlay.floats("mean", count: 3) { config.mean = mean }
        if let std = try overlay.floats("std", count: 3) {
            guard std.allSatisfy({ $0 > 0 }) else { throw overlay.error("std", "has a non-positive value") }
            config.std = std
        }
        if let interpolation = try overlay.string("interpolation") {
            guard interpolation == "bicubic" else {
                throw ModelLoadError.unsupportedFeature(
                    file: file, feature: "preprocess_cfg.interpolation = \(interpolation) (only bicubic)")
            }
        }
        if let mode = try overlay.string("resize_mode") {
            guard let resize = ResizeMode(rawValue: mode) else {
                throw overlay.error("resize_mode", "'\(mode)' is not shortest, longest or squash")
            }
            config.resizeMode = resize
        }
        if let fill = try overlay.int("fill_color") {
            guard (0...255).contains(fill) else { throw overlay.error("fill_color", "\(fill) is outside 0...255") }
            config.fillColor = fill
        }
        return config
    }

    /// open_clip's `visual.*` tensors (reader already scoped to `visual.`), shapes checked against `spec`.
    static func openCLIPWeights(_ visual: WeightReader, spec: VisionTowerSpec) throws -> VisionWeights {
        let w = spec.width, m = spec.mlpWidth, p = spec.patchSize
        var blocks: [VisionBlockWeights] = []
        for i in 0..<spec.layers {
            let block = visual.scoped("transformer.resblocks.\(i)")
            blocks.append(try VisionBlockWeights(
                ln1Weight: block("ln_1.weight", [w]), ln1Bias: block("ln_1.bias", [w]),
                qkvWeight: block("attn.in_proj_weight", [3 * w, w]), qkvBias: block("attn.in_proj_bias", [3 * w]),
                outWeight: block("attn.out_proj.weight", [w, w]), outBias: block("attn.out_proj.bias", [w]),
                ln2Weight: block("ln_2.weight", [w]), ln2Bias: block("ln_2.bias", [w]),
                fc1Weight: block("mlp.c_fc.weight", [m, w]), fc1Bias: block("mlp.c_fc.bias", [m]),
                fc2Weight: block("mlp.c_proj.weight", [w, m]), fc2Bias: block("mlp.c_proj.bias", [w])))
        }
        let extra = visual.prefix + "transformer.resblocks.\(spec.layers).ln_1.weight"
        if visual.file.contains(extra) {
            throw ModelLoadError.unexpectedTensor(
                file: visual.file.path, tensor: extra, detail: "the config says \(spec.layers) blocks")
        }
        return try VisionWeights(
            patchEmbedding: visual("conv1.weight", [w, 3, p, p]).reshaped([w, spec.patchDim]),
            classEmbedding: visual("class_embedding", [w]),
            positionalEmbedding: visual("positional_embedding", [spec.tokens, w]),
            lnPreWeight: visual("ln_pre.weight", [w]), lnPreBias: visual("ln_pre.bias", [w]),
            blocks: blocks,
            lnPostWeight: visual("ln_post.weight", [w]), lnPostBias: visual("ln_post.bias", [w]),
            projection: visual("proj", [w, spec.embedDim]))
    }

    /// Opens a checkpoint, mapping its errors into `ModelLoadError`.
    static func openCheckpoint(_ url: URL) throws -> SafeTensorsFile {
        do {
            return try SafeTensorsFile(url: url)
        } catch let error as SafeTensorsError {
            throw ModelLoadError.checkpoint(error)
        }
    }
}
