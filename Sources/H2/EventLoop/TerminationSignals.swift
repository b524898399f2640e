#if canImport(Glibc)
import Glibc
#endif
package import Platform

/// Where the SIGTERM/SIGINT handler writes; set before the handler is installed, never changed after.
nonisolated(unsafe) private var terminationSignalFD: Int32 = -1

/// SIGTERM and SIGINT caught from the moment this is made: the handler (async-signal-safe) writes the
/// signal number to a pipe that ``wait()`` watches on the process-wide event loop, so a signal is
/// never lost nor takes its default action, and no thread sits waiting for one.
package final class TerminationSignals: Sendable {
    private let readFD: Int32

    /// Installs the handlers (once per process; a second instance shares the first one's pipe).
    /// - Throws: ``SystemError`` when the pipe cannot be made.
    package init() throws(SystemError) {
        if terminationSignalFD >= 0 {
            // Installed already (a second driver or registrar in this process): share the pipe.
            readFD = -1
            return
        }
        var fds: [Int32] = [0, 0]
        try systemCall("pipe", "termination signals") { pipe(&fds) }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        }
        readFD = fds[0]
        terminationSignalFD = fds[1]
        for number in [SIGTERM, SIGINT] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(terminationSignalFD, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = Int32(SA_RESTART)
            sigaction(number, &action, nil)
        }
    }

    /// Suspends until SIGTERM or SIGINT arrives and returns its name ("cancellation" when cancelled).
    package func wait() async -> String {
        guard readFD >= 0 else {
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            return "cancellation"
        }
        while true {
            var byte: UInt8 = 0
            let n = read(readFD, &byte, 1)
            if n == 1 {
                switch Int32(byte) {
                case SIGTERM: return "SIGTERM"
                case SIGINT: return "SIGINT"
                default: continue
                }
            }
            if n < 0 && errno == EINTR { continue }
            guard n < 0 && errno == EAGAIN else { return "cancellation" }
            if await DescriptorWait.readable(readFD, timeout: nil) == .cancelled { return "cancellation" }
        }
    }
}
