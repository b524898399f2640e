// The executables' command-line parser: flags with values, subcommands, help and version.
// Hand-written so the executables carry no argument-parsing library (and no Foundation with it).
import Platform

/// One flag a command takes. Every flag takes a value; `--help` and `--version` are built in.
///
/// Accepted spellings: `--name value`, `--name=value`, the one-letter alias as `-v value` or
/// `-v=value`, and, when the program allows Go-style flags, `-name value` and `-name=value`.
package struct CommandLineFlag: Sendable {
    /// What a value must look like; checked while parsing, so a bad value names its flag.
    package enum Kind: Sendable, Hashable {
        /// Any text.
        case string
        /// A whole number that fits in 64 bits (`-3`, `0`, `100`).
        case integer
        /// A decimal number (`1`, `2.5`).
        case number
        /// One of a fixed list of words.
        case choice([String])
    }

    /// The long name without dashes (`driver-name`).
    package var long: String
    /// The one-letter alias (`v` for `-v`), if any.
    package var short: Character?
    /// The placeholder for the value in help and errors, without angle brackets (`path`).
    package var valueName: String
    /// What the value must look like.
    package var kind: Kind
    /// The value when the flag is not given, as help shows it; nil for none.
    package var defaultValue: String?
    /// Whether each occurrence adds a value; otherwise the last occurrence wins.
    package var repeats: Bool
    /// One or two sentences for help.
    package var help: String

    /// Creates a flag.
    /// - Parameters:
    ///   - long: the long name without dashes.
    ///   - short: a one-letter alias.
    ///   - value: the value's placeholder in help (`path`, `seconds`).
    ///   - kind: what the value must look like.
    ///   - defaultValue: the value when the flag is absent, shown as `(default: …)`.
    ///   - repeats: whether the flag may be given more than once to add values.
    ///   - help: the description.
    package init(
        _ long: String, short: Character? = nil, value: String, kind: Kind = .string, default defaultValue: String? = nil,
        repeats: Bool = false, help: String
    ) {
        self.long = long
        self.short = short
        self.valueName = value
        self.kind = kind
        self.defaultValue = defaultValue
        self.repeats = repeats
        self.help = help
    }

    /// `-v, --log-level <level>` or `--endpoint <url>`, as help lists it.
    var label: String {
        let long = "--\(self.long) <\(valueName)>"
        guard let short else { return long }
        return "-\(short), " + long
    }
}

/// One command of a program: the flags it takes and its help.
package struct CommandLineCommand: Sendable {
    /// The subcommand's name (`inspect`); unused for a program of one command.
    package var name: String
    /// A one-line summary.
    package var abstract: String
    /// More help, printed below the summary; nil for none.
    package var discussion: String?
    /// The flags, in the order help lists them.
    package var flags: [CommandLineFlag]

    /// Creates a command.
    package init(name: String, abstract: String, discussion: String? = nil, flags: [CommandLineFlag]) {
        self.name = name
        self.abstract = abstract
        self.discussion = discussion
        self.flags = flags
    }

    func flag(long name: String) -> CommandLineFlag? { flags.first { $0.long == name } }
    func flag(short letter: Character) -> CommandLineFlag? { flags.first { $0.short == letter } }
}

/// What the command line asks for.
package enum CommandLineRequest: Sendable {
    /// Run a command with these values.
    case run(ParsedCommandLine)
    /// Print this help text on standard output and exit 0.
    case help(String)
    /// Print this version on standard output and exit 0.
    case version(String)
}

