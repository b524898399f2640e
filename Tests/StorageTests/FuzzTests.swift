import TestSupport
import Platform
import Testing
@testable import Storage

/// Decoders of text and bytes from outside (mountinfo lines, superblocks, LVM reports, mount
/// options) return a value or a typed error for any input; none of them traps. Each case computes
/// for a while, so it runs on a thread of its own, off the concurrency pool.
@Suite(.ownThread) struct FuzzTests {
    static let mountinfoPieces = [
        "36", "35", "98:0", "7:12", "/", "/mnt", #"/a\040b"#, #"\1"#, #"\777"#, "rw,noatime", "shared:1", "-", "ext4", "/dev/loop3",
        "rw", " ", "  ", "", ":", "::", "-1", "99999999999999999999", "\t", "\u{0}", "é", "-", "x:y",
    ]

    @Test func mountInfoLinesNeverTrap() {
        var rng = SplitMix64(seed: 0x40)
        var parsed = 0
        for _ in 0..<20_000 {
            let count = Int(rng.next() % 14)
            var line = ""
            for i in 0..<count {
                if i > 0 { line += " " }
                line += Self.mountinfoPieces[Int(rng.next() % UInt64(Self.mountinfoPieces.count))]
            }
            if (try? MountInfo(line: line)) != nil { parsed += 1 }
        }
        #expect(parsed > 0)
    }

    @Test func superblockDetectionNeverTraps() {
        var rng = SplitMix64(seed: 0x5B)
        var found = 0
        for _ in 0..<2_000 {
            let length = Int(rng.next() % 70_000)
            var bytes = [UInt8](repeating: 0, count: length)
            // Mostly zeros with a few planted signature bytes, so the interesting branches run.
            for _ in 0..<8 where length > 0 { bytes[Int(rng.next() % UInt64(length))] = UInt8(truncatingIfNeeded: rng.next()) }
            if length > 1082, rng.next() % 4 == 0 {
                bytes[1080] = 0x53
                bytes[1081] = 0xEF
            }
            if DeviceSignature.detect(bytes) != nil { found += 1 }
        }
        #expect(found > 0)
    }

    @Test func lvmReportsNeverTrap() {
        var rng = SplitMix64(seed: 0x7E)
        let pieces = ["{", "}", "[", "]", "\"report\":", "\"vg\":", "\"vg_name\":\"a\"", ",", "\"x\"", "WARNING: x", "  ", "\"\\\"", "null", "1"]
        for _ in 0..<5_000 {
            let collector = LVMCollector()
            collector.reset()
            for _ in 0..<Int(rng.next() % 12) {
                var line = ""
                for _ in 0..<Int(rng.next() % 5) { line += pieces[Int(rng.next() % UInt64(pieces.count))] }
                line.withCString { collector.log(level: Int32(rng.next() % 8), message: $0) }
            }
            let output = collector.finish(returnCode: 1)
            struct Row: LVMReportRow {
                var vg_name: String
                init(fields: [String: String]) throws(JSONError) { vg_name = try fields.field("vg_name") }
            }
            _ = try? output.rows(key: "vg", as: Row.self, command: "vgs")
        }
    }

    @Test func mountOptionsNeverTrap() {
        var rng = SplitMix64(seed: 0x0F)
        let pieces = ["ro", "rw", ",", "bind", "x-", "=", "noatime", " ", "\u{0}", "-", "data", "é", "relatime", ",,"]
        var accepted = 0
        for _ in 0..<20_000 {
            var option = ""
            for _ in 0..<Int(rng.next() % 6) { option += pieces[Int(rng.next() % UInt64(pieces.count))] }
            if let parsed = try? MountOptions(parsing: [option]) {
                accepted += 1
                #expect(parsed.data.utf8.allSatisfy { MountOptions.isDataByte($0) || $0 == UInt8(ascii: ",") })
            }
        }
        #expect(accepted > 0)
    }
}
