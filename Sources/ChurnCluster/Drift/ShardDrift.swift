import SubscriberProfiles
import WireFormat

/// What the coordinator asks a shard for when it measures drift: a sample of the model's features
/// (to cut a new reference's bins) when `edges` is empty, else each feature's counts in its bins.
public struct DriftRequest: Sendable, WireCodable {
    /// The model version the bins belong to: a shard serving another version refuses.
    public var modelVersion: String
    /// Rows to sample (evenly spaced over the shard) when taking a reference.
    public var sampleRows: Int
    /// Each model feature's edges, one feature after another (`edgeCounts[j]` for feature j).
    public var edges: BulkArray<Float>
    public var edgeCounts: BulkArray<Int32>
    /// The model active beside the served one whose drift is measured, over its segment (empty:
    /// the served model).
    public var modelName = ""

    /// At most this many rows are sampled per shard, and at most this many edges per feature.
    public static let maxSampleRows = 100_000
    public static let maxEdges = 64

    public init(modelVersion: String, sampleRows: Int, modelName: String = "") {
        self.modelName = modelName
        self.modelVersion = modelVersion
        self.sampleRows = sampleRows
        edges = BulkArray([])
        edgeCounts = BulkArray([])
    }

    public init(modelVersion: String, edges: [[Float]], modelName: String = "") {
        self.modelName = modelName
        self.modelVersion = modelVersion
        sampleRows = 0
        self.edges = BulkArray(edges.flatMap { $0 })
        edgeCounts = BulkArray(edges.map { Int32($0.count) })
    }

    public var isSample: Bool { edgeCounts.elements.isEmpty }

    public func encode(to w: inout WireWriter) {
        w.write(modelVersion); w.write(sampleRows); w.write(edges); w.write(edgeCounts)
        if !modelName.isEmpty { w.write(modelName) }  // a worker one version older reads the served model's request
    }

    public init(from r: inout WireReader) throws(WireError) {
        modelVersion = try r.read(); sampleRows = try r.read(); edges = try r.read(); edgeCounts = try r.read()
        if r.remaining > 0 { modelName = try r.read() }
    }

    /// Each feature's edges, checked against a model of `features` features: a clear refusal for a
    /// request no coordinator sends (wrong feature count, edges out of order or not numbers).
    func validatedEdges(features: Int) throws(ClusterError) -> [[Float]] {
        guard isSample || edgeCounts.elements.count == features else {
            throw ClusterError("the drift request has bins for \(edgeCounts.elements.count) features; the model reads \(features)")
        }
        guard (0...Self.maxSampleRows).contains(sampleRows) else {
            throw ClusterError("the drift request asks for \(sampleRows) sample rows (0–\(Self.maxSampleRows))")
        }
        var out: [[Float]] = []
        var at = 0
        for (j, n) in edgeCounts.elements.enumerated() {
            guard (0...Int32(Self.maxEdges)).contains(n), at + Int(n) <= edges.elements.count else {
                throw ClusterError("the drift request's feature \(j) claims \(n) edges (0–\(Self.maxEdges), \(edges.elements.count - at) left)")
            }
            let e = Array(edges.elements[at..<at + Int(n)])
            guard e.allSatisfy({ $0.isFinite }), zip(e, e.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw ClusterError("the drift request's edges of feature \(j) are not finite and ascending")
            }
            out.append(e)
            at += Int(n)
        }
        guard at == edges.elements.count else {
            throw ClusterError("the drift request carries \(edges.elements.count - at) edges beyond its features'")
        }
        return out
    }
}

/// A shard's answer to a `DriftRequest`.
public struct ShardDrift: Sendable, WireCodable {
    public var shard: Int
    public var modelVersion: String
    public var subscribers: Int
    /// Sampled rows, row after row, the model's features in its order (empty when counting).
    public var sample: BulkArray<Float>
    /// Each feature's bin counts (its edges + 2), one feature after another (empty when sampling).
    public var counts: BulkArray<Int64>

    public init(shard: Int, modelVersion: String, subscribers: Int, sample: [Float], counts: [Int64]) {
        self.shard = shard
        self.modelVersion = modelVersion
        self.subscribers = subscribers
        self.sample = BulkArray(sample)
        self.counts = BulkArray(counts)
    }

    public func encode(to w: inout WireWriter) {
        w.write(shard); w.write(modelVersion); w.write(subscribers); w.write(sample); w.write(counts)
    }

    public init(from r: inout WireReader) throws(WireError) {
        shard = try r.read(); modelVersion = try r.read(); subscribers = try r.read(); sample = try r.read(); counts = try r.read()
    }
}

