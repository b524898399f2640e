/// The registrar's validated settings: what the command line says, checked once at start.
public struct RegistrarConfiguration: Sendable, Hashable {
    /// The registrar's version, printed by `--version`.
    public static let version = "2.17.0-swift-csi.0.1.0"
    /// The plugin type the registrar announces to the kubelet.
    public static let pluginType = "CSIPlugin"
    /// The CSI versions the registrar announces to the kubelet.
    public static let supportedVersions = ["1.0.0"]

    /// The driver's socket as the registrar dials it (`--csi-address`, `unix://` removed).
    public var driverSocket: String
    /// The driver's socket as the kubelet must dial it (`--kubelet-registration-path`), announced by GetInfo.
    public var kubeletRegistrationPath: String
    /// The directory the registration socket is created in (`--plugin-registration-path`).
    public var registrationDirectory: String
    /// The limit for each call to the driver (`--timeout`).
    public var callTimeout: Duration
    /// Where `/healthz` is served (`--http-endpoint`, or `:<port>` from `--health-port`); nil: not served.
    public var healthEndpoint: String?
    /// Give up waiting for the driver after this long (`--connection-timeout` given explicitly); nil: wait.
    public var connectionTimeout: Duration?
    /// Where to place a link to the registration socket (`--kubelet-registry-link-dir`); nil: no link.
    public var registryLinkDirectory: String?
    /// How long the kubelet may take to call NotifyRegistrationStatus before the socket is recreated.
    public var registrationAckTimeout: Duration

    /// The command line's values before validation, as strings where the flags take text.
    public struct Raw: Sendable {
        public var csiAddress: String = "/run/csi/socket"
        public var kubeletRegistrationPath: String?
        public var pluginRegistrationPath: String = "/registration"
        public var timeout: String = "1s"
        public var httpEndpoint: String?
        public var healthPort: Int?
        public var connectionTimeout: String?
        public var kubeletRegistryLinkDir: String?
        public var registrationAckTimeout: String = "30s"
        /// Creates the defaults of upstream's flags.
        public init() {}
    }

    /// Creates a configuration from explicit values (tests and embedding).
    public init(
        driverSocket: String, kubeletRegistrationPath: String, registrationDirectory: String,
        callTimeout: Duration, healthEndpoint: String? = nil, connectionTimeout: Duration? = nil,
        registryLinkDirectory: String? = nil, registrationAckTimeout: Duration
    ) {
        self.driverSocket = driverSocket
        self.kubeletRegistrationPath = kubeletRegistrationPath
        self.registrationDirectory = registrationDirectory
        self.callTimeout = callTimeout
        self.healthEndpoint = healthEndpoint
        self.connectionTimeout = connectionTimeout
        self.registryLinkDirectory = registryLinkDirectory
        self.registrationAckTimeout = registrationAckTimeout
    }

