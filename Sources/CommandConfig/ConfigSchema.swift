/// One command-line option that may also come from the environment or a configuration file.
public struct ConfigOption: Equatable, Sendable {
    /// How the option is written on the command line, and what a file must give for it.
    public enum Kind: Equatable, Sendable {
        /// `--name VALUE`; a JSON string in a file.
        case string
        /// `--name N`; a JSON integer in a file.
        case integer
        /// `--name X`; a JSON number in a file.
        case number
        /// `--name` alone; a JSON boolean in a file, `1/true/yes/on` or `0/false/no/off` in the environment.
        case flag
        /// `--name VALUE`, repeatable; a JSON array of strings (or one string) in a file, and in the environment
        /// one variable whose items are joined by `separator`.
        case list(separator: Character)
    }

    /// The long name, without the leading dashes (`max-batch-size`).
    public var name: String
    public var kind: Kind
    /// For lists: the values of every source are kept, in precedence order (flag, environment, file), instead of
    /// the highest source replacing the others.
    public var accumulates: Bool
    /// Never printed by `--print-config` (an API key).
    public var isSecret: Bool

    public init(_ name: String, _ kind: Kind, accumulates: Bool = false, isSecret: Bool = false) {
        self.name = name
        self.kind = kind
        self.accumulates = accumulates
        self.isSecret = isSecret
    }

    /// What a configuration file must hold for this option, for error messages.
    public var expectedType: String {
        switch kind {
        case .string: "a string"
        case .integer: "an integer"
        case .number: "a number"
        case .flag: "a boolean (true or false)"
        case .list: "an array of strings (or one string)"
        }
    }
}

/// The options of one command that can be configured outside its command line.
public struct ConfigSchema: Equatable, Sendable {
    /// The long option naming the configuration file (`--config FILE`).
    public static let configOption = "config"
    /// The flag that asks for the effective configuration instead of running (`--print-config`).
    public static let printConfigOption = "print-config"

    /// The configurable options, in the order `--print-config` lists them.
    public var options: [ConfigOption]
    /// Whether the command takes `--config FILE` (and `<prefix>CONFIG`) and `--print-config`; when false only
    /// environment variables apply.
    public var readsFiles: Bool
    /// Prefix of every environment variable: `CLIPSERVE_` + `MAX_BATCH_SIZE`.
    public var environmentPrefix: String

    public init(options: [ConfigOption], readsFiles: Bool = true, environmentPrefix: String = "CLIPSERVE_") {
        self.options = options
        self.readsFiles = readsFiles
        self.environmentPrefix = environmentPrefix
    }

    /// The option called `name`, if the schema has it.
    public func option(named name: String) -> ConfigOption? {
        options.first { $0.name == name }
    }

    /// The environment variable of an option: the prefix, then the name upper-cased with `-` as `_`.
    public func environmentVariable(for name: String) -> String {
        environmentPrefix + String(name.uppercased().map { $0 == "-" ? "_" : $0 })
    }

    /// The environment variable naming a configuration file when no `--config` is given.
    public var configFileVariable: String { environmentVariable(for: Self.configOption) }

    /// The known option nearest to a misspelt `key`: the same words in another case or separator
    /// (`max_batch_size`, `maxBatchSize`), else the closest name within a few edits.
    public func suggestion(for key: String) -> String? {
        let normalized = Self.kebabCase(key)
        if option(named: normalized) != nil { return normalized }
        let scored = options.map { ($0.name, editDistance(normalized, $0.name)) }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
        return best.1 <= max(2, best.0.count / 3) ? best.0 : nil
    }

    /// `maxBatchSize`, `max_batch_size`, `MAX-BATCH-SIZE` → `max-batch-size`.
    static func kebabCase(_ key: String) -> String {
        var out = ""
        var previousWasLower = false
        for character in key {
            if character == "_" || character == " " {
                out.append("-")
            } else if character.isUppercase {
                if previousWasLower { out.append("-") }
                out += character.lowercased()
            } else {
                out.append(character)
            }
            previousWasLower = character.isLowercase || character.isNumber
        }
        return out.hasPrefix("--") ? String(out.dropFirst(2)) : out
    }
}

/// Levenshtein distance between two strings, by characters.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count)
    var current = previous
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
