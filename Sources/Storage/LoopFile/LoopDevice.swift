import Glibc
import Platform

/// Loop devices driven by ioctls (linux/loop.h), without `losetup`.
///
/// Devices are attached without `LO_FLAGS_AUTOCLEAR`: with it the kernel detaches a device as soon
/// as the last descriptor closes, which happens between attaching and mounting. They are detached
/// explicitly when a volume is deleted, and re-attached on demand after a reboot.
enum LoopDevice {
    static let controlPath = "/dev/loop-control"
    static let getFree: UInt = 0x4C82
    static let setFD: UInt = 0x4C00
    static let clearFD: UInt = 0x4C01
    static let setStatus64: UInt = 0x4C04
    static let getStatus64: UInt = 0x4C05
    static let setCapacity: UInt = 0x4C07
    static let configure: UInt = 0x4C0A
    static let infoSize = 232
    /// `LO_FLAGS_DIRECT_IO`.
    static let directIO: UInt32 = 16
    static let configSize = 304

    /// Attaches `file` to a free loop device and returns the device path.
    static func attach(_ file: String) throws(StorageError) -> String {
        let backing = try syscall("open", file) { open(file, O_RDWR | O_CLOEXEC) }
        defer { close(backing) }
        let control = try syscall("open", controlPath) { open(controlPath, O_RDWR | O_CLOEXEC) }
        defer { close(control) }
        // Another process may take the device between GET_FREE and CONFIGURE: retry then.
        for _ in 0..<16 {
            let number = try syscall("ioctl LOOP_CTL_GET_FREE", controlPath) { ioctl(control, getFree) }
            let device = "/dev/loop\(number)"
            let fd = try syscall("open", device) { open(device, O_RDWR | O_CLOEXEC) }
            defer { close(fd) }
            var config = [UInt8](repeating: 0, count: configSize)
            store(UInt32(backing), into: &config, at: 0)
            for (i, byte) in file.utf8.prefix(63).enumerated() { config[8 + 56 + i] = byte }
            // Direct I/O to the backing file: the data is not cached twice (once for the loop
            // device, once for the file). The kernel falls back to buffered I/O where the
            // backing filesystem cannot do it.
            store(directIO, into: &config, at: 8 + 52)
            var rc = config.withUnsafeMutableBytes { ioctl(fd, configure, $0.baseAddress!) }
            if rc != 0 && (errno == EINVAL || errno == ENOTTY) {
                // Kernels before 5.8: SET_FD, then SET_STATUS64 for the name.
                rc = ioctl(fd, setFD, backing)
                if rc == 0 {
                    var info = Array(config[8..<(8 + infoSize)])
                    _ = info.withUnsafeMutableBytes { ioctl(fd, setStatus64, $0.baseAddress!) }
                }
            }
            if rc == 0 { return device }
            if errno == EBUSY { continue }
            throw StorageError(errnoCode(errno), "attaching \(file) to \(device) failed: \(errnoText(errno))")
        }
        throw StorageError(.busy, "no free loop device could be claimed for \(file) after 16 tries")
    }

    /// The loop device `file` is attached to, if any (matched by device and inode of the file).
    static func find(_ file: String) -> String? {
        var fileInfo = stat()
        guard stat(file, &fileInfo) == 0, let dir = opendir("/sys/block") else { return nil }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard name.hasPrefix("loop"), readWholeFile("/sys/block/\(name)/loop/backing_file") != nil else { continue }
            let device = "/dev/" + name
            let fd = open(device, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var info = [UInt8](repeating: 0, count: infoSize)
            guard info.withUnsafeMutableBytes({ ioctl(fd, getStatus64, $0.baseAddress!) }) == 0 else { continue }
            if load(info, at: 0) == UInt64(fileInfo.st_dev) && load(info, at: 8) == UInt64(fileInfo.st_ino) { return device }
        }
        return nil
    }

    /// Detaches a loop device. A device still open elsewhere (mounted) is detached by the kernel
    /// when its last user goes.
    static func detach(_ device: String) throws(StorageError) {
        let fd = try syscall("open", device) { open(device, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        if ioctl(fd, clearFD) != 0 && errno != ENXIO {
            throw StorageError(errnoCode(errno), "detaching \(device) failed: \(errnoText(errno))")
        }
    }

    /// Makes the kernel re-read the size of the backing file.
    static func refreshCapacity(_ device: String) throws(StorageError) {
        let fd = try syscall("open", device) { open(device, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        _ = try syscall("ioctl LOOP_SET_CAPACITY", device) { ioctl(fd, setCapacity) }
    }

    static func store(_ value: UInt32, into bytes: inout [UInt8], at offset: Int) {
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    static func load(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
    }
}
