// libFuzzer entry point for H2's message decompression (GRPCCompression over zlib): every input is
// decoded as a `gzip` and a `deflate` message under a 64 KiB limit, directly and as one compressed
// message through GRPCMessageDeframer fed in two chunks (errors are fine, traps and leaks are not).
// What decodes must decode the same under a limit of exactly its size, be RESOURCE_EXHAUSTED one
// byte under it, and survive a round trip; compressing the input at three levels must round-trip
// too. Built and run by Tests/Fuzz/run-deflate.sh (`make fuzz-deflate`).
import H2
import RPCCore

let limit = 1 << 16

func expand(_ encoding: GRPCCompression, _ bytes: [UInt8], limit: Int) throws(RPCError) -> [UInt8] {
    try encoding.decompress(bytes, limit: limit, peer: "the fuzzer")
}

/// Feeds `part` to `deframer`; the error it throws, if any.
func feed(_ deframer: inout GRPCMessageDeframer, _ part: ArraySlice<UInt8>, _ onMessage: ([UInt8]) -> Void) -> RPCError? {
    part.withUnsafeBytes { chunk -> RPCError? in
        do throws(RPCError) {
            try deframer.process(chunk, onMessage)
            return nil
        } catch {
            return error
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for encoding in [GRPCCompression.gzip, .deflate] {
        do {
            let out = try expand(encoding, bytes, limit: limit)
            guard (try? expand(encoding, bytes, limit: out.count)) == out else {
                fatalError("\(encoding) data of \(size) bytes does not decode the same under a limit of its \(out.count) bytes")
            }
            if !out.isEmpty {
                do {
                    _ = try expand(encoding, bytes, limit: out.count - 1)
                    fatalError("\(encoding) data decoding to \(out.count) bytes passes a limit of \(out.count - 1)")
                } catch {
                    guard error.code == .resourceExhausted else { fatalError("one byte over the limit gives \(error)") }
                }
            }
            if let again = encoding.compress(out) {
                guard (try? expand(encoding, again, limit: out.count)) == out else {
                    fatalError("re-encoding decoded \(encoding) data does not round-trip")
                }
            }
        } catch {
            guard error.code == .internalError || error.code == .resourceExhausted else { fatalError("unexpected \(error)") }
            guard error.message.hasPrefix("\(encoding.name)-compressed message from the fuzzer ") else {
                fatalError("the error does not name the encoding and the peer: \(error.message)")
            }
        }

        // The same bytes as one compressed message, split where the first byte says.
        var deframer = GRPCMessageDeframer(maxMessageSize: limit, compression: encoding)
        let n = UInt32(truncatingIfNeeded: size)
        let frame: [UInt8] = [1, UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + bytes
        let cut = min(frame.count, Int(bytes.first ?? 0))
        var messages = 0
        for part in [frame[0..<cut], frame[cut...]] {
            guard let error = feed(&deframer, part, { _ in messages += 1 }) else { continue }
            guard error.code == .internalError || error.code == .resourceExhausted else { fatalError("deframer: unexpected \(error)") }
            break
        }
        guard messages <= 1 else { fatalError("one frame gave \(messages) messages") }

        for level in [1, 6, 9] {
            guard let c = encoding.level(level).compress(bytes) else { continue }
            guard c.count < size, (try? expand(encoding, c, limit: size)) == bytes else {
                fatalError("\(encoding) level \(level) does not round-trip \(size) bytes")
            }
        }
    }
    return 0
}
