import ArgumentParser
import Foundation

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

    /// Parses and runs the command after `ConfigurableCommand`s have their environment and file values put on the
    /// command line; answers `--print-config` without running the command.
    static func main() async {
        let commandLine: ConfiguredCommandLine
        do {
            commandLine = try ConfiguredCommandLine(
                arguments: Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment,
                root: ClipServe.self)
        } catch {
            exit(withError: error)
        }
        do {
            var command = try await asyncParseAsRoot(commandLine.arguments)
            if let printed = commandLine.printedConfiguration() {
                print(printed)
                return
            }
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // ArgumentParser's message names the option; say where its value came from when that was not the
            // command line.
            let message = fullMessage(for: error)
            let notes = commandLine.notes(for: message)
            guard !notes.isEmpty, exitCode(for: error) != .success else { exit(withError: error) }
            FileHandle.standardError.write(Data(([message] + notes).joined(separator: "\n").utf8 + [0x0A]))
            Foundation.exit(exitCode(for: error).rawValue)
        }
    }
}
