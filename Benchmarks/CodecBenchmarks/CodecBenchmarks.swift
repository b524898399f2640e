// The codec workloads under package-benchmark, for what codec-bench does not count: allocations
// per encode/decode (through the malloc interposer) and the spread of single-call times.
//   cd Benchmarks && swift package --disable-sandbox benchmark --target CodecBenchmarks
import Benchmark
import CodecWorkloads

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal],
        warmupIterations: 100,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: .kilo(100)
    )
    let peer = SwiftProtobufCodec.sample()
    let peerBytes = SwiftProtobufCodec.encode(peer)

    let ours = ProtoWireCodec.sample()

    Benchmark("ProtoWire encode NodePublishVolumeRequest") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(ProtoWireCodec.encode(ours)) }
    }
    Benchmark("ProtoWire decode NodePublishVolumeRequest") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(ProtoWireCodec.decode(peerBytes)) }
    }
    Benchmark("swift-protobuf encode NodePublishVolumeRequest") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(SwiftProtobufCodec.encode(peer)) }
    }
    Benchmark("swift-protobuf decode NodePublishVolumeRequest") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(SwiftProtobufCodec.decode(peerBytes)) }
    }
}
