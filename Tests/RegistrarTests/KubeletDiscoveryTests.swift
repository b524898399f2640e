import Glibc
import Platform
import Testing

@testable import Registrar

@Suite struct KubeletDiscoveryTests {
    @Test(arguments: [
        (["kubelet", "--root-dir=/a"], ["--root-dir=/a"]),
        (["/usr/bin/kubelet"], []),
        (["hyperkube", "kubelet", "--v=2"], ["--v=2"]),
        (["hyperkube", "kube-proxy"], nil),
        (["kubelet-sim"], nil),
        (["/usr/bin/python3", "kubelet"], nil),
        ([], nil),
    ] as [([String], [String]?)])
    func recognizesAKubeletsCommandLine(arguments: [String], expected: [String]?) {
        #expect(KubeletDiscovery.kubeletArguments(arguments) == expected)
    }

    @Test(arguments: [
        (["--root-dir=/a"], "/a"),
        (["--root-dir", "/b"], "/b"),
        (["-root-dir=/c"], "/c"),
        (["--root-dir=/a", "--root-dir=/last"], "/last"),
        (["--root-directory=/x"], nil),
        (["--", "--root-dir=/after"], nil),
        (["--root-dir"], nil),
        (["--v=2", "--config", "/etc/k.yaml"], nil),
    ] as [([String], String?)])
    func readsTheRootDirFlagAsGoDoes(arguments: [String], expected: String?) {
        #expect(KubeletDiscovery.flagValue("root-dir", in: arguments) == expected)
    }

    @Test func splitsProcCmdline() {
        #expect(KubeletDiscovery.arguments(fromCmdline: "kubelet\0--root-dir=/a\0\0--v=2\0") == ["kubelet", "--root-dir=/a", "", "--v=2"])
        #expect(KubeletDiscovery.arguments(fromCmdline: "") == [])
    }

    @Test(arguments: [
        ("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nrootDir: /data/kubelet\n", "/data/kubelet"),
        ("rootDir: \"/quoted dir\"  # the data disk\n", "/quoted dir"),
        ("rootDir: '/it''s'\n", "/it's"),
        ("rootDir: /plain#hash # comment\n", "/plain#hash"),
        ("rootDir:    /spaced   \r\nkind: KubeletConfiguration\r\n", "/spaced"),
        ("\"rootDir\": /key-quoted\n", "/key-quoted"),
        ("authentication:\n  rootDir: /nested\nkind: KubeletConfiguration\n", nil),
        ("# rootDir: /commented\nkind: KubeletConfiguration\n", nil),
        ("rootDirectory: /other\n", nil),
        ("rootDir:\n", nil),
        ("rootDir: ~\n", nil),
        ("---\nkind: KubeletConfiguration\n---\nrootDir: /second-document\n", nil),
        ("---\nrootDir: /first\n", "/first"),
        ("{\"kind\":\"KubeletConfiguration\",\"rootDir\":\"/from/json\"}", "/from/json"),
        ("\u{FEFF}  {\n  \"rootDir\": \"/json\\/escaped\"\n}\n", "/json/escaped"),
        ("{\"kind\": \"KubeletConfiguration\"}", nil),
        ("", nil),
    ] as [(String, String?)])
    func readsRootDirFromAConfigFile(text: String, expected: String?) {
        #expect(KubeletDiscovery.rootDirectory(fromConfig: text) == expected)
    }

    @Test func theFlagWinsOverTheConfigFileWhichWinsOverTheDefault() {
        let files = ["/etc/kubelet/config.yaml": "rootDir: /from-config\n", "/work/rel.yaml": "rootDir: relative\n"]
        func describe(_ arguments: [String]) -> KubeletProcess {
            KubeletDiscovery.describe(pid: 7, arguments: arguments, workingDirectory: "/work", processRoot: nil) { files[$0] }
        }
        let flag = describe(["--config=/etc/kubelet/config.yaml", "--root-dir=/from-flag"])
        #expect(flag.rootDirectory == "/from-flag" && flag.source == .flag)
        #expect(flag.registryDirectory == "/from-flag/plugins_registry")

        let config = describe(["--config", "/etc/kubelet/config.yaml"])
        #expect(config.rootDirectory == "/from-config" && config.source == .configFile("/etc/kubelet/config.yaml"))

        let relative = describe(["--config=rel.yaml"])
        #expect(relative.rootDirectory == "/work/relative" && relative.source == .configFile("/work/rel.yaml"))

        let missing = describe(["--config=/nowhere.yaml"])
        #expect(missing.rootDirectory == "/var/lib/kubelet" && missing.source == .defaulted)
        #expect(missing.configProblem == "its --config file /nowhere.yaml cannot be read")

        let none = describe(["--v=2"])
        #expect(none.rootDirectory == "/var/lib/kubelet" && none.source == .defaulted && none.configProblem == nil)
    }

