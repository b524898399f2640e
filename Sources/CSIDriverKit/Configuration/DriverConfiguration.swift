public import Platform
public import Storage

/// Which CSI services one driver process serves.
public enum DriverMode: String, Sendable, Hashable, CaseIterable {
    /// Identity, Controller and Node: the controller runs beside the node plugin on every node.
    case all
    /// Identity and Node only.
    case node
    /// Identity and Controller only.
    case controller

    /// Whether the Controller service is served.
    public var servesController: Bool { self != .node }
    /// Whether the Node service is served.
    public var servesNode: Bool { self != .controller }
}

/// Where volumes live.
public enum BackendKind: String, Sendable, Hashable, CaseIterable {
    /// Logical volumes in an LVM volume group.
    case lvm
    /// Sparse files attached to loop devices, for nodes without LVM.
    case loopfile
}

/// How the driver picks the volume group for a new volume.
public enum VolumeGroupSelection: Sendable, Hashable, CustomStringConvertible {
    /// Always this volume group.
    case named(String)
    /// The matching volume group with the most free space; the source is a regular expression
    /// that must match the whole name.
    case pattern(String)

    public var description: String {
        switch self {
        case .named(let name): "volume group \(name)"
        case .pattern(let source): "volume groups matching /\(source)/"
        }
    }

    /// Whether `name` is eligible.
    public func matches(_ name: String) -> Bool {
        switch self {
        case .named(let wanted): return name == wanted
        case .pattern(let source):
            guard let regex = try? Regex(source) else { return false }
            return (try? regex.wholeMatch(in: name)) != nil
        }
    }
}

/// A start-up setting that is wrong, naming the flag and what was expected.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The command-line flag, for example `--driver-name`.
    public var flag: String
    /// What was found and what was expected.
    public var message: String
    /// Creates an error for `flag`.
    public init(flag: String, _ message: String) {
        self.flag = flag
        self.message = message
    }
    public var description: String { "\(flag): \(message)" }
}

/// Everything the driver needs to start, validated: build it with ``init(raw:)``.
public struct DriverConfiguration: Sendable, Hashable {
    /// The default CSI driver name.
    public static let defaultDriverName = "lvm.csi.swift-csi.io"
    /// The default kubelet root directory.
    public static let defaultKubeletDir = "/var/lib/kubelet"
    /// The driver's version, reported by GetPluginInfo and `--version`.
    public static let version = "0.1.0"

    /// The Unix socket path the driver serves on.
    public var socketPath: String
    /// The CSI driver name (GetPluginInfo).
    public var driverName: String
    /// This node's id (NodeGetInfo).
    public var nodeID: String
    /// The volume groups new volumes may go to (LVM backend).
    public var volumeGroups: VolumeGroupSelection
    /// The default thin pool for new volumes, if any (LVM backend).
    public var thinPool: String?
    /// The block devices LVM may scan (the volume groups' physical volumes); empty means all.
    public var lvmScanDevices: [String]
    /// A thin pool promises at most its size times this ratio (≥ 1) to thin volumes and snapshots.
    public var overprovisionRatio: Double
    /// The topology segment key whose value is the node id.
    public var topologyKey: String
    /// The most volumes this node takes; 0 means no limit.
    public var maxVolumesPerNode: Int64
    /// Which services are served.
    public var mode: DriverMode
    /// The kubelet root; staging and target paths must lie under it.
    public var kubeletDir: String
    /// Log verbosity.
    public var logLevel: LogLevel
    /// Which backend holds the volumes.
    public var backend: BackendKind
    /// The directory of the loop-file backend's files and metadata.
    public var loopfileDir: String
    /// Where what a group snapshot holds still is recorded while it is cut (`--state-dir`; by
    /// default ``defaultStateDir(driverName:)``, which a deployment keeps on the host).
    public var stateDir: String
    /// Permission bits of the socket.
    public var socketMode: UInt32
    /// How long in-flight calls may run after SIGTERM before the driver exits anyway.
    public var shutdownGrace: Duration
    /// How encrypted volumes are formatted and opened (`--luks-pbkdf-memory`, `--luks-iter-time`).
    public var encryptor: LUKSEncryptor
    /// The cgroup v2 hierarchy where pods' IO limits are written (`--cgroup-root`); nil for the
    /// `cgroup2` mount of the driver's own mount table.
    public var cgroupRoot: String?

