import CLIPModel
import CPUBackend
import ClipServeHTTP
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageProcessing
import InferenceCore
import InferenceRuntime
import Prometheus
import Synchronization
import TestSupport
import Testing

/// The tiny open_clip fixture model on the real CPU engine, loaded once per test process.
final class TinyModel: Sendable {
    static let shared = Result { try TinyModel() }

    let model: LoadedModel
    let engine: CPUEngine
    let preprocessor: ImagePreprocessor
    /// Fixture image name → bytes.
    let images: [(name: String, bytes: [UInt8])]
    /// Fixture image name → its embedding computed alone (L2-normalised).
    let references: [String: [Float]]

    private init() throws {
        model = try CLIPModelLoader.load(Fixtures.root.appendingPathComponent("models/oc-tiny").path)
        engine = try CPUEngine(spec: model.spec, weights: model.weights, threads: 1)
        preprocessor = ImagePreprocessor(config: model.preprocess)
        let directory = Fixtures.root.appendingPathComponent("images")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        images = try names.map { ($0, [UInt8](try Data(contentsOf: directory.appendingPathComponent($0)))) }
        let context = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: 1))
        var references: [String: [Float]] = [:]
        for (name, bytes) in images {
            let pixels = try preprocessor.process(bytes)
            references[name] = try context.embed(pixels, count: 1, normalize: true, embedDim: model.spec.embedDim)
        }
        self.references = references
    }

    func bytes(_ name: String) -> [UInt8] { images.first { $0.name == name }!.bytes }
    func reference(_ name: String) -> [Float] { references[name]! }
}

/// Cosine similarity of two vectors.
func cosine(_ a: some Collection<Float>, _ b: some Collection<Float>) -> Float {
    var dot: Float = 0, na: Float = 0, nb: Float = 0
    for (x, y) in zip(a, b) {
        dot += x * y
        na += x * x
        nb += y * y
    }
    return dot / max((na * nb).squareRoot(), .leastNormalMagnitude)
}

/// The real application over the tiny model, with its runtime and metrics registry.
struct TestServer {
    let runtime: EmbeddingRuntime<ContinuousClock>
    let registry: PrometheusCollectorRegistry
    let configuration: HTTPConfiguration
    let tiny: TinyModel

    init(
        configure: (inout RuntimeConfiguration, inout HTTPConfiguration) -> Void = { _, _ in }
    ) throws {
        tiny = try TinyModel.shared.get()
        var runtimeConfiguration = RuntimeConfiguration()
        runtimeConfiguration.preprocessThreads = 2
        runtimeConfiguration.maxQueueDelay = .microseconds(500)
        var httpConfiguration = HTTPConfiguration()
        httpConfiguration.host = "127.0.0.1"
        httpConfiguration.port = 0
        httpConfiguration.modelName = "oc-tiny"
        configure(&runtimeConfiguration, &httpConfiguration)
        registry = PrometheusCollectorRegistry()
        runtime = EmbeddingRuntime(
            engine: tiny.engine, preprocessor: tiny.preprocessor, configuration: runtimeConfiguration,
            metrics: RuntimeMetrics(factory: PrometheusMetricsFactory(registry: registry)))
        configuration = httpConfiguration
    }

    var app: some ApplicationProtocol {
        buildApplication(runtime: runtime, configuration: configuration, registry: registry)
    }

    /// Runs `body` against the app once the runtime is ready.
    func test(
        _ kind: TestingSetup = .router, _ body: @Sendable @escaping (any TestClientProtocol) async throws -> Void
    ) async throws {
        let runtime = self.runtime
        try await app.test(kind) { client in
            #expect(await runtime.startupFinished() == .ready)
            try await body(client)
        }
    }
}

extension TestClientProtocol {
    /// POSTs JSON and returns status, headers and body.
    func postJSON(_ uri: String, _ json: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        var fields = headers
        fields[.contentType] = "application/json"
        return try await execute(uri: uri, method: .post, headers: fields, body: ByteBuffer(string: json))
    }

    /// POSTs `files` (name, bytes) to `/embed` as one multipart/form-data body, each in a part named "file"; with
    /// `partContentType`, each part carries that Content-Type header.
    func embedMultipart(
        _ files: [(name: String, bytes: [UInt8])], boundary: String, partContentType: String? = nil
    ) async throws -> TestResponse {
        var form = ByteBuffer()
        for file in files {
            form.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(file.name)\"\r\n")
            if let partContentType { form.writeString("Content-Type: \(partContentType)\r\n") }
            form.writeString("\r\n")
            form.writeBytes(file.bytes)
            form.writeString("\r\n")
        }
        form.writeString("--\(boundary)--\r\n")
        return try await execute(
            uri: "/embed", method: .post, headers: [.contentType: "multipart/form-data; boundary=\(boundary)"], body: form)
    }
}

extension TestResponse {
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
    }

    var text: String { String(buffer: body) }
}

/// A base64 data URI of `bytes`.
func dataURI(_ bytes: [UInt8], mime: String = "image/jpeg") -> String {
    "data:\(mime);base64," + Data(bytes).base64EncodedString()
}

/// A KServe request with binary inputs: JSON header followed by `blob`.
func binaryInferBody(header: String, blob: [UInt8]) -> (ByteBuffer, HTTPFields) {
    var buffer = ByteBuffer(string: header)
    buffer.writeBytes(blob)
    return (buffer, [
        .contentType: "application/octet-stream",
        HTTPField.Name("Inference-Header-Content-Length")!: String(header.utf8.count),
    ])
}

/// A BYTES tensor: each element as u32 little-endian length + bytes.
func bytesTensor(_ elements: [[UInt8]]) -> [UInt8] {
    var out: [UInt8] = []
    for element in elements {
        withUnsafeBytes(of: UInt32(element.count).littleEndian) { out += $0 }
        out += element
    }
    return out
}

/// Little-endian float32 bytes → floats.
func floats(fromLittleEndian bytes: some Collection<UInt8>) -> [Float] {
    let array = Array(bytes)
    return stride(from: 0, to: array.count - 3, by: 4).map { i in
        Float(bitPattern: UInt32(array[i]) | UInt32(array[i + 1]) << 8 | UInt32(array[i + 2]) << 16
            | UInt32(array[i + 3]) << 24)
    }
}
