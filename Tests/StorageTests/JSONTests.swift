import Testing

@testable import Storage

@Suite struct JSONTests {
    @Test func parsesAnLVMReport() throws {
        let text = """
            {
                "report": [
                    {
                        "vg": [
                            {"vg_name":"vg0", "vg_size":"268435456", "vg_free":"260046848", "vg_extent_size":"4194304", "vg_seqno":"3", "vg_missing_pv_count":"0"}
                        ]
                    }
                ]
            }
            """
        let output = LVMOutput(returnCode: 1, reportLines: text.split(separator: "\n").map(String.init), messages: [], errors: [])
        let rows = try output.rows(key: "vg", as: VGRow.self, command: "vgs")
        #expect(rows.map { $0.model() } == [
            VolumeGroup(name: "vg0", sizeBytes: 268_435_456, freeBytes: 260_046_848, extentBytes: 4_194_304, sequenceNumber: 3, missingPhysicalVolumes: 0)
        ])
        #expect(try output.rows(key: "lv", as: LVRow.self, command: "lvs").isEmpty)
    }

    @Test func aMissingFieldIsNamed() {
        let output = LVMOutput(returnCode: 1, reportLines: [#"{"report":[{"vg":[{"vg_name":"a"}]}]}"#], messages: [], errors: [])
        #expect {
            _ = try output.rows(key: "vg", as: VGRow.self, command: "vgs")
        } throws: { error in
            (error as? StorageError)?.message.contains("field vg_size is missing") == true
        }
    }

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

    @Test func loopFileRecordsRoundTrip() throws {
        let record = LoopFileBackend.Record(
            id: "pvc-1", name: "pvc-1", owner: "o", kind: "volume", capacityBytes: UInt64.max, fsType: "ext4", source: nil,
            createdAt: 1_700_000_000)
        let text = JSON.print(record.json)
        #expect(text == #"{"capacityBytes":18446744073709551615,"createdAt":1700000000,"fsType":"ext4","id":"pvc-1","kind":"volume","name":"pvc-1","owner":"o"}"#)
        #expect(try LoopFileBackend.Record(json: JSON.parse(text)) == record)
        // The format JSONEncoder wrote (escaped slashes, explicit null) still reads.
        let older = #"{"capacityBytes":1048576,"createdAt":1,"id":"a","kind":"snapshot","name":"a","owner":"o","source":"vol\/x","fsType":null}"#
        #expect(try LoopFileBackend.Record(json: JSON.parse(older)).source == "vol/x")
        #expect(throws: JSONError.self) { try LoopFileBackend.Record(json: JSON.parse(#"{"id":"a"}"#)) }
    }
}
