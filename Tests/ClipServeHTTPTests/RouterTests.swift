import ClipServeHTTP
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InferenceRuntime
import Testing

@Suite("HTTP routes")
struct RouterTests {
    let tolerance: Float = 0.99999

    @Test func openAIEmbeddingsFloatAndBase64() async throws {
        let server = try TestServer()
        let tiny = server.tiny
        try await server.test { client in
            let names = ["rgb_baseline.jpg", "palette.png"]
            let input = "[\"\(dataURI(tiny.bytes(names[0])))\",\"\(Data(tiny.bytes(names[1])).base64EncodedString())\"]"
            let response = try await client.postJSON(
                "/v1/embeddings", "{\"model\":\"oc-tiny\",\"input\":\(input),\"encoding_format\":\"float\"}")
            #expect(response.status == .ok)
            #expect(response.headers[HTTPField.Name("x-queue-time")!] != nil)
            #expect(response.headers[HTTPField.Name("x-inference-time")!] != nil)
            #expect(Int(response.headers[HTTPField.Name("x-batch-size")!] ?? "") ?? 0 >= 1)
            let json = response.json
            #expect(json["object"] as? String == "list")
            #expect(json["model"] as? String == "oc-tiny")
            #expect((json["usage"] as? [String: Any])?["total_tokens"] != nil)
            let data = try #require(json["data"] as? [[String: Any]])
            #expect(data.count == 2)
            for (i, item) in data.enumerated() {
                #expect(item["index"] as? Int == i)
                let embedding = try #require(item["embedding"] as? [Double]).map(Float.init)
                #expect(cosine(embedding, tiny.reference(names[i])) >= tolerance)
            }

            let b64 = try await client.postJSON(
                "/embeddings",
                "{\"input\":\"\(dataURI(tiny.bytes(names[0])))\",\"encoding_format\":\"base64\",\"modality\":\"image\"}")
            #expect(b64.status == .ok)
            let item = try #require((b64.json["data"] as? [[String: Any]])?.first)
            let decoded = floats(fromLittleEndian: try #require(Data(base64Encoded: item["embedding"] as? String ?? "")))
            #expect(decoded.count == tiny.model.spec.embedDim)
            #expect(cosine(decoded, tiny.reference(names[0])) >= tolerance)
        }
    }

    @Test func modelsAndHealth() async throws {
        let server = try TestServer()
        try await server.test { client in
            let models = try await client.execute(uri: "/v1/models", method: .get)
            #expect(((models.json["data"] as? [[String: Any]])?.first?["id"] as? String) == "oc-tiny")
            #expect(try await client.execute(uri: "/v2/health/live", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/v2/health/ready", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/health", method: .get).status == .ok)
            let server = try await client.execute(uri: "/v2", method: .get)
            #expect((server.json["extensions"] as? [String])?.contains("binary_tensor_data") == true)
            for base in ["/v2/models/oc-tiny", "/v2/models/oc-tiny/versions/1"] {
                let metadata = try await client.execute(uri: base, method: .get)
                #expect(metadata.status == .ok)
                #expect(metadata.json["name"] as? String == "oc-tiny")
                let outputs = try #require(metadata.json["outputs"] as? [[String: Any]])
                #expect(outputs.first?["shape"] as? [Int] == [-1, 32])
                #expect(try await client.execute(uri: base + "/ready", method: .get).status == .ok)
            }
            let unknown = try await client.execute(uri: "/v2/models/nope", method: .get)
            #expect(unknown.status == .notFound)
            #expect(unknown.json["error"] is String)
            #expect(try await client.execute(uri: "/v2/models/oc-tiny/versions/7/ready", method: .get).status == .notFound)
        }
    }

    @Test func kserveJSONAndBinaryBytes() async throws {
        let server = try TestServer()
        let tiny = server.tiny
        try await server.test { client in
            let names = ["tall.jpg", "rgba.png", "lossy.webp"]
            // JSON in, JSON out; BYTES elements as base64 strings.
            let strings = names.map { "\"\(Data(tiny.bytes($0)).base64EncodedString())\"" }.joined(separator: ",")
            let json = try await client.postJSON(
                "/v2/models/oc-tiny/infer",
                "{\"id\":\"r1\",\"inputs\":[{\"name\":\"image\",\"shape\":[3],\"datatype\":\"BYTES\",\"data\":[\(strings)]}]}")
            #expect(json.status == .ok)
            #expect(json.json["id"] as? String == "r1")
            let output = try #require((json.json["outputs"] as? [[String: Any]])?.first)
            #expect(output["name"] as? String == "image_embeds")
            #expect(output["shape"] as? [Int] == [3, 32])
            let values = try #require(output["data"] as? [Double]).map(Float.init)
            for (i, name) in names.enumerated() {
                #expect(cosine(values[(i * 32)..<((i + 1) * 32)], tiny.reference(name)) >= tolerance)
            }

            // Binary in, binary out (what tritonclient sends with binary_data=True).
            let blob = bytesTensor(names.map { tiny.bytes($0) })
            let header = """
                {"inputs":[{"name":"image","shape":[3],"datatype":"BYTES","parameters":{"binary_data_size":\(blob.count)}}],\
                "outputs":[{"name":"image_embeds","parameters":{"binary_data":true}}],"parameters":{"priority":1,"timeout":30000000}}
                """
            let (body, headers) = binaryInferBody(header: header, blob: blob)
            let binary = try await client.execute(
                uri: "/v2/models/oc-tiny/versions/1/infer", method: .post, headers: headers, body: body)
            #expect(binary.status == .ok)
            let jsonLength = try #require(Int(binary.headers[HTTPField.Name("Inference-Header-Content-Length")!] ?? ""))
            let bytes = Array(binary.body.readableBytesView)
            let responseHeader = try #require(
                try JSONSerialization.jsonObject(with: Data(bytes[0..<jsonLength])) as? [String: Any])
            let described = try #require((responseHeader["outputs"] as? [[String: Any]])?.first)
            #expect((described["parameters"] as? [String: Any])?["binary_data_size"] as? Int == 3 * 32 * 4)
            let embeds = floats(fromLittleEndian: bytes[jsonLength...])
            #expect(embeds.count == 3 * 32)
            for (i, name) in names.enumerated() {
                #expect(cosine(embeds[(i * 32)..<((i + 1) * 32)], tiny.reference(name)) >= tolerance)
            }
        }
    }

