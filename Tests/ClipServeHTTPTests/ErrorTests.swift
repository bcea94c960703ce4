import ClipServeHTTP
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InferenceRuntime
import Testing

/// A PNG whose header claims `width × height` pixels, with valid CRCs and no image data.
func pngHeader(width: UInt32, height: UInt32) -> [UInt8] {
    func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
    func bigEndian(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
    }
    let ihdr = bigEndian(width) + bigEndian(height) + [8, 2, 0, 0, 0]
    return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IEND", [])
}

@Suite("HTTP errors")
struct ErrorTests {
    /// After each hostile request the server must still answer a good one.
    func expectStillServes(_ client: some TestClientProtocol, _ tiny: TinyModel) async throws {
        let good = try await client.postJSON("/v1/embeddings", "{\"input\":\"\(dataURI(tiny.bytes("rgb_baseline.jpg")))\"}")
        #expect(good.status == .ok)
        let embedding = try #require(((good.json["data"] as? [[String: Any]])?.first?["embedding"] as? [Double]))
        #expect(cosine(embedding.map(Float.init), tiny.reference("rgb_baseline.jpg")) >= 0.99999)
    }

    @Test func hostileOpenAIInputs() async throws {
        let server = try TestServer { runtime, http in
            runtime.maxImagesPerRequest = 4
        }
        let tiny = server.tiny
        try await server.test { client in
            let jpeg = tiny.bytes("rgb_baseline.jpg")
            let cases: [(String, [UInt8], HTTPResponse.Status)] = [
                ("bad JSON", Array("{\"input\": [".utf8), .badRequest),
                ("invalid UTF-8", [0x7B, 0x22, 0x69, 0x6E, 0x70, 0x75, 0x74, 0x22, 0x3A, 0x22, 0xFF, 0xFE, 0x22, 0x7D], .badRequest),
                ("bad base64", Array("{\"input\":\"data:image/png;base64,@@@@\"}".utf8), .badRequest),
                ("zero bytes", Array("{\"input\":\"\"}".utf8), .badRequest),
                ("truncated JPEG", Array("{\"input\":\"\(dataURI(Array(jpeg.prefix(jpeg.count / 2))))\"}".utf8), .badRequest),
                ("not an image", Array("{\"input\":\"\(Data("hello world".utf8).base64EncodedString())\"}".utf8), .badRequest),
                ("huge PNG header",
                 Array("{\"input\":\"\(dataURI(pngHeader(width: 100_000, height: 100_000), mime: "image/png"))\"}".utf8),
                 .badRequest),
                ("token input", Array("{\"input\":[1,2,3]}".utf8), .badRequest),
                ("too many images", Array("{\"input\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}".utf8), .badRequest),
                ("bad encoding", Array("{\"input\":\"\(dataURI(jpeg))\",\"encoding_format\":\"hex\"}".utf8), .badRequest),
                ("unknown model", Array("{\"model\":\"gpt\",\"input\":\"\(dataURI(jpeg))\"}".utf8), .notFound),
            ]
            for (label, body, status) in cases {
                let response = try await client.execute(
                    uri: "/v1/embeddings", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(bytes: body))
                #expect(response.status == status, "\(label)")
                let error = response.json["error"] as? [String: Any]
                #expect(error?["message"] is String, "\(label): OpenAI error shape")
                #expect(error?["type"] is String, "\(label)")
                try await expectStillServes(client, tiny)
            }
        }
    }

