import Glibc
import Platform

/// What keeps one source volume of a group snapshot from being written while the group is cut.
enum GroupHold: Sendable, Hashable, CustomStringConvertible {
    /// A device-mapper suspend with the filesystem locked (the way `lvcreate` itself suspends an
    /// origin): the filesystem on it, if any, is frozen clean and new I/O waits. Used on a thick
    /// LV (LVM snapshots an origin that is suspended already) and on the encryption mapping above
    /// an LV (LVM then suspends the LV beneath as it likes).
    case suspend(DeviceNumber)
    /// FIFREEZE of the filesystem mounted here: only where the kernel lets LVM's own suspend nest
    /// inside it (``GroupHolds/freezeIfNested(mountPoint:device:)``).
    case freeze(mountPoint: String)

    var description: String {
        switch self {
        case .suspend(let device): "device-mapper device \(device) suspended"
        case .freeze(let mountPoint): "filesystem at \(mountPoint) frozen"
        }
    }
}

/// The system calls holds are made of; tests give fakes.
struct HoldOperations: Sendable {
    var suspend: @Sendable (DeviceNumber) throws(StorageError) -> Void
    var resume: @Sendable (DeviceNumber) throws(StorageError) -> Void
    var freeze: @Sendable (String) throws(StorageError) -> Void
    var thaw: @Sendable (String) throws(StorageError) -> Void
    /// Whether dm device `device` is suspended, and its dm uuid; nil when there is no such device.
    var status: @Sendable (DeviceNumber) -> (suspended: Bool, uuid: String)?
    /// The device of the filesystem mounted at `path`, nil when nothing is mounted there.
    var mountedDevice: @Sendable (String) -> DeviceNumber?
    /// This boot's id (`/proc/sys/kernel/random/boot_id`): a record from another boot is void.
    var bootID: @Sendable () -> String?

    /// The real ones: device-mapper ioctls, FIFREEZE/FITHAW, /proc/self/mountinfo.
    static let system = HoldOperations(
        suspend: { (device) throws(StorageError) in try DeviceMapperControl.suspend(device) },
        resume: { (device) throws(StorageError) in try DeviceMapperControl.resume(device) },
        freeze: { (path) throws(StorageError) in try FilesystemFreeze.freeze(path) },
        thaw: { (path) throws(StorageError) in try FilesystemFreeze.thaw(path) },
        status: { device in (try? DeviceMapperControl.status(device)).flatMap { $0 }.map { ($0.suspended, $0.uuid) } },
        mountedDevice: { path in
            (try? LinuxMounter.readMountTable())?.last { $0.mountPoint == path }.map { DeviceNumber(major: $0.major, minor: $0.minor) }
        },
        bootID: { readWholeFile("/proc/sys/kernel/random/boot_id")?.split(whereSeparator: \.isWhitespace).first.map(String.init) })
}

/// Holds taken for one group snapshot, and the record that lets a later process release them.
///
/// A hold that outlives the process that took it hangs every writer of that volume for good: a
/// suspended device or a frozen filesystem stays so until someone resumes or thaws it. So before
/// the first hold is taken, everything that may end up held is written (fsync, rename) to
/// ``recordPath``: every source LV's device (LVM suspends an origin itself while it cuts it, and a
/// process killed then leaves it suspended), the devices this process suspends and the
/// filesystems it freezes. Once all is released the record is removed. ``recover(recordPath:operations:)``
/// runs at start-up and before each group snapshot: it resumes the recorded devices that are still
/// suspended (when their dm uuid is still the recorded one) and thaws the recorded filesystems
/// (when the same device is still mounted there), then removes the record. A record from an
/// earlier boot is only removed: nothing it names survived the reboot.
final class GroupHolds: @unchecked Sendable {
    // Used by one call at a time: `taken` changes only between the awaits of that call.
    /// One recorded device: resumed if found suspended.
    struct RecordedDevice: Hashable, Sendable {
        var device: DeviceNumber
        var uuid: String
    }

    /// One recorded filesystem: thawed if the same device is still mounted there.
    struct RecordedMount: Hashable, Sendable {
        var mountPoint: String
        var device: DeviceNumber
    }

    let recordPath: String?
    let operations: HoldOperations
    /// Holds taken and not yet released, in the order they were taken.
    private(set) var taken: [GroupHold] = []

    /// - Parameters:
    ///   - recordPath: where the record is written; nil for none (holds then do not survive a crash
    ///     of this process — only for tests and for backends without a state directory).
    init(recordPath: String?, operations: HoldOperations = .system) {
        self.recordPath = recordPath
        self.operations = operations
    }

