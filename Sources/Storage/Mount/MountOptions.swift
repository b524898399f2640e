/// Mount options (CSI `mount_flags`) split into mount(2) flags and the filesystem's data string.
public struct MountOptions: Sendable, Hashable {
    /// `MS_*` flags for mount(2).
    public var flags: UInt
    /// Filesystem-specific options, comma separated (for example `discard,errors=remount-ro`).
    public var data: String

    /// Whether the result mounts read-only.
    public var readOnly: Bool { flags & MountFlag.readOnly != 0 }

    /// Parses options; each element may itself hold several comma-separated options.
    /// - Throws: `.invalidArgument` naming the option for one that changes how or where mount(2)
    ///   mounts (`bind`, `remount`, `shared`, …), a mount-helper option the kernel does not know
    ///   (`user`, `nofail`, `x-…`), or one with characters outside `[A-Za-z0-9_.:/=+@-]`.
    public init(parsing options: [String]) throws(StorageError) {
        var flags: UInt = 0
        var data: [String] = []
        for element in options {
            for option in element.split(separator: ",", omittingEmptySubsequences: true).map(String.init) {
                if let flag = Self.setting[option] {
                    flags |= flag
                    if let opposite = Self.exclusive[option] { flags &= ~opposite }
                } else if let flag = Self.clearing[option] {
                    flags &= ~flag
                } else if option == "defaults" {
                    continue
                } else if Self.rejected.contains(option) || option.hasPrefix("x-") || option.hasPrefix("comment=")
                    || option.hasPrefix("helper=")
                {
                    throw StorageError(
                        .invalidArgument,
                        "mount option \(LVMName.quoted(option)) is not allowed: it changes how or where the volume is mounted, or only mount(8) understands it"
                    )
                } else {
                    guard !option.hasPrefix("-"), option.utf8.allSatisfy(Self.isDataByte) else {
                        throw StorageError(
                            .invalidArgument, "mount option \(LVMName.quoted(option)) has characters outside [A-Za-z0-9_.:/=+@-]")
                    }
                    if !data.contains(option) { data.append(option) }
                }
            }
        }
        self.flags = flags
        self.data = data.joined(separator: ",")
    }

    /// Options with given flags and data.
    public init(flags: UInt = 0, data: String = "") {
        self.flags = flags
        self.data = data
    }

    static let setting: [String: UInt] = [
        "ro": MountFlag.readOnly, "nosuid": MountFlag.noSetUID, "nodev": MountFlag.noDevices,
        "noexec": MountFlag.noExec, "sync": MountFlag.synchronous, "dirsync": MountFlag.dirSync,
        "noatime": MountFlag.noAccessTime, "nodiratime": MountFlag.noDirAccessTime,
        "relatime": MountFlag.relativeAccessTime, "strictatime": MountFlag.strictAccessTime,
        "lazytime": MountFlag.lazyTime, "nosymfollow": MountFlag.noSymlinkFollow, "silent": MountFlag.silent,
    ]
    static let clearing: [String: UInt] = [
        "rw": MountFlag.readOnly, "suid": MountFlag.noSetUID, "dev": MountFlag.noDevices,
        "exec": MountFlag.noExec, "async": MountFlag.synchronous, "atime": MountFlag.noAccessTime,
        "diratime": MountFlag.noDirAccessTime, "norelatime": MountFlag.relativeAccessTime,
        "nostrictatime": MountFlag.strictAccessTime, "nolazytime": MountFlag.lazyTime, "loud": MountFlag.silent,
    ]
    /// Access-time modes exclude each other.
    static let exclusive: [String: UInt] = [
        "noatime": MountFlag.relativeAccessTime | MountFlag.strictAccessTime,
        "relatime": MountFlag.noAccessTime | MountFlag.strictAccessTime,
        "strictatime": MountFlag.noAccessTime | MountFlag.relativeAccessTime,
    ]
    static let rejected: Set<String> = [
        "bind", "rbind", "move", "remount", "shared", "rshared", "private", "rprivate", "slave", "rslave",
        "unbindable", "runbindable", "mand", "nomand", "loop", "user", "users", "nouser", "owner", "group",
        "auto", "noauto", "_netdev", "nofail", "rec",
    ]

    static func isDataByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "="), UInt8(ascii: "+"),
            UInt8(ascii: "@"), UInt8(ascii: "-"):
            true
        default: false
        }
    }
}

/// mount(2) flag values (`MS_*`, linux/mount.h).
public enum MountFlag {
    /// `MS_RDONLY`: read-only.
    public static let readOnly: UInt = 1
    /// `MS_NOSUID`: ignore set-user-id bits.
    public static let noSetUID: UInt = 2
    /// `MS_NODEV`: no device files.
    public static let noDevices: UInt = 4
    /// `MS_NOEXEC`: no program execution.
    public static let noExec: UInt = 8
    /// `MS_SYNCHRONOUS`: synchronous writes.
    public static let synchronous: UInt = 16
    /// `MS_REMOUNT`: change an existing mount.
    public static let remount: UInt = 32
    /// `MS_DIRSYNC`: synchronous directory changes.
    public static let dirSync: UInt = 128
    /// `MS_NOSYMFOLLOW`: do not follow symbolic links.
    public static let noSymlinkFollow: UInt = 256
    /// `MS_NOATIME`: no access times.
    public static let noAccessTime: UInt = 1024
    /// `MS_NODIRATIME`: no directory access times.
    public static let noDirAccessTime: UInt = 2048
    /// `MS_BIND`: bind mount.
    public static let bind: UInt = 4096
    /// `MS_REC`: recursive bind.
    public static let recursive: UInt = 16384
    /// `MS_SILENT`: fewer kernel messages.
    public static let silent: UInt = 32768
    /// `MS_RELATIME`: access times relative to modification times.
    public static let relativeAccessTime: UInt = 1 << 21
    /// `MS_STRICTATIME`: always update access times.
    public static let strictAccessTime: UInt = 1 << 24
    /// `MS_LAZYTIME`: keep timestamps in memory.
    public static let lazyTime: UInt = 1 << 25
    /// Flags that survive a bind remount (the rest are per-superblock).
    static let perMount: UInt =
        readOnly | noSetUID | noDevices | noExec | noAccessTime | noDirAccessTime | relativeAccessTime | strictAccessTime | noSymlinkFollow
}
