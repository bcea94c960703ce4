import AsyncHTTPClient
import ClipServeHTTP
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InferenceRuntime
import NIOCore
import Testing

/// A request for `image` through one of the three APIs, and how to read its embedding back.
enum LiveAPI: CaseIterable {
    case openAI, kserve, raw

    func request(base: String, image: [UInt8]) -> HTTPClientRequest {
        var request: HTTPClientRequest
        switch self {
        case .openAI:
            request = HTTPClientRequest(url: base + "/v1/embeddings")
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: "{\"input\":[\"\(Data(image).base64EncodedString())\"],\"encoding_format\":\"base64\"}"))
        case .kserve:
            request = HTTPClientRequest(url: base + "/v2/models/oc-tiny/infer")
            let blob = bytesTensor([image])
            let header = """
                {"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":\(blob.count)}}],\
                "outputs":[{"name":"image_embeds","parameters":{"binary_data":true}}]}
                """
            request.headers.add(name: "Content-Type", value: "application/octet-stream")
            request.headers.add(name: "Inference-Header-Content-Length", value: String(header.utf8.count))
            var buffer = ByteBuffer(string: header)
            buffer.writeBytes(blob)
            request.body = .bytes(buffer)
        case .raw:
            request = HTTPClientRequest(url: base + "/embed")
            request.headers.add(name: "Content-Type", value: "image/jpeg")
            request.body = .bytes(ByteBuffer(bytes: image))
        }
        request.method = .POST
        return request
    }

    func embedding(from response: HTTPClientResponse) async throws -> [Float] {
        let body = try await response.body.collect(upTo: 16 << 20)
        switch self {
        case .openAI:
            let object = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]
            let item = (object?["data"] as? [[String: Any]])?.first
            return floats(fromLittleEndian: Data(base64Encoded: item?["embedding"] as? String ?? "") ?? Data())
        case .kserve:
            let jsonLength = Int(response.headers.first(name: "Inference-Header-Content-Length") ?? "") ?? body.readableBytes
            return floats(fromLittleEndian: Array(body.readableBytesView).dropFirst(jsonLength))
        case .raw:
            let object = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]
            return ((object?["embeddings"] as? [[Double]])?.first ?? []).map(Float.init)
        }
    }
}

/// Fires `clients` concurrent requests, each a random fixture image over a rotating API, and checks each answer
/// against that image's embedding computed alone.
func hammer(base: String, tiny: TinyModel, clients: Int) async throws -> (ok: Int, errors: [String]) {
    var configuration = HTTPClient.Configuration()
    configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: clients)
    let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    let outcome = await withTaskGroup(of: String?.self) { group in
        for index in 0..<clients {
            group.addTask {
                let image = tiny.images.randomElement()!
                let api = LiveAPI.allCases[index % LiveAPI.allCases.count]
                do {
                    let response = try await client.execute(api.request(base: base, image: image.bytes), timeout: .seconds(300))
                    guard response.status == .ok else { return "\(api) \(image.name): HTTP \(response.status.code)" }
                    let embedding = try await api.embedding(from: response)
                    let similarity = cosine(embedding, tiny.reference(image.name))
                    guard embedding.count == tiny.model.spec.embedDim, similarity >= 0.99999 else {
                        return "\(api) \(image.name): cosine \(similarity) over \(embedding.count) values"
                    }
                    return nil
                } catch {
                    return "\(api) \(image.name): \(error)"
                }
            }
        }
        var ok = 0
        var errors: [String] = []
        for await result in group {
            if let result { errors.append(result) } else { ok += 1 }
        }
        return (ok, errors)
    }
    try await client.shutdown()
    return outcome
}

@Suite("Live sockets", .serialized)
struct LiveTests {
    @Test(arguments: [(1, 1), (1, 16), (3, 1), (3, 16)])
    func manyConcurrentClientsGetTheirOwnImagesEmbedding(instances: Int, maxBatch: Int) async throws {
        let server = try TestServer { runtime, _ in
            runtime.instances = instances
            runtime.maxBatchSize = maxBatch
            runtime.maxQueueDelay = .microseconds(2000)
            // Correctness under concurrency is the point here, not latency: a slow 2-core CI runner must not time out.
            runtime.requestTimeout = .seconds(600)
        }
        let tiny = server.tiny
        try await server.test(.live) { client in
            let port = try #require(client.port)
            let (ok, errors) = try await hammer(base: "http://127.0.0.1:\(port)", tiny: tiny, clients: 256)
            #expect(errors.isEmpty, "\(errors.count) failures, first: \(errors.prefix(3))")
            #expect(ok == 256)
        }
    }
}
