#if canImport(Glibc)
package import Glibc
#endif
import CPlatform

/// Starts a thread running `body`; a detached one frees itself when `body` returns, another is
/// waited for with `pthread_join`.
@discardableResult
package func spawnThread(detached: Bool, _ body: @escaping () -> Void) throws(SystemError) -> pthread_t {
    final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }
    let box = Unmanaged.passRetained(Body(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, box)
    guard rc == 0 else {
        Unmanaged<Body>.fromOpaque(box).release()
        throw SystemError(call: "pthread_create", errno: rc)
    }
    if detached { pthread_detach(thread) }
    return thread
}

/// Names the calling thread; the first 15 bytes show in `/proc`.
package func setCurrentThreadName(_ name: String) {
    platform_set_thread_name(String(name.prefix(15)))
}

/// Monotonic nanoseconds (`CLOCK_MONOTONIC`).
@inline(__always)
package func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

extension Duration {
    /// The duration in whole nanoseconds (a fraction dropped), clamped to `Int`'s range.
    package var wholeNanoseconds: Int {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (total, carry) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow || carry { return seconds < 0 ? .min : .max }
        return Int(total)
    }
}
