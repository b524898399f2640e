import Glibc
import Platform

/// What a device holds, read from its first 68 KiB without a subprocess.
enum DeviceSignature: Sendable, Equatable {
    case filesystem(String)
    case other(String)

    /// The signature found on `device`, or nil when none of the known ones is there.
    static func read(_ device: String) throws(StorageError) -> DeviceSignature? {
        let fd = try syscall("open", device) { open(device, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        let length = 0x10040 + 8
        var buffer = [UInt8](repeating: 0, count: length)
        var filled = 0
        while filled < length {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, length - filled, off_t(filled)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw StorageError(errnoCode(errno), "pread(\(device)) failed: \(errnoText(errno))") }
            if n == 0 { break }
            filled += n
        }
        return detect(Array(buffer[0..<filled]))
    }

    /// Detects a signature in the first bytes of a device.
    static func detect(_ b: [UInt8]) -> DeviceSignature? {
        func has(_ text: String, at offset: Int) -> Bool {
            let bytes = Array(text.utf8)
            return b.count >= offset + bytes.count && Array(b[offset..<(offset + bytes.count)]) == bytes
        }
        func le32(_ offset: Int) -> UInt32 {
            guard b.count >= offset + 4 else { return 0 }
            return UInt32(b[offset]) | UInt32(b[offset + 1]) << 8 | UInt32(b[offset + 2]) << 16 | UInt32(b[offset + 3]) << 24
        }
        if has("XFSB", at: 0) { return .filesystem("xfs") }
        if b.count >= 1082 && b[1080] == 0x53 && b[1081] == 0xEF {
            let compat = le32(1024 + 0x5C)
            let incompat = le32(1024 + 0x60)
            if incompat & (0x40 | 0x80 | 0x200 | 0x10000) != 0 { return .filesystem("ext4") }
            return .filesystem(compat & 0x4 != 0 ? "ext3" : "ext2")
        }
        if has("_BHRfS_M", at: 0x10040) { return .filesystem("btrfs") }
        if b.count >= 6 && b[0...5] == [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE] { return .other("crypto_LUKS") }
        if has("hsqs", at: 0) { return .filesystem("squashfs") }
        if has("SWAPSPACE2", at: 4086) || has("SWAP-SPACE", at: 4086) { return .other("swap") }
        for sector in 0..<4 where has("LABELONE", at: sector * 512) { return .other("LVM2_member") }
        if has("EFI PART", at: 512) { return .other("gpt partition table") }
        if has("CD001", at: 32769) { return .filesystem("iso9660") }
        if b.count >= 512 && b[510] == 0x55 && b[511] == 0xAA { return .other("dos partition table or boot sector") }
        return nil
    }
}

/// The size of an ext2/3/4 filesystem, from its superblock (at byte 1024 of the device).
struct ExtGeometry: Sendable, Equatable {
    /// `s_blocks_count` (with `s_blocks_count_hi` on a 64-bit filesystem).
    var blocks: UInt64
    /// 1024 << `s_log_block_size`.
    var blockSize: UInt64

    /// The filesystem's size in bytes.
    var bytes: UInt64 { blocks &* blockSize }

    /// Reads the superblock of `device`; nil when it holds no ext filesystem.
    static func read(_ device: String) throws(StorageError) -> ExtGeometry? {
        let fd = try syscall("open", device) { open(device, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 2048)
        var filled = 0
        while filled < buffer.count {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, $0.count - filled, off_t(filled)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw StorageError(errnoCode(errno), "pread(\(device)) failed: \(errnoText(errno))") }
            if n == 0 { break }
            filled += n
        }
        return parse(Array(buffer[0..<filled]))
    }

    /// The geometry in the first 2 KiB of a device, or nil without an ext superblock there.
    static func parse(_ b: [UInt8]) -> ExtGeometry? {
        let sb = 1024
        guard b.count >= sb + 0x154, b[sb + 0x38] == 0x53, b[sb + 0x39] == 0xEF else { return nil }
        func le32(_ offset: Int) -> UInt64 {
            (0..<4).reduce(UInt64(0)) { $0 | UInt64(b[sb + offset + $1]) << (8 * UInt64($1)) }
        }
        let logBlockSize = le32(0x18)
        guard logBlockSize <= 6 else { return nil }
        var blocks = le32(0x04)
        if le32(0x60) & 0x80 != 0 { blocks |= le32(0x150) << 32 }  // INCOMPAT_64BIT
        return ExtGeometry(blocks: blocks, blockSize: 1024 << logBlockSize)
    }

    /// Whether `resize2fs` would grow the filesystem on a device of `deviceBytes`: it aims at the
    /// device's size in whole blocks — a multiple of the page size when blocks are smaller — and
    /// has nothing to do when that is the current block count.
    func needsGrowth(deviceBytes: UInt64, pageSize: UInt64 = UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 1))) -> Bool {
        var target = deviceBytes / blockSize
        if pageSize > blockSize { target &= ~(pageSize / blockSize - 1) }
        return target > blocks
    }
}
