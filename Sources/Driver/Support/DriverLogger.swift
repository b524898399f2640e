/// Where the driver's log records go. The executables write them to stderr (`StandardErrorLogSink`);
/// tests collect records in memory.
public protocol DriverLogSink: Sendable {
    /// Writes one record. `fields` are key/value pairs that never hold secrets.
    func write(level: DriverLogLevel, message: String, fields: [(String, String)])
}

/// The logger the driver's library code uses: a sink and a threshold.
public struct DriverLogger: Sendable {
    /// Where records go.
    public let sink: any DriverLogSink
    /// Records below this level are dropped before they are formatted.
    public let level: DriverLogLevel

    /// Creates a logger writing records at `level` or above to `sink`.
    public init(sink: any DriverLogSink, level: DriverLogLevel) {
        self.sink = sink
        self.level = level
    }

    /// A logger that drops everything.
    public static let disabled = DriverLogger(sink: DiscardingLogSink(), level: .critical)

    /// Writes a record when `level` is enabled; `message` is evaluated only then.
    public func log(
        _ level: DriverLogLevel, _ message: @autoclosure () -> String, _ fields: @autoclosure () -> [(String, String)] = []
    ) {
        guard level >= self.level else { return }
        sink.write(level: level, message: message(), fields: fields())
    }

    /// Whether records at `level` are written.
    public func isEnabled(_ level: DriverLogLevel) -> Bool { level >= self.level }

    /// Writes a debug record.
    public func debug(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> [(String, String)] = []) {
        log(.debug, message(), fields())
    }
    /// Writes an info record.
    public func info(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> [(String, String)] = []) {
        log(.info, message(), fields())
    }
    /// Writes a warning record.
    public func warning(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> [(String, String)] = []) {
        log(.warning, message(), fields())
    }
    /// Writes an error record.
    public func error(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> [(String, String)] = []) {
        log(.error, message(), fields())
    }
}

/// A sink that drops every record.
public struct DiscardingLogSink: DriverLogSink {
    /// Creates the sink.
    public init() {}
    public func write(level: DriverLogLevel, message: String, fields: [(String, String)]) {}
}
