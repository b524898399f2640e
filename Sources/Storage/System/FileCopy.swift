import Glibc

/// Copies `bytes` bytes from the start of `source` to the start of `destination` (files or block
/// devices) in 1 MiB chunks. With `sparse`, all-zero chunks are skipped instead of written, so a
/// file destination keeps holes; use it only when the destination reads as zeros beforehand.
func copyData(from source: String, to destination: String, bytes: UInt64, sparse: Bool) throws(StorageError) {
    let input = try syscall("open", source) { open(source, O_RDONLY | O_CLOEXEC) }
    defer { close(input) }
    let output = try syscall("open", destination) { open(destination, O_WRONLY | O_CLOEXEC) }
    defer { close(output) }
    let chunk = 1 << 20
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
    defer { buffer.deallocate() }
    var offset: UInt64 = 0
    // With `sparse`, the current data segment of the source ends here; 0 = look up the next one.
    var segmentEnd: UInt64 = sparse ? 0 : bytes
    while offset < bytes {
        if offset >= segmentEnd {
            // Skip holes of a sparse source without reading them (SEEK_DATA/SEEK_HOLE).
            let data = lseek(input, off_t(offset), 3 /* SEEK_DATA */)
            if data < 0 {
                if errno == ENXIO { break }  // only a hole remains
                segmentEnd = bytes  // the filesystem cannot tell: read everything
            } else {
                offset = UInt64(data)
                let hole = lseek(input, data, 4 /* SEEK_HOLE */)
                segmentEnd = hole < 0 ? bytes : min(bytes, UInt64(hole))
                if offset >= bytes { break }
            }
        }
        let want = Int(min(UInt64(chunk), min(bytes, segmentEnd) - offset))
        let got = try syscall("pread", source) { pread(input, buffer.baseAddress, want, off_t(offset)) }
        if got == 0 { break }
        let isZero = sparse && UnsafeRawBufferPointer(rebasing: buffer[..<got]).allSatisfy { $0 == 0 }
        if !isZero {
            var written = 0
            while written < got {
                let n = try syscall("pwrite", destination) {
                    pwrite(output, buffer.baseAddress! + written, got - written, off_t(offset) + off_t(written))
                }
                written += n
            }
        }
        offset += UInt64(got)
    }
    _ = try syscall("fsync", destination) { fsync(output) }
}
