internal import CLVM2Cmd
import Platform

/// What one LVM command reported: the JSON report text, its other printed lines (warnings, notices)
/// and its error lines.
struct LVMOutput: Sendable {
    /// liblvm2cmd's return code (1 = success).
    var returnCode: Int32
    /// The lines of the JSON report, in order.
    var reportLines: [String]
    /// Lines printed at level `LVM2_LOG_PRINT` that are not part of the report.
    var messages: [String]
    /// Lines logged at level `LVM2_LOG_ERROR` or `LVM2_LOG_FATAL`.
    var errors: [String]

    /// Decodes the rows of report `key` from the JSON report.
    func rows<Row: LVMReportRow>(key: String, as: Row.Type, command: String) throws(StorageError) -> [Row] {
        let text = reportLines.joined(separator: "\n")
        func failure(_ reason: String) -> StorageError {
            StorageError(
                .failed, "LVM's JSON report could not be decoded as \(key) rows: \(reason)", command: command,
                details: [String(text.prefix(2000))] + messages)
        }
        let document: JSONValue
        do { document = try JSON.parse(text) } catch { throw failure(error.description) }
        guard let sections = document["report"]?.arrayValue else { throw failure("no \"report\" array") }
        var rows: [Row] = []
        for section in sections {
            guard let items = section[key]?.arrayValue else { continue }
            for item in items {
                guard let members = item.objectValue else { throw failure("a row is not an object") }
                var fields: [String: String] = [:]
                for (name, value) in members {
                    if let s = value.stringValue { fields[name] = s } else if let n = value.numberText { fields[name] = n }
                }
                do { rows.append(try Row(fields: fields)) } catch { throw failure(error.description) }
            }
        }
        return rows
    }

    /// The typed error for a failed command.
    func error(command: String) -> StorageError {
        let text = errors.joined(separator: "\n").lowercased()
        let code: StorageError.Code
        let summary: String
        switch returnCode {
        case LVM2_INVALID_PARAMETERS:
            code = .invalidArgument
            summary = "LVM rejected the command line (return code 3)"
        case LVM2_NO_SUCH_COMMAND:
            code = .failed
            summary = "LVM does not know the command (return code 2)"
        case LVM2_INIT_FAILED:
            code = .failed
            summary = "LVM could not initialise (return code 4)"
        default:
            summary = "LVM command failed (return code \(returnCode))"
            if text.contains("insufficient free space") || text.contains("insufficient suitable")
                || text.contains("not enough free") || text.contains("insufficient free extents")
            {
                code = .insufficientCapacity
            } else if text.contains("already exists") {
                code = .alreadyExists
            } else if text.contains("not found") || text.contains("failed to find") || text.contains("no such") {
                code = .notFound
            } else if text.contains("in use") || text.contains("is open") || text.contains("busy")
                || text.contains("used by another device")
            {
                code = .busy
            } else if text.contains("without using device-mapper") || text.contains("target(s) not detected")
                || text.contains("not supported")
            {
                code = .unsupported
            } else {
                code = .failed
            }
        }
        let first = errors.first.map { ": " + $0 } ?? ""
        return StorageError(code, summary + first, command: command, details: errors)
    }
}

/// A row of an LVM JSON report (`{"report": [{"lv": [{...}, ...]}, ...]}`); LVM reports every value
/// as a string.
protocol LVMReportRow: Sendable {
    /// Builds the row from its fields; throws naming the first field it needs that is missing.
    init(fields: [String: String]) throws(JSONError)
}

extension [String: String] {
    /// The value of report field `name`, or an error naming it.
    func field(_ name: String) throws(JSONError) -> String {
        guard let value = self[name] else { throw JSONError(message: "field \(name) is missing", offset: 0) }
        return value
    }
}

/// Collects what liblvm2cmd logs during one command. Touched only on the LVM thread: `LVM.run`
/// resets it, the callback fills it during `lvm2_run`, `finish` reads it, all on that thread.
final class LVMCollector {
    private var reportLines: [String] = []
    private var messages: [String] = []
    private var errors: [String] = []
    private var depth = 0

    func reset() {
        reportLines.removeAll(keepingCapacity: true)
        messages.removeAll(keepingCapacity: true)
        errors.removeAll(keepingCapacity: true)
        depth = 0
    }

    func finish(returnCode: Int32) -> LVMOutput {
        LVMOutput(returnCode: returnCode, reportLines: reportLines, messages: messages, errors: errors)
    }

    func log(level: Int32, message: UnsafePointer<CChar>) {
        let level = level & 0x0F
        if level > LVM2_LOG_PRINT || level == LVM2_LOG_SUPPRESS { return }
        let line = String(cString: message)
        if level < LVM2_LOG_PRINT {
            errors.append(line.trimmingLeadingSpaces())
            return
        }
        // The JSON report is printed line by line; track its braces so that warnings printed at the
        // same level before or after it are kept apart.
        // Warnings about devices can be printed while the report is open (other processes change
        // devices during the scan): inside the report only lines that look like JSON belong to it.
        let trimmed = line.trimmingLeadingSpaces()
        let looksLikeJSON = trimmed.first.map { "{}[]\"".contains($0) } ?? false
        if (depth == 0 && !trimmed.hasPrefix("{")) || !looksLikeJSON {
            messages.append(trimmed)
            return
        }
        reportLines.append(line)
        depth += Self.braceBalance(line)
    }

    /// `{`/`[` minus `}`/`]` outside JSON strings.
    static func braceBalance(_ line: String) -> Int {
        var balance = 0
        var inString = false
        var escaped = false
        for b in line.utf8 {
            if inString {
                if escaped {
                    escaped = false
                } else if b == UInt8(ascii: "\\") {
                    escaped = true
                } else if b == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch b {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): balance += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"): balance -= 1
            default: break
            }
        }
        return balance
    }
}

extension String {
    func trimmingLeadingSpaces() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }))
    }
}

/// The collector the C callback fills; see ``LVMCollector`` for why this is safe.
nonisolated(unsafe) let lvmCollector = LVMCollector()

/// liblvm2cmd's log callback (process-global).
let lvmLogCallback: @convention(c) (Int32, UnsafePointer<CChar>?, Int32, Int32, UnsafePointer<CChar>?) -> Void = {
    level, _, _, _, message in
    guard let message else { return }
    lvmCollector.log(level: level, message: message)
}
