import Glibc
import Platform

/// Filesystem and mount operations of the CSI node service: every call the node service makes to
/// the node's filesystem goes through one of these, so that none blocks the event loop (the
/// Linux implementation runs each on the blocking pool) and the service can be tested with a fake.
/// ``LinuxMounter`` is the real one.
public protocol Mounter: Sendable {
    /// Mounts the filesystem on `device` at the directory `target` (created if missing). A target
    /// that already has this device mounted is left as it is.
    /// - Throws: `.alreadyExists` when something else is mounted there, `.invalidArgument` for bad
    ///   options, `.failed` with the kernel's reason otherwise.
    func mount(device: String, at target: String, fsType: String, options: MountOptions) async throws(StorageError)

    /// Bind-mounts `source` (a directory, or a device node for raw block) at `target`, creating a
    /// directory or an empty file there if missing, then remounts it read-only when asked
    /// (`MS_REMOUNT|MS_BIND|MS_RDONLY`). A target that already shows `source` is left as it is.
    func bindMount(source: String, at target: String, options: MountOptions) async throws(StorageError)

    /// Unmounts `target`; a path that is not a mount point (or does not exist) is fine. With
    /// `removeTarget`, the directory or file is removed afterwards.
    func unmount(_ target: String, removeTarget: Bool) async throws(StorageError)

    /// Every mount of this process's mount namespace.
    func mounts() async throws(StorageError) -> [MountInfo]

    /// The filesystem type on `device`, or nil when it holds no known signature.
    func filesystem(on device: String) async throws(StorageError) -> String?

    /// Makes a filesystem of `fsType` (`ext4` or `xfs`) on `device` unless it already has one.
    /// - Returns: false when a filesystem was already there (nothing was changed).
    /// - Throws: `.alreadyExists` when the device holds something else (another filesystem type,
    ///   a partition table, an LVM label); it is never formatted over.
    func makeFilesystem(on device: String, fsType: String) async throws(StorageError) -> Bool

    /// Grows the filesystem on `device`, mounted at `mountPoint`, to fill the device (online); one
    /// that already fills it is left as it is.
    func resizeFilesystem(on device: String, mountedAt mountPoint: String) async throws(StorageError)

    /// Space and inode usage of the filesystem holding `path`.
    func statistics(path: String) async throws(StorageError) -> FilesystemStatistics

    /// The size of a block device in bytes.
    func blockDeviceSize(_ device: String) async throws(StorageError) -> UInt64

    /// The block device behind `path` — a mount point's (its mountinfo `major:minor`) or a device
    /// node's (a raw block publish: its `st_rdev`) — and whether it still exists
    /// (`/sys/dev/block/MAJ:MIN`) and answers one aligned 4 KiB `O_DIRECT` read.
    /// - Throws: when `path` cannot be looked at; a dead device is a ``DeviceCheck/problem``.
    func checkDevice(at path: String) async throws(StorageError) -> DeviceCheck

    /// What is at `path`, symbolic links followed (`stat`), or nil when nothing is there or it
    /// cannot be examined.
    func status(of path: String) async throws(StorageError) -> FileStatus?

    /// Creates the directory `path` and its missing parents (mode 0750); one that exists is fine.
    /// - Throws: the failing directory and the reason.
    func makeDirectories(_ path: String) async throws(StorageError)

    /// `path` checked against `policy` (``KubeletPathPolicy/validate(_:field:)``) and returned with
    /// symbolic links resolved.
    /// - Throws: `.invalidArgument` naming `field`, the path and the rule it breaks.
    func resolve(_ path: String, field: String, policy: KubeletPathPolicy) async throws(StorageError) -> String
}

/// What `stat(2)` reports about a path, as far as the node service needs it.
public struct FileStatus: Sendable, Hashable {
    /// The type of file.
    public enum Kind: Sendable, Hashable {
        /// A directory.
        case directory
        /// A regular file.
        case regularFile
        /// A block device node.
        case blockDevice
        /// A character device node.
        case characterDevice
        /// Anything else (socket, FIFO, …).
        case other
    }

    /// The type of file.
    public var kind: Kind
    /// The device of the filesystem the file is on (`st_dev`).
    public var device: DeviceNumber
    /// The inode number (`st_ino`); with ``device`` it names the file.
    public var inode: UInt64
    /// For a device node, the device it stands for (`st_rdev`); nil otherwise.
    public var representedDevice: DeviceNumber?

