// node-driver-registrar: flags → RegistrarConfiguration → Registrar → run until SIGTERM/SIGINT.
// A drop-in for kubernetes-csi's registrar: the same flags (Go style: -flag, --flag, =value or a separate
// value), plus --kubelet-registry-link-dir, --registration-ack-timeout and the `inspect` subcommand.
import ArgumentParser
import Driver
import Logging

#if canImport(Glibc)
import Glibc
#endif

@main
struct NodeDriverRegistrar: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node-driver-registrar",
        abstract: "Registers a CSI driver with the kubelet through the plugin registration socket.",
        discussion: """
            Waits for the driver socket (--csi-address), asks the driver its name, serves \
            pluginregistration.Registration on <plugin-registration-path>/<driver-name>-reg.sock and keeps the \
            registration alive until SIGTERM or SIGINT, which remove the socket (and the link) so the kubelet \
            deregisters the driver.
            """,
        version: RegistrarConfiguration.version,
        subcommands: [Serve.self, Inspect.self],
        defaultSubcommand: Serve.self
    )

    /// Rewrites Go-style single-dash long flags (`-csi-address=x`, `-v=5`) to the double-dash form.
    static func normalizedArguments(_ arguments: [String]) -> [String] {
        let long: Set<String> = [
            "csi-address", "kubelet-registration-path", "plugin-registration-path", "timeout", "http-endpoint",
            "health-port", "mode", "connection-timeout", "v", "version", "kubelet-registry-link-dir",
            "registration-ack-timeout", "registry-dir", "output", "help",
        ]
        return arguments.map { argument in
            guard argument.hasPrefix("-"), !argument.hasPrefix("--"), argument.count > 2 else { return argument }
            let name = argument.dropFirst().split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
            return long.contains(name) ? "-" + argument : argument
        }
    }

    static func main() async {
        // Two malloc arenas: every arena keeps its own free memory resident.
        limitMallocArenas()
        let arguments = normalizedArguments(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// Maps klog-style verbosity (`-v`) to a log level: 0–2 info, 3–4 debug, 5 and more trace.
func logLevel(verbosity: Int) -> Logger.Level {
    switch verbosity {
    case ..<3: .info
    case 3, 4: .debug
    default: .trace
    }
}

/// Sends the registrar's records to swift-log.
struct SwiftLogSink: DriverLogSink {
    let logger: Logger
    func write(level: DriverLogLevel, message: String, fields: [(String, String)]) {
        let swiftLevel: Logger.Level =
            switch level {
            case .trace: .trace
            case .debug: .debug
            case .info: .info
            case .notice: .notice
            case .warning: .warning
            case .error: .error
            case .critical: .critical
            }
        var metadata: Logger.Metadata = [:]
        for (key, value) in fields { metadata[key] = .string(value) }
        logger.log(level: swiftLevel, "\(message)", metadata: metadata.isEmpty ? nil : metadata)
    }
}

/// A stderr log handler with a timestamp and the level, one line per record (what journald shows).
struct LineLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var tm = tm()
        var seconds = ts.tv_sec
        gmtime_r(&seconds, &tm)
        let milliseconds = String(String(ts.tv_nsec / 1_000_000 + 1000).dropFirst())
        let stamp = "\(format2(Int(tm.tm_hour))):\(format2(Int(tm.tm_min))):\(format2(Int(tm.tm_sec))).\(milliseconds)"
        let letter: String =
            switch event.level {
            case .trace, .debug: "D"
            case .info, .notice: "I"
            case .warning: "W"
            case .error, .critical: "E"
            }
        var line = "\(letter) \(stamp) \(event.message)"
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        if !merged.isEmpty {
            line += " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        line += "\n"
        var bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            offset += n
        }
        _ = bytes.count
    }
    private func format2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

    @available(*, deprecated)
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {}
}

func makeLogger(verbosity: Int) -> DriverLogger {
    let level = logLevel(verbosity: verbosity)
    let logger = Logger(label: "node-driver-registrar") { _ in LineLogHandler(logLevel: level) }
    let driverLevel: DriverLogLevel =
        switch level {
        case .trace: .trace
        case .debug: .debug
        default: .info
        }
    return DriverLogger(sink: SwiftLogSink(logger: logger), level: driverLevel)
}

