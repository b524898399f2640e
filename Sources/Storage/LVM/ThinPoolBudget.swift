/// What a thin pool may still promise to new thin volumes.
///
/// The overprovision ratio bounds what is promised, not what is written: a pool of size P with
/// ratio R promises at most P × R bytes of virtual size in all, so the capacity left is
/// P × R − the virtual sizes of the thin LVs already in the pool (thin volumes and thin
/// snapshots alike, `pool_lv` naming the pool). A pool whose data or metadata usage has reached
/// ``fullPercent`` offers nothing, whatever is left of its promise: writes to its volumes would
/// soon fail, and new volumes would only hasten that.
struct ThinPoolBudget: Sendable, Equatable {
    /// Data or metadata usage, in percent, at or above which a pool takes no new thin volumes.
    static let fullPercent: Double = 95

    /// The pool as `vg/pool`, for messages.
    var pool: String
    /// The pool's size in bytes.
    var poolBytes: UInt64
    /// The overprovision ratio (≥ 1).
    var ratio: Double
    /// The virtual sizes of the thin LVs in the pool, summed.
    var promisedBytes: UInt64
    /// How many thin LVs those are.
    var thinVolumes: Int
    /// Data and metadata usage in percent (0 when LVM reports none, an inactive pool).
    var dataPercent: Double
    var metadataPercent: Double

    /// The budget of `pool` given every LV LVM reports.
    init(pool: LogicalVolume, logicalVolumes: [LogicalVolume], ratio: Double) {
        self.pool = pool.path
        poolBytes = pool.sizeBytes
        self.ratio = ratio
        let thin = logicalVolumes.filter { $0.volumeGroup == pool.volumeGroup && $0.pool == pool.name && $0.name != pool.name }
        thinVolumes = thin.count
        promisedBytes = thin.reduce(0) { sum, lv in
            let (total, overflow) = sum.addingReportingOverflow(lv.sizeBytes)
            return overflow ? .max : total
        }
        dataPercent = pool.dataPercent ?? 0
        metadataPercent = pool.metadataPercent ?? 0
    }

    /// Pool size × ratio, the most the pool may promise in all.
    var limitBytes: UInt64 {
        let product = Double(poolBytes) * ratio
        return product >= 0x1p64 ? .max : UInt64(product)
    }

    /// Why the pool takes no new volumes however small, or nil.
    var full: String? {
        var parts: [String] = []
        if dataPercent >= Self.fullPercent { parts.append("data \(dataPercent) %") }
        if metadataPercent >= Self.fullPercent { parts.append("metadata \(metadataPercent) %") }
        guard !parts.isEmpty else { return nil }
        return "thin pool \(pool) is full: \(parts.joined(separator: " and ")) used (new thin volumes are refused from \(Self.fullPercent) % on)"
    }

    /// Bytes of virtual size the pool can still promise: what GetCapacity reports.
    var availableBytes: UInt64 {
        guard full == nil else { return 0 }
        return limitBytes > promisedBytes ? limitBytes - promisedBytes : 0
    }

    /// `.insufficientCapacity` when the pool cannot promise `bytes` more for `what` ("volume
    /// pvc-1"), else nil.
    func refusal(adding bytes: UInt64, for what: String) -> StorageError? {
        if let full { return StorageError(.insufficientCapacity, "\(full); \(bytes) bytes requested for \(what)") }
        guard bytes > availableBytes else { return nil }
        return StorageError(
            .insufficientCapacity,
            "thin pool \(pool) of \(poolBytes) bytes with overprovision ratio \(ratio) may promise \(limitBytes) bytes; \(promisedBytes) bytes are already promised to \(thinVolumes) thin volume(s), so \(availableBytes) bytes are left; \(bytes) bytes requested for \(what)"
        )
    }
}
