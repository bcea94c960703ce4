import Foundation
import HTTPTypes
import Hummingbird
import InferenceRuntime

/// `POST /embed`: the body is one image (Content-Type image/* or application/octet-stream) or a multipart form of
/// image files; answers `{"model", "dimensions", "embeddings": [[...], ...]}` in file order.
extension EmbeddingHandlers {
    func addEmbedRoutes(to router: Router<ServeRequestContext>) {
        router.post("/embed") { request, context in try await embed(request, context: context) }
    }

    func embed(_ request: Request, context: ServeRequestContext) async throws -> Response {
        try requireReady()
        let contentType = request.headers[.contentType] ?? ""
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let images: [[UInt8]]
        if mediaType.hasPrefix("image/") || mediaType == "application/octet-stream" {
            let body = try await collectBody(request)
            guard body.readableBytes > 0 else { throw APIError.badRequest("empty image body") }
            images = [Array(body.readableBytesView)]
        } else if mediaType == "multipart/form-data" {
            guard let boundary = Multipart.boundary(contentType) else {
                throw APIError.badRequest("multipart/form-data without a boundary")
            }
            let body = try await collectBody(request)
            images = try Multipart.parts(Array(body.readableBytesView), boundary: boundary)
                .filter { $0.filename != nil || $0.contentType?.hasPrefix("image/") == true }
                .map(\.body)
            guard !images.isEmpty else { throw APIError.badRequest("multipart form holds no image file") }
        } else {
            throw APIError(
                .unsupportedMediaType,
                "Content-Type must be image/*, application/octet-stream or multipart/form-data, not '\(contentType)'")
        }
        let limit = runtime.configuration.maxImagesPerRequest
        guard images.count <= limit else {
            throw APIError.badRequest("request has \(images.count) images; at most \(limit) are allowed")
        }
        let options = try Self.headerOptions(request.headers)
        let result = try await embedding(context) { [runtime] in
            try await runtime.embed(images: images, options: options)
        }
        try Self.checkFinite(result)
        var json = "{\"model\":" + FloatCoding.jsonString(configuration.modelName)
        json += ",\"dimensions\":\(result.dimension),\"embeddings\":["
        for i in 0..<result.count {
            if i > 0 { json += "," }
            FloatCoding.appendJSONArray(result.embedding(i), to: &json)
        }
        json += "]}"
        var headers = Self.timingHeaders(result)
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}

/// Just enough of RFC 7578 to read the files of a form.
enum Multipart {
    struct Part {
        var name: String?
        var filename: String?
        var contentType: String?
        var body: [UInt8]
    }

    static func boundary(_ contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.trimmingCharacters(in: .whitespaces)
            guard pair.lowercased().hasPrefix("boundary=") else { continue }
            var value = String(pair.dropFirst("boundary=".count))
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value.isEmpty || value.count > 200 ? nil : value
        }
        return nil
    }

    static func parts(_ body: [UInt8], boundary: String) throws -> [Part] {
        let delimiter = Array(("--" + boundary).utf8)
        var positions: [Int] = []
        var searchFrom = 0
        while let found = find(delimiter, in: body, from: searchFrom) {
            positions.append(found)
            searchFrom = found + delimiter.count
        }
        guard positions.count >= 2 else { throw APIError.badRequest("malformed multipart body: boundary not found") }
        var parts: [Part] = []
        for (start, end) in zip(positions, positions.dropFirst()) {
            var from = start + delimiter.count
            // Skip the CRLF after the delimiter line.
            if from + 1 < body.count, body[from] == 13, body[from + 1] == 10 { from += 2 }
            var to = end
            if to >= 2, body[to - 2] == 13, body[to - 1] == 10 { to -= 2 }
            guard from <= to else { throw APIError.badRequest("malformed multipart part") }
            let chunk = Array(body[from..<to])
            guard let split = find([13, 10, 13, 10], in: chunk, from: 0) else {
                throw APIError.badRequest("malformed multipart part: no blank line after its headers")
            }
            guard let headerText = String(validating: chunk[0..<split], as: UTF8.self) else {
                throw APIError.badRequest("multipart part headers are not UTF-8")
            }
            var part = Part(body: Array(chunk[(split + 4)...]))
            for line in headerText.split(separator: "\r\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let field = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if field == "content-type" { part.contentType = value.lowercased() }
                if field == "content-disposition" {
                    part.name = parameter("name", in: value)
                    part.filename = parameter("filename", in: value)
                }
            }
            parts.append(part)
        }
        return parts
    }

    private static func parameter(_ key: String, in value: String) -> String? {
        for item in value.split(separator: ";").dropFirst() {
            let pair = item.trimmingCharacters(in: .whitespaces)
            guard pair.lowercased().hasPrefix(key + "=") else { continue }
            var raw = String(pair.dropFirst(key.count + 1))
            if raw.hasPrefix("\""), raw.hasSuffix("\""), raw.count >= 2 { raw = String(raw.dropFirst().dropLast()) }
            return raw
        }
        return nil
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, from <= haystack.count - needle.count else { return nil }
        var i = from
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == needle[0] {
                var match = true
                for j in 1..<needle.count where haystack[i + j] != needle[j] {
                    match = false
                    break
                }
                if match { return i }
            }
            i += 1
        }
        return nil
    }
}
