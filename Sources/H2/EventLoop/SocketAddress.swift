#if canImport(Glibc)
import Glibc
#endif
import Platform

/// Where a server listens or a client connects: a Unix socket path or a TCP host and port.
enum SocketAddress: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: UInt16)

    /// Parses `unix:///abs/path`, `unix:relative/path`, a plain path, or `host:port` (`[v6]:port`).
    static func parse(_ target: String) throws(SocketAddressError) -> SocketAddress {
        if target.hasPrefix("unix://") {
            let path = String(target.dropFirst("unix://".count))
            guard !path.isEmpty else { throw SocketAddressError(target: target, reason: "the path is empty") }
            return .unix(path: path)
        }
        if target.hasPrefix("unix:") {
            let path = String(target.dropFirst("unix:".count))
            guard !path.isEmpty else { throw SocketAddressError(target: target, reason: "the path is empty") }
            return .unix(path: path)
        }
        if target.contains("/") || !target.contains(":") {
            guard !target.isEmpty else { throw SocketAddressError(target: target, reason: "the address is empty") }
            return .unix(path: target)
        }
        var t = Substring(target)
        if t.hasPrefix("dns:///") { t = t.dropFirst("dns:///".count) }
        guard let colon = t.lastIndex(of: ":") else { throw SocketAddressError(target: target, reason: "expected host:port") }
        var host = String(t[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let port = UInt16(t[t.index(after: colon)...]) else {
            throw SocketAddressError(target: target, reason: "the port is not a number from 0 to 65535")
        }
        return .tcp(host: host.isEmpty ? "127.0.0.1" : host, port: port)
    }

    var description: String {
        switch self {
        case .unix(let path): return path.hasPrefix("/") ? "unix://\(path)" : "unix:\(path)"
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    var family: Int32 {
        switch self {
        case .unix: return AF_UNIX
        case .tcp(let host, _): return host.contains(":") ? AF_INET6 : AF_INET
        }
    }

    /// Calls `body` with this address as a `sockaddr`.
    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws(SystemError) -> R) throws(SystemError) -> R {
        switch self {
        case .unix(let path):
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            let capacity = MemoryLayout.size(ofValue: addr.sun_path)
            guard bytes.count < capacity else {
                throw SystemError(call: "bind/connect", errno: ENAMETOOLONG, subject: description)
            }
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
            return try withUnsafePointer(to: &addr) { p throws(SystemError) in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp throws(SystemError) in try body(sp, len) }
            }
        case .tcp(let host, let port):
            let name = host == "localhost" ? "127.0.0.1" : host
            if name.contains(":") {
                var addr = sockaddr_in6()
                addr.sin6_family = sa_family_t(AF_INET6)
                addr.sin6_port = port.bigEndian
                guard inet_pton(AF_INET6, name, &addr.sin6_addr) == 1 else {
                    throw SystemError(call: "inet_pton", errno: EINVAL, subject: description)
                }
                return try withUnsafePointer(to: &addr) { p throws(SystemError) in
                    try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp throws(SystemError) in
                        try body(sp, socklen_t(MemoryLayout<sockaddr_in6>.size))
                    }
                }
            }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = port.bigEndian
            guard inet_pton(AF_INET, name, &addr.sin_addr) == 1 else {
                throw SystemError(call: "inet_pton", errno: EINVAL, subject: description)
            }
            return try withUnsafePointer(to: &addr) { p throws(SystemError) in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp throws(SystemError) in
                    try body(sp, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }
}

/// A target or listen address that cannot be parsed.
struct SocketAddressError: Error, Sendable, CustomStringConvertible {
    var target: String
    var reason: String
    var description: String { "invalid address \"\(target)\": \(reason)" }
}
