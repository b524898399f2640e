/// The smallest device each filesystem can be made on, so that a volume meant for a filesystem is
/// created large enough for it and a stage of a smaller one is refused before `mkfs` runs.
public enum FilesystemMinimum {
    /// mkfs.xfs (xfsprogs 5.19 and later, 6.1 checked) refuses a data section under 300 MiB:
    /// "Filesystem must be larger than 300MB".
    public static let xfsBytes: UInt64 = 300 << 20

    /// The smallest size in bytes for a filesystem of `fsType`; 0 when there is no minimum above
    /// the backends' smallest allocation unit (ext4 is made on 1 MiB), or for no filesystem.
    public static func bytes(for fsType: String?) -> UInt64 {
        switch fsType {
        case "xfs": xfsBytes
        default: 0
        }
    }

    /// `bytes` for messages: "314572800 bytes (300 MiB)".
    static func describe(_ bytes: UInt64) -> String {
        bytes % (1 << 20) == 0 ? "\(bytes) bytes (\(bytes >> 20) MiB)" : "\(bytes) bytes"
    }
}
