import CLIPModel
import CPUBackend
import Foundation
import InferenceCore
import SafeTensors
import Testing
import TestSupport

/// The CPU engine against the goldens `scripts/make_fixtures.py` computed with open_clip (and transformers for the
/// HF layout): every fixture model, every fixture image, layer by layer.
///
/// Inputs are the fixture's own `input.S` tensors, so preprocessing is out of the picture. Tolerances: each layer's
/// max |error| ≤ 1e-4·max(1, max|expected|); the embedding's cosine similarity ≥ 0.99999 and max |error| ≤
/// 1e-4·max(1, max|expected|). A failure names the first diverging layer, the worst index and expected-vs-got pairs.
@Suite("Embedding parity (CPU engine vs open_clip goldens)")
struct EmbeddingParityTests {
    struct Manifest: Decodable {
        struct Model: Decodable { let dir: String; let expected: String }
        struct Image: Decodable { let stem: String }
        let models: [String: Model]
        let images: [Image]
    }

    static let manifest: Manifest? = try? JSONDecoder().decode(
        Manifest.self, from: Data(contentsOf: Fixtures.root.appendingPathComponent("manifest.json")))

    static let modelNames: [String] = manifest.map { $0.models.keys.sorted() } ?? []

    @Test func fixturesArePresent() {
        #expect(Self.manifest != nil, "Tests/Fixtures/manifest.json is missing or unreadable")
        #expect(!Self.modelNames.isEmpty)
    }

    @Test(arguments: modelNames)
    func layersAndEmbeddingsMatchGoldens(model name: String) throws {
        let manifest = try #require(Self.manifest)
        let entry = try #require(manifest.models[name])
        let model = try CLIPModelLoader.load(Fixtures.root.appendingPathComponent(entry.dir).path)
        let expected = try SafeTensorsFile(url: Fixtures.root.appendingPathComponent(entry.expected))
        let stems = manifest.images.map(\.stem)
        let spec = model.spec
        let engine = try CPUEngine(spec: spec, weights: model.weights, threads: 2)
        let context = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: stems.count))

        // All images in one batch: also checks that the batch path matches open_clip's one-image results.
        let inputs = try stems.flatMap { try expected.tensor("input.\($0)").floats() }
        #expect(inputs.count == stems.count * spec.pixelsPerImage, "input tensors do not match the model's image size")
        let layers = try inputs.withUnsafeBufferPointer { try context.captureLayers(pixels: $0, count: stems.count) }
        let embeddings = try context.embed(inputs, count: stems.count, normalize: false, embedDim: spec.embedDim)

        var worstLayerError = 0.0, worstCosine = 1.0, worstEmbeddingError = 0.0
        for (index, stem) in stems.enumerated() {
            for layer in layers where layer.name != "projection" {
                let reference = try expected.tensor("layer.\(stem).\(layer.name)").floats().map(Double.init)
                let perImage = layer.values.count / stems.count
                #expect(reference.count == perImage, "\(name) \(stem) \(layer.name): \(reference.count) expected values, \(perImage) computed")
                guard reference.count == perImage else { break }
                let got = Array(layer.values[(index * perImage)..<((index + 1) * perImage)])
                let comparison = ParityComparison(expected: reference, got: got)
                worstLayerError = max(worstLayerError, comparison.maxAbsError)
                let tolerance = 1e-4 * max(1, comparison.maxAbsExpected)
                #expect(
                    comparison.maxAbsError <= tolerance,
                    "\(name) image \(stem): first diverging layer \(layer.name) (tolerance \(tolerance)): \(comparison)")
                if comparison.maxAbsError > tolerance { break }
            }
            let reference = try expected.tensor("embedding.\(stem)").floats().map(Double.init)
            let got = Array(embeddings[(index * spec.embedDim)..<((index + 1) * spec.embedDim)])
            let comparison = ParityComparison(expected: reference, got: got)
            worstCosine = min(worstCosine, comparison.cosine)
            worstEmbeddingError = max(worstEmbeddingError, comparison.maxAbsError)
            #expect(comparison.cosine >= 0.99999, "\(name) image \(stem): embedding cosine \(comparison.cosine); \(comparison)")
            #expect(
                comparison.maxAbsError <= 1e-4 * max(1, comparison.maxAbsExpected),
                "\(name) image \(stem): embedding \(comparison)")
        }
        print("parity \(name): \(stems.count) images, worst layer |error| \(worstLayerError), "
              + "worst embedding |error| \(worstEmbeddingError), worst cosine \(worstCosine)")
    }
}

/// Max |expected − got| with its index and neighbours, max |expected| and the cosine similarity.
struct ParityComparison: CustomStringConvertible {
    let maxAbsError: Double
    let maxAbsExpected: Double
    let worstIndex: Int
    let cosine: Double
    let pairs: [(Int, Double, Float)]

    init(expected: [Double], got: [Float]) {
        var worst = 0.0, index = 0, largest = 0.0, dot = 0.0, ee = 0.0, gg = 0.0
        for i in expected.indices {
            let g = Double(got[i])
            let error = g.isNaN ? Double.infinity : abs(expected[i] - g)
            if error > worst { worst = error; index = i }
            largest = max(largest, abs(expected[i]))
            dot += expected[i] * g
            ee += expected[i] * expected[i]
            gg += g * g
        }
        maxAbsError = worst
        maxAbsExpected = largest
        worstIndex = index
        cosine = ee > 0 && gg > 0 ? dot / (ee.squareRoot() * gg.squareRoot()) : (ee == gg ? 1 : 0)
        pairs = (max(0, index - 1)..<min(expected.count, index + 3)).map { ($0, expected[$0], got[$0]) }
    }

    var description: String {
        "max |error| \(maxAbsError) at index \(worstIndex) (max |expected| \(maxAbsExpected), cosine \(cosine)); "
            + "expected vs got: " + pairs.map { "[\($0.0)] \($0.1) vs \($0.2)" }.joined(separator: ", ")
    }
}
