import Foundation
import InferenceCore
import SafeTensors

extension CLIPModelLoader {
    static let huggingFaceConfigName = "config.json"
    static let huggingFaceWeightName = "model.safetensors"
    static let huggingFacePreprocessorName = "preprocessor_config.json"

    /// Loads a transformers CLIP directory (`CLIPModel` or `CLIPVisionModelWithProjection`).
    static func loadHuggingFace(directory: URL, reference: String) throws -> LoadedModel {
        let configURL = directory.appendingPathComponent(huggingFaceConfigName)
        let config = try ConfigObject.load(configURL)
        let spec = try huggingFaceSpec(config)

        let preprocessorURL = directory.appendingPathComponent(huggingFacePreprocessorName)
        guard FileManager.default.fileExists(atPath: preprocessorURL.path) else {
            throw ModelLoadError.missingFile(directory: directory.path, tried: [huggingFacePreprocessorName])
        }
        let preprocess = try huggingFacePreprocess(ConfigObject.load(preprocessorURL), spec: spec)

        let weightsURL = directory.appendingPathComponent(huggingFaceWeightName)
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            let index = directory.appendingPathComponent("model.safetensors.index.json")
            if FileManager.default.fileExists(atPath: index.path) {
                throw ModelLoadError.unsupportedWeightsFormat(
                    path: index.path, detail: "sharded checkpoints are not supported; merge them into model.safetensors")
            }
            try rejectPickled(in: directory)
            throw ModelLoadError.missingFile(directory: directory.path, tried: [huggingFaceWeightName])
        }
        let file = try openCheckpoint(weightsURL)
        let weights = try huggingFaceWeights(file, spec: spec)
        return LoadedModel(
            name: directory.lastPathComponent, reference: reference, layout: .huggingFace,
            architecture: CLIPArchitectures.name(matching: spec), spec: spec, preprocess: preprocess,
            weights: weights, isSynthetic: false, checkpointDType: weights.dominantDType,
            weightBytes: weights.byteCount)
    }

    /// The tower spec from a `CLIPConfig` (`vision_config` + top-level `projection_dim`) or a `CLIPVisionConfig`
    /// saved by `CLIPVisionModelWithProjection`; missing keys take transformers' defaults.
    static func huggingFaceSpec(_ config: ConfigObject) throws -> VisionTowerSpec {
        let file = config.file
        let modelType = try config.string("model_type") ?? (config.has("vision_config") ? "clip" : nil)
        let architectures = (config.values["architectures"] as? [String]) ?? []
        if architectures.contains("CLIPVisionModel") {
            throw ModelLoadError.unsupportedFeature(
                file: file, feature: "CLIPVisionModel without visual_projection (use CLIPVisionModelWithProjection)")
        }
        let vision: ConfigObject
        switch modelType {
        case "clip":
            guard let nested = try config.object("vision_config") else {
                throw config.error("vision_config", "is missing")
            }
            vision = nested
        case "clip_vision_model":
            vision = config
        case let other:
            throw ModelLoadError.unsupportedFeature(
                file: file, feature: "model_type \(other.map { "'\($0)'" } ?? "(missing)") (only 'clip' and 'clip_vision_model')")
        }
        let projectionDim = try config.int("projection_dim", default: 512)
        let width = try vision.int("hidden_size", default: 768)
        let mlpWidth = try vision.int("intermediate_size", default: 3072)
        let heads = try vision.int("num_attention_heads", default: 12)
        let layers = try vision.int("num_hidden_layers", default: 12)
        let imageSize = try vision.squareSize("image_size") ?? 224
        let patchSize = try vision.squareSize("patch_size") ?? 32
        let channels = try vision.int("num_channels", default: 3)
        let eps = try vision.double("layer_norm_eps") ?? 1e-5
        let act = try vision.string("hidden_act") ?? "quick_gelu"
        guard channels == 3 else {
            throw ModelLoadError.unsupportedFeature(file: file, feature: "num_channels = \(channels)")
        }
        let activation: Activation
        switch act {
        case "quick_gelu": activation = .quickGELU
        case "gelu": activation = .gelu
        default: throw ModelLoadError.unsupportedFeature(file: file, feature: "hidden_act = \(act)")
        }
        guard width > 0, mlpWidth > 0, heads > 0, layers > 0, imageSize > 0, patchSize > 0, projectionDim > 0 else {
            throw config.error("vision_config", "has a non-positive size")
        }
        guard width % heads == 0 else {
            throw vision.error("num_attention_heads", "\(heads) does not divide hidden_size \(width)")
        }
        guard imageSize % patchSize == 0 else {
            throw ModelLoadError.unsupportedFeature(
                file: file, feature: "image_size \(imageSize) not divisible by patch_size \(patchSize)")
        }
        return VisionTowerSpec(
            imageSize: imageSize, patchSize: patchSize, width: width, layers: layers, headWidth: width / heads,
            mlpWidth: mlpWidth, embedDim: projectionDim, activation: activation, layerNormEpsilon: Float(eps))
    }

    /// `CLIPImageProcessor` settings as a `PreprocessConfig` with the transformers pipeline.
    static func huggingFacePreprocess(_ processor: ConfigObject, spec: VisionTowerSpec) throws -> PreprocessConfig {
        let file = processor.file
        var config = PreprocessConfig(size: spec.imageSize, pipeline: .huggingFace)
        if let resample = try processor.int("resample"), resample != 3 {
            throw ModelLoadError.unsupportedFeature(
                file: file, feature: "resample = \(resample) (only 3, bicubic, is implemented)")
        }
        if try processor.bool("do_resize") == false {
            throw ModelLoadError.unsupportedFeature(file: file, feature: "do_resize = false")
        }
        if try processor.bool("do_center_crop") == false {
            throw ModelLoadError.unsupportedFeature(file: file, feature: "do_center_crop = false")
        }
        let shortest: Int
        if let size = try processor.object("size") {
            guard let edge = try size.int("shortest_edge") else {
                throw ModelLoadError.unsupportedFeature(file: file, feature: "size without shortest_edge (\(size.values))")
            }
            shortest = edge
        } else {
            shortest = try processor.int("size") ?? 224
        }
        let crop: Int
        if let cropSize = try processor.object("crop_size") {
            let height = try cropSize.int("height"), width = try cropSize.int("width")
            guard let height, height == width else {
                throw ModelLoadError.unsupportedFeature(file: file, feature: "non-square crop_size \(cropSize.values)")
            }
            crop = height
        } else {
            crop = try processor.int("crop_size") ?? 224
        }
        guard crop == spec.imageSize else {
            throw processor.error("crop_size", "\(crop) differs from the tower's image_size \(spec.imageSize)")
        }
        guard shortest == crop else {
            throw ModelLoadError.unsupportedFeature(
                file: file, feature: "size.shortest_edge \(shortest) different from crop_size \(crop)")
        }
        if let factor = try processor.double("rescale_factor"), abs(factor - 1.0 / 255.0) > 1e-9 {
            throw ModelLoadError.unsupportedFeature(file: file, feature: "rescale_factor = \(factor) (only 1/255)")
        }
        if try processor.bool("do_rescale") == false {
            throw ModelLoadError.unsupportedFeature(file: file, feature: "do_rescale = false")
        }
        if try processor.bool("do_normalize") == false {
            config.mean = [0, 0, 0]
            config.std = [1, 1, 1]
        } else {
            if let mean = try processor.floats("image_mean", count: 3) { config.mean = mean }
            if let std = try processor.floats("image_std", count: 3) {
                guard std.allSatisfy({ $0 > 0 }) else { throw processor.error("image_std", "has a non-positive value") }
                config.std = std
            }
        }
        return config
    }

    /// transformers' `vision_model.*` and `visual_projection.weight` mapped to open_clip's orientation:
    /// q/k/v stacked into one [3W, W] matrix and the projection transposed to [W, E] (copies in the checkpoint
    /// dtype; every other tensor is a zero-copy view).
    static func huggingFaceWeights(_ file: SafeTensorsFile, spec: VisionTowerSpec) throws -> VisionWeights {
        let anchor = "vision_model.embeddings.class_embedding"
        guard let anchorName = file.names.first(where: { $0 == anchor || $0.hasSuffix("." + anchor) }) else {
            throw ModelLoadError.missingTensor(file: file.path, tensor: anchor, expectedShape: [spec.width])
        }
        let outer = String(anchorName.dropLast(anchor.count))
        let root = WeightReader(file: file, prefix: outer)
        let model = root.scoped("vision_model")
        let w = spec.width, m = spec.mlpWidth, p = spec.patchSize

        var blocks: [VisionBlockWeights] = []
        for i in 0..<spec.layers {
            let layer = model.scoped("encoder.layers.\(i)")
            let attn = layer.scoped("self_attn")
            let qkvWeight = try TensorData.concatenated(
                [attn("q_proj.weight", [w, w]), attn("k_proj.weight", [w, w]), attn("v_proj.weight", [w, w])],
                name: attn.prefix + "{q,k,v}_proj.weight", file: file.path)
            let qkvBias = try TensorData.concatenated(
                [attn("q_proj.bias", [w]), attn("k_proj.bias", [w]), attn("v_proj.bias", [w])],
                name: attn.prefix + "{q,k,v}_proj.bias", file: file.path)
            blocks.append(try VisionBlockWeights(
                ln1Weight: layer("layer_norm1.weight", [w]), ln1Bias: layer("layer_norm1.bias", [w]),
                qkvWeight: qkvWeight, qkvBias: qkvBias,
                outWeight: attn("out_proj.weight", [w, w]), outBias: attn("out_proj.bias", [w]),
                ln2Weight: layer("layer_norm2.weight", [w]), ln2Bias: layer("layer_norm2.bias", [w]),
                fc1Weight: layer("mlp.fc1.weight", [m, w]), fc1Bias: layer("mlp.fc1.bias", [m]),
                fc2Weight: layer("mlp.fc2.weight", [w, m]), fc2Bias: layer("mlp.fc2.bias", [w])))
        }
        let extra = model.prefix + "encoder.layers.\(spec.layers).layer_norm1.weight"
        if file.contains(extra) {
            throw ModelLoadError.unexpectedTensor(
                file: file.path, tensor: extra, detail: "the config says \(spec.layers) layers")
        }
        let embeddings = model.scoped("embeddings")
        return try VisionWeights(
            patchEmbedding: embeddings("patch_embedding.weight", [w, 3, p, p]).reshaped([w, spec.patchDim]),
            classEmbedding: embeddings("class_embedding", [w]),
            positionalEmbedding: embeddings("position_embedding.weight", [spec.tokens, w]),
            lnPreWeight: model("pre_layrnorm.weight", [w]), lnPreBias: model("pre_layrnorm.bias", [w]),
            blocks: blocks,
            lnPostWeight: model("post_layernorm.weight", [w]), lnPostBias: model("post_layernorm.bias", [w]),
            projection: root("visual_projection.weight", [spec.embedDim, w]).transposed())
    }
}
