// libFuzzer entry point for the Deflate module: every input is decoded as raw DEFLATE, zlib and
// gzip under a 1 MiB limit (errors are fine, traps and leaks are not), and compressed at three
// levels in each format, which must decode back to the input. Built and run by
// Tests/Fuzz/run-deflate.sh (`make fuzz-deflate`).
import Deflate

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    for format in [DeflateFormat.raw, .zlib, .gzip] {
        if let out = try? DeflateCodec.decompress(bytes, format: format, limit: 1 << 20) {
            // Whatever decodes must survive our own round trip.
            let again = DeflateCodec.compress(out, format: format, level: 6)
            guard (try? DeflateCodec.decompress(again, format: format, limit: out.count)) == out else {
                fatalError("re-encoding decoded \(format) data does not round-trip")
            }
        }
        for level in [0, 1, 6] {
            let c = DeflateCodec.compress(bytes, format: format, level: level)
            guard let d = try? DeflateCodec.decompress(c, format: format, limit: size), d.elementsEqual(bytes) else {
                fatalError("\(format) level \(level) does not round-trip \(size) bytes")
            }
        }
    }
    return 0
}
