import ArgumentParser

@main
struct ClipServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clipserve",
        abstract: "Serve CLIP image embeddings from open_clip image towers on CPUs and NVIDIA GPUs.",
        subcommands: [
            ServeCommand.self, EmbedCommand.self, InspectCommand.self, VerifyCommand.self, BenchCommand.self,
            TuneCommand.self,
        ]
    )
}
