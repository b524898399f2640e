// hostpath-driver: a CSI driver whose volumes are directories under one root directory, built
// from CSIDriverKit's servers. It serves Identity, Controller and Node on one Unix socket until
// SIGTERM or SIGINT.
//
//   hostpath-driver --endpoint /var/lib/kubelet/plugins/hostpath.csi.example.com/csi.sock \
//       --root /var/lib/hostpath-volumes --node-id "$(hostname)"
import CSIDriverKit
import Platform
import Storage

#if canImport(Glibc)
    import Glibc
#endif

/// The driver's name, as the kubelet and StorageClasses know it.
let driverName = "hostpath.csi.example.com"

/// The command line: `--flag value` pairs, each with a default.
struct Arguments {
    var endpoint = "/var/lib/kubelet/plugins/\(driverName)/csi.sock"
    var root = "/var/lib/hostpath-volumes"
    var nodeID = "node-1"
    var kubeletDir = "/var/lib/kubelet"

    /// Parses `arguments` (without the program name).
    /// - Throws: `DriverStartError` naming an unknown flag or one without a value.
    init(_ arguments: [String]) throws(DriverStartError) {
        var rest = arguments[...]
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { throw DriverStartError(message: "\(flag) needs a value") }
            switch flag {
            case "--endpoint": endpoint = value.hasPrefix("unix://") ? String(value.dropFirst(7)) : value
            case "--root": root = value
            case "--node-id": nodeID = value
            case "--kubelet-dir": kubeletDir = value
            default: throw DriverStartError(message: "unknown flag \(flag); expected --endpoint, --root, --node-id or --kubelet-dir")
            }
        }
    }
}

/// Wires the backend into the three servers and serves them until SIGTERM or SIGINT.
func runDriver(_ arguments: Arguments, logger: Logger) async throws {
    let backend = try HostPathBackend(root: arguments.root)

    // What the servers report: GetPluginInfo's name and version, NodeGetInfo's node id and
    // topology (every volume is reachable from this node only).
    var options = DriverOptions(name: driverName, version: "0.1.0", nodeID: arguments.nodeID)
    options.topology = ["topology.\(driverName)/node": arguments.nodeID]
    options.manifest = ["backend": "hostpath"]
    // The backend takes no snapshots: the controller does not advertise them.
    options.snapshots = false

    // Staging and target paths must lie inside the kubelet directory, symbolic links included.
    let paths = try KubeletPathPolicy(kubeletDirectory: arguments.kubeletDir)
    // One lock table for the controller and node: calls on one volume never overlap.
    let locks = VolumeLocks()

    var endpoint = CSIEndpoint(socketPath: arguments.endpoint, logger: logger)
    endpoint.shutdownGrace = .seconds(5)
    try await endpoint.run([
        IdentityServer(options: options, backend: backend, logger: logger),
        ControllerServer(options: options, backend: backend, locks: locks, logger: logger),
        // The real mounter (LinuxMounter) is the default: mount(2) and friends, off the event loop.
        NodeServer(options: options, backend: backend, paths: paths, locks: locks, logger: logger),
    ]) {
        logger.info("\(driverName) serving", [("endpoint", arguments.endpoint), ("root", arguments.root)])
    }
}

let logger = Logger(sink: StandardErrorLogSink(style: .timestamped(label: "hostpath-driver")), level: .info)
do {
    try await runDriver(try Arguments(Array(CommandLine.arguments.dropFirst())), logger: logger)
} catch {
    logger.error("hostpath-driver: \(error)")
    exit(1)
}