/// The registrar proper: the default subcommand, so upstream's command lines work unchanged.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Register the driver and keep the registration alive (the default).")

    @Option(help: "Path or unix:// URL of the CSI driver socket, as the registrar dials it.")
    var csiAddress: String = "/run/csi/socket"

    @Option(help: "Path of the CSI driver socket as the kubelet dials it (required); announced by GetInfo.")
    var kubeletRegistrationPath: String?

    @Option(help: "Directory of the kubelet plugin registry, where <driver-name>-reg.sock is created.")
    var pluginRegistrationPath: String = "/registration"

    @Option(help: "Limit for each call to the driver (Go duration: 1s, 500ms).")
    var timeout: String = "1s"

    @Option(help: "TCP address of the HTTP server for /healthz, for example :9809 or 127.0.0.1:9809.")
    var httpEndpoint: String?

    @Option(help: "Deprecated: TCP port of /healthz on all interfaces; use --http-endpoint. 0 disables.")
    var healthPort: Int?

    @Option(help: "Deprecated. 'kubelet-registration-probe' exits 0 at once; 'registration' is the default behaviour.")
    var mode: String?

    @Option(help: "Deprecated. Given explicitly, give up (exit 1) when the driver has not answered within this time; by default the registrar waits.")
    var connectionTimeout: String?

    @Option(help: "Place a link <dir>/<driver-name>-reg.sock to the registration socket (for custom directories); removed on exit.")
    var kubeletRegistryLinkDir: String?

    @Option(help: "Recreate the registration socket when the kubelet has not acknowledged it within this time.")
    var registrationAckTimeout: String = "30s"

    @Option(name: [.customShort("v"), .customLong("v")], help: "Log verbosity (klog style): 0-2 info, 3-4 debug, 5 trace.")
    var verbosity: Int = 0

    func run() async throws {
        let logger = makeLogger(verbosity: verbosity)
        if let mode {
            switch mode {
            case "kubelet-registration-probe":
                logger.info("--mode=kubelet-registration-probe is deprecated and does nothing; exiting 0")
                return
            case "registration":
                logger.warning("--mode is deprecated; registration is the only mode")
            default:
                throw ValidationError("--mode \(mode) is not supported; expected registration or kubelet-registration-probe (both deprecated)")
            }
        }
        var raw = RegistrarConfiguration.Raw()
        raw.csiAddress = csiAddress
        raw.kubeletRegistrationPath = kubeletRegistrationPath
        raw.pluginRegistrationPath = pluginRegistrationPath
        raw.timeout = timeout
        raw.httpEndpoint = httpEndpoint
        raw.healthPort = healthPort
        raw.connectionTimeout = connectionTimeout
        raw.kubeletRegistryLinkDir = kubeletRegistryLinkDir
        raw.registrationAckTimeout = registrationAckTimeout
        let configuration: RegistrarConfiguration
        do {
            configuration = try RegistrarConfiguration(validating: raw)
        } catch {
            logger.error("\(error)")
            throw ExitCode(2)
        }
        logger.info(
            "node-driver-registrar \(RegistrarConfiguration.version) starting",
            [("csi-address", configuration.driverSocket),
             ("kubelet-registration-path", configuration.kubeletRegistrationPath),
             ("plugin-registration-path", configuration.registrationDirectory)])
        let registrar = Registrar(configuration: configuration, logger: logger)
        do {
            try await registrar.runUntilSignal()
        } catch {
            logger.error("\(error)")
            throw ExitCode.failure
        }
    }
}

/// `inspect`: what the kubelet sees in its plugin registry, and what it will record for each driver.
struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show every registration socket, what it answers, and what the kubelet will record.",
        discussion: """
            Lists the registry directory (links resolved; dangling links and non-sockets flagged), calls GetInfo \
            on each socket, dials the announced endpoint as the kubelet does (GetPluginInfo, Probe, NodeGetInfo) \
            and prints the CSINode spec.drivers[] entry and the csi.volume.kubernetes.io/nodeid annotation the \
            kubelet will write, or the exact reason it will not. Exit status 0 when every entry registers, \
            1 otherwise.
            """)

    enum Output: String, ExpressibleByArgument, CaseIterable { case text, json }

    @Option(help: "The kubelet's plugin registry directory.")
    var registryDir: String = "/var/lib/kubelet/plugins_registry"

    @Option(help: "Output format: text or json.")
    var output: Output = .text

    @Option(help: "Limit for each call (Go duration).")
    var timeout: String = "1s"

    func run() async throws {
        let limit: Duration
        do { limit = try RegistrarConfiguration.duration(timeout, flag: "--timeout") } catch {
            throw ValidationError(error.message)
        }
        let report: Inspector.Report
        do {
            report = try await Inspector(registryDirectory: registryDir, timeout: limit).inspect()
        } catch {
            var line = Array("error: \(error)\n".utf8)
            _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
            throw ExitCode(2)
        }
        print(output == .json ? report.json : report.text, terminator: output == .json ? "\n" : "")
        if !report.allRegister { throw ExitCode.failure }
    }
}
