import Testing

@testable import Flags

@Suite struct CommandLineParserTests {
    /// A program shaped like the driver: one command, GNU-style flags only.
    static let single = CommandLineProgram(
        name: "tool", version: "1.2.3", abstract: "Does one thing.",
        commands: [
            CommandLineCommand(
                name: "tool", abstract: "Does one thing.",
                flags: [
                    CommandLineFlag("endpoint", value: "url", help: "The socket to serve."),
                    CommandLineFlag("driver-name", value: "name", default: "a.example.com", help: "The name."),
                    CommandLineFlag("scan-device", value: "device", repeats: true, help: "A device to scan; repeat for more."),
                    CommandLineFlag("ratio", value: "ratio", kind: .number, default: "1.0", help: "A ratio."),
                    CommandLineFlag("max-volumes", value: "count", kind: .integer, default: "0", help: "A count."),
                    CommandLineFlag("log-level", short: "v", value: "level", default: "info", help: "Verbosity."),
                    CommandLineFlag(
                        "a-flag-with-a-very-long-name", value: "value",
                        help: "A description long enough to need more than one line when it is wrapped at eighty columns."),
                ])
        ])

    /// A program shaped like the registrar: a default command, a second one, Go-style flags.
    static let go = CommandLineProgram(
        name: "registrar", version: "2.17.0", abstract: "Registers.", discussion: "Keeps the registration alive.",
        commands: [
            CommandLineCommand(
                name: "serve", abstract: "Serve (the default).",
                flags: [
                    CommandLineFlag("csi-address", value: "path", default: "/run/csi/socket", help: "The driver socket."),
                    CommandLineFlag("health-port", value: "port", kind: .integer, help: "Deprecated port."),
                    CommandLineFlag("v", short: "v", value: "level", kind: .integer, default: "0", help: "Verbosity."),
                ]),
            CommandLineCommand(
                name: "inspect", abstract: "Show the registry.", discussion: "Walks the registry.",
                flags: [
                    CommandLineFlag("output", value: "format", kind: .choice(["text", "json"]), default: "text", help: "Format.")
                ]),
        ],
        singleDashLongFlags: true)

    static func values(_ program: CommandLineProgram, _ arguments: [String]) throws -> ParsedCommandLine {
        guard case .run(let parsed) = try program.parse(arguments) else {
            Issue.record("\(arguments) did not parse to a run request")
            throw CommandLineError(code: .unexpectedArgument, argument: "", command: nil, message: "not a run request")
        }
        return parsed
    }

