// node-driver-registrar: flags → RegistrarConfiguration → Registrar → run until SIGTERM/SIGINT.
// A drop-in for kubernetes-csi's registrar: the same flags (Go style: -flag, --flag, =value or a separate
// value), plus --kubelet-registry-link-dir, --registration-ack-timeout and the `inspect` subcommand.
import Flags
import H2
import RPCCore
import Platform
import Registrar

#if canImport(Glibc)
    import Glibc
#endif

/// The defaults of the flags: what the configuration takes when a flag is absent.
let defaults = RegistrarConfiguration.Raw()

/// The registrar's commands, flags and help.
let program = CommandLineProgram(
    name: "node-driver-registrar",
    version: RegistrarConfiguration.version,
    abstract: "Registers a CSI driver with the kubelet through the plugin registration socket.",
    discussion: """
        Waits for the driver socket (--csi-address), asks the driver its name, serves \
        pluginregistration.Registration on <plugin-registration-path>/<driver-name>-reg.sock and keeps the \
        registration alive until SIGTERM or SIGINT, which remove the socket (and the link) so the kubelet \
        deregisters the driver.
        """,
    commands: [
        CommandLineCommand(
            name: "serve",
            abstract: "Register the driver and keep the registration alive (the default).",
            flags: [
                CommandLineFlag(
                    "csi-address", value: "path", default: defaults.csiAddress,
                    help: "Path or unix:// URL of the CSI driver socket, as the registrar dials it."),
                CommandLineFlag(
                    "kubelet-registration-path", value: "path",
                    help: "Path of the CSI driver socket as the kubelet dials it (required); announced by GetInfo."),
                CommandLineFlag(
                    "plugin-registration-path", value: "dir", default: defaults.pluginRegistrationPath,
                    help: "Directory of the kubelet plugin registry, where <driver-name>-reg.sock is created."),
                CommandLineFlag(
                    "timeout", value: "duration", default: defaults.timeout, help: "Limit for each call to the driver (Go duration: 1s, 500ms)."),
                CommandLineFlag(
                    "http-endpoint", value: "address",
                    help: "TCP address of the HTTP server for /healthz and /metrics, for example :9809 or 127.0.0.1:9809."),
                CommandLineFlag(
                    "health-port", value: "port", kind: .integer,
                    help: "Deprecated: TCP port of /healthz on all interfaces; use --http-endpoint. 0 disables."),
                CommandLineFlag(
                    "mode", value: "mode",
                    help: "Deprecated. 'kubelet-registration-probe' exits 0 at once; 'registration' is the default behaviour."),
                CommandLineFlag(
                    "connection-timeout", value: "duration",
                    help: "Deprecated. Given explicitly, give up (exit 1) when the driver has not answered within this time; by default the registrar waits."),
                CommandLineFlag(
                    "kubelet-registry-link-dir", value: "dir",
                    help: "Place a link <dir>/<driver-name>-reg.sock to the registration socket (for custom directories); removed on exit."),
                CommandLineFlag(
                    "registration-ack-timeout", value: "duration", default: defaults.registrationAckTimeout,
                    help: "Recreate the registration socket when the kubelet has not acknowledged it within this time."),
                CommandLineFlag(
                    "v", short: "v", value: "level", kind: .integer, default: "0",
                    help: "Log verbosity (klog style): 0-2 info, 3-4 debug, 5 trace."),
                CommandLineFlag(
                    "logging-format", value: "format", kind: .choice(["text", "json"]), default: "text",
                    help: "Log format: text (klog style) or json (one object a line: ts, msg, v or level, key/values)."),
            ]),
        CommandLineCommand(
            name: "inspect",
            abstract: "Show every registration socket, what it answers, and what the kubelet will record.",
            discussion: """
                Lists the registry directory (links resolved; dangling links and non-sockets flagged), calls GetInfo \
                on each socket, dials the announced endpoint as the kubelet does (GetPluginInfo, Probe, NodeGetInfo) \
                and prints the CSINode spec.drivers[] entry and the csi.volume.kubernetes.io/nodeid annotation the \
                kubelet will write, or the exact reason it will not. Exit status 0 when every entry registers, \
                1 otherwise.
                """,
            flags: [
                CommandLineFlag(
                    "registry-dir", value: "dir", default: "/var/lib/kubelet/plugins_registry",
                    help: "The kubelet's plugin registry directory."),
                CommandLineFlag("output", value: "format", kind: .choice(["text", "json"]), default: "text", help: "Output format."),
                CommandLineFlag("timeout", value: "duration", default: defaults.timeout, help: "Limit for each call (Go duration)."),
            ]),
    ],
    singleDashLongFlags: true)

