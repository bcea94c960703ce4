import ArgumentParser

@main
struct ClipServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clipserve",
        abstract: "Serve CLIP image embeddings from open_clip image towers on CPUs and NVIDIA GPUs.",
        subcommands: [VerifyCommand.self]
    )
}
