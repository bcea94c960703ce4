import CommandConfig
import Foundation
import Testing

@Suite("Config files: types, unknown keys, malformed JSON")
struct ConfigFileTests {
    func values(_ text: String) throws(ConfigError) -> [String: JSONValue] {
        try ConfigResolver.values(fromFile: Array(text.utf8), path: "serve.json", schema: schema)
    }

    func error(_ text: String) -> ConfigError? {
        do {
            _ = try values(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func everyKindIsReadFromItsJSONType() throws {
        let read = try values("""
            {"model": "m", "port": 8000, "seconds": 2.5, "max-batch-size": 64, "no-normalize": true,
             "cuda-lib-path": ["/a", "/b"], "batch-sizes": "8", "api-key": null}
            """)
        #expect(read == [
            "model": .string("m"), "port": .integer(8000), "seconds": .number(2.5), "max-batch-size": .integer(64),
            "no-normalize": .bool(true), "cuda-lib-path": .array([.string("/a"), .string("/b")]),
            "batch-sizes": .array([.string("8")]),
        ])
    }

    @Test func anIntegerIsANumberButNotTheOtherWayRound() throws {
        #expect(try values(#"{"seconds": 3}"#) == ["seconds": .number(3)])
        #expect(error(#"{"port": 80.5}"#) != nil)
        #expect(error(#"{"port": 8e3}"#) != nil)
    }

    @Test func commentKeysAreIgnored() throws {
        #expect(try values(#"{"_comment": "made by tune", "$schema": "x", "_anything": [1, {}], "port": 1}"#)
            == ["port": .integer(1)])
    }

