import Testing

@testable import Storage

/// `VolumeRequest.size`: rounding to the allocation unit and the filesystem's minimum size.
@Suite struct VolumeRequestSizeTests {
    let mib: UInt64 = 1 << 20

    func size(_ required: UInt64, limit: UInt64? = nil, fsType: String?, unit: UInt64 = 1 << 20) throws(StorageError) -> UInt64 {
        try VolumeRequest(name: "pvc", requiredBytes: required, limitBytes: limit, fsType: fsType)
            .size(unit: unit, unitName: "one unit", volume: "pvc")
    }

    @Test func xfsVolumesAreMadeLargeEnoughForMkfs() throws {
        #expect(FilesystemMinimum.bytes(for: "xfs") == 300 * mib)
        #expect(try size(64 * mib, fsType: "xfs") == 300 * mib)
        #expect(try size(1, fsType: "xfs", unit: 4 * mib) == 300 * mib)
        // The minimum is rounded up to whole units too.
        #expect(try size(64 * mib, fsType: "xfs", unit: 7 * mib) == 301 * mib)
        // Within a limit that leaves room for it.
        #expect(try size(64 * mib, limit: 300 * mib, fsType: "xfs") == 300 * mib)
        #expect(try size(0, limit: 400 * mib, fsType: "xfs") == 400 * mib)
        #expect(try size(0, fsType: "xfs") == VolumeRequest.defaultVolumeBytes)
        // Larger requests are untouched.
        #expect(try size(500 * mib, fsType: "xfs") == 500 * mib)
    }

    @Test func otherFilesystemsAndRawBlockHaveNoMinimum() throws {
        #expect(try size(64 * mib, fsType: "ext4") == 64 * mib)
        #expect(try size(1, fsType: nil) == mib)
        #expect(try size(1, fsType: "ext4", unit: 4 * mib) == 4 * mib)
    }

    /// (required MiB, limit bytes)
    static let tooSmallLimits: [(UInt64, UInt64)] = [(64, 200 << 20), (0, 256 << 20), (64, (300 << 20) - 1)]

    @Test(arguments: tooSmallLimits)
    func aLimitBelowTheFilesystemMinimumIsOutOfRange(requiredMiB: UInt64, limit: UInt64) {
        let required = requiredMiB << 20
        #expect {
            try size(required, limit: limit, fsType: "xfs")
        } throws: { error in
            guard let error = error as? StorageError else { return false }
            return error.code == .outOfRange && error.message.contains("pvc") && error.message.contains("xfs")
                && error.message.contains("314572800 bytes (300 MiB)") && error.message.contains("limit of \(limit) bytes")
        }
    }

    @Test func aRequiredSizeAboveTheLimitIsStillInvalid() {
        #expect { try size(400 * mib, limit: 350 * mib, fsType: "xfs") } throws: {
            ($0 as? StorageError)?.code == .invalidArgument
        }
    }
}
