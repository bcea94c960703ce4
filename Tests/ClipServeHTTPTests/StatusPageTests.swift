import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InferenceRuntime
import NIOCore
import Synchronization
import TestSupport
import Testing

@testable import ClipServeHTTP

extension TestClientProtocol {
    /// `GET /status.json`, parsed.
    func status() async throws -> [String: Any] {
        let response = try await execute(uri: "/status.json", method: .get)
        #expect(response.status == .ok)
        return response.json
    }

    /// POSTs one image to `/embed`.
    func embedRaw(_ bytes: [UInt8], contentType: String = "image/png") async throws -> TestResponse {
        try await execute(uri: "/embed", method: .post, headers: [.contentType: contentType], body: ByteBuffer(bytes: bytes))
    }
}

extension Dictionary where Key == String, Value == Any {
    /// `series[name]` as numbers (nil for JSON null).
    func series(_ name: String) -> [Double?] {
        ((self["series"] as? [String: Any])?[name] as? [Any] ?? []).map { ($0 as? NSNumber)?.doubleValue }
    }

    var totals: [String: Int] { self["totals"] as? [String: Int] ?? [:] }
    var errors: [[String: Any]] { self["errors"] as? [[String: Any]] ?? [] }
}

/// Polls `/status.json` until `condition` holds for it (the sampler files its reading asynchronously after the clock
/// moves); returns the last document.
func statusOnceSampled(
    _ client: any TestClientProtocol, sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: ([String: Any]) -> Bool
) async throws -> [String: Any] {
    for _ in 0..<20_000 {
        let document = try await client.status()
        if condition(document) { return document }
        await Task.yield()
    }
    Issue.record("status.json never reached the expected state", sourceLocation: sourceLocation)
    return try await client.status()
}

@Suite("Status page")
struct StatusPageTests {
    @Test func pageIsHTMLWithTheModelNameAndOpenWithAnAPIKey() async throws {
        let server = try TestServer { _, http in
            http.modelName = "oc-tiny <b>&"
            http.apiKey = "secret-key"
        }
        try await server.test { client in
            let page = try await client.execute(uri: "/", method: .get)
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            #expect(page.text.contains("<h1 id=\"model-name\">oc-tiny &lt;b&gt;&amp;</h1>"))
            #expect(page.text.contains("<svg class=\"chart\""))
            #expect(!page.text.contains("secret-key"))
            // No external assets: nothing is loaded from another origin.
            #expect(!page.text.contains("src=\"http"))
            #expect(!page.text.contains("href=\"http"))

            let status = try await client.execute(uri: "/status.json", method: .get)
            #expect(status.status == .ok)
            #expect(status.headers[.contentType] == "application/json")
            #expect(!status.text.contains("secret-key"))
            let info = try #require(status.json["server"] as? [String: Any])
            #expect(info["model"] as? String == "oc-tiny <b>&")
            #expect(info["auth_required"] as? Bool == true)
            #expect(info["precision"] as? String == "fp32")
            #expect(info["embedding_dimension"] as? Int == 32)
            #expect(info["utilization_source"] as? String == "cpu")
        }
    }

