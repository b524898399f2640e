import Testing

@testable import Storage

/// A thin volume's condition follows its thin pool: `lvs` rows in, VolumeCondition out.
struct LVMConditionTests {
    let thin = LogicalVolume(
        name: "pvc-1", volumeGroup: "vg", uuid: "", sizeBytes: 96 << 20, attributes: "Vwi-aotz--", tags: [], origin: "",
        pool: "tinypool", dataPercent: 66.7, healthStatus: "", segmentType: "thin")
    let pool = LogicalVolume(
        name: "tinypool", volumeGroup: "vg", uuid: "", sizeBytes: 64 << 20, attributes: "twi-aotz--", tags: [], origin: "",
        pool: "", dataPercent: 40, healthStatus: "", segmentType: "thin-pool", metadataPercent: 10)

    func pool(attributes: String? = nil, data: Double? = nil, metadata: Double? = nil, health: String = "") -> LogicalVolume {
        var lv = pool
        if let attributes { lv.attributes = attributes }
        if let data { lv.dataPercent = data }
        if let metadata { lv.metadataPercent = metadata }
        lv.healthStatus = health
        return lv
    }

    @Test func aHealthyPoolKeepsItsVolumesHealthy() {
        #expect(thin.condition(in: nil, pool: pool) == .healthy)
        // 95 % refuses new volumes (ThinPoolBudget) but still takes writes.
        #expect(thin.condition(in: nil, pool: pool(data: 99.9, metadata: 99.9)) == .healthy)
        #expect(pool.thinPoolProblems == nil)
    }

    @Test(arguments: [
        ("twi-aotzD-", nil, nil, "out of data space"),
        ("twi-aotzM-", nil, nil, "read-only metadata"),
        ("twi-aotzF-", nil, nil, "failed"),
        ("twi-aotz--", 100.0, nil, "data 100.0 % used"),
        ("twi-aotz--", nil, 100.0, "metadata 100.0 % used"),
    ] as [(String, Double?, Double?, String)])
    func aPoolThatCannotTakeWritesMakesItsVolumesAbnormal(attributes: String, data: Double?, metadata: Double?, what: String) {
        let condition = thin.condition(in: nil, pool: pool(attributes: attributes, data: data, metadata: metadata))
        #expect(condition.abnormal)
        #expect(condition.message.contains("vg/pvc-1"), "\(condition.message)")
        #expect(condition.message.contains("thin pool vg/tinypool"), "\(condition.message)")
        #expect(condition.message.contains(what), "\(condition.message)")
    }

    @Test func bothProblemsAreNamed() {
        let condition = thin.condition(in: nil, pool: pool(attributes: "twi-aotzD-", data: 100))
        #expect(condition.message.contains("out of data space, has its data 100.0 % used"), "\(condition.message)")
        // The volume's own problems come first.
        var partial = thin
        partial.attributes = "Vwi-aotzp-"
        let both = partial.condition(in: nil, pool: pool(attributes: "twi-aotzF-"))
        #expect(both.message.contains("partial") && both.message.contains("thin pool vg/tinypool (lv_attr twi-aotzF-) has failed"))
    }

    @Test func aPoolHealthStatusWithoutAttributeIsReported() {
        let condition = thin.condition(in: nil, pool: pool(health: "out_of_data"))
        #expect(condition.abnormal && condition.message.contains("\"out_of_data\""), "\(condition.message)")
    }

    @Test func onlyThinPoolsHaveThinPoolProblems() {
        var linear = pool
        linear.attributes = "-wi-a---D-"
        #expect(linear.thinPoolProblems == nil)
        #expect(thin.condition(in: nil, pool: linear) == .healthy)
    }
}