/// A usage error: an unknown flag, a flag without its value, a value of the wrong kind, or an
/// argument no flag takes. The message names the flag as written and what was expected.
package struct CommandLineError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of mistake.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable { case unknownFlag, missingValue, invalidValue, unexpectedArgument }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A flag the command does not take.
        package static let unknownFlag = Code(.unknownFlag)
        /// A flag at the end of the line, or followed by another flag, with no value.
        package static let missingValue = Code(.missingValue)
        /// A value that is not a number, or not one of the allowed words.
        package static let invalidValue = Code(.invalidValue)
        /// A word that is not a flag, a flag's value or a subcommand.
        package static let unexpectedArgument = Code(.unexpectedArgument)

        package var description: String {
            switch value {
            case .unknownFlag: "unknown flag"
            case .missingValue: "missing value"
            case .invalidValue: "invalid value"
            case .unexpectedArgument: "unexpected argument"
            }
        }
    }

    /// The kind of mistake.
    package var code: Code
    /// The flag as written (`--bogus`, `-v`), or the unexpected argument.
    package var argument: String
    /// The subcommand whose flags were being parsed, or nil for the program's only command.
    package var command: String?
    /// What is wrong and what was expected.
    package var message: String
    /// The flag's help line, for errors about a known flag's value.
    package var flagHelp: String?

    package var description: String { message }

    /// The exit status for a usage error (`EX_USAGE` from sysexits.h).
    package static let exitStatus: Int32 = 64
}

/// The values of one parsed command line: what each flag was given, or its default.
package struct ParsedCommandLine: Sendable {
    /// The command chosen (its name; the first command's when none was named).
    package let command: String
    private let flags: [CommandLineFlag]
    private let given: [String: [String]]

    init(command: CommandLineCommand, given: [String: [String]]) {
        self.command = command.name
        self.flags = command.flags
        self.given = given
    }

    private func declared(_ long: String) -> CommandLineFlag {
        guard let flag = flags.first(where: { $0.long == long }) else {
            preconditionFailure("the command \(command) declares no flag --\(long)")
        }
        return flag
    }

    /// Whether the flag was on the command line.
    package func isGiven(_ long: String) -> Bool { given[long] != nil }

    /// The flag's last value, else its default, else nil.
    package func string(_ long: String) -> String? {
        given[long]?.last ?? declared(long).defaultValue
    }

    /// Every value given to a repeatable flag, in order; empty when it was not given.
    package func strings(_ long: String) -> [String] {
        precondition(declared(long).repeats, "--\(long) is not declared as repeatable")
        return given[long] ?? []
    }

    /// The value of an `.integer` flag, or nil when it has neither a value nor a default.
    package func int64(_ long: String) -> Int64? {
        precondition(declared(long).kind == .integer, "--\(long) is not declared as an integer")
        return string(long).flatMap { Int64($0) }
    }

    /// The value of an `.integer` flag as `Int`.
    package func int(_ long: String) -> Int? { int64(long).flatMap { Int(exactly: $0) } }

    /// The value of a `.number` flag, or nil when it has neither a value nor a default.
    package func double(_ long: String) -> Double? {
        precondition(declared(long).kind == .number, "--\(long) is not declared as a number")
        return string(long).flatMap { Double($0) }
    }
}

