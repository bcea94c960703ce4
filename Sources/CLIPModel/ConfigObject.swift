import Foundation

/// A JSON object from a config file with typed accessors whose errors name the file and key.
struct ConfigObject {
    let file: String
    /// Dotted path of this object inside the file, for messages ("" at the top).
    let path: String
    let values: [String: Any]

    /// Parses `url` as a JSON object.
    static func load(_ url: URL) throws -> ConfigObject {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ModelLoadError.badConfig(file: url.path, detail: "cannot read: \(error.localizedDescription)")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ModelLoadError.badConfig(file: url.path, detail: "not valid JSON")
        }
        guard let object = json as? [String: Any] else {
            throw ModelLoadError.badConfig(file: url.path, detail: "top level is not a JSON object")
        }
        return ConfigObject(file: url.path, path: "", values: object)
    }

    private func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ key: String, _ detail: String) -> ModelLoadError {
        .badConfig(file: file, detail: "'\(keyPath(key))' \(detail)")
    }

    /// Whether `key` is present with a non-null value.
    func has(_ key: String) -> Bool {
        guard let value = values[key] else { return false }
        return !(value is NSNull)
    }

    /// Nested object `key`, or nil when absent or null.
    func object(_ key: String) throws -> ConfigObject? {
        guard has(key) else { return nil }
        guard let object = values[key] as? [String: Any] else { throw error(key, "is not an object") }
        return ConfigObject(file: file, path: keyPath(key), values: object)
    }

    func int(_ key: String) throws -> Int? {
        guard has(key) else { return nil }
        guard let n = Self.exactInt(values[key]!) else { throw error(key, "is not an integer: \(values[key]!)") }
        return n
    }

    func int(_ key: String, default fallback: Int) throws -> Int { try int(key) ?? fallback }

    func double(_ key: String) throws -> Double? {
        guard has(key) else { return nil }
        if let n = values[key] as? Double { return n }
        if let n = values[key] as? Int { return Double(n) }
        if let n = values[key] as? NSNumber { return n.doubleValue }
        throw error(key, "is not a number: \(values[key]!)")
    }

    func bool(_ key: String) throws -> Bool? {
        guard has(key) else { return nil }
        if let b = values[key] as? Bool { return b }
        throw error(key, "is not a boolean: \(values[key]!)")
    }

    func string(_ key: String) throws -> String? {
        guard has(key) else { return nil }
        guard let s = values[key] as? String else { throw error(key, "is not a string: \(values[key]!)") }
        return s
    }

    func floats(_ key: String, count: Int) throws -> [Float]? {
        guard has(key) else { return nil }
        guard let items = values[key] as? [Any], items.count == count else {
            throw error(key, "is not a list of \(count) numbers")
        }
        return try items.map { item in
            if let n = item as? Double { return Float(n) }
            if let n = item as? Int { return Float(n) }
            if let n = item as? NSNumber { return n.floatValue }
            throw error(key, "is not a list of \(count) numbers")
        }
    }

    /// A side length given as `n` or `[n, n]`; non-square pairs are unsupported.
    func squareSize(_ key: String) throws -> Int? {
        guard has(key) else { return nil }
        if let n = Self.exactInt(values[key]!) { return n }
        if let pair = values[key] as? [Any], pair.count == 2, let a = Self.exactInt(pair[0]), let b = Self.exactInt(pair[1]) {
            guard a == b else {
                throw ModelLoadError.unsupportedFeature(file: file, feature: "non-square \(keyPath(key)) [\(a), \(b)]")
            }
            return a
        }
        throw error(key, "is not an integer or a pair of integers")
    }

    /// Keys of this object that are not in `known`.
    func unknownKeys(_ known: Set<String>) -> [String] {
        values.keys.filter { !known.contains($0) }.sorted()
    }

    private static func exactInt(_ value: Any) -> Int? {
        if let n = value as? Int { return n }
        if let d = value as? Double, d.rounded() == d, abs(d) < 9.0e15 { return Int(d) }
        return nil
    }
}
