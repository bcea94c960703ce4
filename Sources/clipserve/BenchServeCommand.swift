import ArgumentParser
import AsyncHTTPClient
import Foundation
import Histogram
import NIOCore
import Synchronization

/// `clipserve bench serve`: closed-loop load against a running server — each of `--concurrency` clients sends its
/// next request as soon as the previous answer arrives, for `--seconds`.
struct BenchServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Load-test a running clipserve (or any OpenAI / KServe v2 server) over HTTP.")

    enum API: String, ExpressibleByArgument, CaseIterable {
        /// `POST /v1/embeddings` with data URIs.
        case openai
        /// `POST /v2/models/{name}/infer` with a binary BYTES tensor.
        case kserve
        /// `POST /embed` with the image as the body (one image per request).
        case raw
    }

    @Option(help: "Base URL of the server, e.g. http://127.0.0.1:8000.")
    var url: String

    @Option(help: "Concurrent closed-loop clients.")
    var concurrency = 16

    @Option(help: "Length of the measured run, in seconds.")
    var seconds: Double = 10

    @Option(help: "Directory of images (jpg, jpeg, png, webp) the clients cycle through.")
    var images: String

    @Option(help: "API to drive: openai, kserve or raw.")
    var api: API = .openai

    @Option(help: "Images per request (openai and kserve).")
    var imagesPerRequest = 1

    @Option(help: "Model name (default: the first model of GET /v1/models).")
    var modelName: String?

    @Option(help: "Bearer token (env CLIPSERVE_API_KEY).")
    var apiKey: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard imagesPerRequest >= 1 else { throw ValidationError("--images-per-request must be at least 1") }
        if api == .raw, imagesPerRequest != 1 { throw ValidationError("--api raw sends one image per request") }
    }

    /// One prepared request body and how many images it carries.
    struct Payload: Sendable {
        var body: [UInt8]
        var headers: [(String, String)]
        var images: Int
    }

    /// What all clients measured together.
    struct Tally: Sendable {
        var latencies = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var requests = 0
        var images = 0
        var errors: [String: Int] = [:]
    }

    func run() async throws {
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        let files = try imageFiles()
        guard !files.isEmpty else { throw ValidationError("no jpg/jpeg/png/webp images in \(images)") }
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(120))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let name = try await resolveModelName(client: client, base: base)
            let payloads = try makePayloads(files: files)
            let path: String =
                switch api {
                case .openai: "/v1/embeddings"
                case .kserve: "/v2/models/\(name)/infer"
                case .raw: "/embed"
                }
            let tally = TallyBox()
            let clock = ContinuousClock()
            let start = clock.now
            let end = start.advanced(by: .milliseconds(Int64(seconds * 1000)))
            let token = apiKey
            await withTaskGroup(of: Void.self) { group in
                for clientIndex in 0..<concurrency {
                    group.addTask {
                        var next = clientIndex % payloads.count
                        var local = Tally()
                        while clock.now < end {
                            let payload = payloads[next]
                            next = (next + 1) % payloads.count
                            var request = HTTPClientRequest(url: base + path)
                            request.method = .POST
                            for (field, value) in payload.headers { request.headers.add(name: field, value: value) }
                            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
                            request.body = .bytes(ByteBuffer(bytes: payload.body))
                            let begin = clock.now
                            do {
                                let response = try await client.execute(request, timeout: .seconds(120))
                                _ = try await response.body.collect(upTo: 256 << 20)
                                if response.status == .ok {
                                    let elapsed = begin.duration(to: clock.now)
                                    _ = local.latencies.record(UInt64(max(1, elapsed.microseconds)))
                                    local.requests += 1
                                    local.images += payload.images
                                } else {
                                    local.errors["HTTP \(response.status.code)", default: 0] += 1
                                }
                            } catch {
                                local.errors[Self.kind(of: error), default: 0] += 1
                            }
                        }
                        let finished = local
                        tally.value.withLock { total in
                            total.latencies.add(finished.latencies)
                            total.requests += finished.requests
                            total.images += finished.images
                            total.errors.merge(finished.errors, uniquingKeysWith: +)
                        }
                    }
                }
            }
            let elapsed = start.duration(to: clock.now).seconds
            report(tally.value.withLock { $0 }, elapsed: elapsed, model: name)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    private func report(_ tally: Tally, elapsed: Double, model: String) {
        let ms = { (value: UInt64) in Double(value) / 1000 }
        let p50 = ms(tally.latencies.valueAtPercentile(50)), p90 = ms(tally.latencies.valueAtPercentile(90))
        let p99 = ms(tally.latencies.valueAtPercentile(99)), maxMS = ms(tally.latencies.maxRecorded)
        let requestsPerSecond = Double(tally.requests) / elapsed, imagesPerSecond = Double(tally.images) / elapsed
        if json {
            let object: [String: Any] = [
                "url": url, "api": api.rawValue, "model": model, "concurrency": concurrency,
                "images_per_request": imagesPerRequest, "seconds": elapsed, "requests": tally.requests,
                "requests_per_second": requestsPerSecond, "images_per_second": imagesPerSecond,
                "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": maxMS, "errors": tally.errors,
            ]
            if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
                print(String(decoding: data, as: UTF8.self))
            }
            return
        }
        print("\(api.rawValue) \(url)  model \(model)  concurrency \(concurrency)  images/request \(imagesPerRequest)")
        print(String(format: "%d requests in %.1f s: %.1f requests/s, %.1f images/s", tally.requests, elapsed,
                     requestsPerSecond, imagesPerSecond))
        print(String(format: "latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f", p50, p90, p99, maxMS))
        let errors = tally.errors.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
        print("errors: " + (errors.isEmpty ? "none" : errors.joined(separator: ", ")))
    }

    private static func kind(of error: any Error) -> String {
        if let error = error as? HTTPClientError {
            if error == .connectTimeout || error == .deadlineExceeded || error == .readTimeout { return "timeout" }
            if error == .remoteConnectionClosed { return "connection closed" }
            return "client: \(error)"
        }
        let text = String(describing: error)
        if text.lowercased().contains("connect") { return "connect" }
        return "other: \(text.prefix(80))"
    }

    private func imageFiles() throws -> [URL] {
        let directory = URL(fileURLWithPath: images)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        return names.filter { ["jpg", "jpeg", "png", "webp"].contains(($0 as NSString).pathExtension.lowercased()) }
            .sorted().map { directory.appendingPathComponent($0) }
    }

    private func makePayloads(files: [URL]) throws -> [Payload] {
        let contents = try files.map { [UInt8](try Data(contentsOf: $0)) }
        let mimes = files.map { Self.mime(for: $0.pathExtension) }
        return try (0..<contents.count).map { first in
            let indices = (0..<imagesPerRequest).map { (first + $0) % contents.count }
            switch api {
            case .raw:
                return Payload(body: contents[first], headers: [("Content-Type", mimes[first])], images: 1)
            case .openai:
                let input = indices.map { "data:\(mimes[$0]);base64," + Data(contents[$0]).base64EncodedString() }
                let body = try JSONSerialization.data(withJSONObject: ["input": input, "encoding_format": "base64"])
                return Payload(body: [UInt8](body), headers: [("Content-Type", "application/json")], images: indices.count)
            case .kserve:
                var blob: [UInt8] = []
                for i in indices {
                    withUnsafeBytes(of: UInt32(contents[i].count).littleEndian) { blob += $0 }
                    blob += contents[i]
                }
                let header = """
                    {"inputs":[{"name":"image","shape":[\(indices.count)],"datatype":"BYTES",\
                    "parameters":{"binary_data_size":\(blob.count)}}],\
                    "outputs":[{"name":"image_embeds","parameters":{"binary_data":true}}]}
                    """
                return Payload(
                    body: Array(header.utf8) + blob,
                    headers: [
                        ("Content-Type", "application/octet-stream"),
                        ("Inference-Header-Content-Length", String(header.utf8.count)),
                    ],
                    images: indices.count)
            }
        }
    }

    private func resolveModelName(client: HTTPClient, base: String) async throws -> String {
        if let modelName { return modelName }
        var request = HTTPClientRequest(url: base + "/v1/models")
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok,
            let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
            let id = (object["data"] as? [[String: Any]])?.first?["id"] as? String
        else {
            throw ValidationError("GET \(base)/v1/models answered \(response.status.code); pass --model-name")
        }
        return id
    }

    private static func mime(for pathExtension: String) -> String {
        switch pathExtension.lowercased() {
        case "png": "image/png"
        case "webp": "image/webp"
        default: "image/jpeg"
        }
    }
}

/// The shared tally, filled once by each client at its end.
private final class TallyBox: Sendable {
    let value = Mutex(BenchServeCommand.Tally())
}

extension Duration {
    fileprivate var microseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}
