import Platform
import Testing

@Suite struct LogTests {
    @Test func logLineStyles() {
        let fields = [("volume_id", "pvc-1"), ("secrets", "2")]
        let timestamped = StandardErrorLogSink(style: .timestamped(label: "csi-lvm-driver"))
        #expect(
            timestamped.line(level: .warning, message: "slow call", fields: fields, now: (1_795_000_000, 7_000_000))
                == "2026-11-18T11:06:40.007Z warning csi-lvm-driver: slow call volume_id=pvc-1 secrets=2\n")
        let klog = StandardErrorLogSink(style: .klog)
        #expect(klog.line(level: .info, message: "registered", fields: [], now: (59, 999_999_999)) == "I 00:00:59.999 registered\n")
        #expect(klog.line(level: .error, message: "x", fields: [], now: (0, 0)) == "E 00:00:00.000 x\n")
        #expect(klog.line(level: .debug, message: "x", fields: [], now: (0, 0)).hasPrefix("D "))
    }

    @Test func jsonLinesFollowTheKubernetesConvention() throws {
        let json = StandardErrorLogSink(style: .json)
        #expect(
            json.line(level: .info, message: "registered \"lvm\"\n", fields: [("socket", "/r/a.sock")], now: (1_795_000_000, 7_654_321))
                == "{\"ts\":1795000000.007654,\"msg\":\"registered \\\"lvm\\\"\\n\",\"v\":0,\"socket\":\"/r/a.sock\"}\n")
        #expect(json.line(level: .debug, message: "m", fields: [], now: (0, 0)) == "{\"ts\":0.000000,\"msg\":\"m\",\"v\":3}\n")
        #expect(json.line(level: .trace, message: "m", fields: [], now: (0, 0)).contains("\"v\":5}"))
        #expect(json.line(level: .warning, message: "m", fields: [], now: (0, 0)).contains("\"level\":\"warning\"}"))
        #expect(json.line(level: .critical, message: "m", fields: [], now: (0, 0)).contains("\"level\":\"error\"}"))
        // A field named like a reserved key does not overwrite it.
        let line = json.line(level: .error, message: "m", fields: [("msg", "x"), ("ts", "y")], now: (1, 0))
        let value = try JSON.parse(String(line.dropLast()))
        #expect(value["msg"] == .string("m") && value["field.msg"] == .string("x") && value["field.ts"] == .string("y"))
        #expect(value["v"] == nil && value["level"] == .string("error"))
        // Control characters are escaped: every record stays one line.
        #expect(json.line(level: .info, message: "a\u{1}b\r", fields: [], now: (0, 0)).filter { $0 == "\n" || $0 == "\r" }.count == 1)
    }

    @Test func loggingFormatChoosesTheStyle() {
        #expect(StandardErrorLogSink.Style.forFormat("text", text: .klog) == .klog)
        #expect(StandardErrorLogSink.Style.forFormat("json", text: .klog) == .json)
        #expect(StandardErrorLogSink.Style.forFormat("yaml", text: .klog) == nil)
    }
}