    @Test func hostileKServeInputs() async throws {
        let server = try TestServer()
        let tiny = server.tiny
        try await server.test { client in
            let jpeg = tiny.bytes("rgb_baseline.jpg")
            let b64 = Data(jpeg).base64EncodedString()
            let jsonCases: [(String, String, HTTPResponse.Status)] = [
                ("bad JSON", "{\"inputs\":", .badRequest),
                ("no inputs", "{}", .badRequest),
                ("wrong dtype", "{\"inputs\":[{\"name\":\"image\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[\"\(b64)\"]}]}", .badRequest),
                ("pixel dtype", "{\"inputs\":[{\"name\":\"pixel_values\",\"shape\":[1,3,224,224],\"datatype\":\"INT8\",\"data\":[1]}]}", .badRequest),
                ("wrong shape", "{\"inputs\":[{\"name\":\"pixel_values\",\"shape\":[1,3,32,32],\"datatype\":\"FP32\",\"data\":[1]}]}", .badRequest),
                ("short data", "{\"inputs\":[{\"name\":\"pixel_values\",\"shape\":[1,3,224,224],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}", .badRequest),
                ("count mismatch", "{\"inputs\":[{\"name\":\"image\",\"shape\":[2],\"datatype\":\"BYTES\",\"data\":[\"\(b64)\"]}]}", .badRequest),
                ("unknown input", "{\"inputs\":[{\"name\":\"text\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"x\"]}]}", .badRequest),
                ("unknown output", "{\"inputs\":[{\"name\":\"image\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"\(b64)\"]}],\"outputs\":[{\"name\":\"logits\"}]}", .badRequest),
                ("bad base64", "{\"inputs\":[{\"name\":\"image\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"%%%\"]}]}", .badRequest),
                ("bad priority", "{\"parameters\":{\"priority\":9},\"inputs\":[{\"name\":\"image\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"\(b64)\"]}]}", .badRequest),
            ]
            for (label, json, status) in jsonCases {
                let response = try await client.postJSON("/v2/models/oc-tiny/infer", json)
                #expect(response.status == status, "\(label): \(response.text)")
                #expect(response.json["error"] is String, "\(label): KServe error shape")
                try await expectStillServes(client, tiny)
            }
            let unknownModel = try await client.postJSON("/v2/models/other/infer", jsonCases[2].1)
            #expect(unknownModel.status == .notFound)

            // Binary lengths that overrun the body, or an element length that overruns its tensor.
            let blob = bytesTensor([jpeg])
            let overrun = "{\"inputs\":[{\"name\":\"image\",\"shape\":[1],\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":\(blob.count + 10)}}]}"
            var (body, headers) = binaryInferBody(header: overrun, blob: blob)
            var response = try await client.execute(uri: "/v2/models/oc-tiny/infer", method: .post, headers: headers, body: body)
            #expect(response.status == .badRequest, "binary_data_size past the body")

            var lying = blob
            lying[0] = 0xFF
            lying[1] = 0xFF
            let honest = "{\"inputs\":[{\"name\":\"image\",\"shape\":[1],\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":\(lying.count)}}]}"
            (body, headers) = binaryInferBody(header: honest, blob: lying)
            response = try await client.execute(uri: "/v2/models/oc-tiny/infer", method: .post, headers: headers, body: body)
            #expect(response.status == .badRequest, "element length past the tensor")

            (body, headers) = binaryInferBody(header: honest, blob: blob)
            headers[HTTPField.Name("Inference-Header-Content-Length")!] = String(body.readableBytes + 5)
            response = try await client.execute(uri: "/v2/models/oc-tiny/infer", method: .post, headers: headers, body: body)
            #expect(response.status == .badRequest, "header length past the body")

            let pixelHeader = "{\"inputs\":[{\"name\":\"pixel_values\",\"shape\":[1,3,224,224],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":12}}]}"
            (body, headers) = binaryInferBody(header: pixelHeader, blob: Array(repeating: 0, count: 12))
            response = try await client.execute(uri: "/v2/models/oc-tiny/infer", method: .post, headers: headers, body: body)
            #expect(response.status == .badRequest, "pixel bytes of the wrong length")

            let truncated = bytesTensor([Array(jpeg.prefix(jpeg.count / 3))])
            let truncatedHeader = "{\"inputs\":[{\"name\":\"image\",\"shape\":[1],\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":\(truncated.count)}}]}"
            (body, headers) = binaryInferBody(header: truncatedHeader, blob: truncated)
            response = try await client.execute(uri: "/v2/models/oc-tiny/infer", method: .post, headers: headers, body: body)
            #expect(response.status == .badRequest, "truncated JPEG")
            try await expectStillServes(client, tiny)
        }
    }

    @Test func embedRouteErrors() async throws {
        let server = try TestServer()
        let tiny = server.tiny
        try await server.test { client in
            let cases: [(String, [UInt8], HTTPResponse.Status)] = [
                ("image/png", [], .badRequest),
                ("image/png", pngHeader(width: 100_000, height: 100_000), .badRequest),
                ("image/jpeg", Array(tiny.bytes("rgb_progressive.jpg").prefix(300)), .badRequest),
                ("text/plain", Array("hi".utf8), .unsupportedMediaType),
                ("multipart/form-data; boundary=x", Array("garbage".utf8), .badRequest),
            ]
            for (type, body, status) in cases {
                let response = try await client.execute(
                    uri: "/embed", method: .post, headers: [.contentType: type], body: ByteBuffer(bytes: body))
                #expect(response.status == status, "\(type) \(body.count) bytes: \(response.text)")
                #expect(response.json["error"] is String)
            }
            try await expectStillServes(client, tiny)
        }
    }

    @Test func bodyOverTheLimitIs413() async throws {
        let server = try TestServer { _, http in http.maxBodySize = 4096 }
        let tiny = server.tiny
        try await server.test(.live) { client in
            let big = tiny.bytes("rgb_baseline.jpg")
            #expect(big.count > 4096)
            let response = try await client.execute(
                uri: "/embed", method: .post, headers: [.contentType: "image/jpeg"], body: ByteBuffer(bytes: big))
            #expect(response.status == .contentTooLarge)
            let openAI = try await client.postJSON("/v1/embeddings", "{\"input\":\"\(dataURI(big))\"}")
            #expect(openAI.status == .contentTooLarge)
            #expect((openAI.json["error"] as? [String: Any])?["message"] is String)
            let small = try await client.execute(
                uri: "/embed", method: .post, headers: [.contentType: "image/png"],
                body: ByteBuffer(bytes: tiny.bytes("tiny.png")))
            #expect(small.status == .ok)
        }
    }

    @Test func bearerTokenIsRequiredWhenConfigured() async throws {
        let server = try TestServer { _, http in http.apiKey = "s3cret" }
        let tiny = server.tiny
        try await server.test { client in
            let body = "{\"input\":\"\(dataURI(tiny.bytes("tiny.png"), mime: "image/png"))\"}"
            let missing = try await client.postJSON("/v1/embeddings", body)
            #expect(missing.status == .unauthorized)
            #expect((missing.json["error"] as? [String: Any])?["message"] is String)
            let wrong = try await client.postJSON("/v1/embeddings", body, headers: [.authorization: "Bearer nope"])
            #expect(wrong.status == .unauthorized)
            let kserve = try await client.execute(uri: "/v2/models/oc-tiny", method: .get)
            #expect(kserve.status == .unauthorized)
            #expect(kserve.json["error"] is String)
            #expect(try await client.execute(uri: "/v2/health/ready", method: .get).status == .ok)
            let right = try await client.postJSON("/v1/embeddings", body, headers: [.authorization: "Bearer s3cret"])
            #expect(right.status == .ok)
        }
    }

    @Test func priorityHeaderIsValidatedAndHonoured() async throws {
        let server = try TestServer()
        let tiny = server.tiny
        try await server.test { client in
            let body = "{\"input\":\"\(dataURI(tiny.bytes("rgb_baseline.jpg")))\"}"
            let priority = HTTPField.Name("x-priority")!
            for bad in ["high", "-1", "1.5"] {
                let response = try await client.postJSON("/v1/embeddings", body, headers: [priority: bad])
                #expect(response.status == .badRequest, "x-priority: \(bad)")
            }
            let urgent = try await client.postJSON("/v1/embeddings", body, headers: [priority: "1"])
            #expect(urgent.status == .ok)
            let embedding = try #require(((urgent.json["data"] as? [[String: Any]])?.first?["embedding"] as? [Double]))
            #expect(cosine(embedding.map(Float.init), tiny.reference("rgb_baseline.jpg")) >= 0.99999)
        }
    }

    @Test func unknownRouteIs404() async throws {
        let server = try TestServer()
        try await server.test { client in
            let response = try await client.execute(uri: "/v3/nothing", method: .get)
            #expect(response.status == .notFound)
        }
    }
}
