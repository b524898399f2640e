import Glibc
import Synchronization
import Platform

private let spawnLock = Mutex(())

/// A finished program run.
struct ProcessResult: Sendable {
    var status: Int32
    var output: String
    var error: String
}

/// Runs a program with an argument vector (never a shell) through `posix_spawn`, capturing its
/// standard output and error. Blocks; call it from ``offload(_:)``.
///
/// `input`, when given, is written to the program's standard input through a pipe and the pipe
/// closed: how secrets (a LUKS passphrase) reach a program without touching its command line,
/// its environment or a file. It must fit in the pipe's buffer (64 KiB); standard input is
/// `/dev/null` otherwise.
/// - Throws: `.notFound` when the program cannot be started.
func runProgram(
    _ program: String, _ arguments: [String], environment: [String: String] = [:], input: [UInt8]? = nil
) throws(StorageError) -> ProcessResult {
    var outPipe: [Int32] = [0, 0]
    var errPipe: [Int32] = [0, 0]
    var inPipe: [Int32] = [-1, -1]
    // pipe2 is not visible from Swift here: pipe + FD_CLOEXEC and spawning happen under one lock,
    // so no concurrently spawned child inherits another run's pipe ends.
    try spawnLock.withLock { (_: inout ()) throws(StorageError) in
        _ = try syscall("pipe", program) { pipe(&outPipe) }
        _ = try syscall("pipe", program) { pipe(&errPipe) }
        if input != nil { _ = try syscall("pipe", program) { pipe(&inPipe) } }
        for fd in outPipe + errPipe + inPipe where fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if input != nil {
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
    } else {
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    }
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)

    var env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "LVM_SUPPRESS_FD_WARNINGS=1"]
    for (key, value) in environment { env.append(key + "=" + value) }
    let argv = ([program] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup($0) } + [nil]
    defer {
        for p in argv { free(p) }
        for p in envp { free(p) }
    }
    var pid: pid_t = 0
    let rc = spawnLock.withLock { _ in posix_spawnp(&pid, program, &actions, nil, argv, envp) }
    close(outPipe[1])
    close(errPipe[1])
    if inPipe[0] >= 0 { close(inPipe[0]) }
    if inPipe[1] >= 0 {
        // The child has its end; write the input and close ours so it sees end of file. A child
        // that exits without reading makes this EPIPE (SIGPIPE is ignored by the executables).
        if rc == 0, let input {
            var written = 0
            while written < input.count {
                let n = input.withUnsafeBytes { write(inPipe[1], $0.baseAddress! + written, $0.count - written) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                written += n
            }
        }
        close(inPipe[1])
    }
    defer {
        close(outPipe[0])
        close(errPipe[0])
    }
    guard rc == 0 else {
        throw StorageError(
            rc == ENOENT ? .notFound : .failed, "cannot start \(program): \(errnoText(rc))",
            command: ([program] + arguments).joined(separator: " "))
    }
    // Drain both pipes without deadlocking on a full one.
    var output: [UInt8] = []
    var error: [UInt8] = []
    var fds = [pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0), pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0)]
    var open = 2
    var chunk = [UInt8](repeating: 0, count: 16384)
    while open > 0 {
        if poll(&fds, 2, -1) < 0 {
            if errno == EINTR { continue }
            break
        }
        for i in 0..<2 where fds[i].fd >= 0 && fds[i].revents != 0 {
            let n = chunk.withUnsafeMutableBytes { read(fds[i].fd, $0.baseAddress, $0.count) }
            if n > 0 {
                if i == 0 { output += chunk[0..<n] } else { error += chunk[0..<n] }
            } else if n == 0 || errno != EINTR {
                fds[i].fd = -1
                open -= 1
            }
        }
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exit: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return ProcessResult(status: exit, output: String(decoding: output, as: UTF8.self), error: String(decoding: error, as: UTF8.self))
}

/// Runs a program and throws when it exits with anything but 0, quoting its error output.
@discardableResult
func runChecked(
    _ program: String, _ arguments: [String], code: StorageError.Code = .failed, what: String, input: [UInt8]? = nil
) throws(StorageError) -> ProcessResult {
    let result = try runProgram(program, arguments, input: input)
    guard result.status == 0 else {
        let lines = (result.error + result.output).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        throw StorageError(
            code, "\(what): \(program) exited with status \(result.status)" + (lines.first.map { ": " + $0 } ?? ""),
            command: ([program] + arguments).joined(separator: " "), details: lines)
    }
    return result
}
