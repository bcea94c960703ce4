import CommandConfig
import Foundation
import TestSupport
import Testing

/// `clipserve serve --config`, `CLIPSERVE_*` and `--print-config` as a user runs them: the built binary.
@Suite("clipserve serve configuration", .enabled(if: builtClipserve != nil, "the clipserve executable is not built"))
struct ServeConfigCommandTests {
    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String

        /// stdout as the JSON object `--print-config` prints.
        func printed() throws -> [JSONMember] {
            guard case let .object(members) = try JSONValue.parse(stdout) else {
                throw CLIError("not an object: \(stdout)")
            }
            return members
        }
    }

    struct CLIError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Runs the binary with this process's environment minus every `CLIPSERVE_*` variable, plus `environment`.
    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        let environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CLIPSERVE_") }
            .merging(environment) { $1 }
        let run = try runBuiltClipserve(arguments, environment: environment)
        return Run(status: run.status, stdout: String(decoding: run.stdout, as: UTF8.self), stderr: run.stderr)
    }

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func value(_ members: [JSONMember], _ key: String) -> JSONValue? { JSONValue.object(members)[key] }

    func source(_ members: [JSONMember], _ key: String) -> String? {
        guard case let .string(source)? = value(members, "_sources")?[key] else { return nil }
        return source
    }

    @Test func flagBeatsEnvironmentBeatsFileBeatsDefault() throws {
        let file = try TemporaryFile("""
            {"_comment": "test", "port": 1111, "max-batch-size": 4, "host": "127.0.0.1", "no-normalize": true,
             "instances": 3, "cuda-lib-path": ["/file"]}
            """)
        let result = try run(
            ["serve", "--config", file.path, "--port", "3333", "--cuda-lib-path", "/flag", "--print-config"],
            environment: [
                "CLIPSERVE_PORT": "2222", "CLIPSERVE_MAX_BATCH_SIZE": "8", "CLIPSERVE_NO_NORMALIZE": "0",
                "CLIPSERVE_CUDA_LIB_PATH": "/env1:/env2", "CLIPSERVE_NOT_AN_OPTION": "ignored",
            ])
        #expect(result.status == 0, "\(result.stderr)")
        let printed = try result.printed()
        let expected: [(String, JSONValue, String)] = [
            ("port", .integer(3333), "flag"),
            ("max-batch-size", .integer(8), "env"),
            ("no-normalize", .bool(false), "env"),
            ("host", .string("127.0.0.1"), "file"),
            ("instances", .integer(3), "file"),
            ("cuda-lib-path", .array(["/flag", "/env1", "/env2", "/file"].map(JSONValue.string)), "flag+env+file"),
            ("model", .string("random:ViT-B-32"), "default"),
            ("max-body-size", .integer(64 << 20), "default"),
            ("threads", .null, "default"),
        ]
        for (key, wanted, origin) in expected {
            #expect(value(printed, key) == wanted, "\(key)")
            #expect(source(printed, key) == origin, "\(key)")
        }
        #expect(value(printed, "_config_file") == .string(file.path))
    }

    @Test func everyOptionCanComeFromTheFileAndFromTheEnvironment() throws {
        let values: [(String, JSONValue, String)] = [
            ("model", .string("random:ViT-B-16"), "random:ViT-B-16"), ("backend", .string("cpu"), "cpu"),
            ("precision", .string("fp32"), "fp32"), ("threads", .integer(3), "3"),
            ("cuda-lib-path", .array([.string("/a"), .string("/b")]), "/a:/b"), ("devices", .string("0,1"), "0,1"),
            ("host", .string("127.0.0.1"), "127.0.0.1"), ("port", .integer(0), "0"),
            ("model-name", .string("clip"), "clip"), ("instances", .integer(2), "2"),
            ("max-batch-size", .integer(64), "64"), ("max-queue-delay", .integer(2000), "2000"),
            ("max-queue-size", .integer(99), "99"), ("request-timeout", .integer(5000), "5000"),
            ("max-body-size", .integer(1000), "1000"), ("max-images-per-request", .integer(7), "7"),
            ("api-key", .string("k"), "k"), ("preprocess-threads", .integer(5), "5"),
            ("no-normalize", .bool(true), "true"),
        ]
        let file = try TemporaryFile(JSONValue.object(values.map { JSONMember(key: $0.0, value: $0.1) }).jsonText)
        let schema = ConfigSchema(options: [])
        let environment = Dictionary(uniqueKeysWithValues: values.map { (schema.environmentVariable(for: $0.0), $0.2) })
        for (arguments, environment, origin) in [
            (["serve", "--config", file.path, "--print-config"], [:], "file"),
            (["serve", "--print-config"], environment, "env"),
        ] {
            let result = try run(arguments, environment: environment)
            #expect(result.status == 0, "\(result.stderr)")
            let printed = try result.printed()
            let keys = printed.map(\.key).filter { !$0.hasPrefix("_") }
            #expect(keys == values.map(\.0))
            for (key, wanted, _) in values {
                #expect(value(printed, key) == (key == "api-key" ? .null : wanted), "\(key) from \(origin)")
                #expect(source(printed, key) == origin, "\(key)")
            }
            #expect(value(printed, "_hidden") == .array([.string("api-key")]))
        }
    }

    @Test func printedConfigurationIsItselfAConfigFile() throws {
        let first = try run(
            ["serve", "--print-config", "--port", "9100", "--cuda-lib-path", "/x"],
            environment: ["CLIPSERVE_MAX_QUEUE_DELAY": "250", "CLIPSERVE_NO_NORMALIZE": "yes"])
        #expect(first.status == 0, "\(first.stderr)")
        let file = try TemporaryFile(first.stdout)
        let second = try run(["serve", "--config", file.path, "--print-config"])
        #expect(second.status == 0, "\(second.stderr)")
        let before = try first.printed().filter { !$0.key.hasPrefix("_") }
        let after = try second.printed().filter { !$0.key.hasPrefix("_") }
        #expect(before == after)
        #expect(source(try second.printed(), "port") == "file")
        #expect(source(try second.printed(), "threads") == "default")  // null in the file: not set
    }

    @Test func theConfigFileCanComeFromTheEnvironment() throws {
        let file = try TemporaryFile(#"{"max-queue-size": 12, "model-name": ""}"#)
        let result = try run(["serve", "--print-config"], environment: ["CLIPSERVE_CONFIG": file.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(value(try result.printed(), "max-queue-size") == .integer(12))
        #expect(value(try result.printed(), "model-name") == .string(""))
    }

    @Test func theExampleFileIsValid() throws {
        let example = Self.repositoryRoot.appendingPathComponent("examples/serve.json").path
        let result = try run(["serve", "--config", example, "--print-config"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(source(try result.printed(), "max-batch-size") == "file")
    }

    @Test func unknownKeysFailNamingEachKeyTheFileAndTheNearestOption() throws {
        let file = try TemporaryFile("{\n  \"max_batch_size\": 64,\n  \"prot\": 1\n}\n")
        let result = try run(["serve", "--config=\(file.path)"])
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        for line in [
            "config file \(file.path): line 2, column 3: unknown key \"max_batch_size\" "
                + "(did you mean \"max-batch-size\"?)",
            "config file \(file.path): line 3, column 3: unknown key \"prot\" (did you mean \"port\"?)",
        ] {
            #expect(result.stderr.contains(line), "\(result.stderr)")
        }
    }

    @Test func wrongTypesAndMalformedFilesFailNamingTheFile() throws {
        let wrongType = try TemporaryFile(#"{"port": "8000"}"#)
        let malformed = try TemporaryFile("{\n  \"port\": 8000,\n}")
        for (file, message) in [
            (
                wrongType,
                "config file \(wrongType.path): line 1, column 2: \"port\" must be an integer, got a string (\"8000\")"
            ),
            (malformed, "config file \(malformed.path) is not valid: JSON error at line 3, column 1: unexpected '}'"),
        ] {
            let result = try run(["serve", "--config", file.path])
            #expect(result.status != 0)
            #expect(result.stderr.contains(message), "\(result.stderr)")
        }
        let missing = try run(["serve"], environment: ["CLIPSERVE_CONFIG": "/nonexistent/serve.json"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("/nonexistent/serve.json (from CLIPSERVE_CONFIG)"), "\(missing.stderr)")
    }

    @Test func valuesTheParserRefusesAreTracedToTheirSource() throws {
        let file = try TemporaryFile(#"{"backend": "gpu"}"#)
        let fromFile = try run(["serve", "--config", file.path])
        #expect(fromFile.status != 0)
        #expect(fromFile.stderr.contains("'gpu'"), "\(fromFile.stderr)")
        #expect(fromFile.stderr.contains("note: --backend was set by config file \(file.path)"), "\(fromFile.stderr)")

        let fromEnvironment = try run(["serve", "--print-config"], environment: ["CLIPSERVE_PORT": "70000"])
        #expect(fromEnvironment.status != 0)
        #expect(fromEnvironment.stderr.contains("note: --port was set by CLIPSERVE_PORT"), "\(fromEnvironment.stderr)")

        let notANumber = try run(["serve"], environment: ["CLIPSERVE_MAX_BATCH_SIZE": "lots"])
        #expect(notANumber.status != 0)
        #expect(
            notANumber.stderr.contains("CLIPSERVE_MAX_BATCH_SIZE=lots: expected an integer"), "\(notANumber.stderr)")
    }

    /// The schema is a hand-written list; this keeps it equal to the options ArgumentParser really parses.
    @Test func theSchemaMatchesServesRealOptions() throws {
        let help = try run(["serve", "--experimental-dump-help"])
        #expect(help.status == 0, "\(help.stderr)")
        let printed = try run(["serve", "--print-config"])
        #expect(printed.status == 0, "\(printed.stderr)")
        let configured = try printed.printed().filter { !$0.key.hasPrefix("_") }

        guard case let .array(arguments)? = try JSONValue.parse(help.stdout)["command"]?["arguments"] else {
            Issue.record("unexpected --experimental-dump-help output")
            return
        }
        var real: [String: (kind: String, repeating: Bool, defaultValue: String?)] = [:]
        for argument in arguments {
            guard case let .string(kind)? = argument["kind"], case let .string(long)? = argument["preferredName"]?["name"],
                !["help", "config", "print-config"].contains(long)
            else { continue }
            var defaultValue: String?
            if case let .string(text)? = argument["defaultValue"] { defaultValue = text }
            real[long] = (kind, argument["isRepeating"] == .bool(true), defaultValue)
        }
        #expect(Set(real.keys) == Set(configured.map(\.key)))
        for member in configured {
            guard let option = real[member.key] else { continue }
            switch member.value {
            case .bool: #expect(option.kind == "flag", "\(member.key)")
            case .array: #expect(option.kind == "option" && option.repeating, "\(member.key)")
            default: #expect(option.kind == "option" && !option.repeating, "\(member.key)")
            }
            if let text = option.defaultValue, Int(text) != nil {
                #expect(
                    member.value == .integer(Int(text)!),
                    "\(member.key) has an integer default: the schema must say .integer")
            }
        }
    }

    @Test func otherCommandsKeepTheirDocumentedVariables() throws {
        let image = Self.repositoryRoot.appendingPathComponent("examples/rgb_baseline.jpg").path
        let result = try run(
            ["embed", "--backend", "cpu", image],
            environment: ["CLIPSERVE_MODEL": "/nonexistent/model", "CLIPSERVE_CUDA_LIB_PATH": "/a:/b",
                          "CLIPSERVE_CONFIG": "/nonexistent/serve.json", "CLIPSERVE_PORT": "bad"])
        #expect(result.status != 0)
        // Parsed (--cuda-lib-path accepted, no config file or serve variable read), then failed on the model.
        #expect(result.stderr.contains("cannot load model '/nonexistent/model'"), "\(result.stderr)")
    }

    @Test func helpWorksWhateverTheConfiguration() throws {
        let result = try run(["serve", "--help"], environment: ["CLIPSERVE_CONFIG": "/nonexistent/serve.json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("--print-config") && result.stdout.contains("--config <file>"))
    }
}