    /// Creates a status.
    public init(kind: Kind, device: DeviceNumber, inode: UInt64, representedDevice: DeviceNumber? = nil) {
        self.kind = kind
        self.device = device
        self.inode = inode
        self.representedDevice = representedDevice
    }
}

/// Space and inode usage of a filesystem (from statvfs).
public struct FilesystemStatistics: Sendable, Hashable {
    /// Size of the filesystem.
    public var totalBytes: UInt64
    /// Bytes in use.
    public var usedBytes: UInt64
    /// Bytes an unprivileged user can still write.
    public var availableBytes: UInt64
    /// Inodes in total.
    public var totalInodes: UInt64
    /// Inodes in use.
    public var usedInodes: UInt64
    /// Inodes free.
    public var freeInodes: UInt64

    /// Creates statistics.
    public init(
        totalBytes: UInt64, usedBytes: UInt64, availableBytes: UInt64, totalInodes: UInt64, usedInodes: UInt64, freeInodes: UInt64
    ) {
        self.totalBytes = totalBytes
        self.usedBytes = usedBytes
        self.availableBytes = availableBytes
        self.totalInodes = totalInodes
        self.usedInodes = usedInodes
        self.freeInodes = freeInodes
    }
}

/// The ``Mounter`` of a Linux node: mount(2)/umount2(2) called directly, `mkfs.*`, `resize2fs` and
/// `xfs_growfs` run with argument vectors, never a shell.
public struct LinuxMounter: Mounter {
    /// Filesystem types ``makeFilesystem(on:fsType:)`` can make.
    public static let supportedFilesystems = ["ext4", "xfs"]

    /// Creates a mounter.
    public init() {}

    public func mount(device: String, at target: String, fsType: String, options: MountOptions) async throws(StorageError) {
        guard Self.supportedFilesystems.contains(fsType) || ["ext2", "ext3"].contains(fsType) else {
            throw StorageError(
                .invalidArgument,
                "filesystem type \(LVMName.quoted(fsType)) is not supported; use one of \(Self.supportedFilesystems.joined(separator: ", "))"
            )
        }
        try await offload { () throws(StorageError) in
            var deviceInfo = stat()
            _ = try syscall("stat", device) { stat(device, &deviceInfo) }
            guard deviceInfo.st_mode & S_IFMT == S_IFBLK else {
                throw StorageError(.invalidArgument, "\(device) is not a block device")
            }
            try Self.makeDirectory(target)
            if let existing = try Self.mountAt(target) {
                if existing.major == major(deviceInfo.st_rdev) && existing.minor == minor(deviceInfo.st_rdev) { return }
                throw StorageError(.alreadyExists, "\(target) already has \(existing.source) (\(existing.fsType)) mounted, not \(device)")
            }
            _ = try syscall("mount", "\(device) at \(target) type \(fsType) options \(options.data)") {
                Glibc.mount(device, target, fsType, options.flags, options.data.isEmpty ? nil : options.data)
            }
        }
    }

    public func bindMount(source: String, at target: String, options: MountOptions) async throws(StorageError) {
        try await offload { () throws(StorageError) in
            var sourceInfo = stat()
            _ = try syscall("stat", source) { stat(source, &sourceInfo) }
            let isDirectory = sourceInfo.st_mode & S_IFMT == S_IFDIR
            if isDirectory {
                try Self.makeDirectory(target)
            } else {
                let fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
                if fd < 0 && errno != EISDIR {
                    throw StorageError(errnoCode(errno), "cannot create \(target) as a bind target for \(source): \(errnoText(errno))")
                }
                if fd >= 0 { close(fd) }
            }
            if try Self.mountAt(target) != nil {
                var targetInfo = stat()
                _ = try syscall("stat", target) { stat(target, &targetInfo) }
                if targetInfo.st_dev == sourceInfo.st_dev && targetInfo.st_ino == sourceInfo.st_ino { return }
                throw StorageError(.alreadyExists, "\(target) already has another mount on it, not \(source)")
            }
            _ = try syscall("mount", "bind \(source) at \(target)") { Glibc.mount(source, target, nil, MountFlag.bind, nil) }
            let extra = options.flags & MountFlag.perMount
            if extra != 0 {
                do throws(StorageError) {
                    _ = try syscall("mount", "remount \(target) with flags \(extra)") {
                        Glibc.mount(nil, target, nil, MountFlag.remount | MountFlag.bind | extra, nil)
                    }
                } catch {
                    // Never leave a writable mount where a read-only one was asked for.
                    _ = umount2(target, Int32(MNT_DETACH))
                    throw error
                }
            }
        }
    }

