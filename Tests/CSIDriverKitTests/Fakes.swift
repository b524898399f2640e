@testable import Storage
import Synchronization

/// A volume backend in memory: volumes by id, each with the device the test gives it.
final class FakeBackend: VolumeBackend {
    struct State {
        var volumes: [String: BackendVolume] = [:]
        var devices: [String: VolumeDevice] = [:]
        /// What the last CreateVolume asked for.
        var lastRequest: VolumeRequest?
    }
    let state = Mutex(State())

    /// Adds volume `id` of `bytes`, found on this node as `device`.
    func add(_ id: String, device: VolumeDevice, bytes: UInt64 = 1 << 30, encryption: VolumeEncryption? = nil) {
        state.withLock {
            $0.volumes[id] = BackendVolume(id: id, name: id, capacityBytes: bytes, location: "fake/\(id)", encryption: encryption)
            $0.devices[id] = device
        }
    }

    func createVolume(_ request: VolumeRequest) async throws(StorageError) -> BackendVolume {
        let sourceBytes = request.sourceVolumeID.flatMap { id in state.withLock { $0.volumes[id]?.capacityBytes } } ?? 0
        if let id = request.sourceVolumeID, sourceBytes == 0 { throw StorageError(.notFound, "source volume \(id) does not exist") }
        let volume = BackendVolume(
            id: request.name, name: request.name, capacityBytes: max(request.requiredBytes, 1 << 20, sourceBytes),
            sourceVolumeID: request.sourceVolumeID, location: "fake/\(request.name)")
        state.withLock {
            $0.volumes[volume.id] = $0.volumes[volume.id] ?? volume
            $0.lastRequest = request
        }
        return state.withLock { $0.volumes[volume.id]! }
    }

    func deleteVolume(id: String) async throws(StorageError) {
        _ = state.withLock { $0.volumes.removeValue(forKey: id) }
    }

    func expandVolume(id: String, toBytes bytes: UInt64, limitBytes: UInt64?) async throws(StorageError) -> BackendVolume {
        let grown = state.withLock { s -> BackendVolume? in
            guard var volume = s.volumes[id] else { return nil }
            volume.capacityBytes = max(volume.capacityBytes, bytes)
            s.volumes[id] = volume
            return volume
        }
        guard let grown else { throw StorageError(.notFound, "volume \(id) does not exist") }
        return grown
    }

    func volume(id: String) async throws(StorageError) -> BackendVolume? { state.withLock { $0.volumes[id] } }

    func listVolumes() async throws(StorageError) -> [BackendVolume] {
        state.withLock { $0.volumes.values.sorted { $0.id < $1.id } }
    }

    func createSnapshot(name: String, sourceVolumeID: String) async throws(StorageError) -> BackendSnapshot {
        throw StorageError(.unsupported, "the fake backend takes no snapshots")
    }

    func deleteSnapshot(id: String) async throws(StorageError) {}

    func snapshot(id: String) async throws(StorageError) -> BackendSnapshot? { nil }

    func listSnapshots() async throws(StorageError) -> [BackendSnapshot] { [] }

    func capacity(parameters: [String: String]) async throws(StorageError) -> UInt64 { 1 << 40 }

    func device(forVolume id: String) async throws(StorageError) -> VolumeDevice {
        guard let device = state.withLock({ $0.devices[id] }) else { throw StorageError(.notFound, "volume \(id) does not exist") }
        return device
    }

    func probe() async throws(StorageError) {}
}

/// A node in memory: files (directories and device nodes), a mount table, filesystems on devices.
/// Nothing touches the real filesystem except ``resolve(_:field:policy:)``, which checks paths
/// under a real (empty) kubelet directory as ``LinuxMounter`` does.
final class FakeMounter: Mounter {
    struct State {
        var files: [String: FileStatus] = [:]
        /// What a mount point showed before something was mounted on it.
        var covered: [String: FileStatus?] = [:]
        var mounts: [MountInfo] = []
        var filesystems: [String: String] = [:]
        var sizes: [String: UInt64] = [:]
        /// Every change, in order: `mkfs <device> <type>`, `mount <device> <target>`,
        /// `bind <source> <target> ro|rw`, `umount <target>`, `mkdir <path>`, `resize <device>`,
        /// `check <path>` (a device check).
        var calls: [String] = []
        var nextInode: UInt64 = 100
        var nextMountID = 30
    }
    let state = Mutex(State())

