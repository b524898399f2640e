/// One line of `/proc/self/mountinfo`.
public struct MountInfo: Sendable, Hashable {
    /// Mount id.
    public var id: Int
    /// Id of the parent mount.
    public var parentID: Int
    /// Device major number of the mounted filesystem.
    public var major: UInt32
    /// Device minor number.
    public var minor: UInt32
    /// The directory of the filesystem that is mounted (`/` unless a bind mount of a subtree).
    public var root: String
    /// Where it is mounted.
    public var mountPoint: String
    /// Per-mount options (`rw,nosuid,relatime`).
    public var options: [String]
    /// Optional fields (`shared:1`, `master:2`).
    public var optionalFields: [String]
    /// Filesystem type (`ext4`, `xfs`, `devtmpfs`).
    public var fsType: String
    /// Mount source (`/dev/loop3`).
    public var source: String
    /// Per-superblock options.
    public var superOptions: [String]

    /// Whether the mount is read-only.
    public var readOnly: Bool { options.contains("ro") }

    /// Parses one line.
    /// - Throws: `.invalidArgument` naming the field that is missing or malformed.
    public init(line: String) throws(StorageError) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        func bad(_ what: String) -> StorageError {
            StorageError(.invalidArgument, "mountinfo line \(LVMName.quoted(line)): \(what)")
        }
        guard let separator = fields.firstIndex(of: "-"), separator >= 6, fields.count >= separator + 3 else {
            throw bad("expected at least 6 fields, '-' and 3 more")
        }
        guard let id = Int(fields[0]), let parent = Int(fields[1]) else { throw bad("mount ids are not numbers") }
        let numbers = fields[2].split(separator: ":")
        guard numbers.count == 2, let major = UInt32(numbers[0]), let minor = UInt32(numbers[1]) else {
            throw bad("device \(LVMName.quoted(fields[2])) is not major:minor")
        }
        self.id = id
        self.parentID = parent
        self.major = major
        self.minor = minor
        self.root = Self.unescape(fields[3])
        self.mountPoint = Self.unescape(fields[4])
        self.options = fields[5].split(separator: ",").map(String.init)
        self.optionalFields = Array(fields[6..<separator])
        self.fsType = Self.unescape(fields[separator + 1])
        self.source = Self.unescape(fields[separator + 2])
        self.superOptions = fields.count > separator + 3 ? fields[separator + 3].split(separator: ",").map(String.init) : []
    }

    /// Reverses the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
    static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count {
                let digits = bytes[(i + 1)...(i + 3)]
                if digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }) {
                    let value = digits.reduce(0) { $0 * 8 + Int($1 - UInt8(ascii: "0")) }
                    if value <= 255 {
                        out.append(UInt8(value))
                        i += 4
                        continue
                    }
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses a whole mountinfo text; malformed lines are reported, not skipped.
    public static func parse(_ text: String) throws(StorageError) -> [MountInfo] {
        var result: [MountInfo] = []
        for line in text.split(separator: "\n") where !line.isEmpty {
            result.append(try MountInfo(line: String(line)))
        }
        return result
    }
}
