import Foundation
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

/// F32 tensors of a safetensors file (header JSON, then little-endian data); enough for the expected outputs.
struct ExpectedTensors {
    private let data: Data
    private let entries: [String: (shape: [Int], range: Range<Int>)]

    init(contentsOf url: URL) throws {
        data = try Data(contentsOf: url)
        guard data.count >= 8 else { throw FixtureError("\(url.lastPathComponent): shorter than 8 bytes") }
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard 8 + headerLength <= data.count,
            let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as? [String: Any]
        else { throw FixtureError("\(url.lastPathComponent): bad header") }
        var entries: [String: (shape: [Int], range: Range<Int>)] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], info["dtype"] as? String == "F32",
                let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { continue }
            entries[name] = (shape, (8 + headerLength + offsets[0])..<(8 + headerLength + offsets[1]))
        }
        self.entries = entries
    }

    func shape(_ name: String) -> [Int]? { entries[name]?.shape }

    func floats(_ name: String) throws -> [Float] {
        guard let entry = entries[name] else { throw FixtureError("no F32 tensor \(name)") }
        return data.subdata(in: entry.range).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}
