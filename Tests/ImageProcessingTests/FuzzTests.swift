import Foundation
import ImageProcessing
import InferenceCore
import TestSupport
import Testing

/// Hostile input: random truncations and bit flips of every fixture image must either preprocess or throw an
/// `ImageError`; nothing may crash. Deterministic (seeded), so a failure reproduces.
@Suite("Fuzzed images")
struct FuzzTests {
    static var files: [String] {
        let dir = Fixtures.root.appendingPathComponent("images")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
    }

    @Test(arguments: files)
    func mutations(_ name: String) throws {
        let original = try [UInt8](Data(contentsOf: Fixtures.root.appendingPathComponent("images/\(name)")))
        // A small pixel limit keeps flipped size fields from making the test slow.
        let preprocessor = ImagePreprocessor(config: PreprocessConfig(size: 32), maxPixels: 4_000_000)
        var rng = SplitMix64(seed: name.utf8.reduce(UInt64(original.count)) { $0 &* 31 &+ UInt64($1) })
        var accepted = 0, refused = 0
        for round in 0..<120 {
            var bytes = original
            switch round % 3 {
            case 0:
                bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
            case 1:
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    let i = Int.random(in: 0..<bytes.count, using: &rng)
                    bytes[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
                }
            default:
                // Flips concentrated in the first 64 bytes, where the headers and size fields live.
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let i = Int.random(in: 0..<min(64, bytes.count), using: &rng)
                    bytes[i] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            do {
                let output = try preprocessor.process(bytes)
                #expect(output.count == 3 * 32 * 32)
                #expect(output.allSatisfy { $0.isFinite })
                accepted += 1
            } catch {
                #expect(!error.description.isEmpty)
                refused += 1
            }
        }
        #expect(accepted + refused == 120)
    }
}
