// Measures, on one volume group:
//  1. CreateVolume + DeleteVolume latency: Storage.LVMBackend (in-process liblvm2cmd) against running
//     the `lvm` executable the way lvm-localpv and TopoLVM do (lvcreate, lvs --reportformat json to
//     read the result back; lvs to find the volume, lvremove);
//  2. read calls: LVMBackend.capacity from its cache, the same with the cache disabled (one LVM scan
//     per call, in-process), and `lvm vgs --reportformat json` as a subprocess.
// Usage: lvm-bench <volume-group> [iterations] [physical-volume]
// With a physical volume, LVMBackend restricts LVM's device scan to it (Configuration.scanDevices).
import Foundation
import Storage

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: lvm-bench <volume-group> [iterations]\n".utf8))
    exit(2)
}
let vg = arguments[1]
let iterations = arguments.count > 2 ? Int(arguments[2]) ?? 20 : 20
let scanDevices = arguments.count > 3 ? [arguments[3]] : nil
let noDeviceMapper = open("/dev/mapper/control", O_RDWR) < 0

/// Runs the lvm executable and returns its standard output; exits on failure.
@discardableResult
func lvm(_ args: [String]) -> Data {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/sbin/lvm")
    var all = args
    if noDeviceMapper { all.insert(contentsOf: ["--driverloaded", "n"], at: 1) }
    process.arguments = all
    var environment = ProcessInfo.processInfo.environment
    environment["LVM_SUPPRESS_FD_WARNINGS"] = "1"
    process.environment = environment
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle(forWritingAtPath: "/dev/null")
    do { try process.run() } catch { fatalError("cannot run lvm: \(error)") }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { fatalError("lvm \(all.joined(separator: " ")) exited with \(process.terminationStatus)") }
    return data
}

func milliseconds(_ d: Duration) -> Double { Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15 }

func report(_ label: String, _ samples: [Duration]) {
    let ms = samples.map(milliseconds).sorted()
    let median = ms[ms.count / 2]
    let mean = ms.reduce(0, +) / Double(ms.count)
    print(String(format: "%-58@ median %8.3f ms   mean %8.3f ms   (n=%d)", label as NSString, median, mean, ms.count))
}

let clock = ContinuousClock()
let backend = try LVMBackend(configuration: .init(driverName: "bench.csi.swift-csi.io", volumeGroup: vg, scanDevices: scanDevices))
let uncached = try LVMBackend(
    configuration: .init(driverName: "bench.csi.swift-csi.io", volumeGroup: vg, cacheMaximumAge: .zero, scanDevices: scanDevices))
_ = try await backend.capacity(parameters: [:])  // lvm2_init, first scan

print(
    "volume group \(vg); device-mapper \(noDeviceMapper ? "absent (--driverloaded n)" : "present"); LVM scans \(scanDevices?.joined(separator: ", ") ?? "every device")"
)

// 1. Create + delete.
var inProcess: [Duration] = []
for i in 0..<iterations {
    let name = "bench-in-\(i)"
    inProcess.append(
        try await clock.measure {
            _ = try await backend.createVolume(VolumeRequest(name: name, requiredBytes: 4 << 20))
            try await backend.deleteVolume(id: name)
        })
}
var subprocess: [Duration] = []
for i in 0..<iterations {
    let name = "bench-sub-\(i)"
    subprocess.append(
        clock.measure {
            let activation = noDeviceMapper ? ["-an", "-Zn"] : ["-ay", "-y"]
            lvm(["lvcreate"] + activation + ["-L", "4194304b", "-n", name, "--addtag", "csi.swift-csi.io/owner=bench", vg])
            lvm(["lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "lv_name,lv_size,lv_tags", "\(vg)/\(name)"])
            lvm(["lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "lv_name,lv_size,lv_tags", "\(vg)/\(name)"])
            lvm(["lvremove", "-f", "\(vg)/\(name)"])
        })
}
report("create+delete, in-process (LVMBackend)", inProcess)
report("create+delete, lvm executable + JSON (4 runs)", subprocess)
let ratio = milliseconds(subprocess.sorted()[subprocess.count / 2]) / milliseconds(inProcess.sorted()[inProcess.count / 2])
print(String(format: "  -> in-process is %.1fx faster", ratio))

// 2. Reads.
let reads = iterations * 50
var cached: [Duration] = []
for _ in 0..<reads { cached.append(try await clock.measure { _ = try await backend.capacity(parameters: [:]) }) }
var scanned: [Duration] = []
for _ in 0..<iterations { scanned.append(try await clock.measure { _ = try await uncached.capacity(parameters: [:]) }) }
var external: [Duration] = []
for _ in 0..<iterations {
    external.append(clock.measure { lvm(["vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "vg_name,vg_free", vg]) })
}
report("capacity, cached (LVMBackend)", cached)
report("capacity, uncached: vgs+lvs in-process per call", scanned)
report("capacity, lvm vgs JSON subprocess per call", external)
let cachedMedian = milliseconds(cached.sorted()[cached.count / 2])
print(
    String(
        format: "  -> cached is %.0fx faster than an in-process scan, %.0fx faster than a subprocess scan",
        milliseconds(scanned.sorted()[scanned.count / 2]) / cachedMedian, milliseconds(external.sorted()[external.count / 2]) / cachedMedian
    ))
var listed: [Duration] = []
for _ in 0..<reads { listed.append(try await clock.measure { _ = try await backend.listVolumes() }) }
report("listVolumes, cached (LVMBackend)", listed)
