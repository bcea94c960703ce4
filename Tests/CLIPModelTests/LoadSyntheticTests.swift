import Foundation
import InferenceCore
import Testing

@testable import CLIPModel

@Suite("random:NAME architectures and synthetic weights")
struct LoadSyntheticTests {
    /// open_clip's docs/model_profile.csv: image_mparams and image_gflops (two decimals).
    static let profile: [(String, Double, Double)] = [
        ("ViT-B-32", 87.85, 8.82), ("ViT-B-32-quickgelu", 87.85, 8.82), ("ViT-B-32-256", 87.86, 11.5),
        ("ViT-B-16", 86.19, 35.13), ("ViT-L-14", 303.97, 162.03), ("ViT-L-14-quickgelu", 303.97, 162.03),
        ("ViT-L-14-336", 304.29, 381.92), ("ViT-H-14", 632.08, 334.59), ("ViT-H-14-quickgelu", 632.08, 334.59),
    ]

    @Test(arguments: profile)
    func parameterCountsAndFLOPsMatchOpenCLIPProfile(_ name: String, _ mparams: Double, _ gflops: Double) throws {
        let spec = try #require(CLIPArchitectures.spec(named: name))
        #expect(abs(Double(spec.parameterCount) / 1e6 - mparams) < 0.005 + 1e-9, "\(name): \(spec.parameterCount)")
        #expect(abs(spec.flopsPerImage / 1e9 - gflops) < 0.005 + 1e-9, "\(name): \(spec.flopsPerImage)")
    }

    @Test func tableHasTheBigTowersWithOpenCLIPsNumbers() throws {
        let h14 = try #require(CLIPArchitectures.spec(named: "ViT-H-14"))
        #expect(h14.headWidth == 80 && h14.heads == 16 && h14.tokens == 257)
        let g14 = try #require(CLIPArchitectures.spec(named: "ViT-g-14"))
        #expect(g14 == VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1408, layers: 40, headWidth: 88, mlpWidth: 6144, embedDim: 1024))
        // open_clip's ViT-bigG-14.json says mlp_ratio 4.9231, so int(1664 * 4.9231) = 8192.
        let bigG = try #require(CLIPArchitectures.spec(named: "ViT-bigG-14"))
        #expect(bigG == VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1664, layers: 48, headWidth: 104, mlpWidth: 8192, embedDim: 1280))
        #expect(CLIPArchitectures.spec(named: "ViT-L-14-336")?.tokens == 577)
        #expect(CLIPArchitectures.spec(named: "ViT-B-32-256")?.tokens == 65)
    }

    @Test func tableIsConsistent() {
        #expect(Set(CLIPArchitectures.names).count == CLIPArchitectures.names.count)
        for (name, spec) in CLIPArchitectures.table {
            #expect(spec.width % spec.headWidth == 0, "\(name)")
            #expect(spec.imageSize % spec.patchSize == 0, "\(name)")
            #expect((spec.activation == .quickGELU) == name.hasSuffix("-quickgelu"), "\(name)")
            if name.hasSuffix("-quickgelu") {
                var base = spec
                base.activation = .gelu
                #expect(CLIPArchitectures.spec(named: String(name.dropLast("-quickgelu".count))) == base, "\(name)")
            }
        }
        // Aliases with identical towers resolve to the plain name.
        #expect(CLIPArchitectures.name(matching: CLIPArchitectures.spec(named: "ViT-L-14-worldwide")!) == "ViT-L-14")
    }

    @Test func syntheticWeightsAreDeterministicAndShaped() {
        let spec = TinyModels.spec
        let a = SyntheticWeights.make(spec: spec)
        let b = SyntheticWeights.make(spec: spec)
        let c = SyntheticWeights.make(spec: spec, seed: 1)
        let allA = a.allTensors.flatMap { $0.floats() }
        #expect(allA == b.allTensors.flatMap { $0.floats() })
        #expect(allA != c.allTensors.flatMap { $0.floats() })
        #expect(allA.count == spec.parameterCount)
        #expect(a.byteCount == spec.parameterCount * 4)
        #expect(a.patchEmbedding.shape == [64, 192] && a.projection.shape == [64, 16])
        #expect(a.blocks.count == 2 && a.blocks[0].qkvWeight.shape == [192, 64] && a.blocks[1].fc2Weight.shape == [64, 256])

        let ln = a.blocks[1].ln2Weight.floats()
        #expect(ln.allSatisfy { (0.9...1.1).contains($0) } && Set(ln).count > 32)
        #expect(a.lnPreBias.floats().allSatisfy { abs($0) <= 0.1 })
        let fc = a.blocks[0].fc1Weight.floats()
        let mean = fc.reduce(0, +) / Float(fc.count)
        let std = (fc.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(fc.count)).squareRoot()
        #expect(abs(mean) < 0.001 && abs(std - 0.02) < 0.001, "mean \(mean) std \(std)")
    }

    @Test func randomReferenceLoadsTheNamedArchitecture() throws {
        let model = try CLIPModelLoader.load("random:ViT-B-32")
        #expect(model.name == "ViT-B-32" && model.architecture == "ViT-B-32")
        #expect(model.layout == .synthetic && model.isSynthetic)
        #expect(model.spec == CLIPArchitectures.spec(named: "ViT-B-32"))
        #expect(model.preprocess == PreprocessConfig(size: 224))
        #expect(model.weightBytes == 87_849_216 * 4)
        #expect(model.weights.positionalEmbedding.shape == [50, 768])
        #expect(model.summary.contains("SYNTHETIC"))
        #expect(model.summary.contains("87.8 M params"))
        // proj ~ N(0, width^-0.5) from an Irwin–Hall sum, so bounded by 2√3 / √768 ≈ 0.125.
        let proj = model.weights.projection
        #expect(proj.elementCount == 768 * 512)
        #expect(abs(proj.float(at: 0)) < 0.25 && abs(proj.float(at: proj.elementCount - 1)) < 0.25)
    }

    @Test func unknownArchitectureListsTheKnownOnes() {
        let error = loadError { try CLIPModelLoader.load("random:ViT-Q-99") }
        #expect(error == .unknownArchitecture(name: "ViT-Q-99", known: CLIPArchitectures.names))
        #expect(error?.description.contains("ViT-bigG-14") == true)
    }
}
