import Foundation
import ImageProcessing
import InferenceCore
import TestSupport
import Testing

/// Every `ImageError` path, with inputs built from the fixtures or by hand.
@Suite("Image errors")
struct ErrorTests {
    let preprocessor = ImagePreprocessor(config: PreprocessConfig())

    func fixture(_ name: String) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: Fixtures.root.appendingPathComponent("images/\(name)")))
    }

    /// A PNG signature plus an IHDR chunk with a correct CRC, and nothing else.
    func pngHeader(width: UInt32, height: UInt32, bitDepth: UInt8 = 8, colorType: UInt8 = 2) -> [UInt8] {
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        let body = Array("IHDR".utf8) + be(width) + be(height) + [bitDepth, colorType, 0, 0, 0]
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in body {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + be(13) + body + be(~crc)
    }

    @Test func emptyInput() {
        #expect(throws: ImageError.empty) { try preprocessor.process([]) }
        #expect(ImageError.empty.description.contains("empty"))
    }

    @Test func unknownFormat() {
        let bytes = Array("GIF89a not supported".utf8)
        #expect(throws: ImageError.unknownFormat(prefix: Array(bytes.prefix(8)))) { try preprocessor.process(bytes) }
        #expect(ImageError.unknownFormat(prefix: [0x47, 0x49]).description.contains("47 49"))
        #expect(ImageFormat.sniff(UnsafeRawBufferPointer(start: nil, count: 0)) == nil)
    }

    @Test("truncated files are refused, as Pillow does without LOAD_TRUNCATED_IMAGES",
        arguments: ["rgb_baseline.jpg", "rgb_progressive.jpg", "gray.jpg", "cmyk.jpg", "rgba.png", "palette.png",
                    "gray16.png", "lossy.webp", "lossless.webp"])
    func truncated(_ name: String) throws {
        let bytes = try fixture(name)
        let cut = Array(bytes.prefix(bytes.count * 2 / 3))
        do {
            _ = try preprocessor.process(cut)
            Issue.record("\(name) cut to \(cut.count) of \(bytes.count) bytes was accepted")
        } catch {
            guard case .truncated = error else {
                Issue.record("\(name): expected .truncated, got \(error)")
                return
            }
            #expect(error.description.contains("truncated"))
        }
    }

    @Test func truncatedInsideHeaders() throws {
        for name in ["rgb_baseline.jpg", "rgba.png", "lossy.webp"] {
            let bytes = try fixture(name)
            #expect(throws: ImageError.self, "\(name) cut to 20 bytes") { try preprocessor.process(Array(bytes.prefix(20))) }
        }
    }

    @Test func corruptData() throws {
        // JPEG: a frame header declaring 7-bit samples, which libjpeg rejects.
        var jpeg = try fixture("rgb_baseline.jpg")
        let sof = try #require((2..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        jpeg[sof + 4] = 7
        #expect {
            try preprocessor.process(jpeg)
        } throws: { error in
            guard let error = error as? ImageError, case .corrupt(.jpeg, _) = error else { return false }
            return true
        }
        // PNG: flip a bit of IHDR's CRC.
        var png = try fixture("rgba.png")
        png[29] ^= 0x40
        #expect {
            try preprocessor.process(png)
        } throws: { error in
            guard let error = error as? ImageError, case .corrupt(.png, let detail) = error else { return false }
            return !detail.isEmpty
        }
        // WebP: a RIFF container with a broken VP8 chunk (full length, so not truncated).
        var webp = try fixture("lossy.webp")
        for i in 20..<min(60, webp.count) { webp[i] = 0xAA }
        #expect {
            try preprocessor.process(webp)
        } throws: { error in
            guard let error = error as? ImageError, case .corrupt(.webp, _) = error else { return false }
            return true
        }
    }

    @Test func zeroSize() {
        #expect(throws: ImageError.zeroSize(format: .png, width: 0, height: 10)) {
            try preprocessor.process(pngHeader(width: 0, height: 10))
        }
        #expect(ImageError.zeroSize(format: .png, width: 0, height: 10).description.contains("0x10"))
    }

    @Test("too large is refused from the header, before allocating")
    func tooLarge() throws {
        // 100000 x 100000 RGB would need 30 GB; the header alone is enough to refuse it.
        #expect(throws: ImageError.tooLarge(format: .png, width: 100_000, height: 100_000, limit: 89_478_485)) {
            try preprocessor.process(pngHeader(width: 100_000, height: 100_000))
        }
        let small = ImagePreprocessor(config: PreprocessConfig(), maxPixels: 1000)
        for name in ["rgb_baseline.jpg", "rgba.png", "lossy.webp"] {
            #expect {
                try small.process(try fixture(name))
            } throws: { error in
                guard let error = error as? ImageError, case .tooLarge(_, _, _, let limit) = error else { return false }
                return limit == 1000 && error.description.contains("limit of 1000")
            }
        }
    }

    @Test func unsupportedAnimatedWebP() {
        // A minimal extended-format header announcing animation (VP8X flags bit 1).
        var bytes = Array("RIFF".utf8) + [30, 0, 0, 0] + Array("WEBPVP8X".utf8) + [10, 0, 0, 0]
        bytes += [0x02, 0, 0, 0, 9, 0, 0, 9, 0, 0]
        bytes += Array("ANIM".utf8) + [6, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        #expect {
            try preprocessor.process(bytes)
        } throws: { error in
            guard let error = error as? ImageError else { return false }
            switch error {
            case .unsupported(.webp, _), .corrupt(.webp, _), .truncated(.webp, _): return true
            default: return false
            }
        }
    }

    @Test func degenerateResize() throws {
        // A 517x93 image fitted with `longest` into 2 pixels would be 0 pixels tall: Pillow raises, so do we.
        let tiny = ImagePreprocessor(config: PreprocessConfig(size: 2, resizeMode: .longest))
        #expect {
            try tiny.process(try fixture("wide.png"))
        } throws: { error in
            guard let error = error as? ImageError, case .degenerateResize = error else { return false }
            return true
        }
    }

    @Test func outputBufferSize() throws {
        let bytes = try fixture("tiny.png")
        var output = [Float](repeating: 0, count: 10)
        #expect(throws: ImageError.outputSize(expected: 3 * 224 * 224, got: 10)) {
            try bytes.withUnsafeBytes { raw in
                try output.withUnsafeMutableBufferPointer { try preprocessor.process(raw, into: $0) }
            }
        }
    }

    @Test func invalidConfigs() throws {
        let bytes = try fixture("tiny.png")
        let bad = [
            PreprocessConfig(size: 0), PreprocessConfig(mean: [0.5]), PreprocessConfig(std: [1, 0, 1]),
            PreprocessConfig(interpolation: "bilinear"),
        ]
        for config in bad {
            #expect {
                try ImagePreprocessor(config: config).process(bytes)
            } throws: { error in
                guard let error = error as? ImageError, case .invalidConfig = error else { return false }
                return error.description.contains("invalid preprocessing configuration")
            }
        }
    }
}