    @Test func unknownKeysAreEachNamedWithTheirPositionAndTheNearestKnownKey() throws {
        let problem = error("""
            {
              "max_batch_size": 4,
              "maxBatchSize": 4,
              "prot": 1,
              "no-normalise": true,
              "frobnicate": 1
            }
            """)
        let expected: [ConfigError.Problem] = [
            .unknownKey("max_batch_size", line: 2, column: 3, suggestion: "max-batch-size"),
            .unknownKey("maxBatchSize", line: 3, column: 3, suggestion: "max-batch-size"),
            .unknownKey("prot", line: 4, column: 3, suggestion: "port"),
            .unknownKey("no-normalise", line: 5, column: 3, suggestion: "no-normalize"),
            .unknownKey("frobnicate", line: 6, column: 3, suggestion: nil),
        ]
        #expect(problem == .invalidFile(path: "serve.json", problems: expected, knownKeys: schema.options.map(\.name)))
        let message = "\(try #require(problem))"
        #expect(
            message.contains(#"config file serve.json: line 4, column 3: unknown key "prot" (did you mean "port"?)"#))
        #expect(message.contains(#"unknown key "frobnicate""#) && message.contains("known keys: model, port,"))
    }

    @Test(
        "wrong types name the key, the file and the expected type",
        arguments: [
            (#"{"port": "8000"}"#, "port", "an integer", #"a string ("8000")"#),
            (#"{"model": 3}"#, "model", "a string", "an integer (3)"),
            (#"{"no-normalize": "true"}"#, "no-normalize", "a boolean (true or false)", #"a string ("true")"#),
            (#"{"no-normalize": 1}"#, "no-normalize", "a boolean (true or false)", "an integer (1)"),
            (#"{"cuda-lib-path": ["/a", 2]}"#, "cuda-lib-path", "an array of strings (or one string)", "an array"),
            (#"{"seconds": {"a": 1}}"#, "seconds", "a number", "an object"),
        ])
    func wrongTypes(_ text: String, _ key: String, _ expected: String, _ got: String) throws {
        let problem = try #require(error(text))
        #expect(problem == .invalidFile(
            path: "serve.json", problems: [.wrongType(key, line: 1, column: 2, expected: expected, got: got)],
            knownKeys: schema.options.map(\.name)))
        #expect("\(problem)" == "config file serve.json: line 1, column 2: \"\(key)\" must be \(expected), got \(got)")
    }

    @Test func commandLineOnlyAndDuplicateKeysAreRefused() throws {
        let problem = error(#"{"config": "other.json", "print-config": true, "port": 1, "port": 2}"#)
        #expect(problem == .invalidFile(
            path: "serve.json",
            problems: [
                .commandLineOnly("config", line: 1, column: 2), .commandLineOnly("print-config", line: 1, column: 26),
                .duplicateKey("port", line: 1, column: 59),
            ],
            knownKeys: schema.options.map(\.name)))
    }

    @Test(
        "malformed JSON names the file and the position",
        arguments: [
            ("{\n  \"port\": 80,\n}", "line 3, column 1: unexpected '}'; expected a key in double quotes"),
            ("{\"port\": 80", "line 1, column 12: unexpected end of file; expected ',' or '}'"),
            ("{\"port\" 80}", "line 1, column 9: unexpected '8'; expected ':' after the key"),
            ("{'port': 80}", "line 1, column 2: unexpected '''; expected a key in double quotes"),
            ("{\"port\": 080}", "line 1, column 10: a number cannot have a leading zero"),
            ("{\"model\": \"a\nb\"}", "line 1, column 13: control character U+000A in a string (escape it)"),
            ("{} {}", "line 1, column 4: unexpected '{' after the JSON value"),
            ("  ", "line 1, column 3: the file is empty; expected a JSON object"),
            ("// comment\n{}", "line 1, column 1: unexpected '/'; expected a value"),
        ])
    func malformed(_ text: String, _ reason: String) throws {
        let problem = try #require(error(text))
        #expect(problem == .malformedFile(path: "serve.json", reason: "JSON error at \(reason)"))
        #expect("\(problem)" == "config file serve.json is not valid: JSON error at \(reason)")
    }

    @Test func theTopLevelMustBeAnObject() throws {
        #expect(error("[1]") == .malformedFile(
            path: "serve.json", reason: "expected a JSON object of option names and values, found an array"))
    }

    @Test func unreadableFilesAreNamedWithTheVariableThatNamedThem() throws {
        let file = try TemporaryFile("{}")
        let directory = file.url.deletingLastPathComponent().path
        for (arguments, environment, expected) in [
            (["--config", "/nonexistent/serve.json"], [String: String](),
             ConfigError.unreadableFile(path: "/nonexistent/serve.json", variable: nil, reason: "no such file")),
            ([], ["CLIPSERVE_CONFIG": "/nonexistent/serve.json"],
             .unreadableFile(path: "/nonexistent/serve.json", variable: "CLIPSERVE_CONFIG", reason: "no such file")),
            (["--config", directory], [:], .unreadableFile(path: directory, variable: nil, reason: "is a directory")),
        ] {
            #expect(throws: expected) { try resolve(arguments, environment) }
        }
        #expect("\(ConfigError.unreadableFile(path: "/x.json", variable: "CLIPSERVE_CONFIG", reason: "no such file"))"
            == "cannot read config file /x.json (from CLIPSERVE_CONFIG): no such file")
    }

    @Test func printedConfigurationIsAValidConfigFileWithTheSameValues() throws {
        let file = try TemporaryFile(#"{"model": "m \"quoted\"", "cuda-lib-path": ["/f"], "no-normalize": true}"#)
        let resolution = try resolve(
            ["--config", file.path, "--port", "9", "--seconds=1.5"],
            ["CLIPSERVE_MAX_BATCH_SIZE": "4", "CLIPSERVE_API_KEY": "secret", "CLIPSERVE_CUDA_LIB_PATH": "/e"])
        let printed = resolution.renderJSON(defaults: ["batch-sizes": .array([.string("8")])], comment: "test")
        #expect(!printed.contains("secret"))
        let reread = try ConfigResolver.values(fromFile: Array(printed.utf8), path: "printed.json", schema: schema)
        #expect(reread == [
            "model": .string("m \"quoted\""), "port": .integer(9), "max-batch-size": .integer(4),
            "seconds": .number(1.5), "no-normalize": .bool(true),
            "cuda-lib-path": .array([.string("/e"), .string("/f")]), "batch-sizes": .array([.string("8")]),
        ])
        let document = try JSONValue.parse(printed)
        #expect(document["_sources"] == .object([
            JSONMember(key: "model", value: .string("file")), JSONMember(key: "port", value: .string("flag")),
            JSONMember(key: "max-batch-size", value: .string("env")),
            JSONMember(key: "seconds", value: .string("flag")), JSONMember(key: "no-normalize", value: .string("file")),
            JSONMember(key: "cuda-lib-path", value: .string("env+file")),
            JSONMember(key: "batch-sizes", value: .string("default")),
            JSONMember(key: "api-key", value: .string("env")),
        ]))
        #expect(document["_hidden"] == .array([.string("api-key")]))
        #expect(document["_config_file"] == .string(file.path))
    }
}
