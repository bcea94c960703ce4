import CommandConfig

extension ServeCommand: ConfigurableCommand {
    /// Every option of `serve` (the `ConfigFileOptions` aside), as it is spelt on the command line.
    static let configSchema = ConfigSchema(
        options: ModelOptions.configOptions + [
            ConfigOption("host", .string),
            ConfigOption("port", .integer),
            ConfigOption("model-name", .string),
            ConfigOption("instances", .integer),
            ConfigOption("max-batch-size", .integer),
            ConfigOption("max-queue-delay", .integer),
            ConfigOption("max-queue-size", .integer),
            ConfigOption("request-timeout", .integer),
            ConfigOption("max-body-size", .integer),
            ConfigOption("max-images-per-request", .integer),
            ConfigOption("api-key", .string, isSecret: true),
            ConfigOption("preprocess-threads", .integer),
            ConfigOption("no-normalize", .flag),
        ])
}