    @Test func countsImagesRequestsAndErrorsPerSecondOnAManualClock() async throws {
        let server = try TestServer()
        let tiny = server.tiny
        let clock = ManualClock()
        let recorder = StatusRecorder(clock: clock)
        let app = buildApplication(
            runtime: server.runtime, configuration: server.configuration, registry: server.registry, status: recorder)
        let runtime = server.runtime
        try await app.test(.router) { client in
            #expect(await runtime.startupFinished() == .ready)
            // Second 0: three single images, a form of two, a 415 and a 400.
            for name in ["tiny.png", "palette.png", "rgba.png"] {
                #expect(try await client.embedRaw(tiny.bytes(name)).status == .ok)
            }
            let multipart = try await client.embedMultipart(
                ["gray.jpg", "wide.png"].map { ($0, tiny.bytes($0)) }, boundary: "status-boundary")
            #expect(multipart.status == .ok)
            #expect(try await client.embedRaw(Array("hello".utf8), contentType: "text/plain").status == .unsupportedMediaType)
            #expect(try await client.embedRaw(Array("not an image".utf8), contentType: "image/jpeg").status == .badRequest)

            // Nothing closed yet: totals and errors are there, the series is empty.
            let early = try await client.status()
            #expect(early.totals == ["requests": 6, "images": 5, "errors": 2])
            #expect(early.series("second").isEmpty)
            let errors = early.errors
            #expect(errors.map { $0["status"] as? Int } == [415, 400])
            #expect(errors.allSatisfy { $0["route"] as? String == "/embed" && $0["method"] as? String == "POST" })
            #expect((errors.first?["message"] as? String)?.hasPrefix("Content-Type must be") == true)
            #expect((errors.last?["message"] as? String)?.contains("unknown image format") == true)
            #expect(errors.allSatisfy { $0["uptime"] as? Double == 0 })

            // The sampler reads the gauges at second 1 and files them under second 0.
            await eventually { clock.sleeperCount == 1 }
            clock.advance(by: .seconds(1))
            let first = try await statusOnceSampled(client) { $0.series("queue_depth").first.flatMap { $0 } != nil }
            #expect(first.series("second") == [0])
            #expect(first.series("requests_per_second") == [6])
            #expect(first.series("images_per_second") == [5])
            #expect(first.series("errors_per_second") == [2])
            #expect(first.series("queue_depth") == [0])
            let p50 = try #require(first.series("latency_p50_ms").first ?? nil)
            let p99 = try #require(first.series("latency_p99_ms").first ?? nil)
            #expect(p50 > 0 && p50 <= p99)
            let utilization = try #require(first.series("utilization").first ?? nil)
            #expect((0...1).contains(utilization))
            #expect(first.series("memory_used_bytes") == [nil])

            // A quiet second, then one more image in second 2; the status page's own polls are not counted.
            await eventually { clock.sleeperCount == 1 }
            clock.advance(by: .seconds(1))
            _ = try await statusOnceSampled(client) { $0.series("second").count == 2 && $0.series("queue_depth")[1] != nil }
            #expect(try await client.embedRaw(tiny.bytes("tiny.png")).status == .ok)
            await eventually { clock.sleeperCount == 1 }
            clock.advance(by: .seconds(1))
            let third = try await statusOnceSampled(client) { $0.series("second").count == 3 && $0.series("queue_depth")[2] != nil }
            #expect(third.series("second") == [0, 1, 2])
            #expect(third.series("requests_per_second") == [6, 0, 1])
            #expect(third.series("images_per_second") == [5, 0, 1])
            #expect(third.series("latency_p50_ms")[1] == nil)
            #expect(third.totals == ["requests": 7, "images": 6, "errors": 2])
        }
    }

    @Test func queueDepthIsSampledWhileTheWorkerIsHeld() async throws {
        let tiny = try TinyModel.shared.get()
        let engine = GatedEngine(tiny.engine)
        var configuration = RuntimeConfiguration()
        configuration.maxBatchSize = 1
        configuration.maxQueueDelay = .zero
        var http = HTTPConfiguration()
        http.modelName = "oc-tiny"
        let metrics = ServerMetrics()
        let runtime = EmbeddingRuntime(
            engine: engine, preprocessor: tiny.preprocessor, configuration: configuration, metrics: metrics.runtime)
        let clock = ManualClock()
        let recorder = StatusRecorder(clock: clock)
        let app = buildApplication(runtime: runtime, configuration: http, registry: metrics.registry, status: recorder)
        let image = tiny.bytes("tiny.png")
        try await app.test(.router) { client in
            engine.gate.open()
            #expect(await runtime.startupFinished() == .ready)
            engine.gate.close()
            // One image holds the only worker; three more wait in the queue.
            let requests = (0..<4).map { _ in Task { try await client.embedRaw(image) } }
            await eventually { engine.gate.waiting.load(ordering: .relaxed) == 1 && runtime.queuedImages == 3 }
            #expect(try await client.status()["queue_depth"] as? Int == 3)

            await eventually { clock.sleeperCount == 1 }
            clock.advance(by: .seconds(1))
            // The second closes before the sampler's gauges land in it: wait for the reading, not just the slot.
            let held = try await statusOnceSampled(client) {
                $0.series("queue_depth").count == 1 && $0.series("queue_depth")[0] != nil
            }
            #expect(held.series("queue_depth") == [3])
            #expect(held.series("images_per_second") == [0])

            engine.gate.open()
            for request in requests { #expect(try await request.value.status == .ok) }
            await eventually { clock.sleeperCount == 1 }
            clock.advance(by: .seconds(1))
            let drained = try await statusOnceSampled(client) {
                $0.series("queue_depth").count == 2 && $0.series("queue_depth")[1] != nil
            }
            #expect(drained.series("queue_depth") == [3, 0])
            #expect(drained.series("images_per_second") == [0, 4])
            #expect(drained.series("requests_per_second") == [0, 4])
            #expect(drained.totals["images"] == 4)
        }
    }

    @Test func unauthorizedRequestsAreRecordedAsErrors() async throws {
        let server = try TestServer { _, http in http.apiKey = "k" }
        let tiny = server.tiny
        try await server.test { client in
            #expect(try await client.embedRaw(tiny.bytes("tiny.png")).status == .unauthorized)
            let wrong = try await client.execute(
                uri: "/v1/models", method: .get, headers: [.authorization: "Bearer nope"])
            #expect(wrong.status == .unauthorized)
            let ok = try await client.execute(
                uri: "/embed", method: .post, headers: [.contentType: "image/png", .authorization: "Bearer k"],
                body: ByteBuffer(bytes: tiny.bytes("tiny.png")))
            #expect(ok.status == .ok)
            let status = try await client.status()
            #expect(status.totals == ["requests": 3, "images": 1, "errors": 2])
            let errors = status.errors
            #expect(errors.map { $0["status"] as? Int } == [401, 401])
            #expect(errors.map { $0["route"] as? String } == ["/embed", "/v1/models"])
            #expect(errors.map { $0["message"] as? String } == ["missing bearer token", "invalid bearer token"])
        }
    }
}

@Suite("Status timeline")
struct StatusTimelineTests {
    @Test func ringBufferKeepsTheNewestElements() {
        var ring = RingBuffer<Int>(capacity: 300)
        for i in 1...299 { ring.append(i) }
        #expect(ring.count == 299)
        #expect(ring.elements == Array(1...299))
        for i in 300...310 { ring.append(i) }
        #expect(ring.count == 300)
        #expect(ring.elements == Array(11...310))
        #expect(ring.last == 310)
        ring.updateLast { $0 = -1 }
        #expect(ring.elements.last == -1)
        #expect(ring.elements.first == 11)
    }

