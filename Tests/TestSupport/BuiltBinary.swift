import Foundation

/// The `clipserve` executable built next to the running test bundle (`swift build --build-tests` builds both), or
/// `$CLIPSERVE_BINARY`; nil when neither exists (the suites that spawn it are then disabled).
public let builtClipserve: URL? = {
    if let path = ProcessInfo.processInfo.environment["CLIPSERVE_BINARY"] { return URL(fileURLWithPath: path) }
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = directory.appendingPathComponent("clipserve")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return nil
}()

/// What a finished run of the built binary left: exit status, standard output, standard error.
public struct BinaryRun: Sendable {
    public let status: Int32
    public let stdout: Data
    public let stderr: String
}

/// Runs `builtClipserve` with `arguments` to completion; `environment` replaces the inherited one when given.
public func runBuiltClipserve(_ arguments: [String], environment: [String: String]? = nil) throws -> BinaryRun {
    guard let binary = builtClipserve else { throw CocoaError(.fileNoSuchFile) }
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return BinaryRun(status: process.terminationStatus, stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self))
}