    /// The raw command-line values, before validation.
    public struct Raw: Sendable, Hashable {
        /// `--endpoint`; nil for ``DriverConfiguration/defaultEndpoint(kubeletDir:driverName:)``.
        public var endpoint: String?
        /// `--driver-name`.
        public var driverName: String = DriverConfiguration.defaultDriverName
        /// `--node-id`; nil for the host name.
        public var nodeID: String?
        /// `--volume-group`.
        public var volumeGroup: String?
        /// `--vg-pattern`.
        public var vgPattern: String?
        /// `--thin-pool`.
        public var thinPool: String?
        /// `--lvm-scan-device`, once per device.
        public var lvmScanDevices: [String] = []
        /// `--overprovision-ratio`.
        public var overprovisionRatio: Double = 1.0
        /// `--topology-key`; nil for ``DriverConfiguration/defaultTopologyKey(driverName:)``.
        public var topologyKey: String?
        /// `--max-volumes-per-node`.
        public var maxVolumesPerNode: Int64 = 0
        /// `--mode`.
        public var mode: String = "all"
        /// `--kubelet-dir`.
        public var kubeletDir: String = DriverConfiguration.defaultKubeletDir
        /// `--log-level`.
        public var logLevel: String = "info"
        /// `--backend`.
        public var backend: String = "lvm"
        /// `--loopfile-dir`; nil for ``DriverConfiguration/defaultLoopfileDir(driverName:)``.
        public var loopfileDir: String?
        /// `--state-dir`; nil for ``DriverConfiguration/defaultStateDir(driverName:)``.
        public var stateDir: String?
        /// `--socket-mode`, octal.
        public var socketMode: String = "0660"
        /// `--shutdown-grace`, in seconds.
        public var shutdownGraceSeconds: Double = 10
        /// `--luks-pbkdf-memory`, in KiB.
        public var luksPBKDFMemoryKiB: Int64 = 65_536
        /// `--luks-iter-time`, in milliseconds.
        public var luksIterationTimeMilliseconds: Int64 = 1000
        /// `--cgroup-root`; nil for the `cgroup2` mount in `/proc/self/mountinfo`.
        public var cgroupRoot: String?
        /// The host name, the default node id.
        public var hostName: String = ""
        /// Creates raw values with every default.
        public init() {}
    }

