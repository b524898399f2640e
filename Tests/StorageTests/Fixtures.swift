import Glibc
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
/// no device-mapper.
@discardableResult
func lvmTool(_ arguments: [String]) throws -> ProcessResult {
    var args = arguments
    if !LVM.shared.deviceMapperAvailable { args.insert(contentsOf: ["--driverloaded", "n"], at: 1) }
    return try runChecked("lvm", args, what: "lvm \(arguments.first ?? "")")
}

/// A sparse file attached to a loop device.
struct LoopFile {
    var image: String
    var device: String

    static func make(megabytes: Int, prefix: String) throws -> LoopFile {
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

    func destroy() {
        _ = try? runProgram("losetup", ["-d", device])
        unlink(image)
    }
}

/// A volume group on its own loop device, removed afterwards whatever happens.
func withVolumeGroup<T>(megabytes: Int = 256, _ body: (_ vg: String, _ loop: LoopFile) async throws -> T) async throws -> T {
    let loop = try LoopFile.make(megabytes: megabytes, prefix: "storagetest")
    let vg = "stvg" + uniqueSuffix()
    defer {
        _ = try? lvmTool(["vgremove", "-f", vg])
        _ = try? lvmTool(["pvremove", "-ff", "-y", loop.device])
        loop.destroy()
        removeMetadataCopies(of: vg)
    }
    try lvmTool(["pvcreate", "-y", loop.device])
    try lvmTool(["vgcreate", "-s", "4m", vg, loop.device])
    return try await body(vg, loop)
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
