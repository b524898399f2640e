internal import Glibc
internal import Prometheus

/// Prometheus' standard process metrics, read from `/proc/self` when the registry is exposed:
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
/// `process_max_fds`, `process_start_time_seconds`, `process_cpu_seconds_total`, and
/// `process_threads` (the process's threads; Go's clients name theirs `go_threads`).
final class ProcessMetrics: Sendable {
    private let resident: Gauge
    private let virtual: Gauge
    private let openFDs: Gauge
    private let maxFDs: Gauge
    private let startTime: Gauge
    private let cpu: Gauge
    private let threads: Gauge

    init(registry: PrometheusCollectorRegistry) {
        func gauge(_ name: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: MetricsRegistry.descriptor(name, help))
        }
        resident = gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
        virtual = gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")
        openFDs = gauge("process_open_fds", "Number of open file descriptors.")
        maxFDs = gauge("process_max_fds", "Maximum number of open file descriptors.")
        startTime = gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")
        // A gauge that only grows: the registry's counters can only be incremented, and this is read whole.
        cpu = gauge("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
        threads = gauge("process_threads", "Number of OS threads in the process.")
    }

    /// Reads `/proc/self` and sets every gauge it could read.
    func update() {
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        if let statm = Self.read("/proc/self/statm")?.split(separator: " "), statm.count >= 2,
            let size = Double(statm[0]), let rss = Double(statm[1])
        {
            virtual.set(to: size * page)
            resident.set(to: rss * page)
        }
        openFDs.set(to: Double(Self.count("/proc/self/fd")))
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFDs.set(to: Double(limit.rlim_cur)) }
        // /proc/self/stat: the fields after the command's closing parenthesis; utime, stime (14, 15),
        // num_threads (20) and starttime (22, in clock ticks since boot) counted from 1.
        if let stat = Self.read("/proc/self/stat"), let close = stat.lastIndex(of: ")") {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            func field(_ number: Int) -> Double? { fields.indices.contains(number - 3) ? Double(fields[number - 3]) : nil }
            if let user = field(14), let system = field(15) { cpu.set(to: (user + system) / ticks) }
            if let count = field(20) { threads.set(to: count) }
            if let start = field(22), let boot = Self.bootTime() { startTime.set(to: boot + start / ticks) }
        }
    }

    /// `btime` from `/proc/stat`: when the machine booted, in seconds since the epoch.
    static func bootTime() -> Double? {
        guard let text = read("/proc/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst("btime ".count))
        }
        return nil
    }

    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Entries of a directory, `.` and `..` left out (the descriptor reading it counts: Prometheus'
    /// Go client counts it too).
    static func count(_ path: String) -> Int {
        guard let dir = opendir(path) else { return 0 }
        defer { closedir(dir) }
        var n = 0
        while let entry = readdir(dir) {
            let dot = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] == UInt8(ascii: ".") }
            if !dot { n += 1 }
        }
        return n
    }
}
