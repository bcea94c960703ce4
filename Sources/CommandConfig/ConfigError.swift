/// Why the configuration of a command cannot be resolved. Every case names the file or variable at fault.
public enum ConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    /// One thing wrong with a configuration file's contents.
    public enum Problem: Equatable, Sendable {
        /// A key that is no option of the command, at its line and column, with the nearest known option.
        case unknownKey(String, line: Int, column: Int, suggestion: String?)
        /// A known option holding the wrong kind of JSON value.
        case wrongType(String, line: Int, column: Int, expected: String, got: String)
        /// An option that only the command line can give (`config`, `print-config`).
        case commandLineOnly(String, line: Int, column: Int)
        /// The same key twice.
        case duplicateKey(String, line: Int, column: Int)
    }

    /// The file could not be read; `variable` is set when the path came from the environment.
    case unreadableFile(path: String, variable: String?, reason: String)
    /// The file is not JSON, or not a JSON object.
    case malformedFile(path: String, reason: String)
    /// The file is JSON but some keys or values are wrong; every problem is listed.
    case invalidFile(path: String, problems: [Problem], knownKeys: [String])
    /// An environment variable's value does not fit its option.
    case invalidEnvironment(variable: String, value: String, expected: String)

    public var description: String {
        switch self {
        case let .unreadableFile(path, variable, reason):
            let from = variable.map { " (from \($0))" } ?? ""
            return "cannot read config file \(path)\(from): \(reason)"
        case let .malformedFile(path, reason):
            return "config file \(path) is not valid: \(reason)"
        case let .invalidFile(path, problems, knownKeys):
            var lines = problems.map { "config file \(path): \(Self.describe($0))" }
            if problems.contains(where: { if case .unknownKey = $0 { true } else { false } }) {
                lines.append(
                    "known keys: \(knownKeys.joined(separator: ", ")) "
                        + "(keys starting with \"_\" and \"$schema\" are ignored)")
            }
            return lines.joined(separator: "\n")
        case let .invalidEnvironment(variable, value, expected):
            return "environment variable \(variable)=\(value): expected \(expected)"
        }
    }

    private static func describe(_ problem: Problem) -> String {
        switch problem {
        case let .unknownKey(key, line, column, suggestion):
            let hint = suggestion.map { " (did you mean \"\($0)\"?)" } ?? ""
            return "line \(line), column \(column): unknown key \"\(key)\"\(hint)"
        case let .wrongType(key, line, column, expected, got):
            return "line \(line), column \(column): \"\(key)\" must be \(expected), got \(got)"
        case let .commandLineOnly(key, line, column):
            return "line \(line), column \(column): \"\(key)\" can only be given on the command line"
        case let .duplicateKey(key, line, column):
            return "line \(line), column \(column): \"\(key)\" is given more than once"
        }
    }
}
