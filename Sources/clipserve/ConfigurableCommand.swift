import ArgumentParser
import CommandConfig

/// A subcommand whose options may also come from `CLIPSERVE_*` environment variables and, when its schema reads
/// files, from `--config FILE` / `CLIPSERVE_CONFIG` (precedence flag > env > file > default). `ClipServe.main`
/// rewrites the command line of any command that conforms before ArgumentParser parses it.
///
/// The schema lists the command's options by long name; `clipserve serve --print-config` shows them, and a test
/// compares that list with ArgumentParser's own (`--experimental-dump-help`) so the two cannot drift apart.
///
/// To opt a command in: conform it with its schema (`ServeCommand+Config.swift` shows how) and, when the schema
/// reads files, give it `@OptionGroup var configFile: ConfigFileOptions` so the parser accepts `--config` and
/// `--print-config`.
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

extension TuneCommand: ConfigurableCommand {
    static let configSchema = ConfigSchema(options: ModelOptions.environmentOptions, readsFiles: false)
}

extension VerifyCommand: ConfigurableCommand {
    // `--model` is a list of models to check there, so only the library folders come from the environment.
    static let configSchema = ConfigSchema(
        options: ModelOptions.configOptions.filter { $0.name == "cuda-lib-path" }, readsFiles: false)
}

extension BenchServeCommand: ConfigurableCommand {
    // The load generator reads the server's key from the environment, as `serve` does.
    static let configSchema = ConfigSchema(options: [ConfigOption("api-key", .string, isSecret: true)], readsFiles: false)
}

extension BenchEngineCommand: ConfigurableCommand {
    static let configSchema = ConfigSchema(options: ModelOptions.environmentOptions, readsFiles: false)
}
