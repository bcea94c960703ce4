/// Where an option's value came from. Precedence runs flag > env > file > default.
public enum ConfigSource: String, Equatable, Sendable {
    case flag
    case env
    case file
    case `default`
}

/// A command line rewritten so that the environment's and the configuration file's values are on it, and the
/// effective value and source of every configurable option.
public struct ConfigResolution: Equatable, Sendable {
    /// The effective value of one option.
    public struct Entry: Equatable, Sendable {
        public var option: ConfigOption
        /// The value; nil when no source sets it and the command's own default applies.
        public var value: JSONValue?
        /// The sources the value came from, highest first: one, several for an accumulating list, none for the
        /// command's default.
        public var sources: [ConfigSource]

        /// `flag`, `env`, `file`, `default`, or sources joined by `+` for an accumulating list.
        public var sourceDescription: String {
            sources.isEmpty ? ConfigSource.default.rawValue : sources.map(\.rawValue).joined(separator: "+")
        }
    }

    /// The arguments to parse: the original ones with `--name=value` for every option set by the environment or
    /// the file inserted before any `--` terminator (after the command line's own values, so accumulating lists
    /// keep the precedence order).
    public var arguments: [String]
    /// One entry per schema option, in schema order (empty when help was asked for and nothing was resolved).
    public var entries: [Entry]
    /// The configuration file read, if any.
    public var configFile: String?
    /// `--print-config` was given.
    public var printRequested: Bool

    public init(arguments: [String], entries: [Entry], configFile: String?, printRequested: Bool) {
        self.arguments = arguments
        self.entries = entries
        self.configFile = configFile
        self.printRequested = printRequested
    }

    /// The entry of the option called `name`.
    public func entry(_ name: String) -> Entry? { entries.first { $0.option.name == name } }

    /// Where the value of `--name` came from, when it came from the environment or the file, in words
    /// (`CLIPSERVE_PORT`, `config file serve.json`); nil for the command line and defaults.
    public func origin(of name: String, schema: ConfigSchema) -> String? {
        guard let entry = entry(name) else { return nil }
        let described = entry.sources.compactMap { source -> String? in
            switch source {
            case .env: schema.environmentVariable(for: name)
            case .file: configFile.map { "config file \($0)" }
            case .flag, .default: nil
            }
        }
        return described.isEmpty ? nil : described.joined(separator: " and ")
    }

    /// The effective configuration as a JSON object that is itself a valid configuration file: every option with
    /// its value (`defaults`, by option name, where no source sets it; null where the command has none), then
    /// `_sources` (each option's source), `_config_file` and `_comment`. Secret options print as null and are
    /// listed under `_hidden`.
    public func renderJSON(defaults: [String: JSONValue], comment: String) -> String {
        var members: [JSONMember] = []
        var hidden: [JSONValue] = []
        for entry in entries {
            var value = entry.value ?? defaults[entry.option.name] ?? .null
            if entry.option.isSecret, value != .null {
                value = .null
                hidden.append(.string(entry.option.name))
            }
            members.append(JSONMember(key: entry.option.name, value: value))
        }
        members.append(JSONMember(
            key: "_sources",
            value: .object(entries.map { JSONMember(key: $0.option.name, value: .string($0.sourceDescription)) })))
        if !hidden.isEmpty { members.append(JSONMember(key: "_hidden", value: .array(hidden))) }
        if let configFile { members.append(JSONMember(key: "_config_file", value: .string(configFile))) }
        members.append(JSONMember(key: "_comment", value: .string(comment)))
        return JSONValue.object(members).prettyPrinted()
    }
}
