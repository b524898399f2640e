internal import Glibc
internal import Platform

/// Where the SIGTERM/SIGINT handler writes; set before the handler is installed, never changed after.
nonisolated(unsafe) private var terminationSignalFD: Int32 = -1

/// SIGTERM and SIGINT caught from the moment this is made: the handler (async-signal-safe) writes the
/// signal number to a pipe that ``wait()`` reads, so a signal is never lost nor takes its default action.
final class TerminationSignals: Sendable {
    private let readFD: Int32
    private let writeFD: Int32

    init() throws(RegistrarError) {
        if terminationSignalFD >= 0 {
            // Installed already (a second driver or registrar in this process): share the pipe.
            readFD = -1
            writeFD = terminationSignalFD
            return
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw PathInspection.systemError("pipe", "termination signals") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        readFD = fds[0]
        writeFD = fds[1]
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
    func wait() async -> String {
        let readFD = readFD, writeFD = writeFD
        guard readFD >= 0 else {
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            return "cancellation"
        }
        return await withTaskCancellationHandler {
            await offload {
                var byte: UInt8 = 0
                while true {
                    let n = read(readFD, &byte, 1)
                    if n < 0 && errno == EINTR { continue }
                    break
                }
                switch Int32(byte) {
                case SIGTERM: return "SIGTERM"
                case SIGINT: return "SIGINT"
                default: return "cancellation"
                }
            }
        } onCancel: {
            var zero: UInt8 = 0
            _ = write(writeFD, &zero, 1)
        }
    }
}
