// csi-lvm-driver: flags → DriverConfiguration → wired parts → run until SIGTERM/SIGINT.
import CSIDriverKit
import Flags
import H2
import MetricsExport
import RPCCore
import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// The defaults of the flags: what the configuration takes when a flag is absent.
let defaults = DriverConfiguration.Raw()

/// The driver's flags and help.
let program = CommandLineProgram(
    name: "csi-lvm-driver",
    version: DriverConfiguration.version,
    abstract: "A CSI driver for LVM local volumes, served on a Unix socket.",
    commands: [
        CommandLineCommand(
            name: "csi-lvm-driver",
            abstract: "A CSI driver for LVM local volumes, served on a Unix socket.",
            flags: [
                CommandLineFlag(
                    "endpoint", value: "url",
                    help: "The socket to serve: unix:///path or /path (default: \(DriverConfiguration.defaultEndpoint(kubeletDir: "<kubelet-dir>", driverName: "<driver-name>")))."),
                CommandLineFlag(
                    "driver-name", value: "name", default: defaults.driverName, help: "The CSI driver name."),
                CommandLineFlag("node-id", value: "id", help: "This node's id (default: the host name)."),
                CommandLineFlag("volume-group", value: "name", help: "The volume group new volumes go to."),
                CommandLineFlag(
                    "vg-pattern", value: "regex",
                    help: "A regular expression; new volumes go to the matching volume group with the most free space."),
                CommandLineFlag("thin-pool", value: "name", help: "The default thin pool for new volumes (LVM backend)."),
                CommandLineFlag(
                    "lvm-scan-device", value: "device", repeats: true,
                    help: "A block device LVM may scan (repeat for each physical volume); by default LVM scans every device."),
                CommandLineFlag(
                    "overprovision-ratio", value: "ratio", kind: .number, default: "\(defaults.overprovisionRatio)",
                    help: "A thin pool promises at most its size times this ratio, all its thin volumes and snapshots together."),
                CommandLineFlag(
                    "topology-key", value: "key",
                    help: "The topology key whose value is the node id (default: \(DriverConfiguration.defaultTopologyKey(driverName: "<driver-name>")))."),
                CommandLineFlag(
                    "max-volumes-per-node", value: "count", kind: .integer, default: "\(defaults.maxVolumesPerNode)",
                    help: "The most volumes this node takes; 0 means no limit."),
                CommandLineFlag("mode", value: "mode", default: defaults.mode, help: "Which services to serve: all, node or controller."),
                CommandLineFlag(
                    "kubelet-dir", value: "path", default: defaults.kubeletDir,
                    help: "The kubelet root directory; staging and target paths must lie under it."),
                CommandLineFlag("backend", value: "backend", default: defaults.backend, help: "Where volumes live: lvm or loopfile."),
                CommandLineFlag(
                    "loopfile-dir", value: "path",
                    help: "The directory of the loop-file backend (default: \(DriverConfiguration.defaultLoopfileDir(driverName: "<driver-name>")))."),
                CommandLineFlag(
                    "state-dir", value: "path",
                    help: "A directory that outlives the driver's container, where what a group snapshot holds still is recorded while it is cut, so that a restart releases it (default: \(DriverConfiguration.defaultStateDir(driverName: "<driver-name>"))); not the socket's directory, where the spec allows no other file."),
                CommandLineFlag("socket-mode", value: "octal", default: defaults.socketMode, help: "Permission bits of the socket, in octal."),
                CommandLineFlag(
                    "luks-pbkdf-memory", value: "KiB", kind: .integer, default: "\(defaults.luksPBKDFMemoryKiB)",
                    help: "Memory the key derivation of an encrypted volume (argon2id) may use, in KiB."),
                CommandLineFlag(
                    "luks-iter-time", value: "ms", kind: .integer, default: "\(defaults.luksIterationTimeMilliseconds)",
                    help: "How long opening an encrypted volume's key takes on this node, in milliseconds (set when it is formatted)."),
                CommandLineFlag(
                    "cgroup-root", value: "path",
                    help: "The cgroup v2 hierarchy where pods' IO limits are written (default: the cgroup2 mount of the driver's mount table)."),
                CommandLineFlag(
                    "shutdown-grace", value: "seconds", kind: .number, default: "\(defaults.shutdownGraceSeconds)",
                    help: "Seconds in-flight calls may take to finish after SIGTERM."),
                CommandLineFlag(
                    "log-level", short: "v", value: "level", default: defaults.logLevel,
                    help: "Log verbosity: trace, debug, info, notice, warning, error, critical, or 0…5."),
                CommandLineFlag(
                    "logging-format", value: "format", kind: .choice(["text", "json"]), default: "text",
                    help: "Log format: text or json (one object a line: ts, msg, v or level, key/values)."),
                CommandLineFlag(
                    "metrics-address", value: "address",
                    help: "TCP address to serve Prometheus metrics at /metrics, for example :9810 (default: none)."),
            ])
    ])

