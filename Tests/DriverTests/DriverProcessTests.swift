import Glibc
import H2
import Platform
import Testing

@testable import Driver

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
    @Test func deviceSymlinksResolveToTheNode() throws {
        let dir = DriverProcessTests.temporaryDirectory()
        defer {
            unlink(dir + "/lv")
            rmdir(dir)
        }
        #expect(symlink("/dev/null", dir + "/lv") == 0)
        #expect(NodeServer.resolved(dir + "/lv") == "/dev/null")
        #expect(NodeServer.basename(NodeServer.resolved(dir + "/lv")) == "null")
        #expect(NodeServer.resolved(dir + "/missing") == dir + "/missing")
    }

    @Test func deviceNumbersComeFromTheNode() throws {
        // /dev/null is character device 1:3 on Linux.
        let number = try NodeServer.deviceNumber("/dev/null")
        #expect(number == (1, 3))
        #expect(throws: RPCError.self) { try NodeServer.deviceNumber("/dev/does-not-exist") }
    }
}
