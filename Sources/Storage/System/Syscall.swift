import Glibc
import Platform

/// Platform's ``systemCall(_:_:_:)`` with a failure turned into a ``StorageError`` naming the call,
/// the object and errno, its code from errno unless `code` is given.
@discardableResult
func syscall<T: FixedWidthInteger & SignedInteger>(
    _ name: StaticString, _ object: @autoclosure () -> String, code: StorageError.Code? = nil,
    _ body: () -> T
) throws(StorageError) -> T {
    do throws(SystemError) {
        return try systemCall("\(name)", object(), body)
    } catch {
        throw StorageError(code ?? errnoCode(error.errno), "\(error.call)(\(error.subject)) failed: \(errnoText(error.errno))")
    }
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
