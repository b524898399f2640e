import Platform
import CSIDriverKit
import Testing

@Suite struct DriverConfigurationTests {
    static func raw(_ edit: (inout DriverConfiguration.Raw) -> Void = { _ in }) -> DriverConfiguration.Raw {
        var raw = DriverConfiguration.Raw()
        raw.hostName = "node0"
        raw.volumeGroup = "vg0"
        edit(&raw)
        return raw
    }

    @Test func defaults() throws {
        let config = try DriverConfiguration(raw: Self.raw())
        #expect(config.socketPath == "/var/lib/kubelet/plugins/lvm.csi.swift-csi.io/csi.sock")
        #expect(config.driverName == "lvm.csi.swift-csi.io")
        #expect(config.nodeID == "node0")
        #expect(config.topologyKey == "topology.lvm.csi.swift-csi.io/node")
        #expect(config.topologySegments == ["topology.lvm.csi.swift-csi.io/node": "node0"])
        #expect(config.mode == .all)
        #expect(config.volumeGroups == .named("vg0"))
        #expect(config.socketMode == 0o660)
        #expect(config.logLevel == .info)
        #expect(config.backend == .lvm)
        // /run/<driver-name>: kept across restarts of the driver (a host path in a deployment), until the next boot.
        #expect(config.stateDir == "/run/lvm.csi.swift-csi.io")
        #expect(try DriverConfiguration(raw: Self.raw { $0.stateDir = "/var/lib/csi//state/" }).stateDir == "/var/lib/csi/state")
    }

    @Test func endpointFollowsKubeletDirAndDriverName() throws {
        let config = try DriverConfiguration(
            raw: Self.raw {
                $0.kubeletDir = "/vdata/storage//"
                $0.driverName = "local.csi.example.com"
            })
        #expect(config.kubeletDir == "/vdata/storage")
        #expect(config.socketPath == "/vdata/storage/plugins/local.csi.example.com/csi.sock")
        #expect(config.topologyKey == "topology.local.csi.example.com/node")
    }

    @Test(arguments: [
        ("unix:///run/csi/csi.sock", "/run/csi/csi.sock"),
        ("unix:/run/csi/csi.sock", "/run/csi/csi.sock"),
        ("/run/csi//csi.sock", "/run/csi/csi.sock"),
    ])
    func endpointForms(endpoint: String, path: String) throws {
        #expect(try DriverConfiguration.parseEndpoint(endpoint) == path)
    }