    /// Validates raw command-line values.
    /// - Throws: ``ConfigurationError`` naming the first flag that is wrong.
    public init(raw: Raw) throws(ConfigurationError) {
        try Self.validateDriverName(raw.driverName)
        driverName = raw.driverName

        let kubelet = try Self.cleanAbsolutePath(raw.kubeletDir, flag: "--kubelet-dir")
        kubeletDir = kubelet

        let endpoint = raw.endpoint ?? Self.defaultEndpoint(kubeletDir: kubelet, driverName: raw.driverName)
        socketPath = try Self.parseEndpoint(endpoint)

        let node = raw.nodeID ?? raw.hostName
        try Self.validateNodeID(node)
        nodeID = node

        switch (raw.volumeGroup, raw.vgPattern) {
        case (.some, .some):
            throw ConfigurationError(flag: "--volume-group", "give either --volume-group or --vg-pattern, not both")
        case (.some(let name), nil):
            try Self.validateLVMName(name, flag: "--volume-group")
            volumeGroups = .named(name)
        case (nil, .some(let pattern)):
            do { _ = try Regex(pattern) } catch {
                throw ConfigurationError(flag: "--vg-pattern", "'\(pattern)' is not a valid regular expression: \(error)")
            }
            if pattern.isEmpty { throw ConfigurationError(flag: "--vg-pattern", "the pattern is empty") }
            volumeGroups = .pattern(pattern)
        case (nil, nil):
            if raw.backend == BackendKind.lvm.rawValue {
                throw ConfigurationError(flag: "--volume-group", "the LVM backend needs --volume-group NAME or --vg-pattern REGEX")
            }
            volumeGroups = .named("loopfile")
        }
        if let pool = raw.thinPool { try Self.validateLVMName(pool, flag: "--thin-pool") }
        thinPool = raw.thinPool
        var devices: [String] = []
        for device in raw.lvmScanDevices {
            devices.append(try Self.cleanAbsolutePath(device, flag: "--lvm-scan-device"))
        }
        lvmScanDevices = devices
        guard raw.overprovisionRatio.isFinite, raw.overprovisionRatio >= 1 else {
            throw ConfigurationError(flag: "--overprovision-ratio", "expected a number ≥ 1, found \(raw.overprovisionRatio)")
        }
        overprovisionRatio = raw.overprovisionRatio

        let key = raw.topologyKey ?? Self.defaultTopologyKey(driverName: raw.driverName)
        try Self.validateTopologyKey(key)
        topologyKey = key

        guard raw.maxVolumesPerNode >= 0 else {
            throw ConfigurationError(
                flag: "--max-volumes-per-node", "expected 0 (no limit) or a positive number, found \(raw.maxVolumesPerNode)")
        }
        maxVolumesPerNode = raw.maxVolumesPerNode

        guard let mode = DriverMode(rawValue: raw.mode) else {
            throw ConfigurationError(flag: "--mode", "expected all, node or controller, found '\(raw.mode)'")
        }
        self.mode = mode
        guard let level = LogLevel(parsing: raw.logLevel) else {
            throw ConfigurationError(
                flag: "--log-level", "expected trace, debug, info, notice, warning, error, critical or 0…5, found '\(raw.logLevel)'")
        }
        logLevel = level
        guard let backend = BackendKind(rawValue: raw.backend) else {
            throw ConfigurationError(flag: "--backend", "expected lvm or loopfile, found '\(raw.backend)'")
        }
        self.backend = backend
        loopfileDir = try Self.cleanAbsolutePath(
            raw.loopfileDir ?? Self.defaultLoopfileDir(driverName: raw.driverName), flag: "--loopfile-dir")
        stateDir = try Self.cleanAbsolutePath(raw.stateDir ?? Self.defaultStateDir(driverName: raw.driverName), flag: "--state-dir")

        var digits = Substring(raw.socketMode)
        if digits.hasPrefix("0o") { digits = digits.dropFirst(2) }
        guard !digits.isEmpty, let bits = UInt32(digits, radix: 8), bits <= 0o777 else {
            throw ConfigurationError(flag: "--socket-mode", "expected octal permission bits such as 0660, found '\(raw.socketMode)'")
        }
        socketMode = bits
        guard raw.shutdownGraceSeconds.isFinite, raw.shutdownGraceSeconds >= 0 else {
            throw ConfigurationError(flag: "--shutdown-grace", "expected seconds ≥ 0, found \(raw.shutdownGraceSeconds)")
        }
        shutdownGrace = .milliseconds(Int64(raw.shutdownGraceSeconds * 1000))
        // cryptsetup's own bounds for argon2id: 32 KiB to 4 GiB of memory; at least 1 ms.
        guard (32...4_194_304).contains(raw.luksPBKDFMemoryKiB) else {
            throw ConfigurationError(flag: "--luks-pbkdf-memory", "expected 32 to 4194304 KiB, found \(raw.luksPBKDFMemoryKiB)")
        }
        guard (1...60_000).contains(raw.luksIterationTimeMilliseconds) else {
            throw ConfigurationError(flag: "--luks-iter-time", "expected 1 to 60000 ms, found \(raw.luksIterationTimeMilliseconds)")
        }
        cgroupRoot = try raw.cgroupRoot.map { (path) throws(ConfigurationError) in try Self.cleanAbsolutePath(path, flag: "--cgroup-root") }
        encryptor = LUKSEncryptor(
            pbkdfMemoryKiB: Int(raw.luksPBKDFMemoryKiB), iterationTimeMilliseconds: Int(raw.luksIterationTimeMilliseconds))
    }