extension ScoringModel {
    /// Adds `rows` values of a column to their bins (`edges.count + 2` of them). Few edges (the
    /// deciles give at most 9): the bin is the number of edges below the value, counted without
    /// branching; many: a binary search.
    static func count(_ column: UnsafePointer<Float>, rows: Int, edges: UnsafeBufferPointer<Float>, into bins: UnsafeMutableBufferPointer<Int64>) {
        let missing = edges.count + 1
        if edges.count <= 16 {
            for r in 0..<rows {
                let v = column[r]
                if v.isNaN {
                    bins[missing] += 1
                    continue
                }
                var b = 0
                for k in 0..<edges.count { b &+= edges[k] < v ? 1 : 0 }
                bins[b] += 1
            }
        } else {
            for r in 0..<rows { bins[PopulationStability.bin(column[r], edges: edges)] += 1 }
        }
    }

    /// Measures what `request` asks on a shard's store (a scoring thread runs it; the store is
    /// only read), over the rows of `segment` when given (an active model's).
    func drift(shard: Int, store: ProfileStore, request: DriftRequest, segment: BoundSegment? = nil) throws -> ShardDrift {
        let columns = profileColumn
        let edges = try request.validatedEdges(features: columns.count)
        if let segment {
            var fits = true
            store.forEachRun { _, _, _, runColumns in if segment.maxColumn >= runColumns.count { fits = false } }
            guard fits else { throw ClusterError("shard \(shard) does not hold the columns the segment of model \(request.modelName) reads") }
        }
        // The segment's rows of a run (every row without one).
        var selected: [Int] = []
        func rowsOf(_ rows: Int, _ runColumns: [UnsafePointer<Float>]) -> [Int] {
            selected.removeAll(keepingCapacity: true)
            if let segment {
                for r in 0..<rows where segment.contains(runColumns, row: r) { selected.append(r) }
            } else {
                selected.append(contentsOf: 0..<rows)
            }
            return selected
        }
        var n = store.count
        if segment != nil && request.isSample {
            // How many to space the sample over (counted again with the bins, below).
            n = 0
            store.forEachRun { _, rows, _, runColumns in n += rowsOf(rows, runColumns).count }
        }
        if request.isSample {
            let want = min(request.sampleRows, n)
            var sample: [Float] = []
            sample.reserveCapacity(want * columns.count)
            if want > 0 {
                // Evenly spaced subscribers (the k-th of `want` is the (k·n/want)-th held, holes of
                // erased ones skipped): the same rows every time for the same shard.
                var k = 0, seen = 0
                store.forEachRun { _, rows, _, runColumns in
                    let picked = segment == nil ? nil : rowsOf(rows, runColumns)
                    let count = picked?.count ?? rows
                    while k < want, k * n / want < seen + count {
                        let at = k * n / want - seen
                        let r = picked.map { $0[at] } ?? at
                        for c in columns { sample.append(c >= 0 && c < runColumns.count ? runColumns[c][r] : .nan) }
                        k += 1
                    }
                    seen += count
                }
            }
            return ShardDrift(shard: shard, modelVersion: version, subscribers: n, sample: sample, counts: [])
        }
        var bins = edges.map { [Int64](repeating: 0, count: PopulationStability.binCount(edges: $0.count)) }
        var gathered: [Float] = []
        // The segment's subscribers are counted in the same walk as the bins: an event may move
        // one in or out of it between two walks, and the bins must add up to the count sent.
        if segment != nil { n = 0 }
        // Column by column over the store's contiguous runs (no per-value lookup of the row); a
        // segment's rows gathered first.
        store.forEachRun { _, rows, _, runColumns in
            let picked = segment == nil ? nil : rowsOf(rows, runColumns)
            n += picked?.count ?? 0
            for (j, c) in columns.enumerated() where c >= 0 && c < runColumns.count {
                let column = runColumns[c]
                edges[j].withUnsafeBufferPointer { e in
                    bins[j].withUnsafeMutableBufferPointer { b in
                        if let picked {
                            gathered.removeAll(keepingCapacity: true)
                            for r in picked { gathered.append(column[r]) }
                            gathered.withUnsafeBufferPointer { g in
                                if let base = g.baseAddress { Self.count(base, rows: g.count, edges: e, into: b) }
                            }
                        } else {
                            Self.count(column, rows: rows, edges: e, into: b)
                        }
                    }
                }
            }
        }
        return ShardDrift(shard: shard, modelVersion: version, subscribers: n, sample: [], counts: bins.flatMap { $0 })
    }
}
