import Glibc
import Testing

@testable import Storage

/// Mutable parameters to IO limits, and those to `io.max` lines.
@Suite struct IOLimitsTests {
    func rejects(_ parameters: [String: String], saying words: [String]) {
        #expect {
            _ = try IOLimits.Change(parameters: parameters, volume: "pvc-1")
        } throws: { error in
            guard let error = error as? StorageError, error.code == .invalidArgument else { return false }
            return words.allSatisfy { error.message.contains($0) } && error.message.contains("pvc-1")
        }
    }

    @Test func parsesAbsoluteAndPerGiBKeysAndMax() throws {
        let change = try IOLimits.Change(
            parameters: ["readIOPS": "500", "writeBytesPerSecondPerGiB": "1048576", "writeIOPS": "max", "readBytesPerSecond": "2"],
            volume: "pvc-1")
        let expected: [IOLimits.Quantity: IOLimits.Limit?] = [
            .readIOPS: .absolute(500), .writeBytesPerSecond: .perGiB(1_048_576), .writeIOPS: .none, .readBytesPerSecond: .absolute(2),
        ]
        #expect(change.limits == expected)
        #expect(change.limits.keys.contains(.writeIOPS))
        let limits = try IOLimits(parameters: ["readIOPS": "500", "writeIOPS": "max"], volume: "pvc-1")
        #expect(limits == IOLimits([.readIOPS: .absolute(500)]))
        #expect(IOLimits.keys.count == 8)
    }

    @Test func rejectsUnknownKeysBadValuesAndBothKindsOfOneQuantity() {
        rejects(["readIOPZ": "10"], saying: ["readIOPZ", "readIOPSPerGiB"])
        rejects(["readIOPS": "1"], saying: ["readIOPS", "2 or more"])
        rejects(["readIOPS": "0"], saying: ["readIOPS"])
        for bad in ["", "ten", "-5", "+5", " 5", "5 ", "1e3", "0x10", "99999999999999999999999"] {
            rejects(["writeBytesPerSecond": bad], saying: ["writeBytesPerSecond", "whole number"])
        }
        rejects(["writeIOPS": "4294967296"], saying: ["writeIOPS", "4294967295"])
        rejects(["readIOPS": "10", "readIOPSPerGiB": "10"], saying: ["readIOPS", "readIOPSPerGiB", "give one"])
        rejects(["readIOPS": "max", "readIOPSPerGiB": "max"], saying: ["readIOPSPerGiB"])
    }

    @Test func aChangeKeepsQuantitiesItDoesNotNameAndReplacesTheOtherKind() throws {
        let current = IOLimits([.readIOPS: .absolute(500), .writeIOPS: .perGiB(100), .readBytesPerSecond: .absolute(1 << 20)])
        let changed = current.applying(
            try IOLimits.Change(parameters: ["writeIOPS": "1000", "readBytesPerSecond": "max"], volume: "v"))
        #expect(changed == IOLimits([.readIOPS: .absolute(500), .writeIOPS: .absolute(1000)]))
        #expect(current.applying(try IOLimits.Change(parameters: ["readIOPS": "500"], volume: "v")) == current)
    }

    @Test func perGiBIsScaledBySizeAndRoundedUp() {
        let limits = IOLimits([.writeIOPS: .perGiB(400), .readBytesPerSecond: .perGiB(10 << 20), .readIOPS: .absolute(7)])
        #expect(limits.effective(capacityBytes: 1 << 30) == [.writeIOPS: 400, .readBytesPerSecond: 10 << 20, .readIOPS: 7])
        #expect(limits.effective(capacityBytes: 256 << 20) == [.writeIOPS: 100, .readBytesPerSecond: 2_621_440, .readIOPS: 7])
        // 1.5 GiB at 100 per GiB is 150; 100 MiB is 9.77, rounded up to 10.
        let hundred = IOLimits([.writeIOPS: .perGiB(100)])
        #expect(hundred.effective(capacityBytes: 3 << 29)[.writeIOPS] == 150)
        #expect(hundred.effective(capacityBytes: 100 << 20)[.writeIOPS] == 10)
        // Never below the kernel's 2, never above what it keeps.
        #expect(IOLimits([.writeIOPS: .perGiB(2)]).effective(capacityBytes: 4 << 20)[.writeIOPS] == 2)
        #expect(IOLimits([.writeIOPS: .perGiB(1 << 40)]).effective(capacityBytes: 1 << 40)[.writeIOPS] == UInt64(UInt32.max))
        #expect(IOLimits([.writeBytesPerSecond: .perGiB(.max)]).effective(capacityBytes: .max)[.writeBytesPerSecond] == .max)
        #expect(limits.dependsOnSize && !IOLimits([.readIOPS: .absolute(7)]).dependsOnSize)
    }

    @Test func ioMaxLineNamesEveryQuantityInTheKernelsOrder() {
        let device = DeviceNumber(major: 253, minor: 4)
        #expect(IOLimits.ioMaxLine(device: device, [.writeBytesPerSecond: 2_097_152, .writeIOPS: 120]) == "253:4 rbps=max wbps=2097152 riops=max wiops=120")
        #expect(IOLimits.ioMaxLine(device: device, [:]) == "253:4 rbps=max wbps=max riops=max wiops=max")
    }

    @Test func tagsRoundTripAndIgnoreOthers() throws {
        let limits = IOLimits([.readIOPS: .absolute(500), .writeBytesPerSecond: .perGiB(1 << 20)])
        let tags = limits.tags(prefix: "csi.swift-csi.io/")
        #expect(tags == ["csi.swift-csi.io/readIOPS=500", "csi.swift-csi.io/writeBytesPerSecondPerGiB=1048576"])
        for tag in tags { _ = try LVMTag(tag) }
        let read = IOLimits(
            tags: tags + ["csi.swift-csi.io/name=readIOPS", "csi.swift-csi.io/writeIOPS=1", "csi.swift-csi.io/readIOPSx=5", "other"],
            prefix: "csi.swift-csi.io/")
        #expect(read == limits)
    }
}
