import CommandConfig
import Foundation
import Testing

/// A schema shaped like `serve`'s: strings, integers, a number, a flag, an accumulating list and a replacing list.
let schema = ConfigSchema(options: [
    ConfigOption("model", .string),
    ConfigOption("port", .integer),
    ConfigOption("max-batch-size", .integer),
    ConfigOption("seconds", .number),
    ConfigOption("no-normalize", .flag),
    ConfigOption("cuda-lib-path", .list(separator: ":"), accumulates: true),
    ConfigOption("batch-sizes", .list(separator: ",")),
    ConfigOption("api-key", .string, isSecret: true),
])

/// A configuration file in a fresh temporary directory, removed when the value goes away.
final class TemporaryFile {
    let url: URL
    var path: String { url.path }

    init(_ text: String, name: String = "config.json") throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("clipserve-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        url = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
    }

    deinit { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
}

func resolve(
    _ arguments: [String], _ environment: [String: String] = [:], schema: ConfigSchema = schema
) throws -> ConfigResolution {
    try ConfigResolver.resolve(arguments: arguments, environment: environment, schema: schema)
}

@Suite("Config resolution: precedence and the rewritten command line")
struct ConfigResolverTests {
    struct Layers: CustomTestStringConvertible, Sendable {
        let flag: Bool, env: Bool, file: Bool
        var testDescription: String { "flag \(flag), env \(env), file \(file)" }
    }

    static let allLayers = [false, true].flatMap { flag in
        [false, true].flatMap { env in [false, true].map { file in Layers(flag: flag, env: env, file: file) } }
    }

