import Foundation

/// Merges a command's options from its command line, `CLIPSERVE_*` environment variables and a JSON
/// configuration file into one argument list for the command-line parser. Precedence: flag > env > file > default.
public enum ConfigResolver {
    /// Arguments that make the parser print help or other tool information; with them nothing is resolved.
    static let informationalArguments: Set<String> = [
        "-h", "-help", "--help", "--version", "--experimental-dump-help", "--generate-completion-script",
    ]

    /// Resolves `arguments` (those after the command's name) against `schema`.
    ///
    /// The file is `--config FILE` (or `--config=FILE`), else the `CLIPSERVE_CONFIG` variable, when the schema
    /// reads files. Environment variables of other options and commands are ignored; an empty variable counts as
    /// unset. Arguments after a `--` terminator are left alone.
    public static func resolve(
        arguments: [String], environment: [String: String], schema: ConfigSchema
    ) throws(ConfigError) -> ConfigResolution {
        let line = CommandLineScan(arguments, schema: schema)
        if line.helpRequested {
            return ConfigResolution(arguments: arguments, entries: [], configFile: nil, printRequested: false)
        }

        var configFile: String?
        var fileValues: [String: JSONValue] = [:]
        if schema.readsFiles {
            let variable = schema.configFileVariable
            if let path = line.configFile {
                configFile = path
                fileValues = try loadFile(path, fromVariable: nil, schema: schema)
            } else if let path = environment[variable], !path.isEmpty {
                configFile = path
                fileValues = try loadFile(path, fromVariable: variable, schema: schema)
            }
        }
        let environmentValues = try environmentValues(environment, schema: schema)

        var entries: [ConfigResolution.Entry] = []
        var inserted: [String] = []
        for option in schema.options {
            var layers: [(source: ConfigSource, value: JSONValue)] = []
            if let values = line.given[option.name] { layers.append((.flag, option.commandLineValue(values))) }
            if let value = environmentValues[option.name] { layers.append((.env, value)) }
            if let value = fileValues[option.name] { layers.append((.file, value)) }
            guard let first = layers.first else {
                entries.append(.init(option: option, value: nil, sources: []))
                continue
            }
            let used = option.accumulates ? layers : [first]
            let value: JSONValue
            if option.accumulates {
                value = .array(used.flatMap { layer -> [JSONValue] in
                    if case let .array(items) = layer.value { return items }
                    return [layer.value]
                })
            } else {
                value = first.value
            }
            entries.append(.init(option: option, value: value, sources: used.map(\.source)))
            for layer in used where layer.source != .flag {
                inserted += option.arguments(for: layer.value)
            }
        }

        var rewritten = arguments
        rewritten.insert(contentsOf: inserted, at: line.insertionIndex)
        return ConfigResolution(
            arguments: rewritten, entries: entries, configFile: configFile, printRequested: line.printRequested)
    }

    /// The non-empty variables of the schema's options, converted to their kinds.
    static func environmentValues(
        _ environment: [String: String], schema: ConfigSchema
    ) throws(ConfigError) -> [String: JSONValue] {
        var values: [String: JSONValue] = [:]
        for option in schema.options {
            let variable = schema.environmentVariable(for: option.name)
            guard let text = environment[variable], !text.isEmpty else { continue }
            guard let value = option.environmentValue(text) else {
                throw .invalidEnvironment(variable: variable, value: text, expected: option.environmentExpectation)
            }
            if case let .array(items) = value, items.isEmpty { continue }
            values[option.name] = value
        }
        return values
    }

    /// Reads and checks a configuration file: the set options' values by name (null values left out).
    static func loadFile(
        _ path: String, fromVariable variable: String?, schema: ConfigSchema
    ) throws(ConfigError) -> [String: JSONValue] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .unreadableFile(path: path, variable: variable, reason: "no such file")
        }
        guard !isDirectory.boolValue else {
            throw .unreadableFile(path: path, variable: variable, reason: "is a directory")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadableFile(path: path, variable: variable, reason: (error as NSError).localizedDescription)
        }
        return try values(fromFile: data, path: path, schema: schema)
    }

    /// The option values a configuration file's bytes hold; `path` only names the file in errors.
    public static func values(
        fromFile data: some Collection<UInt8>, path: String, schema: ConfigSchema
    ) throws(ConfigError) -> [String: JSONValue] {
        let document: JSONValue
        do {
            document = try JSONValue.parse(data)
        } catch {
            throw .malformedFile(path: path, reason: "JSON error at \(error)")
        }
        guard case let .object(members) = document else {
            throw .malformedFile(
                path: path,
                reason: "expected a JSON object of option names and values, found \(document.typeDescription)")
        }
        var values: [String: JSONValue] = [:]
        var seen: Set<String> = []
        var problems: [ConfigError.Problem] = []
        for member in members {
            let key = member.key
            if key.hasPrefix("_") || key == "$schema" { continue }
            guard seen.insert(key).inserted else {
                problems.append(.duplicateKey(key, line: member.line, column: member.column))
                continue
            }
            if key == ConfigSchema.configOption || key == ConfigSchema.printConfigOption {
                problems.append(.commandLineOnly(key, line: member.line, column: member.column))
                continue
            }
            guard let option = schema.option(named: key) else {
                problems.append(.unknownKey(
                    key, line: member.line, column: member.column, suggestion: schema.suggestion(for: key)))
                continue
            }
            if member.value == .null { continue }
            guard let value = option.fileValue(member.value) else {
                problems.append(.wrongType(
                    key, line: member.line, column: member.column, expected: option.expectedType,
                    got: describe(member.value)))
                continue
            }
            values[key] = value
        }
        guard problems.isEmpty else {
            throw .invalidFile(path: path, problems: problems, knownKeys: schema.options.map(\.name))
        }
        return values
    }

    /// A wrong value as an error message shows it: its type and, for scalars, the value.
    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case .array, .object: return value.typeDescription
        default: return "\(value.typeDescription) (\(value.jsonText))"
        }
    }
}

