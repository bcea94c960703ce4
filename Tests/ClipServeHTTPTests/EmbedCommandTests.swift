import Foundation
import TestSupport
import Testing

/// `clipserve embed` as a user runs it: the built binary, the tiny fixture model, good and bad files.
@Suite("clipserve embed", .enabled(if: builtClipserve != nil, "the clipserve executable is not built"))
struct EmbedCommandTests {
    func run(_ arguments: [String]) throws -> BinaryRun { try runBuiltClipserve(arguments) }

    let model = Fixtures.root.appendingPathComponent("models/oc-tiny").path
    func image(_ name: String) -> String { Fixtures.root.appendingPathComponent("images/\(name)").path }

    @Test func badFilesAreNamedTheRestAreEmbeddedInOrderAndTheStatusIsOne() throws {
        let tiny = try TinyModel.shared.get()
        let bogus = FileManager.default.temporaryDirectory.appendingPathComponent("clipserve-not-an-image.jpg")
        try Data("not an image".utf8).write(to: bogus)
        defer { try? FileManager.default.removeItem(at: bogus) }
        let files = [image("tall.jpg"), bogus.path, image("rgba.png"), image("lossy.webp")]
        let result = try run(["embed", "--model", model, "--backend", "cpu", "--batch-size", "2"] + files)

        #expect(result.status == 1)
        #expect(result.stderr.contains(bogus.path) && result.stderr.contains("unknown image format"), "\(result.stderr)")
        let lines = String(decoding: result.stdout, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 3)
        for (line, name) in zip(lines, ["tall.jpg", "rgba.png", "lossy.webp"]) {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["file"] as? String == image(name))
            let embedding = try #require(object["embedding"] as? [Double]).map(Float.init)
            #expect(cosine(embedding, tiny.reference(name)) >= 0.99999, "\(name)")
        }
    }

    @Test func npyOutputHoldsTheRawVectorsInInputOrder() throws {
        let tiny = try TinyModel.shared.get()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("clipserve-embed-\(getpid()).npy")
        defer { try? FileManager.default.removeItem(at: out) }
        let names = ["gray.jpg", "palette.png"]
        let result = try run(
            ["embed", "--model", model, "--backend", "cpu", "--no-normalize", "--output", "npy", "-o", out.path]
                + names.map(image))
        #expect(result.status == 0, "\(result.stderr)")
        let data = try Data(contentsOf: out)
        #expect(data.prefix(6) == Data([0x93]) + Data("NUMPY".utf8))
        let headerLength = Int(data[8]) | Int(data[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        let header = String(decoding: data[10..<(10 + headerLength)], as: UTF8.self)
        let dim = tiny.model.spec.embedDim
        #expect(header.contains("'descr': '<f4'") && header.contains("'shape': (2, \(dim))"), "\(header)")
        let values = data[(10 + headerLength)...].withUnsafeBytes { body in
            (0..<body.count / 4).map { body.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        }
        #expect(values.count == 2 * dim)
        for (row, name) in names.enumerated() {
            let raw = Array(values[row * dim..<(row + 1) * dim])
            let norm = raw.reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(abs(norm - 1) > 1e-3, "--no-normalize must return the raw vector")
            #expect(cosine(raw, tiny.reference(name)) >= 0.99999, "\(name)")
        }
    }

    @Test func aMissingModelFailsWithAMessageNamingIt() throws {
        let result = try run(["embed", "--model", "/nonexistent/model", "--backend", "cpu", image("gray.jpg")])
        #expect(result.status != 0)
        #expect(result.stderr.contains("/nonexistent/model"), "\(result.stderr)")
    }
}
