import TestSupport
import Platform
import Testing

@testable import Storage

@Suite struct LVMNameTests {
    static let hostile: [(String, String)] = [
        ("", "is empty"),
        ("-an", "starts with '-'"),
        ("--config", "starts with '-'"),
        ("a b", "contains byte 0x20"),
        ("vol\tx", "contains byte 0x09"),
        ("vol\nlvremove", "contains byte 0x0A"),
        ("x;rm", "contains ';'"),
        ("x/y", "contains '/'"),
        ("$(id)", "contains '$'"),
        ("a'b", "contains '''"),
        ("ünï", "contains byte 0xC3"),
        (".", "is reserved"),
        ("..", "is reserved"),
        ("snapshot", "reserved word 'snapshot'"),
        ("snapshot-1234", "reserved word 'snapshot'"),
        ("pvmove0", "reserved word 'pvmove'"),
        ("data_mlog", "reserved suffix '_mlog'"),
        ("x_mimage_1", "reserved suffix '_mimage'"),
        ("pool_tdata", "reserved suffix '_tdata'"),
        ("pool_tmeta", "reserved suffix '_tmeta'"),
        (String(repeating: "a", count: 128), "128 bytes long"),
        ("a\u{0}b", "contains byte 0x00"),
    ]

    @Test(arguments: hostile)
    func rejectsHostileLogicalVolumeNames(name: String, reason: String) {
        #expect {
            _ = try LVMName(name)
        } throws: { error in
            guard let error = error as? StorageError else { return false }
            return error.code == .invalidName && error.message.contains(reason)
        }
    }

    @Test(arguments: ["pvc-0a1b2c3d-4e5f", "vg0", "a", "A.b_c+d-e", String(repeating: "z", count: 127), "my.snapshot", "x-pvmove"])
    func acceptsValidNames(name: String) throws {
        #expect(try LVMName(name).rawValue == name)
    }

    @Test func volumeGroupNamesMayUseLogicalVolumeReservedWords() throws {
        #expect(try LVMName("snapshotvg", kind: .volumeGroup).rawValue == "snapshotvg")
        #expect(throws: StorageError.self) { try LVMName("-vg", kind: .volumeGroup) }
    }

    @Test(arguments: [
        ("csi.swift-csi.io/owner=lvm.csi.swift-csi.io", true), ("a:b&c!d#e=f/g+h_i.j-k", true),
        ("-x", false), ("a b", false), ("a,b", false), ("", false), ("a@b", false), (String(repeating: "t", count: 1025), false),
    ])
    func validatesTags(tag: String, valid: Bool) {
        #expect(((try? LVMTag(tag)) != nil) == valid)
    }

    @Test(arguments: ["pvc-1", "name with spaces", "ünïcødé/#hash", "#", "a,b;c", ""])
    func tagEncodingRoundTrips(text: String) throws {
        let encoded = LVMTag.encode(text)
        if !text.isEmpty { _ = try LVMTag("x=" + encoded) }
        #expect(LVMTag.decode(encoded) == text)
    }

    @Test func volumeIDsAreValidNamesForAnyRequestName() throws {
        for name in ["pvc-1234", "snapshot-abc", "a b c", String(repeating: "x", count: 200), "", "-rf"] {
            let id = LVMBackend.volumeID(forName: name)
            _ = try LVMName(id)
            #expect(id.utf8.count <= 63)
        }
        #expect(LVMBackend.volumeID(forName: "pvc-1234") == "pvc-1234")
        #expect(LVMBackend.volumeID(forName: "snapshot-abc") != LVMBackend.volumeID(forName: "snapshot-abd"))
    }

    /// No text, however hostile, that passes validation can add an option or a second word to a
    /// command line that liblvm2cmd splits on white space. 50 000 inputs: on a thread of its own.
    @Test(.ownThread) func noAcceptedInputInjectsAWordOrAnOption() {
        var rng = SplitMix64(seed: 0x5EED)
        let alphabet: [Character] =
            Array("aZ09+_.-/=!:&#@ \t\n\r\u{0B}\u{0C}\u{0}\"'\\;$`|,()*?[]{}<>~%^") + ["é", "\u{A0}", "\u{2028}", "\u{3000}"]
        var accepted = 0
        for _ in 0..<50_000 {
            let length = Int(rng.next() % 12)
            var text = ""
            for _ in 0..<length { text.append(alphabet[Int(rng.next() % UInt64(alphabet.count))]) }
            var words: [LVMWord] = []
            if let name = try? LVMName(text) { words.append(LVMWord(name)) }
            if let name = try? LVMName(text, kind: .volumeGroup) { words.append(LVMWord(name)) }
            if let tag = try? LVMTag(text) { words.append(LVMWord(tag)) }
            for word in words {
                accepted += 1
                let line = LVMCommand([LVMWord("lvcreate"), LVMWord("-n"), word, LVMWord("vg0")]).line
                let split = line.split(whereSeparator: { $0.isWhitespace || $0 == "\u{0}" })
                #expect(split.count == 4, "\(text.debugDescription) split into \(split)")
                #expect(!split[2].hasPrefix("-"), "\(text.debugDescription) reads as an option")
                #expect(split[2].utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "\(text.debugDescription) has a non-printable byte")
            }
        }
        #expect(accepted > 1000)
    }

    @Test func collectorSeparatesReportFromWarnings() {
        let collector = LVMCollector()
        collector.reset()
        for (level, line) in [
            (4, "  WARNING: Activation disabled. No device-mapper interaction will be attempted."),
            (4, "  {"), (4, "      \"report\": ["), (4, "          {"), (4, "              \"lv\": ["),
            (4, "                  {\"lv_name\":\"a}b\", \"lv_size\":\"4194304\"},"),
            (4, "  WARNING: Device /dev/loop9 not initialized in udev database."),
            (4, "                  {\"lv_name\":\"c\", \"lv_size\":\"1\"}"),
            (4, "              ]"), (4, "          }"), (4, "      ]"), (4, "  }"),
            (4, "  WARNING: after the report"), (3, "  Volume group \"x\" not found"), (7, "debug noise"),
        ] {
            line.withCString { collector.log(level: Int32(level), message: $0) }
        }
        let output = collector.finish(returnCode: 1)
        #expect(
            output.messages == [
                "WARNING: Activation disabled. No device-mapper interaction will be attempted.",
                "WARNING: Device /dev/loop9 not initialized in udev database.", "WARNING: after the report",
            ])
        #expect(output.errors == ["Volume group \"x\" not found"])
        struct Row: LVMReportRow {
            var lv_name: String
            var lv_size: String
            init(fields: [String: String]) throws(JSONError) {
                lv_name = try fields.field("lv_name")
                lv_size = try fields.field("lv_size")
            }
        }
        let rows = try? output.rows(key: "lv", as: Row.self, command: "lvs")
        #expect(rows?.map(\.lv_name) == ["a}b", "c"])
    }

    @Test func returnCodesMapToTypedErrors() {
        func code(_ rc: Int32, _ errors: [String]) -> StorageError.Code {
            LVMOutput(returnCode: rc, reportLines: [], messages: [], errors: errors).error(command: "lvcreate x").code
        }
        #expect(code(3, ["Invalid argument"]) == .invalidArgument)
        #expect(code(5, ["Volume group \"vgx\" not found"]) == .notFound)
        #expect(code(5, ["Logical Volume \"a\" already exists in volume group \"vg\""]) == .alreadyExists)
        #expect(code(5, ["Volume group \"vg\" has insufficient free space (2 extents): 25 required."]) == .insufficientCapacity)
        #expect(code(5, ["Something else"]) == .failed)
        let error = LVMOutput(returnCode: 5, reportLines: [], messages: [], errors: ["boom"]).error(command: "lvremove -f vg/x")
        #expect(error.command == "lvremove -f vg/x" && error.details == ["boom"])
    }
}

/// A small deterministic generator for property tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