    /// `--endpoint`'s default: the socket under the kubelet's plugin directory for this driver.
    public static func defaultEndpoint(kubeletDir: String, driverName: String) -> String {
        "unix://\(kubeletDir)/plugins/\(driverName)/csi.sock"
    }

    /// `--topology-key`'s default.
    public static func defaultTopologyKey(driverName: String) -> String { "topology.\(driverName)/node" }

    /// `--loopfile-dir`'s default.
    public static func defaultLoopfileDir(driverName: String) -> String { "/var/lib/\(driverName)/loopfile" }

    /// `/run/<driver-name>`: the records of what a group snapshot holds matter until the next boot
    /// (a held device stays held across a restart of the driver, not across a reboot), which is what
    /// `/run` keeps; and the spec forbids files beside the socket.
    public static func defaultStateDir(driverName: String) -> String { "/run/\(driverName)" }

    /// The topology segments of this node: `{<topology-key>: <node-id>}`.
    public var topologySegments: [String: String] { [topologyKey: nodeID] }

    /// What the servers report and check, from these flags: the driver name and ``version``,
    /// the backend and mode in GetPluginInfo's manifest, the node id, its one topology segment,
    /// the volume limit, and the LVM parameters (`volumeGroup`, `vgPattern`, `thinPool`, `encryption`).
    public var driverOptions: DriverOptions {
        var options = DriverOptions(name: driverName, version: Self.version, nodeID: nodeID)
        options.manifest = ["backend": backend.rawValue, "mode": mode.rawValue]
        options.topology = topologySegments
        options.maxVolumesPerNode = maxVolumesPerNode
        options.servesController = mode.servesController
        options.volumeParameters = ControllerServer.Parameter.placement.union([ControllerServer.Parameter.encryption])
        options.clones = true  // both backends clone (LVMBackend, LoopFileBackend)
        return options
    }

    // MARK: - Rules

    /// Parses `unix:///path`, `unix:/path` or a plain absolute path into a socket path.
    public static func parseEndpoint(_ endpoint: String) throws(ConfigurationError) -> String {
        var path = Substring(endpoint)
        if path.hasPrefix("unix://") {
            path = path.dropFirst("unix://".count)
        } else if path.hasPrefix("unix:") {
            path = path.dropFirst("unix:".count)
        } else if let colon = path.firstIndex(of: ":"), !path[..<colon].contains("/") {
            throw ConfigurationError(
                flag: "--endpoint", "only Unix sockets are served: expected unix:///path or /path, found '\(endpoint)'")
        }
        let clean = try cleanAbsolutePath(String(path), flag: "--endpoint")
        // sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
        guard clean.utf8.count < 108 else {
            throw ConfigurationError(
                flag: "--endpoint", "socket path \(clean) is \(clean.utf8.count) bytes; Unix sockets allow at most 107")
        }
        return clean
    }

    /// A CSI driver name: at most 63 characters, alphanumeric at both ends, `-`, `.` and alphanumerics between.
    public static func validateDriverName(_ name: String) throws(ConfigurationError) {
        guard !name.isEmpty else { throw ConfigurationError(flag: "--driver-name", "the driver name is empty") }
        guard name.utf8.count <= 63 else {
            throw ConfigurationError(flag: "--driver-name", "'\(name)' is \(name.utf8.count) characters; CSI allows at most 63")
        }
        let bytes = Array(name.utf8)
        for (i, b) in bytes.enumerated() {
            let edge = i == 0 || i == bytes.count - 1
            if !(isAlnum(b) || (!edge && (b == UInt8(ascii: "-") || b == UInt8(ascii: ".")))) {
                throw ConfigurationError(
                    flag: "--driver-name",
                    "'\(name)' is not a CSI driver name: expected alphanumerics at both ends and only alphanumerics, '-' and '.' between")
            }
        }
    }

