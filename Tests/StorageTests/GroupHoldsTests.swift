import Glibc
import Platform
import Synchronization
import Testing

@testable import Storage

/// Holds on a group snapshot's volumes over fake system calls: always released, newest first,
/// even when one release fails; and a record that a later process releases from.
@Suite struct GroupHoldsTests {
    final class FakeSystem: Sendable {
        struct State {
            var calls: [String] = []
            var suspended: [DeviceNumber: String] = [:]
            var frozen: Set<String> = []
            var mounts: [String: DeviceNumber] = [:]
            var failing: Set<String> = []
            /// Suspending a device whose filesystem is frozen is EBUSY (Linux 6.1).
            var nests = false
            var boot = "boot-1"
        }
        let state = Mutex(State())

        func call(_ text: String) throws(StorageError) {
            let failing = state.withLock { s in
                s.calls.append(text)
                return s.failing.contains(text)
            }
            if failing { throw StorageError(.failed, "\(text) failed") }
        }

        var operations: HoldOperations {
            HoldOperations(
                suspend: { (device) throws(StorageError) in
                    try self.call("suspend \(device)")
                    try self.state.withLock { (s) throws(StorageError) in
                        if !s.nests, let mount = s.mounts.first(where: { $0.value == device })?.key, s.frozen.contains(mount) {
                            throw StorageError(.busy, "suspend \(device): Device or resource busy")
                        }
                        s.suspended[device] = "LVM-\(device)"
                    }
                },
                resume: { (device) throws(StorageError) in
                    try self.call("resume \(device)")
                    _ = self.state.withLock { $0.suspended.removeValue(forKey: device) }
                },
                freeze: { (path) throws(StorageError) in
                    try self.call("freeze \(path)")
                    _ = self.state.withLock { $0.frozen.insert(path) }
                },
                thaw: { (path) throws(StorageError) in
                    try self.call("thaw \(path)")
                    _ = self.state.withLock { $0.frozen.remove(path) }
                },
                status: { device in
                    self.state.withLock { s in s.suspended[device].map { (true, $0) } ?? (false, "LVM-\(device)") }
                },
                mountedDevice: { path in self.state.withLock { $0.mounts[path] } },
                bootID: { self.state.withLock { $0.boot } })
        }

        var calls: [String] { state.withLock { $0.calls } }
    }

    static let thick = DeviceNumber(major: 253, minor: 4)
    static let crypt = DeviceNumber(major: 253, minor: 9)
    static let thin = DeviceNumber(major: 253, minor: 6)

    func withRecordPath(_ body: (String) throws -> Void) throws {
        let dir = "/tmp/groupholds-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        mkdir(dir, 0o700)
        defer {
            unlink(dir + "/holds.json")
            rmdir(dir)
        }
        try body(dir + "/holds.json")
    }

    @Test func everythingIsReleasedNewestFirstAndTheRecordGoes() throws {
        try withRecordPath { path in
            let system = FakeSystem()
            system.state.withLock { $0.mounts["/mnt/thin"] = Self.thin }
            let holds = GroupHolds(recordPath: path, operations: system.operations)
            try holds.record(devices: [.init(device: Self.thick, uuid: "LVM-a")], mounts: [.init(mountPoint: "/mnt/thin", device: Self.thin)])
            #expect(access(path, F_OK) == 0)
            try holds.suspend(Self.thick)
            try holds.suspend(Self.crypt)
            try holds.releaseAll()
            #expect(system.calls == ["suspend 253:4", "suspend 253:9", "resume 253:9", "resume 253:4"])
            #expect(access(path, F_OK) != 0)
            #expect(holds.taken.isEmpty)
        }
    }

