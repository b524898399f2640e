// Times H2's message compression (`GRPCCompression`, zlib underneath) on the files given:
// `deflate-bench LEVEL FILE...` prints one line per file: name, input bytes, compressed bytes (the
// `deflate` encoding: zlib framing), compress MB/s, decompress MB/s. A message that does not
// shrink is sent uncompressed, so for it the compressed size and the decompress speed are `-`.
// Benchmarks/Deflate/bench.py runs it beside Python's zlib on the same files, and beside another
// build of it (`--baseline`).
import H2
import RPCCore

#if canImport(Glibc)
import Glibc
#endif

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func readFile(_ path: String) -> [UInt8] {
    guard let f = fopen(path, "rb") else { fatalError("cannot open \(path)") }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return out
}

/// Seconds per run of `body`, the best of 5 batches lasting at least 50 ms each.
func time(_ body: () -> Void) -> Double {
    var runs = 1
    while true {
        let t = now()
        for _ in 0..<runs { body() }
        if now() - t > 0.05 { break }
        runs *= 2
    }
    var best = Double.infinity
    for _ in 0..<5 {
        let t = now()
        for _ in 0..<runs { body() }
        best = min(best, (now() - t) / Double(runs))
    }
    return best
}

let args = Array(CommandLine.arguments.dropFirst())
guard args.count >= 2, let level = Int(args[0]) else {
    print("usage: deflate-bench LEVEL FILE...")
    exit(64)
}
let encoding = GRPCCompression.deflate.level(level)
for path in args.dropFirst() {
    let data = readFile(path)
    var compressed: [UInt8]? = nil
    let tc = time { compressed = encoding.compress(data) }
    let mb = Double(data.count) / 1e6
    let name = path.split(separator: "/").last.map(String.init) ?? path
    guard let compressed else {
        print("\(name) \(data.count) - \(mb / tc) -")
        continue
    }
    guard (try? encoding.decompress(compressed, limit: data.count, peer: "deflate-bench")) == data else {
        fatalError("\(path): round trip failed")
    }
    let td = time { _ = try? encoding.decompress(compressed, limit: data.count, peer: "deflate-bench") }
    print("\(name) \(data.count) \(compressed.count) \(mb / tc) \(mb / td)")
}
