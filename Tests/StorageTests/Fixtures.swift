import Glibc
import Platform
import Testing

@testable import Storage

/// True when the tests run as root (loop devices, LVM, mount need it).
let isRoot = getuid() == 0
let rootReason: Comment = "needs root for loop devices, LVM and mount(2); running as uid \(getuid())"

/// A random suffix for names of real objects, so parallel runs and other people's objects never clash.
func uniqueSuffix() -> String {
    var rng = SystemRandomNumberGenerator()
    return String(rng.next() & 0xFFFF_FFFF, radix: 36)
}

/// Runs the `lvm` executable (the way other tools do), with `--driverloaded n` when this machine has
/// no device-mapper. It waits on a thread of its own: an lvm command takes seconds on a loaded machine,
/// and a test that blocked a cooperative thread that long would stall every other test in the process.
@discardableResult
func lvmTool(_ arguments: [String]) async throws -> ProcessResult {
    try await offload { () throws(StorageError) in try lvmToolBlocking(arguments) }
}

/// ``lvmTool(_:)`` on the calling thread; only for code already off the cooperative pool.
@discardableResult
func lvmToolBlocking(_ arguments: [String]) throws(StorageError) -> ProcessResult {
    var args = arguments
    if !LVM.shared.deviceMapperState.current().available { args.insert(contentsOf: ["--driverloaded", "n"], at: 1) }
    return try runChecked("lvm", args, what: "lvm \(arguments.first ?? "")")
}

/// A sparse file attached to a loop device.
struct LoopFile {
    var image: String
    var device: String

    /// Makes the image and attaches it, on a thread outside the cooperative pool.
    static func make(megabytes: Int, prefix: String) async throws -> LoopFile {
        try await offload { () throws(StorageError) in try makeBlocking(megabytes: megabytes, prefix: prefix) }
    }

    static func makeBlocking(megabytes: Int, prefix: String) throws(StorageError) -> LoopFile {
        let image = "/var/tmp/\(prefix)-\(uniqueSuffix()).img"
        try runChecked("truncate", ["-s", "\(megabytes)M", image], what: "truncate")
        do {
            let device = try runChecked("losetup", ["-f", "--show", image], what: "losetup").output.trimmed()
            return LoopFile(image: image, device: device)
        } catch {
            unlink(image)
            throw error
        }
    }

    /// Detaches the loop device and removes the image, on a thread outside the cooperative pool.
    func destroy() async {
        let loop = self
        _ = try? await offload { () throws(StorageError) in loop.destroyBlocking() }
    }

    func destroyBlocking() {
        _ = try? runProgram("losetup", ["-d", device])
        unlink(image)
    }
}

/// A volume group on its own loop device, removed afterwards whatever happens.
/// Setup and teardown run outside the cooperative pool (see ``lvmTool(_:)``).
func withVolumeGroup<T>(megabytes: Int = 256, _ body: (_ vg: String, _ loop: LoopFile) async throws -> T) async throws -> T {
    let loop = try await LoopFile.make(megabytes: megabytes, prefix: "storagetest")
    let vg = "stvg" + uniqueSuffix()
    let result: Result<T, any Error>
    do {
        try await lvmTool(["pvcreate", "-y", loop.device])
        try await lvmTool(["vgcreate", "-s", "4m", vg, loop.device])
        result = .success(try await body(vg, loop))
    } catch {
        result = .failure(error)
    }
    _ = try? await offload { () throws(StorageError) in
        _ = try? lvmToolBlocking(["vgremove", "-f", vg])
        _ = try? lvmToolBlocking(["pvremove", "-ff", "-y", loop.device])
        loop.destroyBlocking()
        removeMetadataCopies(of: vg)
    }
    return try result.get()
}

/// Removes the metadata backup and archive files LVM keeps for a removed volume group.
func removeMetadataCopies(of vg: String) {
    let lvmDirectory = getenvString("LVM_SYSTEM_DIR") ?? "/etc/lvm"
    unlink(lvmDirectory + "/backup/" + vg)
    guard let dir = opendir(lvmDirectory + "/archive") else { return }
    var names: [String] = []
    while let entry = readdir(dir) {
        names.append(withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) })
    }
    closedir(dir)
    for name in names where name.hasPrefix(vg + "_") && name.hasSuffix(".vg") { unlink(lvmDirectory + "/archive/" + name) }
}

extension String {
    /// Without leading and trailing white space.
    func trimmed() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