    /// The device all directories are on.
    static let rootDevice = DeviceNumber(major: 8, minor: 1)
    /// devtmpfs, where device nodes are.
    static let devtmpfs = DeviceNumber(major: 0, minor: 5)

    var calls: [String] { state.withLock { $0.calls } }

    /// Adds block device node `path` for `number`, `bytes` large.
    func addDevice(_ path: String, _ number: DeviceNumber, bytes: UInt64 = 1 << 30) {
        state.withLock {
            $0.files[path] = FileStatus(
                kind: .blockDevice, device: Self.devtmpfs, inode: $0.nextInode, representedDevice: number)
            $0.nextInode += 1
            $0.sizes[path] = bytes
        }
    }

    /// Adds directory `path`.
    func addDirectory(_ path: String) {
        state.withLock { Self.makeDirectory(path, in: &$0) }
    }

    /// Adds a mount of `source` at `target` without recording a call (something already there).
    func addMount(source: String, number: DeviceNumber, at target: String, fsType: String = "ext4") {
        state.withLock {
            Self.makeDirectory(target, in: &$0)
            Self.appendMount(number: number, root: "/", at: target, readOnly: false, fsType: fsType, source: source, in: &$0)
        }
    }

    private static func makeDirectory(_ path: String, in s: inout State) {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if s.files[prefix] == nil {
                s.files[prefix] = FileStatus(kind: .directory, device: rootDevice, inode: s.nextInode)
                s.nextInode += 1
            }
        }
    }

    private static func appendMount(
        number: DeviceNumber, root: String, at target: String, readOnly: Bool, fsType: String, source: String, in s: inout State
    ) {
        let line =
            "\(s.nextMountID) 1 \(number.major):\(number.minor) \(root) \(target) \(readOnly ? "ro" : "rw"),relatime - \(fsType) \(source) rw"
        s.nextMountID += 1
        s.mounts.append(try! MountInfo(line: line))
    }

    func mount(device: String, at target: String, fsType: String, options: MountOptions) async throws(StorageError) {
        try state.withLock { s throws(StorageError) in
            guard let node = s.files[device], node.kind == .blockDevice, let number = node.representedDevice else {
                throw StorageError(.invalidArgument, "\(device) is not a block device")
            }
            Self.makeDirectory(target, in: &s)
            s.covered[target] = s.files[target]
            // The root of the filesystem on the device.
            s.files[target] = FileStatus(kind: .directory, device: number, inode: 2)
            Self.appendMount(number: number, root: "/", at: target, readOnly: options.readOnly, fsType: fsType, source: device, in: &s)
            s.calls.append("mount \(device) \(target)")
        }
    }

    func bindMount(source: String, at target: String, options: MountOptions) async throws(StorageError) {
        try state.withLock { s throws(StorageError) in
            guard let shown = s.files[source] else { throw StorageError(.notFound, "stat(\(source)) failed: No such file or directory") }
            // As the kernel shows a bind mount: the device and the path inside its filesystem.
            let number: DeviceNumber
            let fsType: String
            let root: String
            if shown.kind == .blockDevice {
                (number, fsType, root) = (Self.devtmpfs, "devtmpfs", "/" + (source.split(separator: "/").last ?? ""))
            } else if let mount = s.mounts.last(where: { $0.mountPoint == source }) {
                (number, fsType, root) = (DeviceNumber(major: mount.major, minor: mount.minor), mount.fsType, mount.root)
            } else {
                (number, fsType, root) = (shown.device, "ext4", source)
            }
            if shown.kind == .directory { Self.makeDirectory(target, in: &s) }
            s.covered[target] = s.files[target]
            s.files[target] = shown
            Self.appendMount(number: number, root: root, at: target, readOnly: options.readOnly, fsType: fsType, source: source, in: &s)
            s.calls.append("bind \(source) \(target) \(options.readOnly ? "ro" : "rw")")
        }
    }

    func unmount(_ target: String, removeTarget: Bool) async throws(StorageError) {
        state.withLock { s in
            if s.mounts.contains(where: { $0.mountPoint == target }) {
                s.mounts.removeAll { $0.mountPoint == target }
                s.files[target] = s.covered.removeValue(forKey: target) ?? nil
                s.calls.append("umount \(target)")
            }
            if removeTarget { s.files[target] = nil }
        }
    }

    func mounts() async throws(StorageError) -> [MountInfo] { state.withLock { $0.mounts } }

    func filesystem(on device: String) async throws(StorageError) -> String? { state.withLock { $0.filesystems[device] } }

    func makeFilesystem(on device: String, fsType: String) async throws(StorageError) -> Bool {
        state.withLock {
            $0.filesystems[device] = fsType
            $0.calls.append("mkfs \(device) \(fsType)")
        }
        return true
    }

    func resizeFilesystem(on device: String, mountedAt mountPoint: String) async throws(StorageError) {
        state.withLock { $0.calls.append("resize \(device)") }
    }

    func statistics(path: String) async throws(StorageError) -> FilesystemStatistics {
        FilesystemStatistics(
            totalBytes: 1 << 30, usedBytes: 1 << 20, availableBytes: (1 << 30) - (1 << 20), totalInodes: 1000, usedInodes: 10,
            freeInodes: 990)
    }

    func blockDeviceSize(_ device: String) async throws(StorageError) -> UInt64 {
        guard let size = state.withLock({ $0.sizes[device] }) else { throw StorageError(.notFound, "no device \(device)") }
        return size
    }

    func checkDevice(at path: String) async throws(StorageError) -> DeviceCheck {
        state.withLock { $0.calls.append("check \(path)") }
        return DeviceCheck(device: nil)
    }

    func status(of path: String) async throws(StorageError) -> FileStatus? { state.withLock { $0.files[path] } }

    func makeDirectories(_ path: String) async throws(StorageError) {
        state.withLock {
            Self.makeDirectory(path, in: &$0)
            $0.calls.append("mkdir \(path)")
        }
    }

    func resolve(_ path: String, field: String, policy: KubeletPathPolicy) async throws(StorageError) -> String {
        try policy.validate(path, field: field)
    }
}

