import ArgumentParser
import CommandConfig
import Foundation

/// The command line after configuration: which command it names, and its resolved configuration if it has one.
struct ConfiguredCommandLine {
    /// The arguments for ArgumentParser (the original ones when the command is not configurable).
    var arguments: [String]
    /// The configurable command named, and how its options were resolved.
    var command: (any ConfigurableCommand.Type)?
    var resolution: ConfigResolution?
    /// The subcommand names at the start of the arguments (`serve`, `bench engine`).
    var path: [String] = []

    /// Finds the subcommand `arguments` name under `root` (leading subcommand names) and resolves its options.
    init(arguments: [String], environment: [String: String], root: any ParsableCommand.Type) throws(ConfigError) {
        self.arguments = arguments
        var command = root
        var depth = 0
        while depth < arguments.count,
            let next = command.configuration.subcommands.first(where: { Self.names($0).contains(arguments[depth]) })
        {
            command = next
            depth += 1
        }
        guard let configurable = command as? any ConfigurableCommand.Type else { return }
        let resolution = try ConfigResolver.resolve(
            arguments: Array(arguments[depth...]), environment: environment, schema: configurable.configSchema)
        self.command = configurable
        self.resolution = resolution
        self.path = Array(arguments[..<depth])
        self.arguments = Array(arguments[..<depth]) + resolution.arguments
    }

    private static func names(_ command: any ParsableCommand.Type) -> [String] {
        [command._commandName] + command.configuration.aliases
    }

    /// `--print-config`'s JSON: the resolved values, the command's defaults for the rest (from ArgumentParser's
    /// own description of the command, so they are the defaults it parses with).
    func printedConfiguration() -> String? {
        guard let command, let resolution, resolution.printRequested else { return nil }
        var defaults: [String: JSONValue] = [:]
        // `_dumpHelp()` is what `--experimental-dump-help` prints: ArgumentParser's ToolInfoV0 JSON.
        if case let .array(arguments)? = (try? JSONValue.parse(command._dumpHelp()))?["command"]?["arguments"] {
            for argument in arguments {
                guard case let .string(long)? = argument["preferredName"]?["name"],
                    let option = command.configSchema.option(named: long)
                else { continue }
                if case let .string(text)? = argument["defaultValue"] {
                    defaults[long] = option.value(fromArgument: text)
                } else if option.kind == .flag {
                    defaults[long] = .bool(false)
                } else if case .list = option.kind {
                    defaults[long] = .array([])
                }
            }
        }
        return resolution.renderJSON(
            defaults: defaults,
            comment: "clipserve \(path.joined(separator: " ")) --print-config: the effective configuration, "
                + "usable as --config FILE; _sources tells where each value came from (flag > env > file > default)")
    }

    /// Lines that say where options named in an error message came from, when that was the environment or the file.
    func notes(for message: String) -> [String] {
        guard let command, let resolution else { return [] }
        return command.configSchema.options.compactMap { option in
            guard Self.mentions(message, option: option.name),
                let origin = resolution.origin(of: option.name, schema: command.configSchema)
            else { return nil }
            return "note: --\(option.name) was set by \(origin)"
        }
    }

    /// Whether `message` names `--name` (and not a longer option that starts with it).
    private static func mentions(_ message: String, option name: String) -> Bool {
        var rest = Substring(message)
        while let range = rest.range(of: "--" + name) {
            let after = rest[range.upperBound...].first
            if after.map({ !($0.isLetter || $0.isNumber || $0 == "-") }) ?? true { return true }
            rest = rest[range.upperBound...]
        }
        return false
    }
}
