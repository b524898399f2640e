import Glibc
import Platform

/// A block device's kernel number, written `major:minor` as in /proc/self/mountinfo and /sys/dev/block.
public struct DeviceNumber: Sendable, Hashable, CustomStringConvertible {
    /// The major number.
    public var major: UInt32
    /// The minor number.
    public var minor: UInt32

    /// Creates a device number.
    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }

    /// The number of a `dev_t` (`st_rdev`, `st_dev`), split as glibc's `major()`/`minor()` do.
    init(_ dev: dev_t) {
        let dev = UInt64(dev)
        major = UInt32(truncatingIfNeeded: ((dev >> 32) & 0xFFFF_F000) | ((dev >> 8) & 0xFFF))
        minor = UInt32(truncatingIfNeeded: ((dev >> 12) & 0xFFFF_FF00) | (dev & 0xFF))
    }

    public var description: String { "\(major):\(minor)" }
}

/// What ``Mounter/checkDevice(at:)`` found behind a path.
public struct DeviceCheck: Sendable, Hashable {
    /// The block device behind the path; nil when there is none (nothing mounted, or a filesystem
    /// without a block device such as tmpfs).
    public var device: DeviceNumber?
    /// The device node that was read, when one was found.
    public var node: String?
    /// What is wrong with the device, naming it and the errno text; nil when it is there and
    /// answers a read (or has no node here to read it through).
    public var problem: String?

    /// Creates a finding.
    public init(device: DeviceNumber?, node: String? = nil, problem: String? = nil) {
        self.device = device
        self.node = node
        self.problem = problem
    }
}

extension LinuxMounter {
    /// ``Mounter/checkDevice(at:)`` on the calling thread.
    static func checkDeviceBlocking(at path: String) throws(StorageError) -> DeviceCheck {
        var info = stat()
        _ = try syscall("stat", path) { stat(path, &info) }
        let number: DeviceNumber
        var node: String?
        if info.st_mode & S_IFMT == S_IFBLK {
            // A raw block publish: the target is a bind-mounted device node; opening it opens the device.
            number = DeviceNumber(info.st_rdev)
            node = path
        } else {
            guard let mount = try mountAt(path), mount.major != 0 else { return DeviceCheck(device: nil) }
            number = DeviceNumber(major: mount.major, minor: mount.minor)
        }
        let sys = "/sys/dev/block/\(number)"
        if access(sys, F_OK) != 0 {
            return DeviceCheck(device: number, problem: "device \(number) no longer exists (\(sys): \(errnoText(errno)))")
        }
        guard let node = node ?? deviceNode(of: number) else { return DeviceCheck(device: number) }
        if let failure = readFirstBlock(node) {
            return DeviceCheck(device: number, node: node, problem: "device \(number) (\(node)) cannot be read: \(failure)")
        }
        return DeviceCheck(device: number, node: node)
    }

    /// A node in /dev for `number`: the name the kernel gives it (`DEVNAME` in its uevent, made by
    /// devtmpfs), else udev's `/dev/block/MAJ:MIN`; nil when neither is that device.
    static func deviceNode(of number: DeviceNumber) -> String? {
        var candidates = ["/dev/block/\(number)"]
        if let uevent = readWholeFile("/sys/dev/block/\(number)/uevent"),
            let line = uevent.split(separator: "\n").first(where: { $0.hasPrefix("DEVNAME=") })
        {
            candidates.insert("/dev/" + line.dropFirst("DEVNAME=".count), at: 0)
        }
        return candidates.first { candidate in
            var info = stat()
            return stat(candidate, &info) == 0 && info.st_mode & S_IFMT == S_IFBLK && DeviceNumber(info.st_rdev) == number
        }
    }

    /// Reads the first 4 KiB of block device `node` past the page cache (`O_DIRECT`, aligned);
    /// nil when that works, else the errno text of the failing call.
    static func readFirstBlock(_ node: String) -> String? {
        var fd = open(node, O_RDONLY | O_CLOEXEC | directIO)
        if fd < 0 && errno == EINVAL { fd = open(node, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return "open: " + errnoText(errno) }
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { buffer.deallocate() }
        while pread(fd, buffer.baseAddress, buffer.count, 0) < 0 {
            if errno != EINTR { return "pread: " + errnoText(errno) }
        }
        return nil
    }
}

/// `O_DIRECT`, which Glibc's Swift module does not export; its value differs between architectures.
#if arch(arm64) || arch(arm)
    let directIO: Int32 = 0o200000
#elseif arch(powerpc64) || arch(powerpc64le)
    let directIO: Int32 = 0o400000
#else
    let directIO: Int32 = 0o40000
#endif
