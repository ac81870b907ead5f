import ClusterSystem
import Distributed
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles
import TreeModel

/// The schema features a worker holds beside the built-in catalogue's (docs/models.md, "What the
/// cluster reads"): the ones the models it loads read. A model that reads more makes every held
/// shard load them from PostgreSQL first, while the shards keep answering with what they serve;
/// only then is the model compiled against them, so its switch (an epoch later) never finds a
/// column missing. Shards that arrive later get the same columns before they answer.
extension WorkerActor {
    /// Holds the schema features `names` on every shard held here, loading those not held yet
    /// (coordinator only: before a campaign run whose eligibility reads them).
    /// - Returns: the extra columns held from then on.
    public distributed func holdFeatures(_ names: [String], term: Int64) async throws -> [String] {
        try obey(term: term, epoch: nil, "holdFeatures")
        guard names.count <= FeatureSchema.maxFeatures, names.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 }) else {
            throw ClusterError("holdFeatures: at most \(FeatureSchema.maxFeatures) feature names of 1–63 bytes")
        }
        let catalogue = Set(FeatureCatalogue.names)
        return try await holdExtras(adding: names.filter { !catalogue.contains($0) })
    }

    /// Compiles model bytes against this worker's profiles, loading the extra columns it reads
    /// on every held shard first.
    /// - Throws: `ModelError` for a model that does not load; `ClusterError` when its columns
    ///   cannot be loaded (a feature the table lacks, PostgreSQL away): nothing served changes.
    func compile(bytes: [UInt8], source: String) async throws -> ScoringModel {
        let names = try await loader.run { try TreeEnsemble.parse(bytes, file: source).featureNames }
        let layout = try await holdExtras(adding: ScoringModel.extraFeatures(of: names))
        return try await loader.run { try ScoringModel(bytes: bytes, source: source, extras: layout) }
    }

    /// Makes every held shard carry the extra columns held now plus `names` (one change at a
    /// time, in call order).
    /// - Returns: the layout from then on.
    @discardableResult
    func holdExtras(adding names: [String]) async throws -> [String] {
        let previous = extrasWork
        let work = Task<[String], Error> {
            _ = await previous?.result
            return try await self.growExtras(adding: names)
        }
        extrasWork = Task { _ = try await work.value }
        return try await work.value
    }

    private func growExtras(adding names: [String]) async throws -> [String] {
        var grown = extraLayout
        for name in names where !grown.contains(name) { grown.append(name) }  // each once
        let layout = grown
        // Until every held store carries the layout (shards may arrive while others load).
        while true {
            let stale = stores.filter { ($0.value.store.extras?.names ?? []) != layout }
            if stale.isEmpty { break }
            let targets = stale.map { (shard: $0.key, loaded: $0.value) }
            // The new blocks, and the columns read for them, beside the blocks they replace.
            try checkRoom(forExtraBytes: targets.reduce(0) { $0 + 2 * $1.loaded.store.rowCount * layout.count * 4 })
            let url = postgresURL, count = shardCount
            let started = ContinuousClock.now
            do {
                let dropped = try await loader.run { try ExtraColumnLoading.attach(layout, to: targets.map { ($0.shard, $0.loaded.store) }, url: url, shardCount: count) }
                if !dropped.isEmpty {
                    logger.warning("features a model, the trigger rules or a campaign loaded here read are no longer in the feature schema: held as missing",
                                   metadata: ["features": "\(dropped.joined(separator: ","))"])
                }
            } catch {
                throw ClusterError("\(actorSystem.node.name) cannot load the extra feature column(s) \(layout.joined(separator: ", ")): \(error)")
            }
            // The loaded copies and libpq's buffers are freed: give the heap back to the system.
            releaseFreedHeap()
            logger.info("extra feature columns loaded", metadata: ["features": "\(layout.joined(separator: ","))", "shards": "\(targets.count)",
                                                                   "seconds": "\(ContinuousClock.now - started)"])
        }
        extraLayout = layout
        events.live?.hold(layout)
        return layout
    }
}

/// Building and attaching extra columns (blocking: runs on a loading thread).
enum ExtraColumnLoading {
    /// Attaches to each store a block of `layout`'s columns: those it holds already copied, the
    /// others read from `subscriber_profiles` (one COPY for all the stores' shards), as the schema
    /// in force types them.
    /// - Returns: the features of `layout` that the schema in force no longer has (dropped after
    ///   a model that read them was loaded here): held as missing.
    @discardableResult
    static func attach(_ layout: [String], to targets: [(shard: Int, store: ProfileStore)], url: String, shardCount: Int) throws -> [String] {
        guard !targets.isEmpty else { return [] }
        guard !layout.isEmpty else {
            for t in targets { try t.store.attach(nil) }
            return []
        }
        var fetch = layout.filter { name in targets.contains { !($0.store.extras?.names.contains(name) ?? false) } }
        var loaded: [Int: ProfileStore] = [:]
        var dropped: [String] = []
        if !fetch.isEmpty {
            guard shardCount > 0 else { throw ClusterError("no assignment yet: the shard count is unknown") }
            let stored = try FeatureSchemaStore.inForce(try PostgresConnection(url: url))
            dropped = fetch.filter { stored.schema.index(of: $0) == nil }
            fetch.removeAll { stored.schema.index(of: $0) == nil }
            if !fetch.isEmpty {
                loaded = try ProfileLoader(url: url, schema: stored.schema, features: fetch)
                    .load(shards: targets.map(\.shard), shardCount: shardCount, streams: 2).stores
            }
        }
        for (shard, store) in targets {
            let rows = store.rowCount
            let block = ExtraColumns(names: layout, rows: rows)
            let old = store.extras
            let source = loaded[shard]
            // Each row's row in the loaded copy, looked up once for all the columns (-1: none).
            var at = [Int32](repeating: -1, count: source == nil ? 0 : rows)
            if let source {
                for r in 0..<rows {
                    let id = store.id(at: r)
                    if id != ProfileStore.erasedID, let a = source.row(of: id) { at[r] = Int32(truncatingIfNeeded: a) }
                }
            }
            for (k, name) in layout.enumerated() {
                if let old, let o = old.names.firstIndex(of: name) {
                    block.copy(column: k, from: old, column: o)
                } else if let source, let f = fetch.firstIndex(of: name) {
                    for r in 0..<rows where at[r] >= 0 { block.set(row: r, feature: k, source.value(row: Int(at[r]), feature: f)) }
                }
            }
            try store.attach(block)
            loaded[shard] = nil  // its copy of the columns goes as soon as they are in place
        }
        return dropped
    }
}
