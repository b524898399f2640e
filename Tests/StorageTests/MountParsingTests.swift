import Testing

@testable import Storage

@Suite struct MountInfoTests {
    @Test func parsesEscapesOptionalFieldsAndSuperOptions() throws {
        let line = #"36 35 98:0 /mnt1 /mnt/with\040space\011tab rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue"#
        let info = try MountInfo(line: line)
        #expect(info.id == 36 && info.parentID == 35)
        #expect(info.major == 98 && info.minor == 0)
        #expect(info.root == "/mnt1")
        #expect(info.mountPoint == "/mnt/with space\ttab")
        #expect(info.options == ["rw", "noatime"])
        #expect(info.optionalFields == ["master:1", "shared:7"])
        #expect(info.fsType == "ext3")
        #expect(info.source == "/dev/root")
        #expect(info.superOptions == ["rw", "errors=continue"])
        #expect(!info.readOnly)
    }

    @Test(arguments: [
        (#"/a\134b"#, #"/a\b"#), (#"/new\012line"#, "/new\nline"), (#"/x\040"#, "/x "), (#"/trailing\04"#, #"/trailing\04"#),
        (#"/not\999octal"#, #"/not\999octal"#), ("/plain", "/plain"), (#"/\303\274"#, "/ü"),
    ])
    func unescapesOctal(escaped: String, plain: String) {
        #expect(MountInfo.unescape(escaped) == plain)
    }

    @Test func noOptionalFieldsAndReadOnly() throws {
        let info = try MountInfo(line: "22 1 7:3 / /var/lib/kubelet/pods/x/volumes/y ro,relatime - xfs /dev/loop3 ro,attr2")
        #expect(info.optionalFields.isEmpty && info.readOnly && info.source == "/dev/loop3")
    }

    @Test(arguments: [
        "", "1 2 3", "a b 1:2 / /x rw - ext4 /dev/x rw", "1 2 x / /x rw - ext4 /dev/x rw", "1 2 1:2 / /x rw ext4 /dev/x rw",
        "1 2 1:2 / /x rw -",
    ])
    func rejectsMalformedLines(line: String) {
        #expect(throws: StorageError.self) { try MountInfo(line: line) }
    }

    @Test func parsesThisProcessMountTable() throws {
        let mounts = try LinuxMounter.readMountTable()
        #expect(mounts.contains { $0.mountPoint == "/" })
    }
}

@Suite struct MountOptionsTests {
    @Test func mapsFlagsAndKeepsDataOptions() throws {
        let options = try MountOptions(parsing: ["ro,nosuid", "nodev", "noexec", "noatime", "discard", "errors=remount-ro", "discard"])
        #expect(options.flags == MountFlag.readOnly | MountFlag.noSetUID | MountFlag.noDevices | MountFlag.noExec | MountFlag.noAccessTime)
        #expect(options.data == "discard,errors=remount-ro")
        #expect(options.readOnly)
    }

    @Test(
        arguments: [
            (["rw"], UInt(0), ""), (["ro", "rw"], UInt(0), ""), (["defaults"], UInt(0), ""),
            (["relatime"], MountFlag.relativeAccessTime, ""),
            (["noatime", "relatime"], MountFlag.relativeAccessTime, ""), (["relatime", "strictatime"], MountFlag.strictAccessTime, ""),
            (["sync", "async"], UInt(0), ""), (["dirsync,lazytime"], MountFlag.dirSync | MountFlag.lazyTime, ""),
            (["nouuid"], UInt(0), "nouuid"), (["data=ordered", "prjquota"], UInt(0), "data=ordered,prjquota"), ([], UInt(0), ""),
        ] as [([String], UInt, String)])
    func vectors(options: [String], flags: UInt, data: String) throws {
        let parsed = try MountOptions(parsing: options)
        #expect(parsed.flags == flags)
        #expect(parsed.data == data)
    }

    @Test(arguments: [
        "bind", "rbind", "remount", "move", "shared", "rslave", "mand", "user", "nofail", "x-systemd.automount", "loop",
        "a b", "opt;rm", "-o", "data=\"x\"", "uid=$(id)", "é",
    ])
    func rejectsDangerousOrMalformed(option: String) {
        #expect {
            _ = try MountOptions(parsing: [option])
        } throws: { error in
            guard let error = error as? StorageError else { return false }
            return error.code == .invalidArgument && error.message.contains("mount option")
        }
    }
}

@Suite struct DeviceSignatureTests {
    @Test func detectsSuperblocks() {
        var ext4 = [UInt8](repeating: 0, count: 70_000)
        ext4[1080] = 0x53
        ext4[1081] = 0xEF
        ext4[1024 + 0x60] = 0x40
        #expect(DeviceSignature.detect(ext4) == .filesystem("ext4"))
        var ext3 = [UInt8](repeating: 0, count: 70_000)
        ext3[1080] = 0x53
        ext3[1081] = 0xEF
        ext3[1024 + 0x5C] = 0x4
        #expect(DeviceSignature.detect(ext3) == .filesystem("ext3"))
        var xfs = [UInt8](repeating: 0, count: 4096)
        xfs.replaceSubrange(0..<4, with: Array("XFSB".utf8))
        #expect(DeviceSignature.detect(xfs) == .filesystem("xfs"))
        var pv = [UInt8](repeating: 0, count: 4096)
        pv.replaceSubrange(512..<520, with: Array("LABELONE".utf8))
        #expect(DeviceSignature.detect(pv) == .other("LVM2_member"))
        var mbr = [UInt8](repeating: 0, count: 4096)
        mbr[510] = 0x55
        mbr[511] = 0xAA
        #expect(DeviceSignature.detect(mbr) != nil)
        #expect(DeviceSignature.detect([UInt8](repeating: 0, count: 70_000)) == nil)
        #expect(DeviceSignature.detect([]) == nil)
    }
}
