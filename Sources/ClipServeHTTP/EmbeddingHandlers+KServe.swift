import Foundation
import HTTPTypes
import Hummingbird
import InferenceRuntime

/// KServe v2 / Open Inference Protocol as Triton serves it, with the binary tensor data and schedule-policy
/// extensions. Inputs: `image` (BYTES [N], encoded images) or `pixel_values` (FP32 [N,3,S,S]); output
/// `image_embeds` (FP32 [N,D]).
extension EmbeddingHandlers {
    static var imageInput: String { "image" }
    static var pixelInput: String { "pixel_values" }
    static var embedOutput: String { "image_embeds" }

    func addKServeRoutes(to router: Router<ServeRequestContext>) {
        router.get("/v2") { _, _ in
            try jsonResponse([
                "name": "clipserve", "version": "1.0.0",
                "extensions": ["binary_tensor_data", "schedule_policy", "parameters"],
            ])
        }
        router.get("/v2/health/live") { _, _ in Response(status: .ok) }
        router.get("/v2/health/ready") { _, _ in
            runtime.readiness == .ready ? Response(status: .ok) : Response(status: .serviceUnavailable)
        }
        for suffix in ["", "/versions/:version"] {
            let base = "/v2/models/:name" + suffix
            router.get(RouterPath(base)) { _, context in
                try checkModel(context)
                return try jsonResponse(modelMetadata())
            }
            router.get(RouterPath(base + "/ready")) { _, context in
                try checkModel(context)
                guard runtime.readiness == .ready else {
                    throw APIError(.badRequest, "Model version not ready")
                }
                return Response(status: .ok)
            }
            router.post(RouterPath(base + "/infer")) { request, context in
                try checkModel(context)
                return try await infer(request, context: context)
            }
        }
    }

    func checkModel(_ context: ServeRequestContext) throws {
        let name = context.parameters.get("name") ?? ""
        guard name == configuration.modelName else {
            throw APIError(.notFound, "Request for unknown model: '\(name)' is not found")
        }
        if let version = context.parameters.get("version"), version != configuration.modelVersion {
            throw APIError(.notFound, "Request for unknown model: '\(name)' version \(version) is not found")
        }
    }

    func modelMetadata() -> [String: Any] {
        let spec = runtime.spec
        return [
            "name": configuration.modelName, "versions": [configuration.modelVersion], "platform": "clipserve",
            "inputs": [
                ["name": Self.imageInput, "datatype": "BYTES", "shape": [-1]],
                ["name": Self.pixelInput, "datatype": "FP32", "shape": [-1, 3, spec.imageSize, spec.imageSize]],
            ],
            "outputs": [["name": Self.embedOutput, "datatype": "FP32", "shape": [-1, spec.embedDim]]],
        ]
    }

