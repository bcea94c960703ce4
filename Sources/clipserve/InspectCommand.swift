import ArgumentParser
import CLIPModel
import Foundation
import InferenceCore

/// `clipserve inspect MODEL`: what a model reference resolves to, without running it.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a model's architecture, weights, cost per image and preprocessing.",
        discussion: """
            MODEL is a directory in open_clip hub layout (open_clip_config.json + open_clip_model.safetensors), \
            a Hugging Face transformers CLIP directory (config.json + model.safetensors + preprocessor_config.json), \
            or random:NAME for deterministic random weights of an open_clip architecture: \
            \(CLIPArchitectures.names.joined(separator: ", ")).
            """
    )

    @Argument(help: "Model directory or random:NAME.")
    var model: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        let report = try InspectReport(reference: model)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text)
        }
    }
}

/// Everything `inspect` prints, also its JSON form.
struct InspectReport: Codable {
    var name: String
    var reference: String
    var layout: String
    var synthetic: Bool
    var architecture: String?
    var spec: VisionTowerSpec
    var heads: Int
    var tokens: Int
    var gridSize: Int
    var parameters: Int
    var weightBytes: Int
    var weightDType: String
    var gflopsPerImage: Double
    var flopsPerImage: Double
    var preprocess: PreprocessConfig

    /// Loads the reference; `random:` towers are described from their spec without generating weights.
    init(reference: String) throws {
        if reference.hasPrefix(CLIPModelLoader.randomPrefix) {
            let name = String(reference.dropFirst(CLIPModelLoader.randomPrefix.count))
            guard let spec = CLIPArchitectures.spec(named: name) else {
                throw ModelLoadError.unknownArchitecture(name: name, known: CLIPArchitectures.names)
            }
            self.init(
                name: name, reference: reference, layout: .synthetic, synthetic: true, architecture: name, spec: spec,
                weightBytes: spec.parameterCount * DType.f32.byteSize, dtype: .f32,
                preprocess: PreprocessConfig(size: spec.imageSize))
        } else {
            let model = try CLIPModelLoader.load(reference)
            self.init(
                name: model.name, reference: reference, layout: model.layout, synthetic: model.isSynthetic,
                architecture: model.architecture, spec: model.spec, weightBytes: model.weightBytes,
                dtype: model.checkpointDType, preprocess: model.preprocess)
        }
    }

    private init(
        name: String, reference: String, layout: CheckpointLayout, synthetic: Bool, architecture: String?,
        spec: VisionTowerSpec, weightBytes: Int, dtype: DType, preprocess: PreprocessConfig
    ) {
        self.name = name
        self.reference = reference
        self.layout = layout.rawValue
        self.synthetic = synthetic
        self.architecture = architecture
        self.spec = spec
        heads = spec.heads
        tokens = spec.tokens
        gridSize = spec.gridSize
        parameters = spec.parameterCount
        self.weightBytes = weightBytes
        weightDType = dtype.rawValue
        gflopsPerImage = (spec.flopsPerImage / 1e7).rounded() / 100
        flopsPerImage = spec.flopsPerImage
        self.preprocess = preprocess
    }

    var text: String {
        func list(_ values: [Float]) -> String { "[" + values.map { "\($0)" }.joined(separator: ", ") + "]" }
        let s = spec, p = preprocess
        var lines = [
            "model:         \(name)",
            "reference:     \(reference)",
            "layout:        \(layout)" + (synthetic ? " (SYNTHETIC random weights: embeddings are meaningless)" : ""),
            "architecture:  \(architecture ?? "custom ViT (no open_clip config has this tower)")",
            "input:         \(s.imageSize)x\(s.imageSize) px, patch \(s.patchSize), grid \(gridSize)x\(gridSize), \(tokens) tokens",
            "transformer:   width \(s.width), \(s.layers) layers, \(heads) heads of \(s.headWidth), mlp \(s.mlpWidth), "
                + "\(s.activation.rawValue), LayerNorm eps \(s.layerNormEpsilon)",
            "embedding:     \(s.embedDim)",
            "parameters:    \(String(format: "%.2f", Double(parameters) / 1e6)) M (\(parameters))",
            "weights:       \(String(format: "%.1f", Double(weightBytes) / 1_048_576)) MiB, \(weightDType)",
            "compute:       \(String(format: "%.2f", gflopsPerImage)) GFLOPs per image (\(Int(flopsPerImage)) FLOPs)",
            "preprocess:    \(p.pipeline.rawValue) pipeline, resize \(p.resizeMode.rawValue) to \(p.size), \(p.interpolation), "
                + "fill \(p.fillColor)",
            "               mean \(list(p.mean)), std \(list(p.std))",
        ]
        if synthetic, layout == CheckpointLayout.synthetic.rawValue {
            lines.append("note:          random:NAME weights are generated at load time (seed \(SyntheticWeights.defaultSeed))")
        }
        return lines.joined(separator: "\n")
    }
}
