import Glibc
import Platform
import Testing

@testable import Storage

/// The ext superblock's size, and when resize2fs has something to do (only then does online
/// growth need CAP_SYS_RESOURCE).
@Suite struct ExtGeometryTests {
    /// The first 2 KiB of a device with an ext superblock.
    func superblock(blocks: UInt64, logBlockSize: UInt32, incompat: UInt32 = 0) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 2048)
        func put32(_ offset: Int, _ value: UInt32) {
            for i in 0..<4 { b[1024 + offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
        }
        put32(0x04, UInt32(truncatingIfNeeded: blocks))
        put32(0x18, logBlockSize)
        put32(0x60, incompat)
        put32(0x150, UInt32(truncatingIfNeeded: blocks >> 32))
        b[1024 + 0x38] = 0x53
        b[1024 + 0x39] = 0xEF
        return b
    }

    @Test func sizeComesFromBlockCountAndBlockSize() {
        #expect(ExtGeometry.parse(superblock(blocks: 32768, logBlockSize: 0)) == ExtGeometry(blocks: 32768, blockSize: 1024))
        #expect(ExtGeometry.parse(superblock(blocks: 24576, logBlockSize: 2))?.bytes == 96 << 20)
        // The high half counts only on a 64-bit filesystem.
        #expect(ExtGeometry.parse(superblock(blocks: 1 << 32 | 5, logBlockSize: 2, incompat: 0x80))?.blocks == 1 << 32 | 5)
        #expect(ExtGeometry.parse(superblock(blocks: 1 << 32 | 5, logBlockSize: 2))?.blocks == 5)
        #expect(ExtGeometry.parse([UInt8](repeating: 0, count: 2048)) == nil)
        #expect(ExtGeometry.parse(Array(superblock(blocks: 1, logBlockSize: 0).prefix(1100))) == nil)
    }

    @Test func growthOnlyWhenTheDeviceHoldsMoreWholeBlocks() {
        let small = ExtGeometry(blocks: 32768, blockSize: 1024)
        #expect(!small.needsGrowth(deviceBytes: 32 << 20, pageSize: 4096))
        #expect(small.needsGrowth(deviceBytes: 33 << 20, pageSize: 4096))
        // resize2fs rounds a 1 KiB-block target down to whole pages.
        #expect(!small.needsGrowth(deviceBytes: (32 << 20) + 3072, pageSize: 4096))
        #expect(small.needsGrowth(deviceBytes: (32 << 20) + 4096, pageSize: 4096))
        // A device smaller than the filesystem is not growth.
        #expect(!small.needsGrowth(deviceBytes: 16 << 20, pageSize: 4096))
        let large = ExtGeometry(blocks: 262_144, blockSize: 4096)
        #expect(!large.needsGrowth(deviceBytes: (1 << 30) + 4095, pageSize: 4096))
        #expect(large.needsGrowth(deviceBytes: (1 << 30) + 4096, pageSize: 4096))
    }

    /// A filesystem mkfs.ext4 made on an image file fills it; the same file grown needs resize2fs.
    @Test(.enabled(if: access("/sbin/mkfs.ext4", X_OK) == 0 || access("/usr/sbin/mkfs.ext4", X_OK) == 0))
    func mkfsMadeFilesystemFillsItsDevice() async throws {
        let image = "/var/tmp/extgeometry-\(uniqueSuffix()).img"
        defer { unlink(image) }
        try await offload { () throws(StorageError) in
            try runChecked("truncate", ["-s", "32M", image], what: "truncate")
            try runChecked("mkfs.ext4", ["-q", "-F", image], what: "mkfs.ext4")
        }
        let geometry = try #require(try ExtGeometry.read(image))
        #expect(geometry.bytes == 32 << 20)
        #expect(!geometry.needsGrowth(deviceBytes: 32 << 20))
        #expect(geometry.needsGrowth(deviceBytes: 64 << 20))
    }
}