    func infer(_ request: Request, context: ServeRequestContext) async throws -> Response {
        try requireReady()
        if let encoding = request.headers[.contentEncoding], encoding != "identity" {
            throw APIError.badRequest("Content-Encoding \(encoding) is not supported")
        }
        let body = try await collectBody(request)
        let bytes = body.readableBytesView
        var headerLength: Int?
        if let field = request.headers[.inferenceHeaderContentLength] {
            guard let value = Int(field.trimmingCharacters(in: .whitespaces)), value >= 0, value <= bytes.count else {
                throw APIError.badRequest(
                    "Inference-Header-Content-Length '\(field)' is not a length within the \(bytes.count)-byte body")
            }
            headerLength = value
        }
        if headerLength == 0 {
            return try await rawBinaryInfer(
                Array(bytes), options: Self.headerOptions(request.headers), context: context)
        }
        let jsonEnd = bytes.startIndex + (headerLength ?? bytes.count)
        let header = Data(bytes[bytes.startIndex..<jsonEnd])
        let binary = bytes[jsonEnd...]
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: header)
        } catch {
            throw APIError.badRequest("failed to parse the request JSON: \(error.localizedDescription)")
        }
        guard let json = object as? [String: Any] else { throw APIError.badRequest("request JSON must be an object") }
        let parameters = json["parameters"] as? [String: Any] ?? [:]
        let options = try scheduleOptions(parameters, headers: request.headers)

        guard let inputs = json["inputs"] as? [[String: Any]], !inputs.isEmpty else {
            throw APIError.badRequest("request must have an 'inputs' array")
        }
        guard inputs.count == 1 else {
            throw APIError.badRequest(
                "expected exactly one input, '\(Self.imageInput)' or '\(Self.pixelInput)'; got \(inputs.count)")
        }
        let input = inputs[0]
        guard let name = input["name"] as? String else { throw APIError.badRequest("input without a 'name'") }
        guard let datatype = input["datatype"] as? String else {
            throw APIError.badRequest("input '\(name)' has no 'datatype'")
        }
        guard let shape = (input["shape"] as? [Any])?.map({ ($0 as? NSNumber)?.intValue ?? -1 }), !shape.isEmpty,
            shape.allSatisfy({ $0 >= 0 })
        else {
            throw APIError.badRequest("input '\(name)' needs a 'shape' of non-negative integers")
        }
        let inputParameters = input["parameters"] as? [String: Any] ?? [:]
        var blob: ArraySlice<UInt8>?
        if let size = inputParameters["binary_data_size"] {
            guard let size = (size as? NSNumber)?.intValue, size >= 0 else {
                throw APIError.badRequest("input '\(name)': binary_data_size must be a non-negative integer")
            }
            guard size == binary.count else {
                throw APIError.badRequest(
                    "input '\(name)': binary_data_size \(size) does not match the \(binary.count) bytes after the JSON header")
            }
            blob = ArraySlice(binary)
        } else if !binary.isEmpty {
            throw APIError.badRequest("\(binary.count) unexpected bytes after the JSON header")
        }
        let outputBinary = try outputsWantBinary(json, default: parameters["binary_data_output"] as? Bool ?? false)

        let result: EmbeddingResult
        switch name {
        case Self.imageInput:
            guard datatype == "BYTES" else {
                throw APIError.badRequest("input '\(name)' must have datatype BYTES, not \(datatype)")
            }
            guard shape.count == 1 || (shape.count == 2 && shape[1] == 1) else {
                throw APIError.badRequest("input '\(name)' must have shape [N] (or [N,1]), not \(shape)")
            }
            let count = shape[0]
            let images: [[UInt8]]
            if let blob {
                images = try Self.splitBytesTensor(blob, count: count, name: name)
            } else {
                images = try Self.jsonBytesTensor(input["data"], count: count, name: name)
            }
            try checkImageCount(images.count)
            result = try await embedding(context) { [runtime] in
                try await runtime.embed(images: images, options: options)
            }
        case Self.pixelInput:
            guard datatype == "FP32" else {
                throw APIError.badRequest("input '\(name)' must have datatype FP32, not \(datatype)")
            }
            let side = runtime.spec.imageSize
            guard shape.count == 4, shape[1] == 3, shape[2] == side, shape[3] == side else {
                throw APIError.badRequest("input '\(name)' must have shape [N,3,\(side),\(side)], not \(shape)")
            }
            let count = shape[0]
            try checkImageCount(count)
            let expected = count * 3 * side * side
            var pixels: [Float]
            if let blob {
                guard blob.count == expected * 4 else {
                    throw APIError.badRequest(
                        "input '\(name)': \(blob.count) bytes of binary data, expected \(expected * 4) for shape \(shape)")
                }
                pixels = [Float](repeating: 0, count: expected)
                blob.withUnsafeBytes { raw in pixels.withUnsafeMutableBytes { $0.copyMemory(from: raw) } }
                for i in pixels.indices { pixels[i] = Float(bitPattern: UInt32(littleEndian: pixels[i].bitPattern)) }
            } else {
                pixels = try Self.jsonFloats(input["data"], name: name)
                guard pixels.count == expected else {
                    throw APIError.badRequest(
                        "input '\(name)': \(pixels.count) values, expected \(expected) for shape \(shape)")
                }
            }
            guard pixels.allSatisfy(\.isFinite) else {
                throw APIError.badRequest("input '\(name)' contains NaN or infinite values")
            }
            result = try await embedding(context) { [runtime, pixels] in
                try await runtime.embed(pixels: pixels, count: count, options: options)
            }
        default:
            throw APIError.badRequest(
                "unexpected inference input '\(name)'; expected '\(Self.imageInput)' or '\(Self.pixelInput)'")
        }
        try Self.checkFinite(result)
        return try inferResponse(result, id: json["id"] as? String, binary: outputBinary)
    }

    /// Raw binary request (`Inference-Header-Content-Length: 0`): the body is one encoded image.
    private func rawBinaryInfer(_ body: [UInt8], options: RequestOptions, context: ServeRequestContext) async throws -> Response {
        var image = body
        if body.count >= 4 {
            let length = Int(UInt32(body[0]) | UInt32(body[1]) << 8 | UInt32(body[2]) << 16 | UInt32(body[3]) << 24)
            if length == body.count - 4 { image = Array(body[4...]) }
        }
        guard !image.isEmpty else { throw APIError.badRequest("empty raw binary request") }
        let result = try await embedding(context) { [runtime, image] in
            try await runtime.embed(images: [image], options: options)
        }
        try Self.checkFinite(result)
        return try inferResponse(result, id: nil, binary: true)
    }

    private func checkImageCount(_ count: Int) throws {
        let limit = runtime.configuration.maxImagesPerRequest
        guard count >= 1 else { throw APIError.badRequest("batch dimension must be at least 1") }
        guard count <= limit else { throw APIError.badRequest("request has \(count) images; at most \(limit) are allowed") }
    }

    /// The `x-priority` header's options, overridden by the request's own `parameters`.
    private func scheduleOptions(_ parameters: [String: Any], headers: HTTPFields) throws -> RequestOptions {
        var options = try Self.headerOptions(headers)
        if let value = parameters["priority"] {
            guard let priority = (value as? NSNumber)?.intValue, priority >= 0 else {
                throw APIError.badRequest("parameters.priority must be a non-negative integer")
            }
            options.priority = priority
        }
        if let value = parameters["timeout"] {
            guard let micros = (value as? NSNumber)?.int64Value, micros >= 0 else {
                throw APIError.badRequest("parameters.timeout must be a non-negative integer (microseconds)")
            }
            if micros > 0 { options.timeout = .microseconds(micros) }
        }
        return options
    }

    private func outputsWantBinary(_ json: [String: Any], default binary: Bool) throws -> Bool {
        guard let outputs = json["outputs"] else { return binary }
        guard let list = outputs as? [[String: Any]] else { throw APIError.badRequest("'outputs' must be an array") }
        var wanted = binary
        for output in list {
            guard let name = output["name"] as? String, name == Self.embedOutput else {
                throw APIError.badRequest(
                    "unexpected inference output '\(output["name"] ?? "")'; the model has '\(Self.embedOutput)'")
            }
            let parameters = output["parameters"] as? [String: Any] ?? [:]
            if parameters["classification"] != nil {
                throw APIError.badRequest("classification output is not supported")
            }
            if let flag = parameters["binary_data"] as? Bool { wanted = flag }
        }
        return wanted
    }

    private func inferResponse(_ result: EmbeddingResult, id: String?, binary: Bool) throws -> Response {
        var output: [String: Any] = [
            "name": Self.embedOutput, "datatype": "FP32", "shape": [result.count, result.dimension],
        ]
        var blob: Data?
        if binary {
            let bytes = FloatCoding.littleEndianBytes(result.embeddings[...])
            output["parameters"] = ["binary_data_size": bytes.count]
            blob = bytes
        } else {
            output["data"] = result.embeddings.map { Double($0) }
        }
        var object: [String: Any] = [
            "model_name": configuration.modelName, "model_version": configuration.modelVersion, "outputs": [output],
        ]
        if let id { object["id"] = id }
        let header = try JSONSerialization.data(withJSONObject: object)
        var headers = Self.timingHeaders(result)
        var buffer = ByteBuffer(bytes: header)
        if let blob {
            headers[.inferenceHeaderContentLength] = String(header.count)
            headers[.contentType] = "application/octet-stream"
            buffer.writeBytes(blob)
        } else {
            headers[.contentType] = "application/json"
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: buffer))
    }

    static func checkFinite(_ result: EmbeddingResult) throws {
        guard result.embeddings.allSatisfy(\.isFinite) else {
            throw APIError(.internalServerError, "the engine produced non-finite values")
        }
    }

    /// A BYTES tensor in binary form: `count` elements of little-endian u32 length + bytes, nothing left over.
    static func splitBytesTensor(_ blob: ArraySlice<UInt8>, count: Int, name: String) throws -> [[UInt8]] {
        var elements: [[UInt8]] = []
        var offset = blob.startIndex
        while offset < blob.endIndex {
            guard blob.endIndex - offset >= 4 else {
                throw APIError.badRequest("input '\(name)': truncated BYTES element length at byte \(offset - blob.startIndex)")
            }
            let length = Int(UInt32(blob[offset]) | UInt32(blob[offset + 1]) << 8 | UInt32(blob[offset + 2]) << 16
                | UInt32(blob[offset + 3]) << 24)
            offset += 4
            guard length <= blob.endIndex - offset else {
                throw APIError.badRequest(
                    "input '\(name)': BYTES element \(elements.count) claims \(length) bytes, only \(blob.endIndex - offset) remain")
            }
            elements.append(Array(blob[offset..<(offset + length)]))
            offset += length
            guard elements.count <= count else { break }
        }
        guard elements.count == count else {
            throw APIError.badRequest("input '\(name)': binary data holds \(elements.count) elements, shape says \(count)")
        }
        return elements
    }

    /// A BYTES tensor in JSON: strings holding base64 or data URIs (or `{"b64": ...}` objects), flat or nested.
    static func jsonBytesTensor(_ data: Any?, count: Int, name: String) throws -> [[UInt8]] {
        guard let data else { throw APIError.badRequest("input '\(name)' has neither 'data' nor binary_data_size") }
        var strings: [String] = []
        func walk(_ value: Any) throws {
            switch value {
            case let text as String: strings.append(text)
            case let object as [String: Any]:
                guard let text = object["b64"] as? String else {
                    throw APIError.badRequest("input '\(name)': BYTES elements must be strings")
                }
                strings.append(text)
            case let list as [Any]: for element in list { try walk(element) }
            default: throw APIError.badRequest("input '\(name)': BYTES elements must be base64 strings")
            }
        }
        try walk(data)
        guard strings.count == count else {
            throw APIError.badRequest("input '\(name)': \(strings.count) elements, shape says \(count)")
        }
        return try strings.enumerated().map { try ImageString.decode($1, index: $0) }
    }

    /// FP32 values in JSON, flat or nested.
    static func jsonFloats(_ data: Any?, name: String) throws -> [Float] {
        guard let data else { throw APIError.badRequest("input '\(name)' has neither 'data' nor binary_data_size") }
        var values: [Float] = []
        func walk(_ value: Any) throws {
            if let list = value as? [Any] {
                for element in list { try walk(element) }
            } else if let number = value as? NSNumber, !(value is Bool) {
                values.append(number.floatValue)
            } else {
                throw APIError.badRequest("input '\(name)': FP32 data must be numbers")
            }
        }
        try walk(data)
        return values
    }
}
