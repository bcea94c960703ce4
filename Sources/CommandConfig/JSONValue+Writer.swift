extension JSONValue {
    /// Compact JSON text.
    public var jsonText: String {
        switch self {
        case .null: "null"
        case let .bool(value): value ? "true" : "false"
        case let .integer(value): String(value)
        case let .number(value): value.isFinite ? "\(value)" : "null"
        case let .string(value): Self.quoted(value)
        case let .array(values): "[" + values.map(\.jsonText).joined(separator: ", ") + "]"
        case let .object(members):
            "{" + members.map { Self.quoted($0.key) + ": " + $0.value.jsonText }.joined(separator: ", ") + "}"
        }
    }

    /// JSON text with each object member on its own line, indented by two spaces per level; arrays stay on one line.
    public func prettyPrinted(indent: Int = 0) -> String {
        guard case let .object(members) = self, !members.isEmpty else { return jsonText }
        let inner = String(repeating: " ", count: indent + 2)
        let lines = members.map { inner + Self.quoted($0.key) + ": " + $0.value.prettyPrinted(indent: indent + 2) }
        return "{\n" + lines.joined(separator: ",\n") + "\n" + String(repeating: " ", count: indent) + "}"
    }

    /// A JSON string literal.
    public static func quoted(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