/// An encryptor in memory: records its calls; a volume's mapping is `/dev/mapper/luks-<id>`, and
/// the passphrase `wrong` does not open anything.
final class FakeEncryptor: VolumeEncryptor {
    struct State {
        var open: Set<String> = []
        var calls: [String] = []
        var passphrases: [String] = []
    }
    let state = Mutex(State())
    var calls: [String] { state.withLock { $0.calls } }

    func open(device: String, volumeID: String, passphrase: Passphrase, format: Bool) async throws(StorageError) -> String {
        let text = String(decoding: passphrase.bytes, as: UTF8.self)
        return try state.withLock { (s) throws(StorageError) -> String in
            s.calls.append("open \(device) \(volumeID)\(format ? " format" : "")")
            s.passphrases.append(text)
            guard text != "wrong" else { throw StorageError(.invalidArgument, "volume \(volumeID): the passphrase does not open it") }
            s.open.insert(volumeID)
            return "/dev/mapper/luks-" + volumeID
        }
    }

    func openMapping(volumeID: String) async throws(StorageError) -> String? {
        state.withLock { $0.open.contains(volumeID) ? "/dev/mapper/luks-" + volumeID : nil }
    }

    func close(volumeID: String) async throws(StorageError) {
        state.withLock { s in
            if s.open.remove(volumeID) != nil { s.calls.append("close \(volumeID)") }
        }
    }

    func resize(volumeID: String) async throws(StorageError) {
        state.withLock { $0.calls.append("resize \(volumeID)") }
    }

    func underlyingDevice(of device: DeviceNumber) async -> DeviceNumber? { nil }
}
