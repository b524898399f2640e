import Platform
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