    @Test("flag > env > file > default, in every combination", arguments: allLayers)
    func precedence(_ layers: Layers) throws {
        let file = try TemporaryFile(#"{"port": 1111, "model": "file-model", "no-normalize": true}"#)
        var arguments = layers.file ? ["--config", file.path] : []
        if layers.flag { arguments += ["--port", "3333", "--model=flag-model", "--no-normalize"] }
        let environment =
            layers.env ? ["CLIPSERVE_PORT": "2222", "CLIPSERVE_MODEL": "env-model", "CLIPSERVE_NO_NORMALIZE": "0"] : [:]
        let resolution = try resolve(arguments, environment)

        let expected: (source: ConfigSource, port: Int?, model: String?, normalizeOff: Bool?) =
            layers.flag ? (.flag, 3333, "flag-model", true)
            : layers.env ? (.env, 2222, "env-model", false)
            : layers.file ? (.file, 1111, "file-model", true)
            : (.default, nil, nil, nil)
        let port = try #require(resolution.entry("port"))
        #expect(port.sources == (expected.source == .default ? [] : [expected.source]))
        #expect(port.value == expected.port.map(JSONValue.integer))
        #expect(resolution.entry("model")?.value == expected.model.map(JSONValue.string))
        #expect(resolution.entry("no-normalize")?.value == expected.normalizeOff.map(JSONValue.bool))

        // What the parser sees: the command line as given, plus exactly one winning value per option.
        var wanted = arguments
        if !layers.flag, layers.env { wanted += ["--model=env-model", "--port=2222"] }
        if !layers.flag, !layers.env, layers.file { wanted += ["--model=file-model", "--port=1111", "--no-normalize"] }
        #expect(resolution.arguments == wanted)
    }

    @Test func environmentVariableNamesAreThePrefixAndTheUpperCasedOptionName() {
        #expect(schema.environmentVariable(for: "max-batch-size") == "CLIPSERVE_MAX_BATCH_SIZE")
        #expect(schema.environmentVariable(for: "no-normalize") == "CLIPSERVE_NO_NORMALIZE")
        #expect(schema.configFileVariable == "CLIPSERVE_CONFIG")
    }

    @Test(
        "flag environment values",
        arguments: [
            ("1", true), ("true", true), ("TRUE", true), ("yes", true), ("on", true),
            ("0", false), ("false", false), ("No", false), ("off", false),
        ])
    func flagEnvironmentValues(_ text: String, _ value: Bool) throws {
        let resolution = try resolve([], ["CLIPSERVE_NO_NORMALIZE": text])
        #expect(resolution.entry("no-normalize")?.value == .bool(value))
        #expect(resolution.entry("no-normalize")?.sources == [.env])
        #expect(resolution.arguments == (value ? ["--no-normalize"] : []))
    }

    @Test func aFalseFlagFromTheEnvironmentOverridesATrueOneFromTheFile() throws {
        let file = try TemporaryFile(#"{"no-normalize": true}"#)
        let resolution = try resolve(["--config", file.path], ["CLIPSERVE_NO_NORMALIZE": "false"])
        #expect(resolution.entry("no-normalize")?.value == .bool(false))
        #expect(!resolution.arguments.contains("--no-normalize"))
    }

    @Test func aFalseFlagInTheFileAddsNothing() throws {
        let file = try TemporaryFile(#"{"no-normalize": false}"#)
        let resolution = try resolve(["--config", file.path])
        #expect(resolution.entry("no-normalize")?.value == .bool(false))
        #expect(resolution.entry("no-normalize")?.sources == [.file])
        #expect(resolution.arguments == ["--config", file.path])
    }

    @Test func badEnvironmentValuesNameTheVariable() throws {
        let cases = [("CLIPSERVE_PORT", "80a"), ("CLIPSERVE_NO_NORMALIZE", "maybe"), ("CLIPSERVE_SECONDS", "x")]
        for (variable, text) in cases {
            #expect(throws: ConfigError.self) { try resolve([], [variable: text]) }
            do {
                _ = try resolve([], [variable: text])
            } catch {
                #expect("\(error)".contains(variable) && "\(error)".contains(text), "\(error)")
            }
        }
    }

    @Test func emptyAndUnknownVariablesAreIgnored() throws {
        let resolution = try resolve(
            [],
            [
                "CLIPSERVE_PORT": "", "CLIPSERVE_CUDA_LIB_PATH": "::", "CLIPSERVE_NOT_AN_OPTION": "1",
                "CLIPSERVE_CACHE": "/c",
            ])
        #expect(resolution.arguments == [])
        #expect(resolution.entries.allSatisfy { $0.sources.isEmpty })
    }

    @Test func anAccumulatingListKeepsEverySourceInPrecedenceOrder() throws {
        let file = try TemporaryFile(#"{"cuda-lib-path": ["/file1", "/file2"]}"#)
        let resolution = try resolve(
            ["--cuda-lib-path", "/flag1", "--config", file.path, "--cuda-lib-path=/flag2"],
            ["CLIPSERVE_CUDA_LIB_PATH": "/env1::/env2"])
        let entry = try #require(resolution.entry("cuda-lib-path"))
        #expect(entry.value == .array(["/flag1", "/flag2", "/env1", "/env2", "/file1", "/file2"].map(JSONValue.string)))
        #expect(entry.sources == [.flag, .env, .file])
        #expect(entry.sourceDescription == "flag+env+file")
        // The parser collects repeated options in order: the command line's come first.
        #expect(resolution.arguments == [
            "--cuda-lib-path", "/flag1", "--config", file.path, "--cuda-lib-path=/flag2",
            "--cuda-lib-path=/env1", "--cuda-lib-path=/env2", "--cuda-lib-path=/file1", "--cuda-lib-path=/file2",
        ])
    }

    @Test func aReplacingListTakesTheHighestSourceOnly() throws {
        let file = try TemporaryFile(#"{"batch-sizes": "64"}"#)
        let fromFile = try resolve(["--config", file.path])
        #expect(fromFile.entry("batch-sizes")?.value == .array([.string("64")]))
        #expect(fromFile.arguments.suffix(1) == ["--batch-sizes=64"])

        let fromEnvironment = try resolve(["--config", file.path], ["CLIPSERVE_BATCH_SIZES": "1,8"])
        #expect(fromEnvironment.entry("batch-sizes")?.value == .array([.string("1"), .string("8")]))
        #expect(fromEnvironment.arguments.suffix(2) == ["--batch-sizes=1", "--batch-sizes=8"])

        let fromFlag = try resolve(["--batch-sizes", "2", "--config", file.path], ["CLIPSERVE_BATCH_SIZES": "1,8"])
        #expect(fromFlag.entry("batch-sizes")?.sources == [.flag])
        #expect(fromFlag.arguments == ["--batch-sizes", "2", "--config", file.path])
    }

    @Test func bothConfigFormsAndTheEnvironmentVariableNameTheFile() throws {
        let file = try TemporaryFile(#"{"port": 1}"#)
        let other = try TemporaryFile(#"{"port": 2}"#)
        for arguments in [["--config", file.path], ["--config=\(file.path)"]] {
            let resolution = try resolve(arguments, ["CLIPSERVE_CONFIG": other.path])
            #expect(resolution.configFile == file.path)
            #expect(resolution.entry("port")?.value == .integer(1))
        }
        let fromEnvironment = try resolve([], ["CLIPSERVE_CONFIG": other.path])
        #expect(fromEnvironment.configFile == other.path)
        #expect(fromEnvironment.entry("port")?.value == .integer(2))
        #expect(fromEnvironment.arguments == ["--port=2"])
    }

    @Test func insertedOptionsGoBeforeTheTerminatorAndWhatFollowsItIsNotRead() throws {
        let resolution = try resolve(
            ["--model", "m", "--", "--port", "5", "--config", "/nonexistent"], ["CLIPSERVE_PORT": "7"])
        #expect(resolution.configFile == nil)
        #expect(resolution.entry("port")?.sources == [.env])
        #expect(resolution.arguments == ["--model", "m", "--port=7", "--", "--port", "5", "--config", "/nonexistent"])
    }

    @Test func valuesThatLookLikeOptionsStayValues() throws {
        let file = try TemporaryFile(#"{"api-key": "-secret", "model": "--weird", "batch-sizes": ["", "1"]}"#)
        let resolution = try resolve(["--config", file.path])
        #expect(
            resolution.arguments.suffix(5)
                == ["--model=--weird", "--batch-sizes", "", "--batch-sizes=1", "--api-key=-secret"])
    }

    @Test func helpIsAnsweredWithoutReadingTheFile() throws {
        for help in ["--help", "-h", "--experimental-dump-help"] {
            let resolution = try resolve(["--config", "/nonexistent.json", help], ["CLIPSERVE_PORT": "bad"])
            #expect(resolution.arguments == ["--config", "/nonexistent.json", help])
            #expect(resolution.entries.isEmpty)
        }
    }

    @Test func printConfigIsSeenAndLeftForTheParser() throws {
        let resolution = try resolve(["--print-config", "--port", "9"])
        #expect(resolution.printRequested)
        #expect(resolution.arguments == ["--print-config", "--port", "9"])
    }

    @Test func anEnvironmentOnlySchemaIgnoresConfigFilesAndItsOptions() throws {
        let environmentOnly = ConfigSchema(options: [ConfigOption("model", .string)], readsFiles: false)
        let resolution = try resolve(
            ["--config", "/nonexistent", "--port", "1"],
            ["CLIPSERVE_MODEL": "m", "CLIPSERVE_CONFIG": "/nonexistent", "CLIPSERVE_PORT": "2"],
            schema: environmentOnly)
        #expect(resolution.configFile == nil)
        #expect(!resolution.printRequested)
        #expect(resolution.arguments == ["--config", "/nonexistent", "--port", "1", "--model=m"])
    }

    @Test func originNamesTheVariableOrTheFile() throws {
        let file = try TemporaryFile(#"{"model": "m"}"#)
        let resolution = try resolve(["--config", file.path, "--seconds", "2"], ["CLIPSERVE_PORT": "3"])
        #expect(resolution.origin(of: "port", schema: schema) == "CLIPSERVE_PORT")
        #expect(resolution.origin(of: "model", schema: schema) == "config file \(file.path)")
        #expect(resolution.origin(of: "seconds", schema: schema) == nil)
        #expect(resolution.origin(of: "max-batch-size", schema: schema) == nil)
    }
}