    @Test(arguments: [
        "tcp://127.0.0.1:10000", "csi.sock", "unix://relative/csi.sock", "/run/../csi.sock",
        "/" + String(repeating: "a", count: 120),
    ])
    func badEndpoints(endpoint: String) {
        #expect(throws: ConfigurationError.self) { try DriverConfiguration.parseEndpoint(endpoint) }
        let error = #expect(throws: ConfigurationError.self) {
            try DriverConfiguration(raw: Self.raw { $0.endpoint = endpoint })
        }
        #expect(error?.flag == "--endpoint")
    }

    @Test(arguments: ["a", "lvm.csi.swift-csi.io", "A-b.C9", String(repeating: "x", count: 63)])
    func goodDriverNames(name: String) throws {
        try DriverConfiguration.validateDriverName(name)
    }

    @Test(arguments: ["", "-lvm", "lvm.", "lvm_csi", "lvm/csi", "lvm csi", String(repeating: "x", count: 64)])
    func badDriverNames(name: String) {
        let error = #expect(throws: ConfigurationError.self) {
            try DriverConfiguration(raw: Self.raw { $0.driverName = name })
        }
        #expect(error?.flag == "--driver-name")
    }

    @Test func nodeIDDefaultsToHostNameAndIsChecked() throws {
        #expect(try DriverConfiguration(raw: Self.raw { $0.nodeID = "worker-1" }).nodeID == "worker-1")
        let empty = #expect(throws: ConfigurationError.self) {
            try DriverConfiguration(raw: Self.raw { $0.hostName = "" })
        }
        #expect(empty?.flag == "--node-id")
        let bad = #expect(throws: ConfigurationError.self) {
            try DriverConfiguration(raw: Self.raw { $0.nodeID = "node 1" })
        }
        #expect(bad?.flag == "--node-id")
    }

    @Test func volumeGroupSelection() throws {
        let pattern = try DriverConfiguration(
            raw: Self.raw {
                $0.volumeGroup = nil
                $0.vgPattern = "data-vg[0-9]+"
            })
        #expect(pattern.volumeGroups == .pattern("data-vg[0-9]+"))
        #expect(pattern.volumeGroups.matches("data-vg12"))
        #expect(!pattern.volumeGroups.matches("xdata-vg12"), "the pattern must match the whole name")
        #expect(!pattern.volumeGroups.matches("data-vg"))

        let both = #expect(throws: ConfigurationError.self) {
            try DriverConfiguration(raw: Self.raw { $0.vgPattern = "x" })
        }
        #expect(both?.flag == "--volume-group")
        let neither = #expect(throws: ConfigurationError.self) {
            try DriverConfiguration(raw: Self.raw { $0.volumeGroup = nil })
        }
        #expect(neither?.flag == "--volume-group")
        let regex = #expect(throws: ConfigurationError.self) {
            try DriverConfiguration(
                raw: Self.raw {
                    $0.volumeGroup = nil
                    $0.vgPattern = "vg[0-"
                })
        }
        #expect(regex?.flag == "--vg-pattern")
        let name = #expect(throws: ConfigurationError.self) {
            try DriverConfiguration(raw: Self.raw { $0.volumeGroup = "--force" })
        }
        #expect(name?.flag == "--volume-group")
        let pool = #expect(throws: ConfigurationError.self) {
            try DriverConfiguration(raw: Self.raw { $0.thinPool = "pool;rm" })
        }
        #expect(pool?.flag == "--thin-pool")
    }

    @Test func loopfileBackendNeedsNoVolumeGroup() throws {
        let config = try DriverConfiguration(
            raw: Self.raw {
                $0.volumeGroup = nil
                $0.backend = "loopfile"
                $0.loopfileDir = "/srv/csi/"
            })
        #expect(config.backend == .loopfile)
        #expect(config.loopfileDir == "/srv/csi")
    }

    @Test(arguments: [
        ("topology.lvm.csi.swift-csi.io/node", true), ("kubernetes.io/hostname", true), ("node", true),
        ("Topology.io/node", false), ("a/b/c", false), ("/node", false), ("topology.io/", false),
        ("topology.io/-node", false),
    ])
    func topologyKeys(key: String, valid: Bool) {
        let result = Result { try DriverConfiguration(raw: Self.raw { $0.topologyKey = key }) }
        switch result {
        case .success(let config):
            #expect(valid)
            #expect(config.topologyKey == key)
        case .failure(let error):
            #expect(!valid)
            #expect((error as? ConfigurationError)?.flag == "--topology-key")
        }
    }

    @Test(arguments: [
        ("--mode", "both"), ("--log-level", "loud"), ("--backend", "zfs"), ("--kubelet-dir", "var/lib/kubelet"),
        ("--kubelet-dir", "/var/lib/../kubelet"), ("--max-volumes-per-node", "-1"), ("--overprovision-ratio", "0.5"),
        ("--socket-mode", "0999"), ("--loopfile-dir", "relative"), ("--lvm-scan-device", "loop0"), ("--state-dir", "state"),
    ])
    func eachBadFlagIsNamed(flag: String, value: String) {
        let raw = Self.raw {
            switch flag {
            case "--mode": $0.mode = value
            case "--log-level": $0.logLevel = value
            case "--backend": $0.backend = value
            case "--kubelet-dir": $0.kubeletDir = value
            case "--max-volumes-per-node": $0.maxVolumesPerNode = Int64(value)!
            case "--overprovision-ratio": $0.overprovisionRatio = Double(value)!
            case "--socket-mode": $0.socketMode = value
            case "--lvm-scan-device": $0.lvmScanDevices = ["/dev/loop1", value]
            case "--state-dir": $0.stateDir = value
            default: $0.loopfileDir = value
            }
        }
        let error = #expect(throws: ConfigurationError.self) { try DriverConfiguration(raw: raw) }
        #expect(error?.flag == flag)
        #expect(error?.description.hasPrefix(flag) == true)
    }

    @Test(arguments: [
        ("debug", LogLevel.debug), ("WARN", .warning), ("0", .warning), ("2", .info),
        ("4", .debug), ("5", .trace),
    ])
    func logLevels(text: String, level: LogLevel) {
        #expect(LogLevel(parsing: text) == level)
    }

    @Test func modes() throws {
        #expect(DriverMode.all.servesNode && DriverMode.all.servesController)
        #expect(DriverMode.node.servesNode && !DriverMode.node.servesController)
        #expect(!DriverMode.controller.servesNode && DriverMode.controller.servesController)
    }
}