    /// Validates the command line; each error names its flag, the value found and what was expected.
    public init(validating raw: Raw) throws(RegistrarError) {
        func invalid(_ message: String) -> RegistrarError { RegistrarError(code: .invalidConfiguration, message: message) }

        let socket = PathInspection.socketPath(fromAddress: raw.csiAddress)
        guard !socket.isEmpty else { throw invalid("--csi-address is empty; expected the driver socket, for example unix:///csi/csi.sock") }
        _ = try PathInspection.unixAddress(PathInspection.absolute(socket))

        guard let registrationPath = raw.kubeletRegistrationPath, !registrationPath.isEmpty else {
            throw invalid(
                "--kubelet-registration-path is required: the path of the driver socket as the kubelet dials it, for example /var/lib/kubelet/plugins/<driver-name>/csi.sock")
        }
        let registrationSocket = PathInspection.socketPath(fromAddress: registrationPath)
        guard registrationSocket.hasPrefix("/") else {
            throw invalid("--kubelet-registration-path \(registrationPath) is not absolute; the kubelet dials it from its own working directory")
        }

        guard !raw.pluginRegistrationPath.isEmpty else {
            throw invalid("--plugin-registration-path is empty; expected the kubelet's plugins_registry directory (default \(Raw().pluginRegistrationPath))")
        }
        let registrationDirectory = PathInspection.absolute(raw.pluginRegistrationPath)

        let timeout = try Self.duration(raw.timeout, flag: "--timeout")
        guard timeout > .zero else { throw invalid("--timeout \(raw.timeout) must be more than zero") }

        var health: String?
        switch (raw.httpEndpoint, raw.healthPort) {
        case (let endpoint?, let port?) where !endpoint.isEmpty && port > 0:
            throw invalid("--http-endpoint \(endpoint) and --health-port \(port) were both given; use only --http-endpoint (--health-port is deprecated)")
        case (let endpoint?, _) where !endpoint.isEmpty:
            _ = try HealthServer.split(endpoint)
            health = endpoint
        case (_, let port?) where port > 0:
            guard port <= 65535 else { throw invalid("--health-port \(port) is not a TCP port (1...65535)") }
            health = ":\(port)"
        case (_, let port?) where port < 0:
            throw invalid("--health-port \(port) is not a TCP port (1...65535, or 0 to disable)")
        default:
            health = nil
        }

        var connectionTimeout: Duration?
        if let text = raw.connectionTimeout {
            let value = try Self.duration(text, flag: "--connection-timeout")
            guard value > .zero else { throw invalid("--connection-timeout \(text) must be more than zero") }
            connectionTimeout = value
        }

        var linkDirectory: String?
        if let directory = raw.kubeletRegistryLinkDir {
            guard !directory.isEmpty else { throw invalid("--kubelet-registry-link-dir is empty; expected the kubelet's plugins_registry directory") }
            let absolute = PathInspection.absolute(directory)
            if Self.normalized(absolute) == Self.normalized(registrationDirectory) {
                throw invalid(
                    "--kubelet-registry-link-dir \(directory) is the registration directory itself (--plugin-registration-path \(raw.pluginRegistrationPath)); the link belongs in the kubelet's plugins_registry when the socket lives elsewhere")
            }
            linkDirectory = absolute
        }

        let ack = try Self.duration(raw.registrationAckTimeout, flag: "--registration-ack-timeout")
        guard ack > .zero else { throw invalid("--registration-ack-timeout \(raw.registrationAckTimeout) must be more than zero") }

        self.init(
            driverSocket: PathInspection.absolute(socket), kubeletRegistrationPath: registrationSocket,
            registrationDirectory: registrationDirectory, callTimeout: timeout, healthEndpoint: health,
            connectionTimeout: connectionTimeout, registryLinkDirectory: linkDirectory, registrationAckTimeout: ack)
    }

    /// `--timeout`'s default (``Raw/timeout``) as a duration: the limit for each call.
    public static var defaultCallTimeout: Duration { parseGoDuration(Raw().timeout)! }

    /// The registration socket for `driverName`: `<registration directory>/<driverName>-reg.sock`.
    public func registrationSocket(for driverName: String) -> String {
        Self.normalized(registrationDirectory) + "/" + driverName + "-reg.sock"
    }

    static func normalized(_ path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }

    /// Parses a Go duration (`1s`, `500ms`, `1m30s`, `1.5h`, `0`) as upstream's flags take them.
    public static func duration(_ text: String, flag: String) throws(RegistrarError) -> Duration {
        guard let value = parseGoDuration(text) else {
            throw RegistrarError(
                code: .invalidConfiguration,
                message: "\(flag) \(text) is not a duration; expected a number with a unit, for example 500ms, 1s, 30s or 1m30s")
        }
        return value
    }

    static func parseGoDuration(_ text: String) -> Duration? {
        if text == "0" { return .zero }
        let units: [(String, Double)] = [
            ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
        ]
        var rest = Substring(text)
        var total = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { !$0.isNumber && $0 != "." }
            guard let unit = units.first(where: { $0.0 == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            total += value * unit.1
        }
        guard total.isFinite, total < 1e9 else { return nil }
        return .nanoseconds(Int64((total * 1e9).rounded()))
    }
}
