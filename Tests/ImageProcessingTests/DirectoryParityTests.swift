import Foundation
import ImageProcessing
import InferenceCore
import Testing

/// Parity against PIL output generated outside the repository: set `IMAGE_PARITY_DIR` to a folder with
/// `manifest.json` (`images`, `configs`), `images/<file>` and `ref/<file>.<config>.u8` / `.f32`.
@Suite("Ad hoc PIL parity (IMAGE_PARITY_DIR)")
struct DirectoryParityTests {
    static let directory = ProcessInfo.processInfo.environment["IMAGE_PARITY_DIR"].map { URL(fileURLWithPath: $0) }

    @Test(.enabled(if: directory != nil))
    func everyImageEveryConfig() throws {
        let dir = try #require(Self.directory)
        let manifest = try #require(
            JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("manifest.json"))) as? [String: Any])
        let images = try #require(manifest["images"] as? [String: Any])
        let configs = try #require(manifest["configs"] as? [String: [String: Any]])
        var report: [String] = []
        for file in images.keys.sorted() {
            let bytes = try [UInt8](Data(contentsOf: dir.appendingPathComponent("images/\(file)")))
            for (name, cfg) in configs.sorted(by: { $0.key < $1.key }) {
                let config = PreprocessConfig(
                    size: cfg["image_size"] as? Int ?? 224,
                    resizeMode: ResizeMode(rawValue: cfg["resize_mode"] as? String ?? "shortest") ?? .shortest,
                    fillColor: cfg["fill_color"] as? Int ?? 0,
                    pipeline: (cfg["pipeline"] as? String) == "transformers" ? .huggingFace : .openCLIP)
                let pre = ImagePreprocessor(config: config)
                if FileManager.default.fileExists(atPath: dir.appendingPathComponent("ref/\(file).\(name).err").path) {
                    #expect(throws: ImageError.self, "\(file) \(name): PIL refused it") { try pre.unnormalizedPixels(bytes) }
                    report.append("\(file) \(name): refused like PIL")
                    continue
                }
                let expected = try [UInt8](Data(contentsOf: dir.appendingPathComponent("ref/\(file).\(name).u8")))
                let got: [UInt8]
                do { got = try pre.unnormalizedPixels(bytes) } catch {
                    report.append("\(file) \(name): error \(error)")
                    Issue.record("\(file) \(name): \(error)")
                    continue
                }
                #expect(got.count == expected.count, "\(file) \(name)")
                guard got.count == expected.count else { continue }
                var maxDiff = 0, mismatches = 0, first = -1
                for i in got.indices where got[i] != expected[i] {
                    maxDiff = max(maxDiff, abs(Int(got[i]) - Int(expected[i])))
                    mismatches += 1
                    if first < 0 { first = i }
                }
                let floats = try Data(contentsOf: dir.appendingPathComponent("ref/\(file).\(name).f32"))
                    .withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                let normalised = try pre.process(bytes)
                var maxFloat: Float = 0
                for i in normalised.indices { maxFloat = max(maxFloat, abs(normalised[i] - floats[i])) }
                let detail = first >= 0 ? " first at \(first): got \(got[first]) expected \(expected[first])" : ""
                report.append("\(file) \(name): max|d|=\(maxDiff) mismatches=\(mismatches)/\(got.count) maxFloat=\(maxFloat)\(detail)")
                #expect(maxDiff == 0, "\(file) \(name): max \(maxDiff), \(mismatches) mismatches\(detail)")
                #expect(maxFloat <= 1e-5, "\(file) \(name): normalised max \(maxFloat)")
            }
        }
        print(report.joined(separator: "\n"))
    }
}
