import Testing

@testable import Storage

/// What a thin pool may still promise: size × overprovision ratio − virtual sizes already in it;
/// nothing once its data or metadata is nearly full.
@Suite struct ThinPoolBudgetTests {
    let mib: UInt64 = 1 << 20

    func lv(
        _ name: String, vg: String = "vg0", size: UInt64, attributes: String = "Vwi-a-tz--", pool: String = "", origin: String = "",
        data: Double? = nil, metadata: Double? = nil
    ) -> LogicalVolume {
        LogicalVolume(
            name: name, volumeGroup: vg, uuid: "", sizeBytes: size, attributes: attributes, tags: [], origin: origin, pool: pool,
            dataPercent: data, healthStatus: "", segmentType: "thin", metadataPercent: metadata)
    }

    func pool(data: Double? = 10, metadata: Double? = 5) -> LogicalVolume {
        lv("pool0", size: 1024 * mib, attributes: "twi-aotz--", data: data, metadata: metadata)
    }

    /// Two thin volumes and a thin snapshot in pool0, and LVs that do not count.
    var volumes: [LogicalVolume] {
        [
            pool(),
            lv("a", size: 512 * mib, pool: "pool0"),
            lv("b", size: 768 * mib, pool: "pool0"),
            lv("snap-a", size: 512 * mib, attributes: "Vri---tz-k", pool: "pool0", origin: "a"),
            lv("thick", size: 4096 * mib, attributes: "-wi-a-----"),
            lv("elsewhere", size: 4096 * mib, pool: "pool1"),
            lv("other-vg", vg: "vg1", size: 4096 * mib, pool: "pool0"),
        ]
    }

    @Test func theRatioBoundsWhatIsPromisedNotWhatIsFree() {
        let budget = ThinPoolBudget(pool: pool(), logicalVolumes: volumes, ratio: 2)
        #expect(budget.limitBytes == 2048 * mib)
        #expect(budget.promisedBytes == 1792 * mib)
        #expect(budget.thinVolumes == 3)
        #expect(budget.availableBytes == 256 * mib)
        #expect(budget.refusal(adding: 256 * mib, for: "volume v") == nil)
        // With ratio 1, the pool is already over-committed: nothing is left.
        #expect(ThinPoolBudget(pool: pool(), logicalVolumes: volumes, ratio: 1).availableBytes == 0)
        // An empty pool offers its size × ratio, however little it has written.
        #expect(ThinPoolBudget(pool: pool(), logicalVolumes: [pool()], ratio: 1.5).availableBytes == 1536 * mib)
    }

    @Test func aRequestPastTheBudgetNamesPoolSizeRatioPromisedAndAsked() throws {
        let budget = ThinPoolBudget(pool: pool(), logicalVolumes: volumes, ratio: 2)
        let refusal = try #require(budget.refusal(adding: 256 * mib + 1, for: "volume pvc-1"))
        #expect(refusal.code == .insufficientCapacity)
        for part in ["thin pool vg0/pool0", "\(1024 * mib) bytes", "ratio 2.0", "\(1792 * mib) bytes are already promised", "\(256 * mib + 1) bytes requested for volume pvc-1"] {
            #expect(refusal.message.contains(part), "\(part) missing from: \(refusal.message)")
        }
    }

    @Test(arguments: [(95.0, 5.0, "data 95.0 %"), (20.0, 96.5, "metadata 96.5 %"), (99.0, 100.0, "data 99.0 % and metadata 100.0 %")])
    func aNearlyFullPoolOffersNothing(data: Double, metadata: Double, named: String) throws {
        let full = pool(data: data, metadata: metadata)
        let budget = ThinPoolBudget(pool: full, logicalVolumes: [full], ratio: 4)
        #expect(budget.availableBytes == 0)
        let refusal = try #require(budget.refusal(adding: 1, for: "volume pvc-2"))
        #expect(refusal.code == .insufficientCapacity)
        #expect(refusal.message.contains("thin pool vg0/pool0 is full: \(named) used"))
        #expect(refusal.message.contains("volume pvc-2"))
    }

    @Test func justBelowTheThresholdOrUnreportedUsageIsNotFull() {
        let busy = pool(data: 94.99, metadata: 94.99)
        #expect(ThinPoolBudget(pool: busy, logicalVolumes: [busy], ratio: 1).availableBytes == 1024 * mib)
        // An inactive pool (no device-mapper) reports no usage.
        let inactive = pool(data: nil, metadata: nil)
        #expect(ThinPoolBudget(pool: inactive, logicalVolumes: [inactive], ratio: 1).full == nil)
    }

    @Test func hugeRatiosAndSizesSaturate() {
        let budget = ThinPoolBudget(pool: pool(), logicalVolumes: [pool()], ratio: 1e300)
        #expect(budget.limitBytes == .max)
        let many = [pool(), lv("x", size: .max, pool: "pool0"), lv("y", size: .max, pool: "pool0")]
        #expect(ThinPoolBudget(pool: pool(), logicalVolumes: many, ratio: 2).promisedBytes == .max)
        #expect(ThinPoolBudget(pool: pool(), logicalVolumes: many, ratio: 2).availableBytes == 0)
    }
}
