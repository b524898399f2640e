/// Where a process's log records go. The executables write them to stderr (`StandardErrorLogSink`);
/// tests collect records in memory.
public protocol LogSink: Sendable {
    /// Writes one record. `fields` are key/value pairs that never hold secrets.
    func write(level: LogLevel, message: String, fields: [(String, String)])
}

/// The logger the driver's and the registrar's code use: a sink and a threshold.
public struct Logger: Sendable {
    /// Where records go.
    public let sink: any LogSink
    /// Records below this level are dropped before they are formatted.
    public let level: LogLevel

    /// Creates a logger writing records at `level` or above to `sink`.
    public init(sink: any LogSink, level: LogLevel) {
        self.sink = sink
        self.level = level
    }

    /// A logger that drops everything.
    public static let disabled = Logger(sink: DiscardingLogSink(), level: .critical)

    /// Writes a record when `level` is enabled; `message` is evaluated only then.
    public func log(
        _ level: LogLevel, _ message: @autoclosure () -> String, _ fields: @autoclosure () -> [(String, String)] = []
    ) {
        guard level >= self.level else { return }
        sink.write(level: level, message: message(), fields: fields())
    }

    /// Whether records at `level` are written.
    public func isEnabled(_ level: LogLevel) -> Bool { level >= self.level }

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
public struct DiscardingLogSink: LogSink {
    /// Creates the sink.
    public init() {}
    public func write(level: LogLevel, message: String, fields: [(String, String)]) {}
}

/// Log verbosity, from most to least verbose.
public enum LogLevel: Int, Sendable, Hashable, Comparable, CaseIterable, CustomStringConvertible {
    case trace, debug, info, notice, warning, error, critical

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .trace: "trace"
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        case .critical: "critical"
        }
    }

    /// Parses a level name (`info`) or a klog-style number (`0`…`5`: higher is more verbose).
    public init?(parsing text: String) {
        let lowered = text.lowercased()
        if let level = Self.allCases.first(where: { $0.description == lowered }) {
            self = level
            return
        }
        if lowered == "warn" {
            self = .warning
            return
        }
        guard let number = Int(lowered), number >= 0 else { return nil }
        switch number {
        case 0: self = .warning
        case 1, 2: self = .info
        case 3, 4: self = .debug
        default: self = .trace
        }
    }
}
