import Foundation
import HTTPTypes
import Hummingbird
import InferenceRuntime

/// OpenAI's `POST /v1/embeddings` body, with infinity's `modality` extension.
struct OpenAIEmbeddingRequest: Decodable {
    enum Input: Decodable {
        case one(String)
        case many([String])

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                self = .one(text)
            } else if let list = try? container.decode([String].self) {
                self = .many(list)
            } else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "input must be a string or a list of strings (images as base64 or data URIs)")
            }
        }

        var items: [String] {
            switch self {
            case let .one(text): [text]
            case let .many(list): list
            }
        }
    }

    var input: Input
    var model: String?
    var encoding_format: String?
    var modality: String?
    var dimensions: Int?
    var user: String?
}

extension EmbeddingHandlers {
    func addOpenAIRoutes(to router: Router<ServeRequestContext>) {
        for path in ["/v1/embeddings", "/embeddings"] {
            router.post(RouterPath(path)) { request, context in try await openAIEmbeddings(request, context: context) }
        }
        for path in ["/v1/models", "/models"] {
            router.get(RouterPath(path)) { _, _ in
                try jsonResponse([
                    "object": "list",
                    "data": [["id": configuration.modelName, "object": "model", "created": 0, "owned_by": "clipserve"]],
                ])
            }
        }
    }

    func openAIEmbeddings(_ request: Request, context: ServeRequestContext) async throws -> Response {
        try requireReady()
        let body = try await collectBody(request)
        let parsed: OpenAIEmbeddingRequest
        do {
            parsed = try JSONDecoder().decode(OpenAIEmbeddingRequest.self, from: Data(buffer: body))
        } catch let error as DecodingError {
            throw APIError.from(error)
        } catch {
            throw APIError.badRequest("invalid JSON body: \(error)")
        }
        if let model = parsed.model, !model.isEmpty, model != configuration.modelName {
            throw APIError(
                .notFound, "model '\(model)' does not exist; this server serves '\(configuration.modelName)'",
                code: "model_not_found")
        }
        let base64Output: Bool
        switch parsed.encoding_format ?? "float" {
        case "float": base64Output = false
        case "base64": base64Output = true
        case let other: throw APIError.badRequest("encoding_format must be 'float' or 'base64', not '\(other)'")
        }
        if let modality = parsed.modality, modality != "image" {
            throw APIError.badRequest("modality '\(modality)' is not served; this server embeds images only")
        }
        let dimension = runtime.spec.embedDim
        if let dimensions = parsed.dimensions, dimensions != 0, dimensions != dimension {
            throw APIError.badRequest("dimensions must be \(dimension) (the model's embedding size) when given")
        }
        let items = parsed.input.items
        guard !items.isEmpty else { throw APIError.badRequest("input is empty") }
        let limit = runtime.configuration.maxImagesPerRequest
        guard items.count <= limit else {
            throw APIError.badRequest("input has \(items.count) images; at most \(limit) are allowed")
        }
        let images = try items.enumerated().map { index, item in
            try ImageString.decode(item, index: index)
        }
        let options = try Self.headerOptions(request.headers)
        let result = try await embedding(context) { [runtime] in
            try await runtime.embed(images: images, options: options)
        }

        var json = "{\"object\":\"list\",\"data\":["
        json.reserveCapacity(result.count * (base64Output ? dimension * 6 : dimension * 12) + 256)
        for i in 0..<result.count {
            if i > 0 { json += "," }
            json += "{\"object\":\"embedding\",\"index\":\(i),\"embedding\":"
            let embedding = result.embedding(i)
            if base64Output {
                json += "\"" + FloatCoding.base64(embedding) + "\""
            } else {
                FloatCoding.appendJSONArray(embedding, to: &json)
            }
            json += "}"
        }
        json += "],\"model\":" + FloatCoding.jsonString(configuration.modelName)
        json += ",\"usage\":{\"prompt_tokens\":0,\"total_tokens\":0}}"
        var headers = Self.timingHeaders(result)
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}

/// Images sent as strings: `data:image/...;base64,...` URIs or bare base64.
enum ImageString {
    static func decode(_ item: String, index: Int) throws -> [UInt8] {
        var payload = Substring(item)
        if item.hasPrefix("data:") {
            guard let comma = item.firstIndex(of: ",") else {
                throw APIError.badRequest("input \(index): data URI without a comma")
            }
            let header = item[item.index(item.startIndex, offsetBy: 5)..<comma]
            guard header.split(separator: ";").contains("base64") else {
                throw APIError.badRequest("input \(index): only base64 data URIs are accepted")
            }
            if let mime = header.split(separator: ";").first, !mime.isEmpty, !mime.hasPrefix("image/"),
                mime != "application/octet-stream"
            {
                throw APIError.badRequest("input \(index): data URI of type \(mime) is not an image")
            }
            payload = item[item.index(after: comma)...]
        } else if item.hasPrefix("http://") || item.hasPrefix("https://") {
            throw APIError.badRequest("input \(index): image URLs are not fetched; send base64 or a data URI")
        }
        guard let bytes = Base64.decode(payload) else {
            throw APIError.badRequest(
                "input \(index): invalid base64; images are sent as base64 or data:image/...;base64, URIs (text is not embedded)")
        }
        guard !bytes.isEmpty else { throw APIError.badRequest("input \(index): empty image") }
        return bytes
    }
}

/// Strict base64 (standard or URL-safe alphabet, padding optional, whitespace ignored).
enum Base64 {
    static func decode(_ text: Substring) -> [UInt8]? {
        var cleaned = String()
        cleaned.reserveCapacity(text.utf8.count + 3)
        for scalar in text.unicodeScalars {
            switch scalar {
            case " ", "\n", "\r", "\t": continue
            case "-": cleaned.unicodeScalars.append("+")
            case "_": cleaned.unicodeScalars.append("/")
            default: cleaned.unicodeScalars.append(scalar)
            }
        }
        let remainder = cleaned.utf8.count % 4
        if remainder == 1 { return nil }
        if remainder > 0 { cleaned += String(repeating: "=", count: 4 - remainder) }
        return Data(base64Encoded: cleaned).map { [UInt8]($0) }
    }
}

/// Float arrays on the wire.
enum FloatCoding {
    /// Little-endian float32 bytes, base64 (OpenAI's `encoding_format: "base64"`).
    static func base64(_ values: ArraySlice<Float>) -> String {
        littleEndianBytes(values).base64EncodedString()
    }

    /// Little-endian float32 bytes.
    static func littleEndianBytes(_ values: ArraySlice<Float>) -> Data {
        var data = Data(capacity: values.count * 4)
        for value in values {
            withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
        }
        return data
    }

    /// `[v0,v1,...]` with the shortest representation that reads back as the same Float.
    static func appendJSONArray(_ values: ArraySlice<Float>, to json: inout String) {
        json += "["
        var first = true
        for value in values {
            if !first { json += "," }
            first = false
            json += value.isFinite ? value.description : "0"
        }
        json += "]"
    }

    /// A JSON string literal.
    static func jsonString(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text])) ?? Data("[\"\"]".utf8)
        let array = String(decoding: data, as: UTF8.self)
        return String(array.dropFirst().dropLast())
    }
}

/// A 200 JSON response from a JSON-serialisable object.
func jsonResponse(_ object: Any, headers: HTTPFields = [:]) throws -> Response {
    let data = try JSONSerialization.data(withJSONObject: object)
    var fields = headers
    fields[.contentType] = "application/json"
    return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
