import Glibc
import Testing

@testable import Storage

/// LinuxMounter.checkDevice: which device is behind a path, and whether it is still there.
struct DeviceCheckTests {
    @Test func deviceNumbersSplitAsGlibcDoes() {
        #expect(DeviceNumber(dev_t(0x0803)) == DeviceNumber(major: 8, minor: 3))
        // Minors above 255 and majors above 4095 use dev_t's high bits.
        #expect(DeviceNumber(makeDevice(major: 259, minor: 300)) == DeviceNumber(major: 259, minor: 300))
        #expect(DeviceNumber(makeDevice(major: 5000, minor: 1_000_123)) == DeviceNumber(major: 5000, minor: 1_000_123))
        #expect("\(DeviceNumber(major: 253, minor: 7))" == "253:7")
    }

    @Test func aPathWithoutABlockDeviceHasNone() async throws {
        let dir = temporaryDirectory()
        defer { rmdir(dir) }
        // Not a mount point, and a filesystem without a block device.
        #expect(try await LinuxMounter().checkDevice(at: dir) == DeviceCheck(device: nil))
        #expect(try await LinuxMounter().checkDevice(at: "/proc") == DeviceCheck(device: nil))
        await #expect { try await LinuxMounter().checkDevice(at: dir + "/missing") } throws: {
            ($0 as? StorageError)?.code == .notFound
        }
    }

    /// A node whose device no longer exists (an LV deactivated under a raw block publish).
    @Test(.enabled(if: isRoot, rootReason)) func aNodeOfAGoneDeviceIsAProblem() async throws {
        let dir = temporaryDirectory()
        defer {
            unlink(dir + "/node")
            rmdir(dir)
        }
        // Major 7 (loop) minor 1000123: no such loop device.
        try #require(mknod(dir + "/node", S_IFBLK | 0o600, makeDevice(major: 7, minor: 1_000_123)) == 0)
        let check = try await LinuxMounter().checkDevice(at: dir + "/node")
        #expect(check.device == DeviceNumber(major: 7, minor: 1_000_123))
        let problem = try #require(check.problem)
        #expect(problem.contains("device 7:1000123 no longer exists") && problem.contains("No such file or directory"), "\(problem)")
    }

    /// A node of a device that is there reads (an unattached loop device reads as empty).
    @Test(.enabled(if: isRoot, rootReason)) func aNodeOfALiveDeviceReads() throws {
        #expect(LinuxMounter.readFirstBlock("/dev/null") == nil)
        #expect(LinuxMounter.readFirstBlock("/dev/does-not-exist")?.contains("No such file or directory") == true)
        guard access("/sys/dev/block/7:0", F_OK) == 0 else { return }
        #expect(LinuxMounter.deviceNode(of: DeviceNumber(major: 7, minor: 0)) == "/dev/loop0")
    }

    /// glibc's `makedev`.
    func makeDevice(major: UInt64, minor: UInt64) -> dev_t {
        let low = (minor & 0xff) | ((major & 0xfff) << 8)
        let high = ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32)
        return dev_t(low | high)
    }

    func temporaryDirectory() -> String {
        var template = Array("/tmp/device-check-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
