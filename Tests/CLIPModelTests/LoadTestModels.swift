import Foundation
import InferenceCore
import SafeTensors
import Testing

@testable import CLIPModel

/// A temporary directory removed when the value goes away.
final class TemporaryDirectory {
    let url: URL
    init(name: String = "model") throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("clipmodel-\(UUID().uuidString)").appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> URL { url.appendingPathComponent(name) }
    func writeJSON(_ object: Any, to name: String) throws {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: file(name))
    }
    deinit { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
}

/// Small towers and checkpoints written with `SafeTensorsWriter`, values a pure function of the tensor name.
enum TinyModels {
    /// 32 px, patch 8 (17 tokens), width 64, 2 blocks, 2 heads, mlp 256, embed 16, exact GELU.
    static let spec = VisionTowerSpec(
        imageSize: 32, patchSize: 8, width: 64, layers: 2, headWidth: 32, mlpWidth: 256, embedDim: 16)

    /// Deterministic values for tensor `name` (a stable string hash offsets a sine).
    static func values(_ name: String, count: Int) -> [Float] {
        var hash: UInt32 = 5381
        for byte in name.utf8 { hash = hash &* 33 &+ UInt32(byte) }
        let phase = Float(hash % 10_000) * 0.001
        return (0..<count).map { sin(Float($0) * 0.37 + phase) * 0.1 }
    }

    /// open_clip visual tensor names and shapes for `spec` (without the `visual.` prefix).
    static func openCLIPVisual(_ spec: VisionTowerSpec) -> [(String, [Int])] {
        let w = spec.width, m = spec.mlpWidth, p = spec.patchSize
        var list: [(String, [Int])] = [
            ("conv1.weight", [w, 3, p, p]), ("class_embedding", [w]), ("positional_embedding", [spec.tokens, w]),
            ("ln_pre.weight", [w]), ("ln_pre.bias", [w]),
        ]
        for i in 0..<spec.layers {
            let b = "transformer.resblocks.\(i)."
            list += [
                (b + "ln_1.weight", [w]), (b + "ln_1.bias", [w]), (b + "attn.in_proj_weight", [3 * w, w]),
                (b + "attn.in_proj_bias", [3 * w]), (b + "attn.out_proj.weight", [w, w]), (b + "attn.out_proj.bias", [w]),
                (b + "ln_2.weight", [w]), (b + "ln_2.bias", [w]), (b + "mlp.c_fc.weight", [m, w]),
                (b + "mlp.c_fc.bias", [m]), (b + "mlp.c_proj.weight", [w, m]), (b + "mlp.c_proj.bias", [w]),
            ]
        }
        list += [("ln_post.weight", [w]), ("ln_post.bias", [w]), ("proj", [w, spec.embedDim])]
        return list
    }

    /// transformers vision tensor names and shapes for `spec` (full names, without any outer prefix).
    static func huggingFaceVisual(_ spec: VisionTowerSpec) -> [(String, [Int])] {
        let w = spec.width, m = spec.mlpWidth, p = spec.patchSize
        let v = "vision_model."
        var list: [(String, [Int])] = [
            (v + "embeddings.patch_embedding.weight", [w, 3, p, p]), (v + "embeddings.class_embedding", [w]),
            (v + "embeddings.position_embedding.weight", [spec.tokens, w]),
            (v + "pre_layrnorm.weight", [w]), (v + "pre_layrnorm.bias", [w]),
        ]
        for i in 0..<spec.layers {
            let b = v + "encoder.layers.\(i)."
            list += [
                (b + "layer_norm1.weight", [w]), (b + "layer_norm1.bias", [w]),
                (b + "self_attn.q_proj.weight", [w, w]), (b + "self_attn.q_proj.bias", [w]),
                (b + "self_attn.k_proj.weight", [w, w]), (b + "self_attn.k_proj.bias", [w]),
                (b + "self_attn.v_proj.weight", [w, w]), (b + "self_attn.v_proj.bias", [w]),
                (b + "self_attn.out_proj.weight", [w, w]), (b + "self_attn.out_proj.bias", [w]),
                (b + "layer_norm2.weight", [w]), (b + "layer_norm2.bias", [w]),
                (b + "mlp.fc1.weight", [m, w]), (b + "mlp.fc1.bias", [m]),
                (b + "mlp.fc2.weight", [w, m]), (b + "mlp.fc2.bias", [w]),
            ]
        }
        list += [(v + "post_layernorm.weight", [w]), (v + "post_layernorm.bias", [w]),
                 ("visual_projection.weight", [spec.embedDim, w])]
        return list
    }

    /// The open_clip model config dict for `spec` (vision + a tiny text tower).
    static func openCLIPModelConfig(_ spec: VisionTowerSpec) -> [String: Any] {
        [
            "embed_dim": spec.embedDim,
            "quick_gelu": spec.activation == .quickGELU,
            "vision_cfg": [
                "image_size": spec.imageSize, "patch_size": spec.patchSize, "width": spec.width,
                "layers": spec.layers, "head_width": spec.headWidth,
                "mlp_ratio": Double(spec.mlpWidth) / Double(spec.width),
            ] as [String: Any],
            "text_cfg": ["context_length": 8, "vocab_size": 32, "width": 16, "heads": 2, "layers": 1] as [String: Any],
        ]
    }