/// What a command line sets, as far as configuration cares: the schema's options, `--config`, `--print-config`,
/// a help request, and where inserted options must go (before any `--` terminator).
struct CommandLineScan {
    /// Option name → each occurrence's value (nil for a flag, or for an option missing its value).
    var given: [String: [String?]] = [:]
    var configFile: String?
    var printRequested = false
    var helpRequested = false
    var insertionIndex: Int

    init(_ arguments: [String], schema: ConfigSchema) {
        insertionIndex = arguments.count
        var index = 0
        while index < arguments.count {
            let token = arguments[index]
            index += 1
            if token == "--" {
                insertionIndex = index - 1
                break
            }
            if ConfigResolver.informationalArguments.contains(token) { helpRequested = true }
            guard token.hasPrefix("--"), token.count > 2 else { continue }
            let body = token.dropFirst(2)
            let name: String, inline: String?
            if let equals = body.firstIndex(of: "=") {
                name = String(body[..<equals])
                inline = String(body[body.index(after: equals)...])
            } else {
                name = String(body)
                inline = nil
            }
            // The value of `--name VALUE`: the next argument unless it is another option or the terminator.
            func takeValue() -> String? {
                if let inline { return inline }
                guard index < arguments.count, !arguments[index].hasPrefix("--") else { return nil }
                index += 1
                return arguments[index - 1]
            }
            if schema.readsFiles && name == ConfigSchema.configOption {
                if let path = takeValue() { configFile = path }
            } else if schema.readsFiles && name == ConfigSchema.printConfigOption {
                printRequested = true
            } else if let option = schema.option(named: name) {
                given[name, default: []].append(option.kind == .flag ? inline : takeValue())
            }
        }
    }
}

extension ConfigOption {
    /// The arguments that give `value` on a command line: `--name=value` (one per item for lists), `--name` for a
    /// true flag, nothing for a false one. The `=` form keeps values that start with a dash values; an empty value
    /// is a separate argument, which ArgumentParser reads as a value where it refuses `--name=`.
    func arguments(for value: JSONValue) -> [String] {
        switch value {
        case .null, .bool(false): return []
        case .bool(true): return ["--\(name)"]
        case let .string(text): return text.isEmpty ? ["--\(name)", ""] : ["--\(name)=\(text)"]
        case let .integer(number): return ["--\(name)=\(number)"]
        case let .number(number): return ["--\(name)=\(number)"]
        case let .array(items): return items.flatMap { arguments(for: $0) }
        case .object: return []
        }
    }

    /// A command-line or help-text value (a string) as the JSON value `--print-config` shows.
    public func value(fromArgument text: String) -> JSONValue {
        switch kind {
        case .string: return .string(text)
        case .integer: return Int(text).map(JSONValue.integer) ?? .string(text)
        case .number: return Double(text).map(JSONValue.number) ?? .string(text)
        case .flag: return .bool(text == "true")
        case .list: return .array([.string(text)])
        }
    }

    /// The value of every occurrence on the command line, as one JSON value (the last wins, lists collect).
    func commandLineValue(_ occurrences: [String?]) -> JSONValue {
        switch kind {
        case .flag: return .bool(true)
        case .list: return .array(occurrences.compactMap { $0.map(JSONValue.string) })
        default: return occurrences.last.flatMap { $0 }.map(value(fromArgument:)) ?? .null
        }
    }

    /// An environment variable's text as this option's value, or nil when it does not fit.
    func environmentValue(_ text: String) -> JSONValue? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        switch kind {
        case .string: return .string(text)
        case .integer: return Int(trimmed).map(JSONValue.integer)
        case .number: return Double(trimmed).flatMap { $0.isFinite ? JSONValue.number($0) : nil }
        case .flag:
            switch trimmed.lowercased() {
            case "1", "true", "yes", "on": return .bool(true)
            case "0", "false", "no", "off": return .bool(false)
            default: return nil
            }
        case let .list(separator):
            return .array(text.split(separator: separator).map { .string(String($0)) })
        }
    }

    /// What an environment variable must hold, for error messages.
    var environmentExpectation: String {
        switch kind {
        case .flag: "1, true, yes, on, 0, false, no or off"
        case let .list(separator): "items separated by '\(separator)'"
        default: expectedType
        }
    }

    /// A file's JSON value converted to this option's kind, or nil when it is the wrong type.
    func fileValue(_ value: JSONValue) -> JSONValue? {
        switch (kind, value) {
        case (.string, .string), (.integer, .integer), (.number, .number), (.flag, .bool): return value
        case let (.number, .integer(number)): return .number(Double(number))
        case (.list, .string): return .array([value])
        case let (.list, .array(items)):
            return items.allSatisfy { if case .string = $0 { true } else { false } } ? value : nil
        default: return nil
        }
    }
}
