import ArgumentParser

@main
struct ClipServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clipserve",
        abstract: "Serve CLIP image embeddings from open_clip image towers on CPUs and NVIDIA GPUs.",
        subcommands: [ServeCommand.self, BenchCommand.self]
    )
}

/// `clipserve bench …`: engine and server benchmarks.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks.", subcommands: [BenchEngineCommand.self, BenchServeCommand.self])
}