    /// A node id: not empty and usable as a topology label value (at most 63 characters; CSI itself allows 256 bytes).
    public static func validateNodeID(_ id: String) throws(ConfigurationError) {
        guard !id.isEmpty else {
            throw ConfigurationError(flag: "--node-id", "the node id is empty (and no host name was found)")
        }
        guard id.utf8.count <= 63, isLabelName(id) else {
            throw ConfigurationError(
                flag: "--node-id",
                "'\(id)' cannot be a topology label value: expected at most 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends")
        }
    }

    /// A Kubernetes label key: optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
    public static func validateTopologyKey(_ key: String) throws(ConfigurationError) {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        let name: Substring
        switch parts.count {
        case 1: name = parts[0]
        case 2:
            let prefix = parts[0]
            let labels = prefix.split(separator: ".", omittingEmptySubsequences: false)
            let validPrefix =
                !prefix.isEmpty && prefix.utf8.count <= 253
                && labels.allSatisfy { label in
                    let b = Array(label.utf8)
                    return !b.isEmpty && b.count <= 63 && isAlnum(b.first!) && isAlnum(b.last!)
                        && b.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") } && b.allSatisfy { !(65...90).contains($0) }
                }
            guard validPrefix else {
                throw ConfigurationError(flag: "--topology-key", "'\(key)': the prefix '\(prefix)' is not a lower-case DNS subdomain")
            }
            name = parts[1]
        default:
            throw ConfigurationError(flag: "--topology-key", "'\(key)' has more than one '/'")
        }
        guard !name.isEmpty, name.utf8.count <= 63, isLabelName(name) else {
            throw ConfigurationError(
                flag: "--topology-key",
                "'\(key)': the name '\(name)' must be 1…63 alphanumerics, '-', '_' or '.', alphanumeric at both ends")
        }
    }

    /// An LVM name: 1…127 of `a-z A-Z 0-9 + _ . -`, not starting with `-`, not `.` or `..`.
    public static func validateLVMName(_ name: String, flag: String) throws(ConfigurationError) {
        let b = Array(name.utf8)
        let ok =
            !b.isEmpty && b.count <= 127 && b[0] != UInt8(ascii: "-") && name != "." && name != ".."
            && b.allSatisfy {
                isAlnum($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
            }
        guard ok else {
            throw ConfigurationError(
                flag: flag, "'\(name)' is not an LVM name: expected 1…127 of a-z A-Z 0-9 + _ . - and no leading '-'")
        }
    }

    /// An absolute path without `..` components, with repeated and trailing slashes removed.
    public static func cleanAbsolutePath(_ path: String, flag: String) throws(ConfigurationError) -> String {
        guard path.hasPrefix("/") else { throw ConfigurationError(flag: flag, "expected an absolute path, found '\(path)'") }
        guard !path.utf8.contains(0) else { throw ConfigurationError(flag: flag, "the path contains a NUL byte") }
        let parts = path.split(separator: "/").filter { $0 != "." }
        if parts.contains("..") { throw ConfigurationError(flag: flag, "'\(path)' contains '..'") }
        return "/" + parts.joined(separator: "/")
    }

    static func isAlnum(_ b: UInt8) -> Bool {
        (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b)
    }

    static func isLabelName(_ s: some StringProtocol) -> Bool {
        let b = Array(s.utf8)
        guard let first = b.first, let last = b.last, isAlnum(first), isAlnum(last) else { return false }
        return b.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }
}