    public func unmount(_ target: String, removeTarget: Bool) async throws(StorageError) {
        try await offload { () throws(StorageError) in
            // EBUSY is often brief (a process walking the tree, a file being closed): retry for
            // about a second before reporting it.
            var busyRetries = 20
            while try Self.mountAt(target) != nil {
                if umount2(target, 8 /* UMOUNT_NOFOLLOW */) != 0 {
                    let err = errno
                    if err == EINVAL || err == ENOENT { break }
                    if err == EINTR { continue }
                    if err == EBUSY && busyRetries > 0 {
                        busyRetries -= 1
                        usleep(50_000)
                        continue
                    }
                    throw StorageError(errnoCode(err), "umount2(\(target)) failed: \(errnoText(err))")
                }
            }
            if removeTarget {
                if rmdir(target) != 0 && errno == ENOTDIR { _ = unlink(target) }
            }
        }
    }

    public func mounts() async throws(StorageError) -> [MountInfo] {
        try await offload { () throws(StorageError) in try Self.readMountTable() }
    }

    public func filesystem(on device: String) async throws(StorageError) -> String? {
        try await offload { () throws(StorageError) -> String? in
            switch try DeviceSignature.read(device) {
            case .filesystem(let type): return type
            case .other(let what): return what
            case nil: return nil
            }
        }
    }

    public func makeFilesystem(on device: String, fsType: String) async throws(StorageError) -> Bool {
        guard Self.supportedFilesystems.contains(fsType) else {
            throw StorageError(
                .invalidArgument,
                "filesystem type \(LVMName.quoted(fsType)) is not supported; use one of \(Self.supportedFilesystems.joined(separator: ", "))"
            )
        }
        return try await offload { () throws(StorageError) -> Bool in
            if let found = try DeviceSignature.read(device) {
                if found == .filesystem(fsType) { return false }
                let what =
                    switch found {
                    case .filesystem(let t): "a \(t) filesystem"
                    case .other(let t): t
                    }
                throw StorageError(.alreadyExists, "\(device) already holds \(what); it is not formatted as \(fsType)")
            }
            // blkid knows many more signatures; ask it before writing anything (exit 2: none found).
            if let probe = try? runProgram("blkid", ["-p", "-o", "export", device]), probe.status == 0 {
                let type = probe.output.split(separator: "\n").first { $0.hasPrefix("TYPE=") || $0.hasPrefix("PTTYPE=") } ?? "a signature"
                throw StorageError(.alreadyExists, "\(device) already holds \(type) (blkid); it is not formatted as \(fsType)")
            }
            // No force flag: mkfs refuses on its own if it finds something we did not.
            switch fsType {
            case "xfs": try runChecked("mkfs.xfs", ["-q", device], what: "making an xfs filesystem on \(device)")
            default:
                try runChecked(
                    "mkfs.ext4", ["-q", "-E", "lazy_itable_init=1,lazy_journal_init=1", device],
                    what: "making an ext4 filesystem on \(device)")
            }
            return true
        }
    }

    public func resizeFilesystem(on device: String, mountedAt mountPoint: String) async throws(StorageError) {
        try await offload { () throws(StorageError) in
            switch try DeviceSignature.read(device) {
            case .filesystem("xfs"):
                try runChecked("xfs_growfs", [mountPoint], what: "growing the xfs filesystem at \(mountPoint)")
            case .filesystem(let type) where type.hasPrefix("ext"):
                // The kernel allows online ext resizing only with CAP_SYS_RESOURCE; resize2fs with
                // nothing to do (the filesystem already fills the device) needs no privilege.
                var mustGrow = true
                if let geometry = try ExtGeometry.read(device) { mustGrow = geometry.needsGrowth(deviceBytes: try Self.deviceSize(device)) }
                guard !mustGrow || Self.hasCapability(24) else {
                    throw StorageError(
                        .unsupported,
                        "growing the mounted \(type) filesystem on \(device) needs CAP_SYS_RESOURCE, which this process does not have")
                }
                try runChecked("resize2fs", [device], what: "growing the \(type) filesystem on \(device)")
            case let other:
                throw StorageError(
                    .unsupported, "\(device) holds \(other.map { "\($0)" } ?? "no filesystem"); only ext2/3/4 and xfs can be resized")
            }
        }
    }