    /// One release that fails does not keep the others; the error names it and the record stays
    /// for the next start.
    @Test func aFailedReleaseKeepsTheRecord() throws {
        try withRecordPath { path in
            let system = FakeSystem()
            let holds = GroupHolds(recordPath: path, operations: system.operations)
            try holds.record(devices: [], mounts: [])
            try holds.suspend(Self.thick)
            try holds.suspend(Self.crypt)
            system.state.withLock { _ = $0.failing.insert("resume 253:9") }
            #expect { try holds.releaseAll() } throws: { error in
                let storage = error as? StorageError
                return storage?.code == .failed && storage?.message.contains("253:9") == true
            }
            #expect(system.calls.suffix(2) == ["resume 253:9", "resume 253:4"])
            #expect(access(path, F_OK) == 0)
        }
    }

    /// On Linux 6.1 a frozen filesystem's device cannot be suspended: the freeze is undone and
    /// the volume counts as one that cannot be held. Where it nests, the freeze stays.
    @Test func aFreezeIsKeptOnlyWhereLVMsSuspendNestsInIt() throws {
        let system = FakeSystem()
        system.state.withLock { $0.mounts["/mnt/thin"] = Self.thin }
        let holds = GroupHolds(recordPath: nil, operations: system.operations)
        #expect(try holds.freezeIfNested(mountPoint: "/mnt/thin", device: Self.thin) == false)
        #expect(system.calls == ["freeze /mnt/thin", "suspend 253:6", "thaw /mnt/thin"])
        #expect(holds.taken.isEmpty)
        #expect(system.state.withLock { $0.frozen.isEmpty })

        system.state.withLock { $0.nests = true }
        #expect(try holds.freezeIfNested(mountPoint: "/mnt/thin", device: Self.thin))
        #expect(holds.taken == [.freeze(mountPoint: "/mnt/thin")])
        #expect(system.state.withLock { $0.frozen == ["/mnt/thin"] && $0.suspended.isEmpty })
        try holds.releaseAll()
        #expect(system.state.withLock { $0.frozen.isEmpty })
    }

    /// What a killed process left: recorded devices still suspended (with the recorded uuid) are
    /// resumed, recorded filesystems still on the same device are thawed; then the record goes.
    @Test func aRecordLeftByAKilledProcessIsReleased() throws {
        try withRecordPath { path in
            let system = FakeSystem()
            let other = DeviceNumber(major: 253, minor: 12)
            system.state.withLock {
                $0.mounts["/mnt/thin"] = Self.thin
                $0.mounts["/mnt/moved"] = other
                $0.suspended[Self.thick] = "LVM-253:4"
                $0.suspended[other] = "LVM-someone-else"
            }
            let holds = GroupHolds(recordPath: path, operations: system.operations)
            try holds.record(
                devices: [
                    .init(device: Self.thick, uuid: "LVM-253:4"), .init(device: other, uuid: "LVM-reused-number"),
                    .init(device: Self.crypt, uuid: "CRYPT-x"),
                ],
                mounts: [.init(mountPoint: "/mnt/thin", device: Self.thin), .init(mountPoint: "/mnt/moved", device: Self.thick)])
            // The process dies here; the next one starts.
            let released = try GroupHolds.recover(recordPath: path, operations: system.operations)
            #expect(system.calls == ["resume 253:4", "thaw /mnt/thin"])
            #expect(released.count == 2)
            #expect(access(path, F_OK) != 0)
            #expect(try GroupHolds.recover(recordPath: path, operations: system.operations).isEmpty)
        }
    }

    @Test func aRecordFromAnotherBootIsOnlyRemoved() throws {
        try withRecordPath { path in
            let system = FakeSystem()
            system.state.withLock { $0.suspended[Self.thick] = "LVM-253:4" }
            try GroupHolds(recordPath: path, operations: system.operations).record(
                devices: [.init(device: Self.thick, uuid: "LVM-253:4")], mounts: [])
            system.state.withLock { $0.boot = "boot-2" }
            #expect(try GroupHolds.recover(recordPath: path, operations: system.operations).isEmpty)
            #expect(system.calls.isEmpty)
            #expect(access(path, F_OK) != 0)
        }
    }

    @Test func aRecoveryThatFailsKeepsTheRecord() throws {
        try withRecordPath { path in
            let system = FakeSystem()
            system.state.withLock {
                $0.suspended[Self.thick] = "LVM-253:4"
                $0.failing = ["resume 253:4"]
            }
            try GroupHolds(recordPath: path, operations: system.operations).record(
                devices: [.init(device: Self.thick, uuid: "LVM-253:4")], mounts: [])
            #expect { try GroupHolds.recover(recordPath: path, operations: system.operations) } throws: {
                ($0 as? StorageError)?.code == .failed
            }
            #expect(access(path, F_OK) == 0)
        }
    }

    /// The ioctl numbers of linux/dm-ioctl.h and linux/fs.h.
    @Test func ioctlNumbers() {
        #expect(DeviceMapperControl.suspendCommand == 0xC138_FD06)
        #expect(DeviceMapperControl.statusCommand == 0xC138_FD07)
        #expect(FilesystemFreeze.freezeCommand == 0xC004_5877)
        #expect(FilesystemFreeze.thawCommand == 0xC004_5878)
        #expect(DeviceMapperControl.parseDevice("253:7\n") == DeviceNumber(major: 253, minor: 7))
        #expect(DeviceMapperControl.parseDevice("nonsense") == nil)
    }
}
