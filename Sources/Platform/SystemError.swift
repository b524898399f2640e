#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: the call's name, `errno`, and what it was operating on.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    /// The system call that failed, for example `connect`.
    public var call: String
    /// The `errno` value it reported.
    public var errno: Int32
    /// What the call was operating on, for example a socket path.
    public var subject: String

    /// Creates an error.
    public init(call: String, errno: Int32, subject: String = "") {
        self.call = call
        self.errno = errno
        self.subject = subject
    }

    /// `strerror(errno)`.
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String {
        subject.isEmpty ? "\(call): \(errnoText(errno))" : "\(call) \(subject): \(errnoText(errno))"
    }
}

/// The text of an errno value, `"No such file or directory (errno 2)"`.
package func errnoText(_ err: Int32) -> String {
    String(cString: strerror(err)) + " (errno \(err))"
}

/// The outcome of a non-blocking I/O call.
package enum IOResult<T> {
    case done(T)
    case wouldBlock
}

/// The one helper through which the package makes system calls: `body` runs again while it fails
/// with `EINTR`; any other failure (a negative result) is thrown as a ``SystemError`` naming the
/// call, `subject` (evaluated only then) and errno.
@inline(__always)
@discardableResult
package func systemCall<T: FixedWidthInteger & SignedInteger>(
    _ call: String, _ subject: @autoclosure () -> String = "", _ body: () -> T
) throws(SystemError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let err = Glibc.errno
        if err == EINTR { continue }
        throw SystemError(call: call, errno: err, subject: subject())
    }
}

/// ``systemCall(_:_:_:)`` for a call on a non-blocking descriptor: `EAGAIN` is
/// ``IOResult/wouldBlock`` instead of an error.
@inline(__always)
package func nonBlockingSystemCall<T: FixedWidthInteger & SignedInteger>(
    _ call: String, _ subject: @autoclosure () -> String = "", _ body: () -> T
) throws(SystemError) -> IOResult<T> {
    while true {
        let result = body()
        if result >= 0 { return .done(result) }
        let err = Glibc.errno
        if err == EINTR { continue }
        if err == EAGAIN || err == EWOULDBLOCK { return .wouldBlock }
        throw SystemError(call: call, errno: err, subject: subject())
    }
}