    @Test func timelineKeepsItsCapacityOfSecondsAndFillsGaps() {
        var timeline = StatusTimeline(capacity: 5)
        for second in 0..<8 { timeline.recordImages(second + 1, at: second) }
        timeline.advance(to: 8)
        #expect(timeline.seconds.map(\.second) == [3, 4, 5, 6, 7])
        #expect(timeline.seconds.map(\.images) == [4, 5, 6, 7, 8])
        #expect(timeline.totalImages == 36)
        // A long quiet gap leaves at most `capacity` empty seconds, the newest ones.
        timeline.advance(to: 1000)
        #expect(timeline.seconds.map(\.second) == [995, 996, 997, 998, 999])
        #expect(timeline.seconds.allSatisfy { $0.images == 0 && $0.requests == 0 && $0.gauges == nil })
        // Going back in time closes nothing.
        timeline.advance(to: 10)
        #expect(timeline.seconds.last?.second == 999)
    }

    @Test func percentilesAreNearestRankPerSecond() {
        var timeline = StatusTimeline(capacity: 10)
        for latency in (1...100).reversed() {
            timeline.recordRequest(at: 0, latencyMilliseconds: Double(latency), isError: latency > 98)
        }
        timeline.recordRequest(at: 1, latencyMilliseconds: 7, isError: false)
        timeline.recordGauges(StatusGauges(queueDepth: 4, utilization: 0.5), at: 1)
        timeline.advance(to: 2)
        let seconds = timeline.seconds
        #expect(seconds.count == 2)
        #expect(seconds[0].requests == 100 && seconds[0].errors == 2)
        #expect(seconds[0].latencyP50 == 50)
        #expect(seconds[0].latencyP99 == 99)
        #expect(seconds[0].gauges == StatusGauges(queueDepth: 4, utilization: 0.5))
        #expect(seconds[1].latencyP50 == 7 && seconds[1].latencyP99 == 7)
        #expect(seconds[1].gauges == nil)
    }

    @Test func recorderKeepsTheLastErrors() {
        let clock = ManualClock()
        let recorder = StatusRecorder(clock: clock, historySeconds: 3, errorCapacity: 3)
        for status in [400, 401, 404, 413, 503] {
            recorder.recordRequest(method: "POST", route: "/embed", status: status, latency: .milliseconds(2), message: "m\(status)")
            clock.advance(by: .seconds(1))
        }
        recorder.recordRequest(method: "GET", route: "/v1/models", status: 200, latency: .milliseconds(1), message: nil)
        let snapshot = recorder.snapshot()
        #expect(snapshot.errors.map(\.status) == [404, 413, 503])
        #expect(snapshot.errors.map(\.message) == ["m404", "m413", "m503"])
        #expect(snapshot.errors.map(\.uptime) == [2, 3, 4])
        #expect(snapshot.seconds.map(\.second) == [2, 3, 4])
        #expect(snapshot.seconds.map(\.errors) == [1, 1, 1])
        #expect(snapshot.totals.requests == 6 && snapshot.totals.errors == 5)
    }
}
