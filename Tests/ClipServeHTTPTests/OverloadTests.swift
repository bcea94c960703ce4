import CPUBackend
import ClipServeHTTP
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InferenceCore
import InferenceRuntime
import Prometheus
import Synchronization
import TestSupport
import Testing

/// The CPU engine behind a gate: while closed, every batch (the warm-up included) blocks its worker thread.
final class GatedEngine: EmbeddingEngine, Sendable {
    let inner: CPUEngine
    /// Starts closed, so the warm-up batch blocks until a test opens it.
    let gate = Gate(open: false)

    init(_ inner: CPUEngine) { self.inner = inner }

    var spec: VisionTowerSpec { inner.spec }
    var deviceDescription: String { "gated " + inner.deviceDescription }
    var precision: Precision { inner.precision }
    var preferredBatchSizes: [Int] { inner.preferredBatchSizes }

    func makeContext(_ configuration: ExecutionContextConfiguration) throws -> any ExecutionContext {
        GatedContext(engine: self, inner: try inner.makeContext(configuration))
    }
}

final class GatedContext: ExecutionContext {
    let engine: GatedEngine
    let inner: any ExecutionContext
    init(engine: GatedEngine, inner: any ExecutionContext) {
        self.engine = engine
        self.inner = inner
    }
    var maxBatchSize: Int { inner.maxBatchSize }
    func embed(pixels: UnsafeBufferPointer<Float>, count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>) throws {
        engine.gate.pass()
        try inner.embed(pixels: pixels, count: count, normalize: normalize, into: output)
    }
    func captureLayers(pixels: UnsafeBufferPointer<Float>, count: Int) throws -> [LayerOutput] {
        try inner.captureLayers(pixels: pixels, count: count)
    }
}

/// The real app on a runtime over `engine` with one worker, batches of one image and no queue delay.
func gatedServer(
    _ engine: GatedEngine, _ tiny: TinyModel,
    configure: (inout RuntimeConfiguration, inout HTTPConfiguration) -> Void = { _, _ in }
) -> (EmbeddingRuntime<ContinuousClock>, some ApplicationProtocol) {
    var configuration = RuntimeConfiguration()
    configuration.maxBatchSize = 1
    configuration.maxQueueDelay = .zero
    var http = HTTPConfiguration()
    http.host = "127.0.0.1"
    http.port = 0
    http.modelName = "oc-tiny"
    configure(&configuration, &http)
    let metrics = ServerMetrics()
    let runtime = EmbeddingRuntime(
        engine: engine, preprocessor: tiny.preprocessor, configuration: configuration, metrics: metrics.runtime)
    return (runtime, buildApplication(runtime: runtime, configuration: http, registry: metrics.registry))
}

@Suite("Overload and readiness")
struct OverloadTests {
    @Test func notReadyQueueFullAndTimeoutAnswerAtOnce() async throws {
        let tiny = try TinyModel.shared.get()
        let engine = GatedEngine(tiny.engine)
        let (runtime, app) = gatedServer(engine, tiny) { runtime, _ in runtime.maxQueueSize = 1 }
        let image = dataURI(tiny.bytes("tiny.png"), mime: "image/png")
        let body = "{\"input\":\"\(image)\"}"
        try await app.test(.router) { client in
            // Warm-up is blocked: not ready, and requests are refused rather than left hanging.
            await eventually { engine.gate.waiting.load(ordering: .relaxed) == 1 }
            #expect(try await client.execute(uri: "/v2/health/ready", method: .get).status == .serviceUnavailable)
            #expect(try await client.execute(uri: "/v2/models/oc-tiny/ready", method: .get).status == .badRequest)
            #expect(try await client.execute(uri: "/v2/health/live", method: .get).status == .ok)
            let early = try await client.postJSON("/v1/embeddings", body)
            #expect(early.status == .serviceUnavailable)
            #expect(early.headers[HTTPField.Name("Retry-After")!] != nil)

            engine.gate.open()
            #expect(await runtime.startupFinished() == .ready)
            engine.gate.close()

            // One request holds the only worker, one fills the queue, the third is refused.
            let running = Task { try await client.postJSON("/v1/embeddings", body) }
            await eventually { engine.gate.waiting.load(ordering: .relaxed) == 1 }
            let queued = Task { try await client.postJSON("/v1/embeddings", body) }
            await eventually { runtime.queuedImages == 1 }
            let refused = try await client.postJSON("/v1/embeddings", body)
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.headers[HTTPField.Name("Retry-After")!] == "1")
            #expect((refused.json["error"] as? [String: Any])?["type"] as? String == "overloaded_error")

            engine.gate.open()
            #expect(try await running.value.status == .ok)
            #expect(try await queued.value.status == .ok)

            // A deadline that passes while the batch is stuck is answered without waiting for it.
            engine.gate.close()
            let stuck = Task { try await client.postJSON("/v1/embeddings", body) }
            await eventually { engine.gate.waiting.load(ordering: .relaxed) == 1 }
            let b64 = Data(tiny.bytes("tiny.png")).base64EncodedString()
            let timedOut = try await client.postJSON(
                "/v2/models/oc-tiny/infer",
                "{\"parameters\":{\"timeout\":20000},\"inputs\":[{\"name\":\"image\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"\(b64)\"]}]}")
            #expect(timedOut.status == .gatewayTimeout)
            #expect(timedOut.json["error"] is String)
            #expect(engine.gate.waiting.load(ordering: .relaxed) == 1)
            engine.gate.open()
            #expect(try await stuck.value.status == .ok)
        }
    }
}

/// Waits (yielding, never sleeping) until `condition` holds; records an issue if it never does.
func eventually(_ condition: () -> Bool, sourceLocation: SourceLocation = #_sourceLocation) async {
    for _ in 0..<50_000_000 {
        if condition() { return }
        await Task.yield()
    }
    Issue.record("condition never held", sourceLocation: sourceLocation)
}
