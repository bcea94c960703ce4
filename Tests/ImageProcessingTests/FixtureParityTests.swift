import Foundation
import ImageProcessing
import InferenceCore
import TestSupport
import Testing

/// Strict preprocessing parity with the committed fixtures (open_clip 3.3.0 / transformers' CLIPImageProcessorPil
/// on Pillow 13.0.0): same source mode, same resize and crop/pad geometry, pixels within 1/255 (we expect and
/// report exact equality) and normalised input within 1e-5.
@Suite("Fixture preprocessing parity")
struct FixtureParityTests {
    static var cases: [String] {
        guard let manifest = try? FixtureManifest.load() else { return [] }
        return manifest.models.flatMap { model in manifest.images.map { "\(model.name)/\($0.stem)" } }
    }

    @Test("decoded mode and size match Pillow's open()")
    func decodedModes() throws {
        let manifest = try FixtureManifest.load()
        #expect(manifest.images.count >= 10)
        for image in manifest.images {
            let decoded = try ImageDecoder.decode(try manifest.bytes(of: image))
            #expect(decoded.mode.rawValue == image.pilMode, "\(image.stem)")
            #expect(decoded.width == image.width && decoded.height == image.height, "\(image.stem)")
        }
    }

    @Test("pixels, geometry and normalised input", arguments: cases)
    func parity(_ name: String) throws {
        let manifest = try FixtureManifest.load()
        let parts = name.split(separator: "/").map(String.init)
        let model = try #require(manifest.models.first { $0.name == parts[0] })
        let image = try #require(manifest.images.first { $0.stem == parts[1] })
        let expected = try ExpectedTensors(
            contentsOf: Fixtures.root.appendingPathComponent("expected/\(model.name).safetensors"))
        let size = model.config.size
        #expect(expected.shape("pixels.\(image.stem)") == [3, size, size])

        let preprocessor = ImagePreprocessor(config: model.config)
        let bytes = try manifest.bytes(of: image)

        // Geometry: resize target, then crop offsets or padding.
        let geometry = try #require(model.geometry[image.stem])
        let decoded = try ImageDecoder.decode(bytes)
        let ours = preprocessor.geometry(width: decoded.width, height: decoded.height)
        if let resized = geometry["resized_size"] as? [Int] {
            #expect([ours.resizedWidth, ours.resizedHeight] == resized, "\(name) resized size")
        }
        if let crop = geometry["crop_left_top"] as? [Int] {
            #expect([ours.left, ours.top] == crop, "\(name) crop offsets")
        }
        if let pad = geometry["pad_left_top_right_bottom"] as? [Int] {
            // Padding shows as negative offsets: output (0, 0) lies left/above the resized image.
            #expect(ours.left == -pad[0] && ours.top == -pad[1], "\(name) padding \(pad)")
        }

        // Pixels before Normalize: k/255 in the fixture, k here.
        let pixels = try preprocessor.unnormalizedPixels(bytes)
        let reference = try expected.floats("pixels.\(image.stem)")
        #expect(pixels.count == reference.count)
        var worst = (diff: Float(0), index: -1)
        var mismatches = 0
        for i in pixels.indices {
            let diff = abs(Float(pixels[i]) / 255 - reference[i])
            if diff > 0 { mismatches += 1 }
            if diff > worst.diff { worst = (diff, i) }
        }
        let detail = worst.index < 0 ? "" :
            " worst at \(worst.index): got \(pixels[worst.index]) expected \(reference[worst.index] * 255)"
        #expect(worst.diff <= 1.0 / 255 + 1e-7, "\(name): max |pixel diff| \(worst.diff * 255)/255\(detail)")
        #expect(mismatches == 0, "\(name): \(mismatches) pixel values differ (max \(worst.diff * 255)/255)\(detail)")

        // Normalised model input.
        let input = try preprocessor.process(bytes)
        let referenceInput = try expected.floats("input.\(image.stem)")
        var worstInput: Float = 0
        for i in input.indices { worstInput = max(worstInput, abs(input[i] - referenceInput[i])) }
        #expect(worstInput <= 1e-5, "\(name): max |input diff| \(worstInput)")
        // The bytes the server batches, through the table a GPU normalises them with: the same floats to the bit.
        var fromBytes = [Float](repeating: .nan, count: input.count)
        pixels.withUnsafeBufferPointer { source in
            fromBytes.withUnsafeMutableBufferPointer { out in
                preprocessor.normalization.expand(source, plane: size * size, into: out)
            }
        }
        #expect(fromBytes.map(\.bitPattern) == input.map(\.bitPattern), "\(name): bytes + table differ from process()")
        print("parity \(name): mode \(decoded.mode.rawValue), max pixel diff \(worst.diff * 255)/255, "
            + "\(mismatches) mismatches, max input diff \(worstInput)")
    }
}
