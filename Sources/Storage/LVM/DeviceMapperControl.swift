import Glibc
import Platform

/// The few device-mapper ioctls a group snapshot needs, on `/dev/mapper/control` (linux/dm-ioctl.h):
/// a device's state, and suspending and resuming it. LVM does the rest; these hold a volume still
/// while LVM snapshots the others (``GroupHolds``).
enum DeviceMapperControl {
    static let controlPath = "/dev/mapper/control"
    /// `sizeof(struct dm_ioctl)`.
    static let ioctlSize = 312
    /// `_IOWR(0xfd, nr, struct dm_ioctl)`.
    static func command(_ number: UInt) -> UInt { 0xC000_0000 | (UInt(ioctlSize) << 16) | (0xFD << 8) | number }
    static let suspendCommand = command(6)  // DM_DEV_SUSPEND
    static let statusCommand = command(7)  // DM_DEV_STATUS
    static let suspendFlag: UInt32 = 1 << 1
    static let activePresentFlag: UInt32 = 1 << 5
    static let skipLockFSFlag: UInt32 = 1 << 10

    /// One device's state (DM_DEV_STATUS).
    struct Status: Sendable, Hashable {
        var name: String
        var uuid: String
        var openCount: Int32
        var suspended: Bool
    }

    /// The state of dm device `device`, nil when there is no such device.
    static func status(_ device: DeviceNumber) throws(StorageError) -> Status? {
        do throws(StorageError) {
            let out = try call(statusCommand, device: device, flags: 0, what: "DM_DEV_STATUS")
            return Status(
                name: string(out, at: 48, count: 128), uuid: string(out, at: 176, count: 129),
                openCount: out.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 24, as: Int32.self) },
                suspended: flags(out) & suspendFlag != 0)
        } catch where error.code == .notFound {
            return nil
        }
    }

    /// Suspends `device`: in-flight I/O completes, new I/O waits. With `lockFilesystem` the
    /// filesystem on it (if any) is frozen first, so what it holds is clean (DM_DEV_SUSPEND,
    /// as `dmsetup suspend` does).
    static func suspend(_ device: DeviceNumber, lockFilesystem: Bool = true) throws(StorageError) {
        _ = try call(
            suspendCommand, device: device, flags: suspendFlag | (lockFilesystem ? 0 : skipLockFSFlag), what: "DM_DEV_SUSPEND")
    }

    /// Resumes `device` (and thaws a filesystem its suspend froze); a device that is not
    /// suspended is left as it is.
    static func resume(_ device: DeviceNumber) throws(StorageError) {
        _ = try call(suspendCommand, device: device, flags: 0, what: "DM_DEV_SUSPEND (resume)")
    }

    private static func call(_ command: UInt, device: DeviceNumber, flags: UInt32, what: String) throws(StorageError) -> [UInt8] {
        let control = try syscall("open", controlPath) { open(controlPath, O_RDWR | O_CLOEXEC) }
        defer { close(control) }
        var buffer = [UInt8](repeating: 0, count: ioctlSize)
        buffer.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(4), toByteOffset: 0, as: UInt32.self)  // version 4.0.0
            raw.storeBytes(of: UInt32(ioctlSize), toByteOffset: 12, as: UInt32.self)  // data_size
            raw.storeBytes(of: UInt32(ioctlSize), toByteOffset: 16, as: UInt32.self)  // data_start
            raw.storeBytes(of: flags, toByteOffset: 28, as: UInt32.self)
            // huge_encode_dev: the kernel finds the device by number when name and uuid are empty.
            let major = UInt64(device.major)
            let minor = UInt64(device.minor)
            let encoded = (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)
            raw.storeBytes(of: encoded, toByteOffset: 40, as: UInt64.self)
        }
        let rc = buffer.withUnsafeMutableBytes { ioctl(control, command, $0.baseAddress!) }
        if rc != 0 {
            let err = errno
            throw StorageError(errnoCode(err), "\(what) of device-mapper device \(device) failed: \(errnoText(err))")
        }
        return buffer
    }

    private static func flags(_ buffer: [UInt8]) -> UInt32 {
        buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 28, as: UInt32.self) }
    }

    private static func string(_ buffer: [UInt8], at offset: Int, count: Int) -> String {
        let field = buffer[offset..<(offset + count)]
        return String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// The device-mapper devices stacked directly on `device` (`/sys/dev/block/M:m/holders`),
    /// with their dm uuids (`CRYPT-LUKS2-…` for an encryption mapping).
    static func holders(of device: DeviceNumber) -> [(device: DeviceNumber, uuid: String)] {
        var result: [(DeviceNumber, String)] = []
        for name in directoryEntries("/sys/dev/block/\(device)/holders") ?? [] {
            guard name.hasPrefix("dm-"), let number = parseDevice(readWholeFile("/sys/class/block/\(name)/dev")) else { continue }
            let uuid = readWholeFile("/sys/class/block/\(name)/dm/uuid")?.split(whereSeparator: \.isWhitespace).first.map(String.init) ?? ""
            result.append((number, uuid))
        }
        return result
    }

    /// `M:m` (a sysfs `dev` file) as a device number.
    static func parseDevice(_ text: String?) -> DeviceNumber? {
        let parts = text?.split(whereSeparator: \.isWhitespace).first?.split(separator: ":") ?? []
        guard parts.count == 2, let major = UInt32(parts[0]), let minor = UInt32(parts[1]) else { return nil }
        return DeviceNumber(major: major, minor: minor)
    }
}

/// Freezing and thawing a mounted filesystem (FIFREEZE, FITHAW): `fsfreeze -f` and `-u` without
/// starting a program, so that the freeze and the thaw cannot fail for a missing or slow binary
/// while a volume's writes are held, and errno comes back as it is.
enum FilesystemFreeze {
    static let freezeCommand: UInt = 0xC004_5877
    static let thawCommand: UInt = 0xC004_5878

    /// Freezes the filesystem mounted at `mountPoint`: its dirty data is written, new writes wait.
    /// - Throws: `.busy` when it is frozen already.
    static func freeze(_ mountPoint: String) throws(StorageError) {
        try run(freezeCommand, mountPoint, name: "ioctl FIFREEZE")
    }

    /// Thaws the filesystem at `mountPoint`; one that is not frozen is left as it is (the kernel
    /// answers EINVAL, taken as success).
    static func thaw(_ mountPoint: String) throws(StorageError) {
        do throws(StorageError) { try run(thawCommand, mountPoint, name: "ioctl FITHAW") } catch where error.code == .invalidArgument {
            return
        }
    }

    private static func run(_ command: UInt, _ mountPoint: String, name: StaticString) throws(StorageError) {
        let fd = try syscall("open", mountPoint) { open(mountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { close(fd) }
        _ = try syscall(name, mountPoint) { ioctl(fd, command, 0) }
    }
}