    @Test func kservePixelValues() async throws {
        let server = try TestServer()
        let tiny = server.tiny
        try await server.test { client in
            let pixels = try tiny.preprocessor.process(tiny.bytes("wide.png"))
            var blob: [UInt8] = []
            for value in pixels { withUnsafeBytes(of: value.bitPattern.littleEndian) { blob += $0 } }
            let header = """
                {"inputs":[{"name":"pixel_values","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":\(blob.count)}}],\
                "parameters":{"binary_data_output":false}}
                """
            let (body, headers) = binaryInferBody(header: header, blob: blob)
            let response = try await client.execute(uri: "/v2/models/oc-tiny/infer", method: .post, headers: headers, body: body)
            #expect(response.status == .ok)
            let output = try #require((response.json["outputs"] as? [[String: Any]])?.first)
            let values = try #require(output["data"] as? [Double]).map(Float.init)
            #expect(cosine(values, tiny.reference("wide.png")) >= tolerance)

            let list = pixels.map { String($0) }.joined(separator: ",")
            let json = try await client.postJSON(
                "/v2/models/oc-tiny/infer",
                "{\"inputs\":[{\"name\":\"pixel_values\",\"shape\":[1,3,224,224],\"datatype\":\"FP32\",\"data\":[\(list)]}]}")
            #expect(json.status == .ok)
        }
    }

    @Test func embedRawAndMultipart() async throws {
        let server = try TestServer()
        let tiny = server.tiny
        try await server.test { client in
            let raw = try await client.execute(
                uri: "/embed", method: .post, headers: [.contentType: "image/jpeg"],
                body: ByteBuffer(bytes: tiny.bytes("gray.jpg")))
            #expect(raw.status == .ok)
            let first = try #require((raw.json["embeddings"] as? [[Double]])?.first).map(Float.init)
            #expect(cosine(first, tiny.reference("gray.jpg")) >= tolerance)

            let multipart = try await client.embedMultipart(
                ["cmyk.jpg", "gray16.png"].map { ($0, tiny.bytes($0)) }, boundary: "clipserve-test-boundary",
                partContentType: "application/octet-stream")
            #expect(multipart.status == .ok)
            let embeddings = try #require(multipart.json["embeddings"] as? [[Double]])
            #expect(embeddings.count == 2)
            #expect(cosine(embeddings[0].map(Float.init), tiny.reference("cmyk.jpg")) >= tolerance)
            #expect(cosine(embeddings[1].map(Float.init), tiny.reference("gray16.png")) >= tolerance)
        }
    }

    @Test func metricsAreExported() async throws {
        let server = try TestServer()
        let tiny = server.tiny
        try await server.test { client in
            _ = try await client.execute(
                uri: "/embed", method: .post, headers: [.contentType: "image/png"],
                body: ByteBuffer(bytes: tiny.bytes("tiny.png")))
            _ = try await client.postJSON("/v1/embeddings", "{\"input\":\"!!!\"}")
            let metrics = try await client.execute(uri: "/metrics", method: .get).text
            for name in [
                "clipserve_requests_total{outcome=\"success\"}", "clipserve_requests_total{outcome=\"client_error\"}",
                "clipserve_images_total", "clipserve_batches_total", "clipserve_queue_depth",
                "clipserve_queue_time_seconds_bucket", "clipserve_preprocess_time_seconds_bucket",
                "clipserve_inference_time_seconds_bucket", "clipserve_request_latency_seconds_bucket",
                "clipserve_batch_size_bucket",
            ] {
                #expect(metrics.contains(name), "missing \(name)")
            }
        }
    }
}