    static func error(_ program: CommandLineProgram, _ arguments: [String]) -> CommandLineError? {
        do throws(CommandLineError) {
            _ = try program.parse(arguments)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Values

    @Test func defaultsWhenNothingIsGiven() throws {
        let parsed = try Self.values(Self.single, [])
        #expect(parsed.command == "tool")
        #expect(parsed.string("endpoint") == nil)
        #expect(parsed.string("driver-name") == "a.example.com")
        #expect(parsed.double("ratio") == 1.0)
        #expect(parsed.int64("max-volumes") == 0)
        #expect(parsed.strings("scan-device") == [])
        #expect(!parsed.isGiven("driver-name"))
    }

    @Test(arguments: [
        ["--endpoint", "/run/x.sock"], ["--endpoint=/run/x.sock"],
    ])
    func separateAndAttachedValues(arguments: [String]) throws {
        let parsed = try Self.values(Self.single, arguments)
        #expect(parsed.string("endpoint") == "/run/x.sock")
        #expect(parsed.isGiven("endpoint"))
    }

    @Test func attachedValuesKeepEqualsSignsAndMayBeEmpty() throws {
        #expect(try Self.values(Self.single, ["--endpoint=unix:///a=b"]).string("endpoint") == "unix:///a=b")
        #expect(try Self.values(Self.single, ["--endpoint="]).string("endpoint") == "")
    }

    @Test(arguments: [["-v", "debug"], ["-v=debug"], ["--log-level", "debug"], ["--log-level=debug"]])
    func shortAlias(arguments: [String]) throws {
        #expect(try Self.values(Self.single, arguments).string("log-level") == "debug")
    }

    @Test func lastValueWinsAndRepeatableFlagsCollect() throws {
        let parsed = try Self.values(
            Self.single,
            ["--driver-name", "one", "--scan-device", "/dev/a", "--driver-name=two", "--scan-device=/dev/b"])
        #expect(parsed.string("driver-name") == "two")
        #expect(parsed.strings("scan-device") == ["/dev/a", "/dev/b"])
    }

    @Test func negativeNumbersAndADashAreValues() throws {
        #expect(try Self.values(Self.single, ["--max-volumes", "-3"]).int64("max-volumes") == -3)
        #expect(try Self.values(Self.single, ["--ratio", "-0.5"]).double("ratio") == -0.5)
        #expect(try Self.values(Self.single, ["--endpoint", "-"]).string("endpoint") == "-")
    }

    @Test func typedValues() throws {
        let parsed = try Self.values(Self.single, ["--ratio", "2.5", "--max-volumes=100"])
        #expect(parsed.double("ratio") == 2.5)
        #expect(parsed.int64("max-volumes") == 100)
        #expect(parsed.int("max-volumes") == 100)
    }

    // MARK: Go-style flags and subcommands

    @Test(arguments: [
        ["-csi-address=/x.sock"], ["-csi-address", "/x.sock"], ["--csi-address=/x.sock"], ["serve", "-csi-address", "/x.sock"],
    ])
    func goStyleSingleDashLongFlags(arguments: [String]) throws {
        let parsed = try Self.values(Self.go, arguments)
        #expect(parsed.command == "serve")
        #expect(parsed.string("csi-address") == "/x.sock")
    }

    @Test(arguments: [["-v", "5"], ["-v=5"], ["--v", "5"], ["--v=5"]])
    func klogVerbosity(arguments: [String]) throws {
        #expect(try Self.values(Self.go, arguments).int("v") == 5)
    }

    @Test func subcommandHasItsOwnFlags() throws {
        let parsed = try Self.values(Self.go, ["inspect", "-output=json"])
        #expect(parsed.command == "inspect")
        #expect(parsed.string("output") == "json")
        let error = try #require(Self.error(Self.go, ["--output", "json"]))
        #expect(error.code == .unknownFlag)
        #expect(error.argument == "--output")
        #expect(error.command == "serve")
    }

    @Test func singleDashLongFlagsOnlyWhenTheProgramAllowsThem() throws {
        let error = try #require(Self.error(Self.single, ["-endpoint", "/x"]))
        #expect(error.code == .unknownFlag)
        #expect(error.message == "unknown flag '-endpoint'; did you mean '--endpoint'?")
    }

    // MARK: Help and version

    @Test(arguments: [["--help"], ["-h"], ["--endpoint", "/x", "--help"], ["--bogus", "-h"]])
    func helpWinsOverEverythingElse(arguments: [String]) throws {
        guard case .help(let text) = try Self.single.parse(arguments) else {
            Issue.record("no help for \(arguments)")
            return
        }
        #expect(text.hasPrefix("OVERVIEW: Does one thing.\n\nUSAGE: tool [options]\n\nOPTIONS:\n"))
    }

    @Test(arguments: [["--version"], ["-version"], ["inspect", "--version"]])
    func version(arguments: [String]) throws {
        guard case .version(let version) = try Self.go.parse(arguments) else {
            Issue.record("no version for \(arguments)")
            return
        }
        #expect(version == "2.17.0")
    }

    @Test func singleDashVersionIsAnErrorWithoutGoStyle() {
        #expect(Self.error(Self.single, ["-version"])?.code == .unknownFlag)
    }

    @Test func helpListsEveryFlagWithItsDefaultWrappedToEightyColumns() throws {
        let text = Self.single.help(command: nil)
        for line in text.split(separator: "\n") { #expect(line.count <= 80, "\(line)") }
        #expect(text.contains("  --endpoint <url>        The socket to serve.\n"))
        #expect(text.contains("  --driver-name <name>    The name. (default: a.example.com)\n"))
        #expect(text.contains("  -v, --log-level <level> Verbosity. (default: info)\n"))
        // A label too long for its column puts the description on the next line.
        #expect(text.contains("  --a-flag-with-a-very-long-name <value>\n                          A description long enough"))
        #expect(text.hasSuffix("  --version               Show the version.\n  -h, --help              Show help information.\n"))
    }

    @Test func programHelpShowsTheDefaultCommandsFlagsAndTheSubcommands() throws {
        guard case .help(let text) = try Self.go.parse(["help"]) else {
            Issue.record("no help")
            return
        }
        #expect(text.contains("OVERVIEW: Registers.\n\nKeeps the registration alive.\n"))
        #expect(text.contains("USAGE: registrar [serve] [options]\n       registrar inspect [options]\n"))
        #expect(text.contains("OPTIONS (serve, the default):\n  --csi-address <path>"))
        #expect(text.contains("  -v, --v <level>         Verbosity. (default: 0)\n"))
        #expect(text.contains("SUBCOMMANDS:\n  serve (default)         Serve (the default).\n  inspect                 Show the registry.\n"))
        #expect(!text.contains("--output"))
    }

    @Test(arguments: [["help", "inspect"], ["inspect", "--help"], ["inspect", "-help"], ["inspect", "-h"]])
    func subcommandHelp(arguments: [String]) throws {
        guard case .help(let text) = try Self.go.parse(arguments) else {
            Issue.record("no help for \(arguments)")
            return
        }
        #expect(text.hasPrefix("OVERVIEW: Show the registry.\n\nWalks the registry.\n\nUSAGE: registrar inspect [options]\n"))
        #expect(text.contains("  --output <format>       Format. (values: text, json; default: text)\n"))
        #expect(!text.contains("--csi-address"))
    }

    // MARK: Errors

    @Test func unknownFlagIsNamedWithASuggestion() throws {
        let error = try #require(Self.error(Self.single, ["--endpiont", "/x"]))
        #expect(error.code == .unknownFlag)
        #expect(error.argument == "--endpiont")
        #expect(error.message == "unknown flag '--endpiont'; did you mean '--endpoint'?")
        #expect(Self.error(Self.single, ["--bogus"])?.message == "unknown flag '--bogus'")
        #expect(Self.error(Self.single, ["---endpoint", "/x"])?.code == .unknownFlag)
    }

    @Test func shortFlagWithAnAttachedValueSuggestsTheSpace() {
        #expect(Self.error(Self.single, ["-vdebug"])?.message == "unknown flag '-vdebug'; did you mean '-v debug'?")
    }

    @Test(arguments: [["--endpoint"], ["--endpoint", "--driver-name", "x"], ["-v"]])
    func missingValue(arguments: [String]) throws {
        let error = try #require(Self.error(Self.single, arguments))
        #expect(error.code == .missingValue)
        #expect(error.argument == arguments[0])
        #expect(error.flagHelp != nil)
    }

    @Test func missingValueNamesTheFlagAndItsPlaceholder() {
        let error = Self.error(Self.go, ["-csi-address"])
        #expect(error?.message == "missing value for '--csi-address <path>'")
        #expect(error?.flagHelp == "--csi-address <path>  The driver socket.")
    }

    @Test(arguments: [
        (["--max-volumes", "abc"], "the value 'abc' is invalid for '--max-volumes <count>': expected a whole number"),
        (["--max-volumes=1.5"], "the value '1.5' is invalid for '--max-volumes <count>': expected a whole number"),
        (["--max-volumes=99999999999999999999"], "the value '99999999999999999999' is invalid for '--max-volumes <count>': expected a whole number"),
        (["--ratio", "x"], "the value 'x' is invalid for '--ratio <ratio>': expected a number"),
        (["--ratio=nan"], "the value 'nan' is invalid for '--ratio <ratio>': expected a number"),
    ])
    func invalidValues(arguments: [String], message: String) throws {
        let error = try #require(Self.error(Self.single, arguments))
        #expect(error.code == .invalidValue)
        #expect(error.message == message)
    }

    @Test func invalidChoiceListsTheChoices() {
        let error = Self.error(Self.go, ["inspect", "--output", "yaml"])
        #expect(error?.code == .invalidValue)
        #expect(error?.message == "the value 'yaml' is invalid for '--output <format>': expected one of text, json")
        #expect(error?.command == "inspect")
        #expect(Self.error(Self.go, ["-v=x"])?.message == "the value 'x' is invalid for '-v <level>': expected a whole number")
    }

    @Test(arguments: [["extra"], ["--endpoint", "/x", "extra"], ["--", "extra"], ["-"]])
    func unexpectedArguments(arguments: [String]) throws {
        let error = try #require(Self.error(Self.single, arguments))
        #expect(error.code == .unexpectedArgument)
        #expect(error.argument == arguments.last)
    }

    @Test func doubleDashAloneEndsTheFlags() throws {
        #expect(try Self.values(Self.single, ["--endpoint", "/x", "--"]).string("endpoint") == "/x")
    }

    @Test func unknownSubcommandForHelp() {
        let error = Self.error(Self.go, ["help", "bogus"])
        #expect(error?.code == .unexpectedArgument)
        #expect(error?.message == "no subcommand 'bogus'; expected serve, inspect")
    }

    @Test func usageErrorText() throws {
        let error = try #require(Self.error(Self.go, ["inspect", "--output=yaml"]))
        #expect(
            Self.go.usageError(error) == """
                Error: the value 'yaml' is invalid for '--output <format>': expected one of text, json
                Help:  --output <format>  Format.
                Usage: registrar inspect [options]
                  See 'registrar inspect --help' for more information.

                """)
        #expect(
            Self.single.usageError("--endpoint: expected an absolute path, found 'b'") == """
                Error: --endpoint: expected an absolute path, found 'b'
                Usage: tool [options]
                  See 'tool --help' for more information.

                """)
        #expect(CommandLineError.exitStatus == 64)
    }

    @Test(arguments: [("kitten", "sitting", 3), ("", "abc", 3), ("endpoint", "endpoint", 0), ("endpont", "endpoint", 1)])
    func editDistance(a: String, b: String, distance: Int) {
        #expect(CommandLineProgram.editDistance(Array(a.utf8), Array(b.utf8)) == distance)
    }
}
