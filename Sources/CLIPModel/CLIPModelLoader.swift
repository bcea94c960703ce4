import Foundation
import InferenceCore

/// Turns a model reference into a `LoadedModel`.
///
/// References: `random:NAME` (synthetic weights for an open_clip architecture, see `CLIPArchitectures.names`),
/// or a directory (optionally written `local-dir:PATH`) in open_clip hub layout (`open_clip_config.json`) or
/// Hugging Face transformers CLIP layout (`config.json`).
public enum CLIPModelLoader {
    /// Prefix of synthetic references.
    public static let randomPrefix = "random:"

    /// Loads and validates `reference`; throws `ModelLoadError` naming the file, tensor or setting at fault.
    public static func load(_ reference: String) throws -> LoadedModel {
        if reference.hasPrefix(randomPrefix) {
            return try loadSynthetic(name: String(reference.dropFirst(randomPrefix.count)), reference: reference)
        }
        if reference.hasPrefix("hf-hub:") {
            throw ModelLoadError.notFound(
                reference: reference,
                detail: "clipserve does not download; fetch the repository and pass its directory")
        }
        var path = reference.hasPrefix("local-dir:") ? String(reference.dropFirst("local-dir:".count)) : reference
        if path.hasPrefix("~/") { path = NSString(string: path).expandingTildeInPath }
        let directory = URL(fileURLWithPath: path).standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) else {
            throw ModelLoadError.notFound(
                reference: reference, detail: "no such directory, and not random:NAME (known: \(CLIPArchitectures.names.joined(separator: ", ")))")
        }
        guard isDirectory.boolValue else {
            throw ModelLoadError.notFound(
                reference: reference, detail: "not a directory; pass the model directory, not a file inside it")
        }
        return try load(directory: directory, reference: reference)
    }

    /// Loads a model directory, choosing the layout from the files present.
    static func load(directory: URL, reference: String) throws -> LoadedModel {
        let files = Set((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
        let openCLIPWeightsPresent = openCLIPWeightNames.contains(where: files.contains)
        if files.contains(openCLIPConfigName), openCLIPWeightsPresent || !files.contains(huggingFaceConfigName) {
            return try loadOpenCLIP(directory: directory, reference: reference, weightsURL: nil)
        }
        if files.contains(huggingFaceConfigName) {
            return try loadHuggingFace(directory: directory, reference: reference)
        }
        throw ModelLoadError.missingFile(directory: directory.path, tried: [openCLIPConfigName, huggingFaceConfigName])
    }

    /// Synthetic weights for architecture `name`, with open_clip's default preprocessing for its size.
    static func loadSynthetic(name: String, reference: String) throws -> LoadedModel {
        guard let spec = CLIPArchitectures.spec(named: name) else {
            throw ModelLoadError.unknownArchitecture(name: name, known: CLIPArchitectures.names)
        }
        let weights = SyntheticWeights.make(spec: spec)
        return LoadedModel(
            name: name, reference: reference, layout: .synthetic, architecture: name, spec: spec,
            preprocess: PreprocessConfig(size: spec.imageSize), weights: weights, isSynthetic: true,
            checkpointDType: .f32, weightBytes: weights.byteCount)
    }
}
