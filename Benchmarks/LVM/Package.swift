// swift-tools-version: 6.1
// LVM latency benchmark: in-process liblvm2cmd (Storage.LVMBackend) against the `lvm` executable
// with JSON reports, and cached against uncached reads. Run it with `sudo Benchmarks/LVM/run.sh`.
import PackageDescription

let package = Package(
    name: "lvm-bench",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "swift-csi", path: "../..")],
    targets: [
        .executableTarget(
            name: "lvm-bench",
            dependencies: [.product(name: "Storage", package: "swift-csi")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
