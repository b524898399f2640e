#if canImport(Glibc)
    import Glibc
#endif

/// Writes log records to standard error (what journald and `kubectl logs` collect), one line per
/// record in one `write(2)`, so records from different threads never interleave.
public struct StandardErrorLogSink: LogSink {
    /// How a line starts.
    public enum Style: Sendable, Hashable {
        /// `2026-11-24T21:46:21.123Z info <label>: message key=value`: UTC date and time, level name.
        case timestamped(label: String)
        /// `I 21:46:27.010 message key=value`: klog's level letter (D, I, W, E) and the UTC time
        /// of day, as the upstream registrar logs.
        case klog
        /// One JSON object a line, as Kubernetes components log with `--logging-format=json`:
        /// `{"ts":1764971187.123456,"msg":"…","v":0,"key":"value"}`: `ts` in seconds since the epoch,
        /// `v` the klog verbosity a record needs (0 info, 3 debug, 5 trace), or instead `level`
        /// (`warning`, `error`) for warnings and errors; then the record's key/values.
        case json

        /// The style for a `--logging-format` value (`text` or `json`); `text` is `textStyle`.
        package static func forFormat(_ format: String, text textStyle: Style) -> Style? {
            switch format {
            case "text": textStyle
            case "json": .json
            default: nil
            }
        }
    }

    /// How a line starts.
    public let style: Style

    /// Creates a sink writing lines in `style`.
    public init(style: Style) { self.style = style }

    /// Writes one record as one line.
    public func write(level: LogLevel, message: String, fields: [(String, String)]) {
        writeStandardError(line(level: level, message: message, fields: fields, now: Self.now()))
    }

    /// The line for one record at `now` (seconds and nanoseconds since the epoch), newline included.
    package func line(level: LogLevel, message: String, fields: [(String, String)], now: (Int, Int)) -> String {
        if case .json = style { return Self.jsonLine(level: level, message: message, fields: fields, now: now) }
        var seconds = now.0
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let milliseconds = Self.digits(now.1 / 1_000_000, 3)
        let time = "\(Self.digits(Int(parts.tm_hour), 2)):\(Self.digits(Int(parts.tm_min), 2)):\(Self.digits(Int(parts.tm_sec), 2)).\(milliseconds)"
        var line: String
        switch style {
        case .timestamped(let label):
            let date = "\(Self.digits(Int(parts.tm_year) + 1900, 4))-\(Self.digits(Int(parts.tm_mon) + 1, 2))-\(Self.digits(Int(parts.tm_mday), 2))"
            line = "\(date)T\(time)Z \(level) \(label): \(message)"
        case .json:
            line = ""
        case .klog:
            let letter: String =
                switch level {
                case .trace, .debug: "D"
                case .info, .notice: "I"
                case .warning: "W"
                case .error, .critical: "E"
                }
            line = "\(letter) \(time) \(message)"
        }
        for (key, value) in fields { line += " \(key)=\(value)" }
        line += "\n"
        return line
    }

    /// One record as a JSON object and a newline (``Style/json``).
    static func jsonLine(level: LogLevel, message: String, fields: [(String, String)], now: (Int, Int)) -> String {
        let ts = "\(now.0).\(digits(now.1 / 1000, 6))"
        var members: [(String, JSONValue)] = [("ts", .number(ts)), ("msg", .string(message))]
        switch level {
        case .trace: members.append(("v", .int(5)))
        case .debug: members.append(("v", .int(3)))
        case .info, .notice: members.append(("v", .int(0)))
        case .warning: members.append(("level", .string("warning")))
        case .error, .critical: members.append(("level", .string("error")))
        }
        let reserved: Set<String> = ["ts", "msg", "v", "level"]
        for (key, value) in fields { members.append((reserved.contains(key) ? "field." + key : key, .string(value))) }
        return JSON.print(.object(members)) + "\n"
    }

    private static func now() -> (Int, Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int(ts.tv_sec), Int(ts.tv_nsec))
    }

    /// `value` in decimal, zero-padded to `count` digits.
    private static func digits(_ value: Int, _ count: Int) -> String {
        let text = String(value)
        return text.count >= count ? text : String(repeating: "0", count: count - text.count) + text
    }
}

/// Writes `text` to standard error in as few `write(2)` calls as it takes, retrying EINTR.
package func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(2, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }
}
