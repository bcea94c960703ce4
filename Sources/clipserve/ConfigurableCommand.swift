import ArgumentParser
import CommandConfig
import Foundation

/// A subcommand whose options may also come from `CLIPSERVE_*` environment variables and, when its schema reads
/// files, from `--config FILE` / `CLIPSERVE_CONFIG` (precedence flag > env > file > default). `ClipServe.main`
/// rewrites the command line of any command that conforms before ArgumentParser parses it.
///
/// The schema lists the command's options by long name; `clipserve serve --print-config` shows them, and a test
/// compares that list with ArgumentParser's own (`--experimental-dump-help`) so the two cannot drift apart.
protocol ConfigurableCommand: ParsableCommand {
    static var configSchema: ConfigSchema { get }
}

/// `--config FILE` and `--print-config`, for a configurable command whose schema reads files.
struct ConfigFileOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "JSON file of option values, keyed by long option name (env CLIPSERVE_CONFIG).", valueName: "file"))
    var config: String?

    @Flag(help: "Print the effective configuration (each option's value and source) as JSON and exit.")
    var printConfig = false
}

extension ModelOptions {
    /// `ModelOptions` in a configuration schema.
    static let configOptions: [ConfigOption] = [
        ConfigOption("model", .string),
        ConfigOption("backend", .string),
        ConfigOption("precision", .string),
        ConfigOption("threads", .integer),
        // Directories of every source are searched, command line first: CLIPSERVE_CUDA_LIB_PATH always added to
        // --cuda-lib-path, and the file's list comes after both.
        ConfigOption("cuda-lib-path", .list(separator: ":"), accumulates: true),
        ConfigOption("devices", .string),
    ]

    /// The options other model-running commands take from the environment only (their documented variables).
    static let environmentOptions = configOptions.filter { ["model", "cuda-lib-path"].contains($0.name) }
}

extension EmbedCommand: ConfigurableCommand {
    static let configSchema = ConfigSchema(options: ModelOptions.environmentOptions, readsFiles: false)
}

extension BenchEngineCommand: ConfigurableCommand {
    static let configSchema = ConfigSchema(options: ModelOptions.environmentOptions, readsFiles: false)
}

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
        if case let .object(tool)? = try? JSONValue.parse(command._dumpHelp()),
            case let .object(info)? = tool.first(where: { $0.key == "command" })?.value,
            case let .array(arguments)? = info.first(where: { $0.key == "arguments" })?.value
        {
            for case let .object(argument) in arguments {
                let field = { (key: String) in argument.first { $0.key == key }?.value }
                guard case let .object(name)? = field("preferredName"),
                    case let .string(long)? = name.first(where: { $0.key == "name" })?.value,
                    let option = command.configSchema.option(named: long)
                else { continue }
                if case let .string(text)? = field("defaultValue") {
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
            comment: "clipserve \(path.joined(separator: " ")) --print-config: the effective configuration, usable as --config FILE; "
                + "_sources tells where each value came from (flag > env > file > default)")
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
