// Thread names and polling, shared by the Swift test targets.
import Glibc

/// The name of the calling thread, from /proc.
package func callingThreadName() -> String { threadName(comm: "/proc/thread-self/comm") ?? "?" }

/// The thread name in the /proc `comm` file at `path`, or nil when it cannot be read.
private func threadName(comm path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 32)
    let n = read(fd, &buffer, buffer.count)
    return String(decoding: buffer.prefix(max(0, n)).prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
}

/// How many threads of this process carry `name`, from /proc/self/task.
package func threadsNamed(_ name: String) -> Int {
    guard let dir = opendir("/proc/self/task") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while let entry = readdir(dir) {
        let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard tid.first?.isNumber == true else { continue }
        // nil: the thread has just exited.
        if threadName(comm: "/proc/self/task/\(tid)/comm") == name { count += 1 }
    }
    return count
}

/// Polls `condition` every 10 ms for up to `seconds`; returns whether it came true.
package func eventually(_ seconds: Double = 10, _ condition: () -> Bool) async -> Bool {
    let rounds = Int(seconds * 100)
    for _ in 0..<rounds {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