    @Test func findsKubeletsInAProcDirectory() {
        let scratch = ScratchDirectory("kubelet-discovery")
        defer { scratch.remove() }
        let proc = FakeProc(scratch.path + "/proc")
        writeFile(scratch.path + "/config.yaml", "kind: KubeletConfiguration\nrootDir: \(scratch.path)/root\n")
        proc.add(pid: 812, ["/usr/bin/kubelet", "--config", scratch.path + "/config.yaml", "--v=2"])
        proc.add(pid: 900, ["/usr/sbin/sshd", "-D", "--root-dir=/not-a-kubelet"])
        proc.add(pid: 31, ["kubelet", "--root-dir", "/srv/kubelet"])
        mkdir(scratch.path + "/proc/self", 0o755)

        let found = KubeletDiscovery(procDirectory: scratch.path + "/proc").runningKubelets()
        #expect(found.map(\.pid) == [31, 812])
        #expect(found.map(\.rootDirectory) == ["/srv/kubelet", scratch.path + "/root"])
        #expect(found.last?.source == .configFile(scratch.path + "/config.yaml"))
        #expect(KubeletDiscovery(procDirectory: scratch.path + "/missing").runningKubelets().isEmpty)
    }

    @Test func tellsWhetherTheKubeletWatchesADirectory() {
        let scratch = ScratchDirectory("kubelet-reach")
        defer { scratch.remove() }
        let root = scratch.path + "/kubelet"
        _ = try? PathInspection.makeDirectories(root + "/plugins_registry")
        _ = try? PathInspection.makeDirectories(scratch.path + "/elsewhere")
        symlink(root + "/plugins_registry", scratch.path + "/mounted")
        let kubelet = KubeletProcess(pid: 5, rootDirectory: root, source: .flag)

        #expect(KubeletReach.registryProblem(directory: root + "/plugins_registry", kubelet: kubelet) == nil)
        #expect(KubeletReach.registryProblem(directory: root + "/plugins_registry/", kubelet: kubelet) == nil)
        // The same directory under another name (a bind mount in a container, a link) is the same registry.
        #expect(KubeletReach.registryProblem(directory: scratch.path + "/mounted", kubelet: kubelet) == nil)
        #expect(
            KubeletReach.registryProblem(directory: scratch.path + "/elsewhere", kubelet: kubelet)
                == "the running kubelet (pid 5, root directory \(root) (from --root-dir)) watches \(root)/plugins_registry, not \(scratch.path)/elsewhere")
        let gone = KubeletProcess(pid: 6, rootDirectory: scratch.path + "/gone", source: .defaulted)
        #expect(
            KubeletReach.registryProblem(directory: scratch.path + "/elsewhere", kubelet: gone)?
                .hasSuffix("watches \(scratch.path)/gone/plugins_registry, which does not exist; this registrar uses \(scratch.path)/elsewhere") == true)

        let socket = try! UnixListener(path: scratch.path + "/csi.sock")
        defer { socket.close() }
        #expect(KubeletReach.endpointProblem(endpoint: "unix://" + scratch.path + "/csi.sock", kubelet: kubelet) == nil)
        #expect(KubeletReach.endpointProblem(endpoint: scratch.path + "/nothing.sock", kubelet: kubelet)?.contains("cannot reach") == true)
        #expect(KubeletReach.endpointProblem(endpoint: scratch.path + "/elsewhere", kubelet: kubelet)?.contains("a directory") == true)
        // Seen through the kubelet's own root (/proc/<pid>/root), not this process's.
        let contained = KubeletProcess(pid: 7, rootDirectory: "/kubelet", source: .flag, processRoot: scratch.path)
        #expect(KubeletReach.registryProblem(directory: root + "/plugins_registry", kubelet: contained) == nil)
        #expect(KubeletReach.endpointProblem(endpoint: "/csi.sock", kubelet: contained) == nil)
    }

    @Test func theRegistrarWarnsWhenTheKubeletWatchesAnotherRegistry() throws {
        let scratch = ScratchDirectory("kubelet-check")
        defer { scratch.remove() }
        let proc = FakeProc(scratch.path + "/proc")
        try PathInspection.makeDirectories(scratch.path + "/kubelet/plugins_registry")
        try PathInspection.makeDirectories(scratch.path + "/custom/registry")
        proc.add(pid: 100, ["kubelet", "--root-dir=\(scratch.path)/kubelet"])
        let endpoint = scratch.path + "/custom/csi.sock"
        func check(registry: String, link: String? = nil) -> (warnings: [String], log: [String]) {
            let sink = CollectingLogSink()
            let configuration = RegistrarConfiguration(
                driverSocket: endpoint, kubeletRegistrationPath: endpoint, registrationDirectory: registry,
                callTimeout: .seconds(1), registryLinkDirectory: link, registrationAckTimeout: .seconds(30))
            let registrar = Registrar(
                configuration: configuration, logger: Logger(sink: sink, level: .info),
                kubeletDiscovery: KubeletDiscovery(procDirectory: scratch.path + "/proc"))
            return (registrar.checkKubelet(), sink.messages)
        }
        let watched = scratch.path + "/kubelet/plugins_registry"

        var result = check(registry: scratch.path + "/custom/registry")
        #expect(result.warnings.count == 2)
        #expect(
            result.warnings.first
                == "the running kubelet (pid 100, root directory \(scratch.path)/kubelet (from --root-dir)) watches \(watched), not \(scratch.path)/custom/registry: it will never see the registration socket this registrar serves in \(scratch.path)/custom/registry (--plugin-registration-path); expected --plugin-registration-path=\(watched)")
        #expect(result.warnings.last?.hasPrefix("--kubelet-registration-path \(endpoint) is not reachable by the kubelet: the running kubelet (pid 100) cannot reach \(endpoint)") == true)

        let socket = try UnixListener(path: endpoint)
        defer { socket.close() }
        result = check(registry: scratch.path + "/custom/registry", link: scratch.path + "/custom")
        #expect(result.warnings.count == 1)
        #expect(result.warnings.first?.contains("this registrar links into \(scratch.path)/custom (--kubelet-registry-link-dir); expected --kubelet-registry-link-dir=\(watched)") == true)

        result = check(registry: scratch.path + "/custom/registry", link: watched)
        #expect(result.warnings.isEmpty)
        #expect(result.log.contains { $0.hasPrefix("the running kubelet (pid 100, root directory \(scratch.path)/kubelet (from --root-dir)) watches \(watched)") })

        _ = FakeProc(scratch.path + "/empty-proc")
        let sink = CollectingLogSink()
        let alone = Registrar(
            configuration: RegistrarConfiguration(
                driverSocket: endpoint, kubeletRegistrationPath: endpoint, registrationDirectory: scratch.path + "/custom/registry",
                callTimeout: .seconds(1), registrationAckTimeout: .seconds(30)),
            logger: Logger(sink: sink, level: .info), kubeletDiscovery: KubeletDiscovery(procDirectory: scratch.path + "/empty-proc"))
        #expect(alone.checkKubelet().isEmpty)
        #expect(sink.messages.contains { $0.hasPrefix("no running kubelet found in \(scratch.path)/empty-proc") })
    }

    @Test func inspectGivesAVerdictOnADirectoryTheKubeletDoesNotWatch() async throws {
        let scratch = ScratchDirectory("kubelet-inspect")
        defer { scratch.remove() }
        let proc = FakeProc(scratch.path + "/proc")
        try PathInspection.makeDirectories(scratch.path + "/kubelet/plugins_registry")
        try PathInspection.makeDirectories(scratch.path + "/custom")
        writeFile(scratch.path + "/kubelet.json", "{\"rootDir\": \"\(scratch.path)/kubelet\"}")
        proc.add(pid: 100, ["/usr/local/bin/kubelet", "--config=\(scratch.path)/kubelet.json"])
        let discovery = KubeletDiscovery(procDirectory: scratch.path + "/proc")

        let unwatched = try await Inspector(registryDirectory: scratch.path + "/custom", kubeletDiscovery: discovery).inspect()
        #expect(!unwatched.allRegister)
        #expect(unwatched.kubelets.map(\.rootDirectory) == [scratch.path + "/kubelet"])
        #expect(unwatched.registryProblem?.contains("watches \(scratch.path)/kubelet/plugins_registry, not \(scratch.path)/custom") == true)
        #expect(unwatched.text.contains("verdict:         NOT watched by the kubelet"))
        let json = try JSON.parse(unwatched.json)
        #expect(json["watchedByKubelet"] == .bool(false))
        #expect(json["kubelets"]?.arrayValue?.first?["rootDirSource"]?.stringValue == "from rootDir in \(scratch.path)/kubelet.json")

        let watched = try await Inspector(registryDirectory: scratch.path + "/kubelet/plugins_registry", kubeletDiscovery: discovery).inspect()
        #expect(watched.allRegister && watched.registryProblem == nil)
        #expect(try JSON.parse(watched.json)["watchedByKubelet"] == .bool(true))
        #expect(watched.text.contains("kubelet:         pid 100, root directory \(scratch.path)/kubelet"))
    }
}

/// A directory laid out like /proc: `<pid>/cmdline` for each process added.
struct FakeProc {
    let path: String
    init(_ path: String) {
        self.path = path
        _ = try? PathInspection.makeDirectories(path)
    }
    func add(pid: Int32, _ arguments: [String]) {
        _ = try? PathInspection.makeDirectories("\(path)/\(pid)")
        // NUL-separated, as the kernel writes it: fputs would stop at the first NUL.
        var bytes: [UInt8] = []
        for argument in arguments { bytes += Array(argument.utf8) + [0] }
        let fd = open("\(path)/\(pid)/cmdline", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
}