/// A program's command line: its commands (the first is the default), version and help.
package struct CommandLineProgram: Sendable {
    /// The executable's name, as help and errors show it.
    package var name: String
    /// What `--version` prints.
    package var version: String
    /// The commands; the first runs when no subcommand is named. With more than one, the first
    /// argument may name one, and `help [command]` prints help.
    package var commands: [CommandLineCommand]
    /// The program's summary and discussion for its top-level help when it has subcommands.
    package var abstract: String
    package var discussion: String?
    /// Whether `-name` means `--name` for long flags (Go's `flag` package spelling).
    package var singleDashLongFlags: Bool

    /// Creates a program.
    package init(
        name: String, version: String, abstract: String, discussion: String? = nil, commands: [CommandLineCommand],
        singleDashLongFlags: Bool = false
    ) {
        precondition(!commands.isEmpty, "a program has at least one command")
        self.name = name
        self.version = version
        self.abstract = abstract
        self.discussion = discussion
        self.commands = commands
        self.singleDashLongFlags = singleDashLongFlags
    }

    private var hasSubcommands: Bool { commands.count > 1 }

    private func command(named name: String) -> CommandLineCommand? {
        hasSubcommands ? commands.first { $0.name == name } : nil
    }

    /// Parses `arguments` (without the program name).
    /// - Throws: ``CommandLineError`` for the first unknown flag, missing or invalid value, or
    ///   unexpected argument.
    package func parse(_ arguments: [String]) throws(CommandLineError) -> CommandLineRequest {
        var rest = arguments[...]
        var command = commands[0]
        var named = false
        if hasSubcommands, let first = rest.first {
            if first == "help" {
                rest = rest.dropFirst()
                guard let wanted = rest.first else { return .help(help(command: nil)) }
                guard let chosen = self.command(named: wanted) else {
                    throw CommandLineError(
                        code: .unexpectedArgument, argument: wanted, command: nil,
                        message: "no subcommand '\(wanted)'; expected \(commandNames)")
                }
                if let extra = rest.dropFirst().first {
                    throw CommandLineError(
                        code: .unexpectedArgument, argument: extra, command: nil, message: "unexpected argument '\(extra)'")
                }
                return .help(help(command: chosen.name))
            }
            if let chosen = self.command(named: first) {
                command = chosen
                named = true
                rest = rest.dropFirst()
            }
        }
        let commandName = hasSubcommands ? command.name : nil
        // --help and --version win over everything else on the line, as in most tools.
        for argument in rest {
            if argument == "--" { break }
            if argument == "--help" || argument == "-h" || (singleDashLongFlags && argument == "-help") {
                return .help(help(command: named || !hasSubcommands ? command.name : nil))
            }
            if argument == "--version" || (singleDashLongFlags && argument == "-version") { return .version(version) }
        }
        var given: [String: [String]] = [:]
        while let argument = rest.popFirst() {
            if argument == "--" {
                if let extra = rest.first {
                    throw CommandLineError(
                        code: .unexpectedArgument, argument: extra, command: commandName,
                        message: "unexpected argument '\(extra)': \(name) takes no arguments besides flags")
                }
                break
            }
            guard argument.hasPrefix("-"), argument != "-" else {
                throw CommandLineError(
                    code: .unexpectedArgument, argument: argument, command: commandName,
                    message: "unexpected argument '\(argument)'" + (hasSubcommands && !named ? "; expected a flag or one of \(commandNames)" : ""))
            }
            let (written, inline) = Self.split(argument)
            let flag = try lookUp(written, in: command, commandName: commandName)
            let shown = written.hasPrefix("--") || written.count == 2 ? written : "-" + written
            let value: String
            if let inline {
                value = inline
            } else if let next = rest.first, !Self.looksLikeFlag(next) {
                value = next
                rest = rest.dropFirst()
            } else {
                throw CommandLineError(
                    code: .missingValue, argument: shown, command: commandName,
                    message: "missing value for '\(shown) <\(flag.valueName)>'", flagHelp: helpLine(flag, shown: shown))
            }
            if let problem = Self.check(value, kind: flag.kind) {
                throw CommandLineError(
                    code: .invalidValue, argument: shown, command: commandName,
                    message: "the value '\(value)' is invalid for '\(shown) <\(flag.valueName)>': expected \(problem)",
                    flagHelp: helpLine(flag, shown: shown))
            }
            given[flag.long, default: []].append(value)
        }
        return .run(ParsedCommandLine(command: command, given: given))
    }

    /// Parses `arguments` (the process's own by default) the way an executable's `main` does:
    /// prints help or the version on standard output, or a usage error on standard error.
    /// - Returns: the values to run with, or nil when the process should exit with `exitStatus`
    ///   (0 after help or the version, ``CommandLineError/exitStatus`` after a usage error).
    package func parseOrReport(
        _ arguments: [String] = Array(CommandLine.arguments.dropFirst()), exitStatus: inout Int32
    ) -> ParsedCommandLine? {
        do throws(CommandLineError) {
            switch try parse(arguments) {
            case .help(let text):
                print(text, terminator: "")
                exitStatus = 0
            case .version(let version):
                print(version)
                exitStatus = 0
            case .run(let values):
                return values
            }
        } catch {
            writeStandardError(usageError(error))
            exitStatus = CommandLineError.exitStatus
        }
        return nil
    }

    /// Splits `--name=value` at the first `=`.
    private static func split(_ argument: String) -> (String, String?) {
        guard let equals = argument.firstIndex(of: "=") else { return (argument, nil) }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }

    /// Whether a word after a flag is another flag rather than its value (`-1` and `-` are values).
    private static func looksLikeFlag(_ word: String) -> Bool {
        word.hasPrefix("-") && word.count > 1 && Double(word) == nil
    }

    private func lookUp(_ written: String, in command: CommandLineCommand, commandName: String?) throws(CommandLineError) -> CommandLineFlag {
        var name = Substring(written)
        let double = name.hasPrefix("--")
        name = name.drop { $0 == "-" }
        if double || (written.hasPrefix("-") && name.count > 1 && singleDashLongFlags) {
            if double && written.count - name.count == 2, let flag = command.flag(long: String(name)) { return flag }
            if !double, let flag = command.flag(long: String(name)) { return flag }
        } else if written.count == 2, let letter = name.first {
            if let flag = command.flag(short: letter) { return flag }
            if singleDashLongFlags, let flag = command.flag(long: String(letter)) { return flag }
        }
        var message = "unknown flag '\(written)'"
        if let suggestion = suggestion(for: name, written: written, in: command) { message += "; did you mean '\(suggestion)'?" }
        throw CommandLineError(code: .unknownFlag, argument: written, command: commandName, message: message)
    }

    /// The closest long flag to a mistyped one: the same name after a single dash, or one edit
    /// away (two for longer names).
    private func suggestion(for name: Substring, written: String, in command: CommandLineCommand) -> String? {
        guard !name.isEmpty else { return nil }
        if !written.hasPrefix("--") {
            if command.flag(long: String(name)) != nil { return "--" + name }
            // `-v5`: a one-letter flag with its value attached.
            if let letter = name.first, command.flag(short: letter) != nil { return "-\(letter) \(name.dropFirst())" }
        }
        let limit = name.count > 6 ? 2 : 1
        var best: (String, Int)?
        for flag in command.flags {
            let distance = Self.editDistance(Array(name.utf8), Array(flag.long.utf8))
            if distance <= limit, distance < (best?.1 ?? .max) { best = ("--" + flag.long, distance) }
        }
        return best?.0
    }

    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        var current = previous
        for i in 1...a.count {
            current[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    /// What a value of `kind` must look like, when `value` is not one; nil when it is.
    private static func check(_ value: String, kind: CommandLineFlag.Kind) -> String? {
        switch kind {
        case .string: return nil
        case .integer: return Int64(value) == nil ? "a whole number" : nil
        case .number: return Double(value).map { $0.isFinite } == true ? nil : "a number"
        case .choice(let words): return words.contains(value) ? nil : "one of " + words.joined(separator: ", ")
        }
    }

    private var commandNames: String { commands.map(\.name).joined(separator: ", ") }

    // MARK: Help

    /// The width help text is wrapped to.
    static let width = 80
    /// The column descriptions start in.
    static let descriptionColumn = 26

    /// The help for one command (`serve`, `inspect`), or for the program when `command` is nil.
    package func help(command name: String?) -> String {
        let command = name.flatMap { self.command(named: $0) } ?? commands[0]
        let top = name == nil || !hasSubcommands
        var out = ""
        let abstract = top ? self.abstract : command.abstract
        out += Self.wrap("OVERVIEW: " + abstract, indent: 0) + "\n"
        if let discussion = top ? (hasSubcommands ? self.discussion : command.discussion) : command.discussion {
            out += "\n" + Self.wrap(discussion, indent: 0) + "\n"
        }
        out += "\n"
        if top && hasSubcommands {
            out += "USAGE: \(self.name) [\(commands[0].name)] [options]\n"
            for other in commands.dropFirst() { out += "       \(self.name) \(other.name) [options]\n" }
            out += "\nOPTIONS (\(commands[0].name), the default):\n"
        } else {
            out += "USAGE: " + usage(command: hasSubcommands ? command.name : nil) + "\n\nOPTIONS:\n"
        }
        for flag in command.flags { out += Self.entry(flag.label, Self.describe(flag)) }
        out += Self.entry("--version", "Show the version.")
        out += Self.entry("-h, --help", "Show help information.")
        if top && hasSubcommands {
            out += "\nSUBCOMMANDS:\n"
            for (index, sub) in commands.enumerated() {
                out += Self.entry(index == 0 ? "\(sub.name) (default)" : sub.name, sub.abstract)
            }
            out += "\n  See '\(self.name) help <subcommand>' for detailed help.\n"
        }
        return out
    }

    /// `csi-lvm-driver [options]` or `node-driver-registrar inspect [options]`.
    package func usage(command: String?) -> String {
        guard hasSubcommands else { return "\(name) [options]" }
        guard let command else { return "\(name) [\(commands.map(\.name).joined(separator: "|"))] [options]" }
        return "\(name) \(command) [options]"
    }

    /// The text for standard error when the command line (or a flag's value, found wrong later)
    /// is not usable: the message, the flag's help, the usage and where to find more.
    package func usageError(_ message: String, command: String? = nil, flagHelp: String? = nil) -> String {
        var out = "Error: \(message)\n"
        if let flagHelp { out += "Help:  \(flagHelp)\n" }
        let helpCommand = command.map { "\(name) \($0) --help" } ?? "\(name) --help"
        out += "Usage: \(usage(command: command))\n  See '\(helpCommand)' for more information.\n"
        return out
    }

    /// ``usageError(_:command:flagHelp:)`` for a parse error.
    package func usageError(_ error: CommandLineError) -> String {
        usageError(error.message, command: error.command, flagHelp: error.flagHelp)
    }

    private func helpLine(_ flag: CommandLineFlag, shown: String) -> String {
        "\(shown) <\(flag.valueName)>  \(flag.help)"
    }

    private static func describe(_ flag: CommandLineFlag) -> String {
        var notes: [String] = []
        if case .choice(let words) = flag.kind { notes.append("values: " + words.joined(separator: ", ")) }
        if let value = flag.defaultValue { notes.append("default: " + value) }
        return notes.isEmpty ? flag.help : flag.help + " (" + notes.joined(separator: "; ") + ")"
    }

    /// One option or subcommand line: the label, then the description from column 26 (on the
    /// next line when the label is too long), wrapped.
    private static func entry(_ label: String, _ text: String) -> String {
        let lead = "  " + label
        let body = wrap(text, indent: descriptionColumn)
        let bodyText = body.dropFirst(descriptionColumn)
        if lead.count < descriptionColumn {
            return lead + String(repeating: " ", count: descriptionColumn - lead.count) + bodyText + "\n"
        }
        return lead + "\n" + body + "\n"
    }

    /// Wraps `text` at word boundaries to ``width`` columns, every line indented by `indent`.
    static func wrap(_ text: String, indent: Int) -> String {
        let pad = String(repeating: " ", count: indent)
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            if line.isEmpty {
                line = String(word)
            } else if indent + line.count + 1 + word.count <= width {
                line += " " + word
            } else {
                lines.append(line)
                line = String(word)
            }
        }
        lines.append(line)
        return lines.map { pad + $0 }.joined(separator: "\n")
    }
}
