import ArgumentParser

/// `clipserve bench`: the benchmark commands.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the engine, the preprocessing or a running server.",
        subcommands: [BenchEngineCommand.self, BenchPreprocessCommand.self, BenchServeCommand.self, BenchRuntimeCommand.self]
    )
}
