import Foundation
import SafeTensors
import InferenceCore
import TestSupport

/// The parts of `Tests/Fixtures/manifest.json` the preprocessing tests read.
struct FixtureManifest {
    struct Image {
        let stem: String
        let file: String
        let pilMode: String
        let width: Int
        let height: Int
    }

    struct Model {
        let name: String
        let config: PreprocessConfig
        /// Per image stem: the geometry open_clip / transformers used.
        let geometry: [String: [String: Any]]
    }

    let images: [Image]
    let models: [Model]

    static func load() throws -> FixtureManifest {
        let url = Fixtures.root.appendingPathComponent("manifest.json")
        guard let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any],
            let images = root["images"] as? [[String: Any]], let models = root["models"] as? [String: [String: Any]]
        else { throw FixtureError("manifest.json has no images list or models table") }
        return FixtureManifest(
            images: images.map {
                Image(
                    stem: $0["stem"] as? String ?? "", file: $0["file"] as? String ?? "",
                    pilMode: $0["pil_mode"] as? String ?? "", width: $0["width"] as? Int ?? 0,
                    height: $0["height"] as? Int ?? 0)
            },
            models: try models.keys.sorted().map { name in
                let model = models[name] ?? [:]
                guard let p = model["preprocess"] as? [String: Any] else {
                    throw FixtureError("model \(name) has no preprocess table")
                }
                let config = PreprocessConfig(
                    size: p["size"] as? Int ?? 224,
                    mean: (p["mean"] as? [Double] ?? []).map(Float.init),
                    std: (p["std"] as? [Double] ?? []).map(Float.init),
                    interpolation: p["interpolation"] as? String ?? "bicubic",
                    resizeMode: ResizeMode(rawValue: p["resize_mode"] as? String ?? "") ?? .shortest,
                    fillColor: p["fill_color"] as? Int ?? 0,
                    pipeline: PreprocessPipeline(rawValue: p["pipeline"] as? String ?? "") ?? .openCLIP)
                return Model(name: name, config: config, geometry: model["geometry"] as? [String: [String: Any]] ?? [:])
            })
    }

    func bytes(of image: Image) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: Fixtures.root.appendingPathComponent(image.file)))
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The expected outputs of one fixture model, read through the project's own safetensors reader.
struct ExpectedTensors {
    private let file: SafeTensorsFile

    init(contentsOf url: URL) throws {
        file = try SafeTensorsFile(url: url)
    }

    func shape(_ name: String) -> [Int]? { file.info(name)?.shape }

    func floats(_ name: String) throws -> [Float] {
        try file.tensor(name).floats()
    }
}
