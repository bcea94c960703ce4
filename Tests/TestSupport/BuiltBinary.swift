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