    public func statistics(path: String) async throws(StorageError) -> FilesystemStatistics {
        try await offload { () throws(StorageError) -> FilesystemStatistics in
            var s = statvfs()
            _ = try syscall("statvfs", path) { statvfs(path, &s) }
            let unit = UInt64(s.f_frsize)
            return FilesystemStatistics(
                totalBytes: UInt64(s.f_blocks) * unit, usedBytes: UInt64(s.f_blocks - s.f_bfree) * unit,
                availableBytes: UInt64(s.f_bavail) * unit, totalInodes: UInt64(s.f_files),
                usedInodes: UInt64(s.f_files - s.f_ffree), freeInodes: UInt64(s.f_ffree))
        }
    }

    public func blockDeviceSize(_ device: String) async throws(StorageError) -> UInt64 {
        try await offload { () throws(StorageError) -> UInt64 in try Self.deviceSize(device) }
    }

    public func checkDevice(at path: String) async throws(StorageError) -> DeviceCheck {
        try await offload { () throws(StorageError) -> DeviceCheck in try Self.checkDeviceBlocking(at: path) }
    }

    public func status(of path: String) async throws(StorageError) -> FileStatus? {
        await offload { () -> FileStatus? in Self.statusBlocking(of: path) }
    }

    public func makeDirectories(_ path: String) async throws(StorageError) {
        try await offload { () throws(StorageError) in try Self.makeDirectory(path) }
    }

    public func resolve(_ path: String, field: String, policy: KubeletPathPolicy) async throws(StorageError) -> String {
        try await offload { () throws(StorageError) -> String in try policy.validate(path, field: field) }
    }

    // MARK: Helpers

    /// ``status(of:)`` on the calling thread.
    static func statusBlocking(of path: String) -> FileStatus? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let kind: FileStatus.Kind =
            switch info.st_mode & S_IFMT {
            case S_IFDIR: .directory
            case S_IFREG: .regularFile
            case S_IFBLK: .blockDevice
            case S_IFCHR: .characterDevice
            default: .other
            }
        let isNode = kind == .blockDevice || kind == .characterDevice
        return FileStatus(
            kind: kind, device: DeviceNumber(info.st_dev), inode: UInt64(info.st_ino),
            representedDevice: isNode ? DeviceNumber(info.st_rdev) : nil)
    }

    static func deviceSize(_ device: String) throws(StorageError) -> UInt64 {
        let fd = try syscall("open", device) { open(device, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var size: UInt64 = 0
        _ = try syscall("ioctl BLKGETSIZE64", device) { ioctl(fd, 0x8008_1272, &size) }
        return size
    }

    static func readMountTable() throws(StorageError) -> [MountInfo] {
        guard let text = readWholeFile("/proc/self/mountinfo") else {
            throw StorageError(.failed, "cannot read /proc/self/mountinfo: \(errnoText(errno))")
        }
        return try MountInfo.parse(text)
    }

    /// The topmost mount whose mount point is exactly `path`.
    static func mountAt(_ path: String) throws(StorageError) -> MountInfo? {
        let normalized = KubeletPathPolicy.components(path).joinedPath()
        return try readMountTable().last { $0.mountPoint == normalized }
    }

    /// Whether capability number `bit` is in this process's effective set.
    static func hasCapability(_ bit: Int) -> Bool {
        guard let status = readWholeFile("/proc/self/status"),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let mask = UInt64(String(line.dropFirst(7)).trimmingLeadingSpaces(), radix: 16)
        else { return true }
        return mask & (1 << UInt64(bit)) != 0
    }

    /// The first mount of the filesystem on block device `device`, if it is mounted.
    static func mount(of device: String) throws(StorageError) -> MountInfo? {
        var info = stat()
        guard stat(device, &info) == 0, info.st_mode & S_IFMT == S_IFBLK else { return nil }
        return try readMountTable().first { $0.major == major(info.st_rdev) && $0.minor == minor(info.st_rdev) }
    }

    /// Creates `path` and its missing parents (mode 0750).
    static func makeDirectory(_ path: String) throws(StorageError) {
        do throws(SystemError) { try Platform.makeDirectories(path, mode: 0o750) } catch {
            throw StorageError(errnoCode(error.errno), "cannot create directory \(error.subject): \(errnoText(error.errno))")
        }
    }
}

private func major(_ dev: dev_t) -> UInt32 { UInt32(((dev >> 32) & 0xFFFF_F000) | ((dev >> 8) & 0xFFF)) }
private func minor(_ dev: dev_t) -> UInt32 { UInt32(((dev >> 12) & 0xFFFF_FF00) | (dev & 0xFF)) }