    /// Writes an open_clip hub directory.
    /// - Parameters:
    ///   - omit: full tensor names left out; `shapes`: full names written with another shape;
    ///   - extra: more tensors (full name, dtype name, shape).
    static func writeOpenCLIP(
        _ dir: TemporaryDirectory, spec: VisionTowerSpec = spec, config: [String: Any]? = nil,
        preprocess: [String: Any]? = ["mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "resize_mode": "squash"],
        dtype: DType = .f32, omit: Set<String> = [], shapes: [String: [Int]] = [:],
        extra: [(String, String, [Int])] = [], weightsName: String = "open_clip_model.safetensors"
    ) throws {
        var wrapped: [String: Any] = ["model_cfg": config ?? openCLIPModelConfig(spec)]
        if let preprocess { wrapped["preprocess_cfg"] = preprocess }
        try dir.writeJSON(wrapped, to: "open_clip_config.json")
        var writer = SafeTensorsWriter()
        for (name, shape) in openCLIPVisual(spec).map({ ("visual." + $0.0, $0.1) }) where !omit.contains(name) {
            let shape = shapes[name] ?? shape
            writer.add(name, shape: shape, values: values(name, count: shape.reduce(1, *)), dtype: dtype)
        }
        // A text tower the loader must never touch: an unsupported dtype would fail if it were read.
        writer.add("token_embedding.weight", dtypeName: "I64", shape: [32, 16], bytes: [UInt8](repeating: 0, count: 32 * 16 * 8))
        writer.add("text_projection", shape: [16, spec.embedDim], values: values("text_projection", count: 16 * spec.embedDim))
        writer.add("logit_scale", shape: [], values: [4.6052])
        for (name, dtypeName, shape) in extra {
            let size = ["I64": 8, "F64": 8, "I32": 4].merging(Dictionary(uniqueKeysWithValues: DType.allCases.map { ($0.rawValue, $0.byteSize) })) { $1 }[dtypeName] ?? 1
            writer.add(name, dtypeName: dtypeName, shape: shape, bytes: [UInt8](repeating: 0, count: shape.reduce(1, *) * size))
        }
        try writer.write(to: dir.file(weightsName))
    }

    /// A transformers `CLIPModel` config.json dict for `spec`.
    static func huggingFaceConfig(_ spec: VisionTowerSpec, act: String = "gelu") -> [String: Any] {
        [
            "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": spec.embedDim,
            "vision_config": huggingFaceVisionConfig(spec, act: act),
            "text_config": ["hidden_size": 16, "num_hidden_layers": 1] as [String: Any],
        ]
    }

    static func huggingFaceVisionConfig(_ spec: VisionTowerSpec, act: String = "gelu") -> [String: Any] {
        [
            "hidden_size": spec.width, "intermediate_size": spec.mlpWidth, "num_attention_heads": spec.heads,
            "num_hidden_layers": spec.layers, "image_size": spec.imageSize, "patch_size": spec.patchSize,
            "hidden_act": act, "layer_norm_eps": 1e-5, "model_type": "clip_vision_model",
        ]
    }

    static var huggingFacePreprocessor: [String: Any] { [
        "crop_size": ["height": 32, "width": 32], "do_center_crop": true, "do_convert_rgb": true,
        "do_normalize": true, "do_rescale": true, "do_resize": true,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "CLIPImageProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
        "size": ["shortest_edge": 32],
    ] }

    /// Writes a transformers CLIP directory; `prefix` goes before every tensor name.
    static func writeHuggingFace(
        _ dir: TemporaryDirectory, spec: VisionTowerSpec = spec, config: [String: Any]? = nil,
        preprocessor: [String: Any]? = huggingFacePreprocessor, dtype: DType = .f32, prefix: String = "",
        omit: Set<String> = [], shapes: [String: [Int]] = [:]
    ) throws {
        try dir.writeJSON(config ?? huggingFaceConfig(spec), to: "config.json")
        if let preprocessor { try dir.writeJSON(preprocessor, to: "preprocessor_config.json") }
        var writer = SafeTensorsWriter()
        for (name, shape) in huggingFaceVisual(spec) where !omit.contains(name) {
            let shape = shapes[name] ?? shape
            writer.add(prefix + name, shape: shape, values: values(name, count: shape.reduce(1, *)), dtype: dtype)
        }
        writer.add(prefix + "text_model.embeddings.token_embedding.weight", dtypeName: "I64", shape: [4, 4],
                   bytes: [UInt8](repeating: 0, count: 128))
        try writer.write(to: dir.file("model.safetensors"))
    }
}

/// The `ModelLoadError` thrown by `body`, or nil (recording an issue) when it throws nothing or something else.
func loadError(_ body: () throws -> LoadedModel, sourceLocation: SourceLocation = #_sourceLocation) -> ModelLoadError? {
    do {
        let model = try body()
        Issue.record("loaded \(model.name) without error", sourceLocation: sourceLocation)
    } catch let error as ModelLoadError {
        return error
    } catch {
        Issue.record("unexpected error type: \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Values rounded through `dtype`, as a checkpoint of that dtype stores them.
func rounded(_ values: [Float], _ dtype: DType) -> [Float] {
    values.map(dtype.rounded)
}
