// A loopback TCP client for the tests of servers that speak HTTP/1.1.
import Glibc

/// A connection to 127.0.0.1:`port`, or -1 when it cannot be made; the caller closes it.
package func connectLoopback(port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else {
        close(fd)
        return -1
    }
    return fd
}

/// Sends `parts` to 127.0.0.1:`port`, `pauseMicroseconds` apart, and returns everything the server
/// sends back until it closes; blocks, so call it from a thread of its own (Platform's `offload`).
package func loopbackExchange(port: Int, _ parts: [String], pauseMicroseconds: UInt32 = 0) -> String {
    let fd = connectLoopback(port: port)
    guard fd >= 0 else { return "connect failed" }
    defer { close(fd) }
    for (i, part) in parts.enumerated() {
        if i > 0 { usleep(pauseMicroseconds) }
        _ = part.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { break }
        response += buffer[0..<n]
    }
    return String(decoding: response, as: UTF8.self)
}
