import CommandConfig
import Testing

@Suite("JSON parser")
struct JSONParserTests {
    @Test func parsesEveryKindOfValue() throws {
        let value = try JSONValue.parse(#"""
            {"a": [1, -2, 0, 1.5, -0.25e2, 1E3, 9223372036854775808], "b": true, "c": false, "d": null,
             "e": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "f": {}, "g": []}
            """#)
        guard case let .object(members) = value else {
            Issue.record("not an object")
            return
        }
        #expect(members.map { [$0.line, $0.column] } == [[1, 2], [1, 59], [1, 70], [1, 82], [2, 2], [2, 46], [2, 55]])
        #expect(value == .object([
            JSONMember(key: "a", value: .array([
                .integer(1), .integer(-2), .integer(0), .number(1.5), .number(-25), .number(1000),
                .number(9_223_372_036_854_775_808),
            ])),
            JSONMember(key: "b", value: .bool(true)),
            JSONMember(key: "c", value: .bool(false)),
            JSONMember(key: "d", value: .null),
            JSONMember(key: "e", value: .string("x\"\\/\u{8}\u{c}\n\r\té😀")),
            JSONMember(key: "f", value: .object([])),
            JSONMember(key: "g", value: .array([])),
        ]))
    }

    @Test func aByteOrderMarkIsSkipped() throws {
        #expect(try JSONValue.parse([0xEF, 0xBB, 0xBF] + Array("[]".utf8)) == .array([]))
    }

    @Test(
        "errors carry line and column",
        arguments: [
            ("[1, 2", 1, 6), ("[1,]", 1, 4), ("tru", 1, 1), ("\"abc", 1, 1), ("[\"\\x\"]", 1, 3), ("[\"\\u12\"]", 1, 7),
            ("[\"\\ud800\"]", 1, 3), ("[-]", 1, 3), ("[1.]", 1, 4), ("[1e]", 1, 4), ("\n\n  @", 3, 3),
            ("[1e999]", 1, 2),
        ])
    func errorPositions(_ text: String, _ line: Int, _ column: Int) {
        #expect {
            try JSONValue.parse(text)
        } throws: { error in
            let error = error as? JSONParseError
            return error?.line == line && error?.column == column
        }
    }

    @Test func invalidUTF8InAStringIsAnError() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func deepNestingIsRefusedWithoutCrashing() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
        let fine = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: Never.self) { try JSONValue.parse(fine) }
    }

    @Test func writtenTextParsesBackToTheSameValue() throws {
        let value = JSONValue.object([
            JSONMember(key: "s", value: .string("tab\t quote\" nul\u{0} é")),
            JSONMember(key: "n", value: .array([.integer(-3), .number(0.5), .bool(true), .null])),
            JSONMember(key: "o", value: .object([JSONMember(key: "k", value: .string("v"))])),
        ])
        #expect(try JSONValue.parse(value.jsonText) == value)
        #expect(try JSONValue.parse(value.prettyPrinted()) == value)
    }
}
