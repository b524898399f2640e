import Glibc
import H2
import RPCCore
import Platform
import Storage
import Testing

@testable import CSIDriverKit

@Suite struct DriverProcessTests {
    /// A fresh directory under /tmp, removed by the caller.
    static func temporaryDirectory() -> String {
        var template = Array("/tmp/driver-process-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func configuration(mode: String, kubeletDir: String, loopfileDir: String) throws -> DriverConfiguration {
        var raw = DriverConfiguration.Raw()
        raw.hostName = "node0"
        raw.backend = "loopfile"
        raw.mode = mode
        raw.kubeletDir = kubeletDir
        raw.loopfileDir = loopfileDir
        return try DriverConfiguration(raw: raw)
    }

    static func remove(_ path: String) {
        for sub in ["/loop/volumes", "/loop/snapshots", "/loop"] { rmdir(path + sub) }
        rmdir(path)
    }

    @Test(arguments: [("all", true, true), ("node", false, true), ("controller", true, false)])
    func modeDecidesServices(mode: String, controller: Bool, node: Bool) throws {
        let dir = Self.temporaryDirectory()
        defer { Self.remove(dir) }
        let process = DriverProcess(
            configuration: try Self.configuration(mode: mode, kubeletDir: dir, loopfileDir: dir + "/loop"), logger: .disabled)
        let paths = Set(try process.makeRouter().methods.map(\.path))
        #expect(paths.contains("/csi.v1.Identity/GetPluginInfo"))
        #expect(paths.contains("/csi.v1.Identity/Probe"))
        #expect(paths.contains("/csi.v1.Controller/CreateVolume") == controller)
        #expect(paths.contains("/csi.v1.Controller/ListSnapshots") == controller)
        #expect(paths.contains("/csi.v1.Node/NodeGetInfo") == node)
        #expect(paths.contains("/csi.v1.Node/NodePublishVolume") == node)
    }

    @Test func missingKubeletDirIsNamed() throws {
        let dir = Self.temporaryDirectory()
        defer { Self.remove(dir) }
        let process = DriverProcess(
            configuration: try Self.configuration(mode: "node", kubeletDir: dir + "/absent", loopfileDir: dir + "/loop"),
            logger: .disabled)
        let error = #expect(throws: DriverStartError.self) { try process.makeRouter() }
        #expect(error?.message.contains("--kubelet-dir") == true)
        #expect(error?.message.contains(dir + "/absent") == true)
    }

    @Test func unusableLoopfileDirIsNamed() throws {
        let process = DriverProcess(
            configuration: try Self.configuration(mode: "controller", kubeletDir: "/", loopfileDir: "/proc/self/csi-loop"),
            logger: .disabled)
        let error = #expect(throws: DriverStartError.self) { try process.makeRouter() }
        #expect(error?.message.contains("/proc/self/csi-loop") == true)
        #expect(error?.message.contains("--loopfile-dir") == true)
    }
}

@Suite struct NodeHelperTests {
    /// A node service over the real mounter, for its helpers.
    static func node() throws -> NodeServer {
        let options = DriverOptions(name: "lvm.csi.swift-csi.io", version: "0", nodeID: "node0")
        return NodeServer(
            options: options, backend: FakeBackend(), mounter: LinuxMounter(), paths: try KubeletPathPolicy(kubeletDirectory: "/tmp"))
    }

    /// A raw block target is recognised by the device number of the node bound there, through
    /// symbolic links (LVM's /dev/vg/lv) and whatever the node's name.
    @Test(.enabled(if: getuid() == 0, "mknod needs root")) func blockTargetsAreRecognisedByDeviceNumber() async throws {
        let dir = DriverProcessTests.temporaryDirectory()
        defer {
            unlink(dir + "/lv")
            unlink(dir + "/node")
            rmdir(dir)
        }
        // 259:300 (a minor above 255 uses the high bits of dev_t).
        let major: UInt64 = 259
        let minor: UInt64 = 300
        let dev = dev_t((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12))
        try #require(mknod(dir + "/node", S_IFBLK | 0o600, dev) == 0)
        #expect(symlink(dir + "/node", dir + "/lv") == 0)
        let node = try Self.node()
        #expect(try await node.isDeviceNode(dir + "/node", number: DeviceNumber(major: 259, minor: 300)))
        #expect(try await node.isDeviceNode(dir + "/lv", number: DeviceNumber(major: 259, minor: 300)))
        #expect(try await !node.isDeviceNode(dir + "/node", number: DeviceNumber(major: 259, minor: 301)))
        #expect(try await !node.isDeviceNode("/dev/null", number: DeviceNumber(major: 1, minor: 3)))  // a character device
        #expect(try await !node.isDeviceNode(dir + "/missing", number: DeviceNumber(major: 259, minor: 300)))
    }

    @Test func deviceNumbersComeFromTheNode() async throws {
        // /dev/null is character device 1:3 on Linux.
        let node = try Self.node()
        let number = try await node.deviceNumber("/dev/null")
        #expect(number == DeviceNumber(major: 1, minor: 3))
        await #expect(throws: RPCError.self) { try await node.deviceNumber("/dev/does-not-exist") }
    }
}
