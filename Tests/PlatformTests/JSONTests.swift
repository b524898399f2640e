import Testing

@testable import Platform

@Suite struct JSONTests {
    @Test func stringsEscapesAndNumbers() throws {
        let value = try JSON.parse(#" {"a": "x\"\\\/\n\u00e9\ud83d\ude00", "b": [1, -2.5e3, true, false, null], "c": {}} "#)
        #expect(value["a"] == .string("x\"\\/\né😀"))
        #expect(value["b"] == .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null]))
        #expect(value["c"] == .object([]))
        #expect(try JSON.parse(JSON.print(value)) == value)
        #expect(JSON.print(.string("a\u{01}\t")) == #""a\u0001\t""#)
    }

    @Test func prettyPrintingIndentsByLevelAndKeepsEmptyContainersShort() throws {
        let value = JSONValue.object([
            ("dir", .string("/r")), ("entries", .array([.object([("n", .int(Int64(-3))), ("ok", .bool(true))]), .array([])])),
            ("annotation", .null), ("empty", .object([])),
        ])
        let expected = """
            {
              "dir": "/r",
              "entries": [
                {
                  "n": -3,
                  "ok": true
                },
                []
              ],
              "annotation": null,
              "empty": {}
            }
            """
        #expect(JSON.print(value, pretty: true) == expected)
        #expect(try JSON.parse(JSON.print(value, pretty: true)) == value)
        #expect(JSON.print(value) == #"{"dir":"/r","entries":[{"n":-3,"ok":true},[]],"annotation":null,"empty":{}}"#)
        #expect(JSONValue.int(UInt64.max) == .number("18446744073709551615"))
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"abc", "\"\\x\"", "\"\\ud800\"", "tru", "{} x", "\"a\u{01}\"",
        String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
    ])
    func malformedTextIsRejected(_ text: String) {
        #expect(throws: JSONError.self) { try JSON.parse(text) }
    }
}
