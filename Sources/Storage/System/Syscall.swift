import Glibc

/// The one helper through which the module makes system calls: retries `EINTR` and turns a failure
/// into a ``StorageError`` naming the call, the object and errno.
@discardableResult
func syscall<T: FixedWidthInteger>(
    _ name: StaticString, _ object: @autoclosure () -> String, code: StorageError.Code? = nil,
    _ body: () -> T
) throws(StorageError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let err = errno
        if err == EINTR { continue }
        throw StorageError(code ?? errnoCode(err), "\(name)(\(object())) failed: \(errnoText(err))")
    }
}

/// The text of an errno value, `"No such file or directory (errno 2)"`.
func errnoText(_ err: Int32) -> String {
    String(cString: strerror(err)) + " (errno \(err))"
}

/// The error code an errno value maps to.
func errnoCode(_ err: Int32) -> StorageError.Code {
    switch err {
    case ENOENT, ENXIO, ENODEV: .notFound
    case EEXIST: .alreadyExists
    case EBUSY: .busy
    case ENOSPC, EDQUOT: .insufficientCapacity
    case EINVAL, ENOTDIR, ENAMETOOLONG: .invalidArgument
    case ENOTSUP, ENOSYS, ENOTTY: .unsupported
    default: .failed
    }
}

/// Runs blocking work on a thread outside the caller's executor and resumes the caller with its
/// result, so that `await`ing it never blocks a cooperative thread.
@discardableResult
func offload<T: Sendable>(_ work: @escaping @Sendable () throws(StorageError) -> T) async throws(StorageError) -> T {
    let result: Result<T, StorageError> = await withCheckedContinuation { continuation in
        BlockingPool.shared.submit {
            do throws(StorageError) { continuation.resume(returning: .success(try work())) } catch {
                continuation.resume(returning: .failure(error))
            }
        }
    }
    return try result.get()
}