/// Maps klog-style verbosity (`-v`) to a level: 0–2 info, 3–4 debug, 5 and more trace.
func logLevel(verbosity: Int) -> LogLevel {
    switch verbosity {
    case ..<3: .info
    case 3, 4: .debug
    default: .trace
    }
}

/// The registrar proper: the default command, so upstream's command lines work unchanged.
/// Exit status: 0 after SIGTERM/SIGINT, 2 for a configuration upstream rejects, 64 for a usage
/// error, 1 when the driver never answers within an explicit --connection-timeout or serving fails.
func serve(_ flags: ParsedCommandLine) async -> Int32 {
    let style = StandardErrorLogSink.Style.forFormat(flags.string("logging-format")!, text: .klog)!
    let logger = Logger(sink: StandardErrorLogSink(style: style), level: logLevel(verbosity: flags.int("v")!))
    if let mode = flags.string("mode") {
        switch mode {
        case "kubelet-registration-probe":
            logger.info("--mode=kubelet-registration-probe is deprecated and does nothing; exiting 0")
            return 0
        case "registration":
            logger.warning("--mode is deprecated; registration is the only mode")
        default:
            writeStandardError(
                program.usageError(
                    "--mode \(mode) is not supported; expected registration or kubelet-registration-probe (both deprecated)",
                    command: "serve"))
            return CommandLineError.exitStatus
        }
    }
    var raw = RegistrarConfiguration.Raw()
    raw.csiAddress = flags.string("csi-address")!
    raw.kubeletRegistrationPath = flags.string("kubelet-registration-path")
    raw.pluginRegistrationPath = flags.string("plugin-registration-path")!
    raw.timeout = flags.string("timeout")!
    raw.httpEndpoint = flags.string("http-endpoint")
    raw.healthPort = flags.int("health-port")
    raw.connectionTimeout = flags.string("connection-timeout")
    raw.kubeletRegistryLinkDir = flags.string("kubelet-registry-link-dir")
    raw.registrationAckTimeout = flags.string("registration-ack-timeout")!
    let configuration: RegistrarConfiguration
    do {
        configuration = try RegistrarConfiguration(validating: raw)
    } catch {
        logger.error("\(error)")
        return 2
    }
    logger.info(
        "node-driver-registrar \(RegistrarConfiguration.version) starting",
        [
            ("csi-address", configuration.driverSocket),
            ("kubelet-registration-path", configuration.kubeletRegistrationPath),
            ("plugin-registration-path", configuration.registrationDirectory),
        ])
    // Metrics are kept only where they can be read: on the HTTP endpoint.
    let metrics = configuration.healthEndpoint == nil ? nil : RegistrarMetrics(version: RegistrarConfiguration.version)
    var exposition: (@Sendable () -> String)?
    if let metrics { exposition = { metrics.exposition() } }
    let registrar = Registrar(configuration: configuration, logger: logger, observer: metrics, metricsExposition: exposition)
    do {
        try await registrar.runUntilSignal()
        return 0
    } catch {
        logger.error("\(error)")
        return 1
    }
}

/// `inspect`: what the kubelet sees in its plugin registry, and what it will record for each driver.
/// Exit status: 0 when every entry registers, 1 when one does not, 2 when the directory cannot be read.
func inspect(_ flags: ParsedCommandLine) async -> Int32 {
    let limit: Duration
    do throws(RegistrarError) {
        limit = try RegistrarConfiguration.duration(flags.string("timeout")!, flag: "--timeout")
    } catch {
        writeStandardError(program.usageError(error.message, command: "inspect"))
        return CommandLineError.exitStatus
    }
    let report: Inspector.Report
    do {
        report = try await Inspector(registryDirectory: flags.string("registry-dir")!, timeout: limit).inspect()
    } catch {
        writeStandardError("error: \(error)\n")
        return 2
    }
    let json = flags.string("output") == "json"
    print(json ? report.json : report.text, terminator: json ? "\n" : "")
    return report.allRegister ? 0 : 1
}

/// Parses the command line and runs the chosen command on the shared event loop, where the
/// registrar's calls and /healthz run anyway; exits with the command's status.
func runRegistrar() -> Never {
    var status: Int32 = 0
    guard let parsed = program.parseOrReport(exitStatus: &status) else { exit(status) }
    // Two malloc arenas: every arena keeps its own free memory resident.
    ProcessMemory.limitArenas()
    runMainOnSharedLoop { parsed.command == "inspect" ? await inspect(parsed) : await serve(parsed) }
}

runRegistrar()