/// Parses the command line, validates it into a configuration and runs the driver.
/// Exit status: 0 after SIGTERM/SIGINT or for help and version, 64 for a usage error, 1 when
/// the driver cannot start or fails.
func runDriver() async -> Int32 {
    var status: Int32 = 0
    guard let parsed = program.parseOrReport(exitStatus: &status) else { return status }
    // Two malloc arenas: every arena keeps its own free memory resident.
    ProcessMemory.limitArenas()
    var raw = DriverConfiguration.Raw()
    raw.endpoint = parsed.string("endpoint")
    raw.driverName = parsed.string("driver-name")!
    raw.nodeID = parsed.string("node-id")
    raw.volumeGroup = parsed.string("volume-group")
    raw.vgPattern = parsed.string("vg-pattern")
    raw.thinPool = parsed.string("thin-pool")
    raw.lvmScanDevices = parsed.strings("lvm-scan-device")
    raw.overprovisionRatio = parsed.double("overprovision-ratio")!
    raw.topologyKey = parsed.string("topology-key")
    raw.maxVolumesPerNode = parsed.int64("max-volumes-per-node")!
    raw.mode = parsed.string("mode")!
    raw.kubeletDir = parsed.string("kubelet-dir")!
    raw.logLevel = parsed.string("log-level")!
    raw.backend = parsed.string("backend")!
    raw.loopfileDir = parsed.string("loopfile-dir")
    raw.stateDir = parsed.string("state-dir")
    raw.socketMode = parsed.string("socket-mode")!
    raw.shutdownGraceSeconds = parsed.double("shutdown-grace")!
    raw.luksPBKDFMemoryKiB = parsed.int64("luks-pbkdf-memory")!
    raw.luksIterationTimeMilliseconds = parsed.int64("luks-iter-time")!
    raw.cgroupRoot = parsed.string("cgroup-root")
    raw.hostName = hostName()

    let config: DriverConfiguration
    do throws(ConfigurationError) { config = try DriverConfiguration(raw: raw) } catch {
        writeStandardError(program.usageError(error.description))
        return CommandLineError.exitStatus
    }
    let text = StandardErrorLogSink.Style.timestamped(label: "csi-lvm-driver")
    let style = StandardErrorLogSink.Style.forFormat(parsed.string("logging-format")!, text: text)!
    let logger = Logger(sink: StandardErrorLogSink(style: style), level: config.logLevel)
    var process = DriverProcess(configuration: config, logger: logger)
    var metricsServer: MetricsServer?
    if let address = parsed.string("metrics-address"), !address.isEmpty {
        let metrics = DriverMetrics(driverName: config.driverName, version: DriverConfiguration.version)
        do {
            metricsServer = try MetricsServer(address: address, refresh: { await metrics.refresh() }) {
                metrics.registry.exposition()
            }
        } catch {
            logger.error("csi-lvm-driver: --metrics-address: \(error)")
            return 1
        }
        process.onCallFinished = { method, code, duration in metrics.record(method: method, code: code, duration: duration) }
        process.onBackendReady = { backend in metrics.use(backend) }
        logger.info("metrics served at http://\(address)/metrics (port \(metricsServer!.port))")
    }
    defer { metricsServer?.stop() }
    do {
        try await process.run()
        return 0
    } catch {
        logger.error("csi-lvm-driver: \(error)")
        return 1
    }
}

/// This machine's host name, or "" when it cannot be read.
func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count) == 0 else { return "" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

// The driver runs on event loops and its blocking pool: the main thread only waits.
runMainOnSharedLoop { await runDriver() }
