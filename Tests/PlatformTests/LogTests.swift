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
}