    /// Writes the record naming everything that may be held from now on.
    func record(devices: [RecordedDevice], mounts: [RecordedMount]) throws(StorageError) {
        guard let recordPath else { return }
        let value = JSONValue.object([
            ("bootID", .string(operations.bootID() ?? "")),
            (
                "devices",
                .array(devices.map { .object([("device", .string($0.device.description)), ("uuid", .string($0.uuid))]) })
            ),
            (
                "mounts",
                .array(mounts.map { .object([("mountPoint", .string($0.mountPoint)), ("device", .string($0.device.description))]) })
            ),
        ])
        guard writeWholeFile(recordPath, JSON.print(value) + "\n", mode: 0o600) else {
            throw StorageError(errnoCode(errno), "cannot write the group snapshot hold record \(recordPath): \(errnoText(errno))")
        }
        syncParentDirectory(of: recordPath)
    }

    /// Suspends `device`.
    func suspend(_ device: DeviceNumber) throws(StorageError) {
        try operations.suspend(device)
        taken.append(.suspend(device))
    }

    /// Freezes the filesystem at `mountPoint` (on dm device `device`) if the kernel lets a
    /// device-mapper suspend with its filesystem locked — what `lvcreate` does to a thin origin —
    /// nest inside a FIFREEZE; tried on the device itself (suspended and resumed at once). Linux
    /// 6.1 answers EBUSY: then the filesystem is thawed again and false returned.
    func freezeIfNested(mountPoint: String, device: DeviceNumber) throws(StorageError) -> Bool {
        try operations.freeze(mountPoint)
        taken.append(.freeze(mountPoint: mountPoint))
        do throws(StorageError) {
            try operations.suspend(device)
        } catch where error.code == .busy {
            try operations.thaw(mountPoint)
            taken.removeLast()
            return false
        }
        try operations.resume(device)
        return true
    }

    /// Releases every hold, newest first, even when one fails; removes the record when all are
    /// released. The record stays when one failed, so that the next start tries again.
    /// - Throws: `.failed` naming every hold that could not be released.
    func releaseAll() throws(StorageError) {
        var failures: [String] = []
        for hold in taken.reversed() {
            do throws(StorageError) {
                switch hold {
                case .suspend(let device): try operations.resume(device)
                case .freeze(let mountPoint): try operations.thaw(mountPoint)
                }
            } catch {
                failures.append("\(hold): \(error.message)")
            }
        }
        taken = []
        guard failures.isEmpty else {
            throw StorageError(
                .failed,
                "could not release what holds the group's volumes still; writes to them wait until it is: "
                    + failures.joined(separator: "; "))
        }
        if let recordPath { _ = unlink(recordPath) }
    }

    /// Releases what a record left by an earlier process names, and removes it. Returns what was
    /// released, for the log; an empty list when there was no record or nothing left to release.
    /// - Throws: `.failed` when something recorded could not be released (the record stays).
    @discardableResult
    static func recover(recordPath: String?, operations: HoldOperations = .system) throws(StorageError) -> [String] {
        guard let recordPath, let text = readWholeFile(recordPath) else { return [] }
        // A record that cannot be read, or from an earlier boot, names nothing still held.
        guard let value = try? JSON.parse(text), value["bootID"]?.stringValue == operations.bootID() ?? "" else {
            _ = unlink(recordPath)
            return []
        }
        var released: [String] = []
        var failures: [String] = []
        // Devices first.
        for entry in value["devices"]?.arrayValue ?? [] {
            guard let device = DeviceMapperControl.parseDevice(entry["device"]?.stringValue),
                let status = operations.status(device), status.suspended,
                status.uuid == entry["uuid"]?.stringValue ?? ""
            else { continue }
            do throws(StorageError) {
                try operations.resume(device)
                released.append("resumed device-mapper device \(device) (\(status.uuid))")
            } catch {
                failures.append("resuming \(device): \(error.message)")
            }
        }
        // Then filesystems: thawing one writes to its device, which must not be suspended.
        for entry in value["mounts"]?.arrayValue ?? [] {
            guard let mountPoint = entry["mountPoint"]?.stringValue, let device = DeviceMapperControl.parseDevice(entry["device"]?.stringValue),
                operations.mountedDevice(mountPoint) == device
            else { continue }
            do throws(StorageError) {
                try operations.thaw(mountPoint)
                released.append("thawed the filesystem at \(mountPoint)")
            } catch {
                failures.append("thawing \(mountPoint): \(error.message)")
            }
        }
        guard failures.isEmpty else {
            throw StorageError(
                .failed, "could not release what an earlier group snapshot held (\(recordPath)): " + failures.joined(separator: "; "))
        }
        _ = unlink(recordPath)
        return released
    }
}
