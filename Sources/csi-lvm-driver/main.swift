// csi-lvm-driver: flags → DriverConfiguration → wired parts → run until SIGTERM/SIGINT.
import ArgumentParser
import Driver
import Logging

#if canImport(Glibc)
    import Glibc
#endif

@main
struct CSILVMDriver: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csi-lvm-driver",
        abstract: "A CSI driver for LVM local volumes, served on a Unix socket.",
        version: DriverConfiguration.version
    )

    @Option(help: "The socket to serve: unix:///path or /path (default: unix://<kubelet-dir>/plugins/<driver-name>/csi.sock).")
    var endpoint: String?

    @Option(help: "The CSI driver name.")
    var driverName: String = DriverConfiguration.defaultDriverName

    @Option(help: "This node's id (default: the host name).")
    var nodeID: String?

    @Option(help: "The volume group new volumes go to.")
    var volumeGroup: String?

    @Option(help: "A regular expression; new volumes go to the matching volume group with the most free space.")
    var vgPattern: String?

    @Option(help: "The default thin pool for new volumes (LVM backend).")
    var thinPool: String?

    @Option(help: "A block device LVM may scan (repeat for each physical volume); by default LVM scans every device.")
    var lvmScanDevice: [String] = []

    @Option(help: "GetCapacity of a thin pool reports its free space times this ratio.")
    var overprovisionRatio: Double = 1.0

    @Option(help: "The topology key whose value is the node id (default: topology.<driver-name>/node).")
    var topologyKey: String?

    @Option(help: "The most volumes this node takes; 0 means no limit.")
    var maxVolumesPerNode: Int64 = 0

    @Option(help: "Which services to serve: all, node or controller.")
    var mode: String = "all"

    @Option(help: "The kubelet root directory; staging and target paths must lie under it.")
    var kubeletDir: String = DriverConfiguration.defaultKubeletDir

    @Option(help: "Where volumes live: lvm or loopfile.")
    var backend: String = "lvm"

    @Option(help: "The directory of the loop-file backend (default: /var/lib/<driver-name>/loopfile).")
    var loopfileDir: String?

    @Option(help: "Permission bits of the socket, in octal.")
    var socketMode: String = "0660"

    @Option(help: "Seconds in-flight calls may take to finish after SIGTERM.")
    var shutdownGrace: Double = 10

    @Option(
        name: [.customShort("v"), .customLong("log-level")],
        help: "Log verbosity: trace, debug, info, notice, warning, error, critical, or 0…5.")
    var logLevel: String = "info"

    func run() async throws {
        // Two malloc arenas: every arena keeps its own free memory resident.
        limitMallocArenas()
        var raw = DriverConfiguration.Raw()
        raw.endpoint = endpoint
        raw.driverName = driverName
        raw.nodeID = nodeID
        raw.volumeGroup = volumeGroup
        raw.vgPattern = vgPattern
        raw.thinPool = thinPool
        raw.lvmScanDevices = lvmScanDevice
        raw.overprovisionRatio = overprovisionRatio
        raw.topologyKey = topologyKey
        raw.maxVolumesPerNode = maxVolumesPerNode
        raw.mode = mode
        raw.kubeletDir = kubeletDir
        raw.logLevel = logLevel
        raw.backend = backend
        raw.loopfileDir = loopfileDir
        raw.socketMode = socketMode
        raw.shutdownGraceSeconds = shutdownGrace
        raw.hostName = Self.hostName()

        let config: DriverConfiguration
        do { config = try DriverConfiguration(raw: raw) } catch {
            throw ValidationError(error.description)
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .trace
            return handler
        }
        let logger = DriverLogger(sink: SwiftLogSink(logger: Logger(label: "csi-lvm-driver")), level: config.logLevel)
        do {
            try await DriverProcess(configuration: config, logger: logger).run()
        } catch {
            logger.error("csi-lvm-driver: \(error)")
            throw ExitCode.failure
        }
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Hands the driver's records to swift-log.
struct SwiftLogSink: DriverLogSink {
    let logger: Logger

    func write(level: DriverLogLevel, message: String, fields: [(String, String)]) {
        var metadata: Logger.Metadata = [:]
        for (key, value) in fields { metadata[key] = .string(value) }
        logger.log(level: Self.map(level), "\(message)", metadata: metadata.isEmpty ? nil : metadata)
    }

    static func map(_ level: DriverLogLevel) -> Logger.Level {
        switch level {
        case .trace: .trace
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
    }
}
