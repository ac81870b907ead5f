import SubscriberProfiles
import TreeModel
import WireFormat

/// A shard's scores from one rescoring job, column by column (bulk arrays on the wire):
/// per subscriber the probability, risk band, home region and top-3 reasons (feature index in
/// the model, -1 for none) with their contributions to the margin.
public struct ShardScores: Sendable, WireCodable {
    public var shard: Int
    public var modelVersion: String
    public var ids: BulkArray<Int64>
    public var probabilities: BulkArray<Float>
    public var bands: BulkArray<UInt8>
    public var regions: BulkArray<Int16>
    /// 3 per subscriber.
    public var reasons: BulkArray<Int16>
    /// 3 per subscriber.
    public var contributions: BulkArray<Float>
    /// The revenue (`arpu_30d`) each subscriber's CLV is computed from (NaN = unknown): the
    /// coordinator applies the cluster's CLV settings when it writes the scores. Empty from a
    /// worker one version older (its CLVs are written as NULL).
    public var arpu: BulkArray<Float>
    /// The challenger's version and its probability of each subscriber, scored in shadow (empty
    /// without a challenger, or from a worker one version older).
    public var shadowVersion = ""
    public var shadow = BulkArray<Float>([])
    /// The models active beside the served one, each over its segment (empty without any, or
    /// from a worker one version older).
    public var others: [ModelScores] = []
    /// The challengers of active models, scored in shadow over their model's rows (written only
    /// when there is one: a coordinator one version older reads scores without them).
    public var otherShadows: [ModelShadow] = []

    public var count: Int { ids.elements.count }

    public func encode(to w: inout WireWriter) {
        w.write(shard); w.write(modelVersion); w.write(ids); w.write(probabilities); w.write(bands)
        w.write(regions); w.write(reasons); w.write(contributions); w.write(arpu)
        w.write(shadowVersion); w.write(shadow); w.write(others)
        if !otherShadows.isEmpty { w.write(otherShadows) }
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        shard = try r.read(); modelVersion = try r.read(); ids = try r.read(); probabilities = try r.read()
        bands = try r.read(); regions = try r.read(); reasons = try r.read(); contributions = try r.read()
        arpu = r.remaining > 0 ? try r.read() : BulkArray([])
        if r.remaining > 0 { shadowVersion = try r.read(); shadow = try r.read() }
        if r.remaining > 0 { others = try r.read() }
        if r.remaining > 0 { otherShadows = try r.read() }
        let n = ids.elements.count
        guard Set(otherShadows.map(\.name)).count == otherShadows.count,
              otherShadows.allSatisfy({ h in others.contains { $0.name == h.name && $0.count == h.probabilities.elements.count } }) else {
            throw WireError(offset: at, expected: "at most one challenger's shadow scores per active model, one per row of its scores")
        }
        guard others.count <= maxActiveModels, others.allSatisfy({ $0.fits(n) }), Set(others.map(\.name)).count == others.count else {
            throw WireError(offset: at, expected: "at most \(maxActiveModels) active models' scores, each named once, over the shard's \(n) subscribers")
        }
        guard probabilities.elements.count == n, bands.elements.count == n, regions.elements.count == n,
              reasons.elements.count == 3 * n, contributions.elements.count == 3 * n,
              arpu.elements.isEmpty || arpu.elements.count == n, shadow.elements.isEmpty || shadow.elements.count == n,
              shadow.elements.isEmpty == shadowVersion.isEmpty || n == 0 else {
            throw WireError(offset: at, expected: "shard scores with matching column lengths (\(n) subscribers)")
        }
        guard shadow.elements.allSatisfy({ $0 >= 0 && $0 <= 1 }) else {
            throw WireError(offset: at, expected: "shadow probabilities between 0 and 1")
        }
        guard bands.elements.allSatisfy({ Int($0) < RiskBand.allCases.count }) else {
            throw WireError(offset: at, expected: "risk bands 0–\(RiskBand.allCases.count - 1)")
        }
        guard probabilities.elements.allSatisfy({ $0 >= 0 && $0 <= 1 }) else {  // NaN and infinities fail too
            throw WireError(offset: at, expected: "probabilities between 0 and 1")
        }
    }

    init(shard: Int, modelVersion: String, capacity n: Int) {
        self.shard = shard
        self.modelVersion = modelVersion
        ids = BulkArray([]); probabilities = BulkArray([]); bands = BulkArray([]); regions = BulkArray([])
        reasons = BulkArray([]); contributions = BulkArray([]); arpu = BulkArray([])
        ids.elements.reserveCapacity(n); arpu.elements.reserveCapacity(n); probabilities.elements.reserveCapacity(n); bands.elements.reserveCapacity(n)
        regions.elements.reserveCapacity(n); reasons.elements.reserveCapacity(3 * n); contributions.elements.reserveCapacity(3 * n)
    }
}

/// One reason, as a live query returns it.
public struct Reason: Sendable, Equatable, WireCodable, Codable {
    public var feature: String
    public var contribution: Double

    public init(feature: String, contribution: Double) {
        self.feature = feature
        self.contribution = contribution
    }

    public func encode(to w: inout WireWriter) { w.write(feature); w.write(contribution) }
    public init(from r: inout WireReader) throws(WireError) { feature = try r.read(); contribution = try r.read() }
}

extension ScoringModel {
    /// The profile column of the revenue CLV is computed from.
    var arpuColumn: Int? { FeatureCatalogue.index(of: "arpu_30d") }

    /// Scores every subscriber of `store` on the calling thread with top-3 reasons for those
    /// `options` asks for: by default everyone, by path attribution (the method a live query uses
    /// by default, so both agree), tabulated per leaf so reasons cost little more than the walk.
    func score(shard: Int, store: ProfileStore, options: RescoreOptions = .standard, shadow: ScoringModel? = nil,
               others: [ServedActiveModel] = []) throws -> ShardScores {
        var out = ShardScores(shard: shard, modelVersion: version, capacity: store.count)
        var block = OtherModelBlock()
        out.others = others.map { ModelScores(name: $0.name, version: $0.model.version, segment: $0.segmentText) }
        // Their challengers in shadow, over the same rows.
        var otherShadows = others.map { o in o.challenger.map { ModelShadow(name: o.name, version: $0.model.version) } }
        var shadowMargins = [Double](), shadowProbabilities = [Double]()
        if let shadow {
            out.shadowVersion = shadow.version
            out.shadow.elements.reserveCapacity(store.count)
        }
        let reasonsFrom = options.reasonsFrom
        let arpuColumn = arpuColumn  // looked up by name: once, not per row
        let tabulated = options.method == .approx && options.reasons != .none ? attribution : nil
        var margins = [Double](), probabilities = [Double]()
        var features = [Int16](), values = [Float]()
        var reasonScratch = ReasonScratch()
        try store.forEachRun { (_: Int, rows: Int, ids: UnsafePointer<Int64>, columns: [UnsafePointer<Float>]) throws in
            let input = try self.input(columns, rows: rows)
            margins = [Double](repeating: 0, count: rows)
            probabilities = [Double](repeating: 0, count: rows)
            if tabulated != nil {
                features = [Int16](repeating: -1, count: 3 * rows)
                values = [Float](repeating: 0, count: 3 * rows)
            }
            try margins.withUnsafeMutableBufferPointer { m throws(ModelError) in
                try probabilities.withUnsafeMutableBufferPointer { p throws(ModelError) in
                    if let tabulated {
                        try features.withUnsafeMutableBufferPointer { fe throws(ModelError) in
                            try values.withUnsafeMutableBufferPointer { v throws(ModelError) in
                                try tabulated.score(input, margins: m.baseAddress!, outputs: p.baseAddress!, top: 3, features: fe.baseAddress!, values: v.baseAddress!)
                            }
                        }
                    } else {
                        try forest.score(input, margins: m.baseAddress!, outputs: p.baseAddress!, threads: 1)
                    }
                }
            }
            let base = out.ids.elements.count
            out.ids.elements.append(contentsOf: UnsafeBufferPointer(start: ids, count: rows))
            // The other active models in the same walk, each over its segment's rows.
            for (k, other) in others.enumerated() {
                try block.score(other, columns: columns, rows: rows, base: base, options: options, into: &out.others[k], shadow: &otherShadows[k])
            }
            if let shadow {
                // The challenger in the same walk: the same rows, in the same order, at the same moment.
                shadowMargins = [Double](repeating: 0, count: rows)
                shadowProbabilities = [Double](repeating: 0, count: rows)
                try shadow.forest.score(shadow.input(columns, rows: rows),
                                        margins: &shadowMargins, outputs: &shadowProbabilities)
                for p in shadowProbabilities { out.shadow.elements.append(Float(p)) }
            }
            // Exact TreeSHAP, or path attribution for a model too big to tabulate, for the run's
            // explained rows in batches: each tree is walked for many rows before the next.
            if tabulated == nil && options.reasons != .none {
                batchReasons(input, probabilities: probabilities, from: reasonsFrom, method: options.method.method,
                             features: &features, values: &values, scratch: &reasonScratch)
            }
            let explainedFrom = out.reasons.elements.count
            if options.reasons != .none {
                out.reasons.elements.append(contentsOf: features)
                out.contributions.elements.append(contentsOf: values)
            } else {
                out.reasons.elements.append(contentsOf: repeatElement(-1, count: 3 * rows))
                out.contributions.elements.append(contentsOf: repeatElement(0, count: 3 * rows))
            }
            for i in 0..<rows {
                let p = probabilities[i]
                out.probabilities.elements.append(Float(p))
                out.bands.elements.append(RiskBand(probability: p).rawValue)
                let region = regionColumn.map { columns[$0][i] } ?? .nan
                out.regions.elements.append(region.isFinite && region > -32_768 && region < 32_768 ? Int16(region) : -1)  // a hostile import never traps
                out.arpu.elements.append(arpuColumn.map { columns[$0][i] } ?? .nan)
                if tabulated != nil && p < reasonsFrom {
                    // Explained in the same walk, but not asked for: stored as none.
                    for k in 0..<3 {
                        out.reasons.elements[explainedFrom + 3 * i + k] = -1
                        out.contributions.elements[explainedFrom + 3 * i + k] = 0
                    }
                }
            }
        }
        out.otherShadows = otherShadows.compactMap { $0 }
        return out
    }

    /// Top-3 reasons by `method` (`explainer`'s) for the rows of `input` whose probability is at
    /// least `from`, computed in batches of up to `ReasonScratch.batchRows` rows: each tree is
    /// walked for many rows before the next (a large model's nodes are read once per block, not
    /// once per row), with bounded scratch memory.
    /// - Parameters:
    ///   - features: set to 3 entries per row of `input`: model feature indices, biggest first
    ///     (-1: none, and for every row not explained).
    ///   - values: their contributions (0 where none).
    func batchReasons(_ input: FeatureColumns, probabilities: [Double], from: Double, method: TreeExplainer.Method,
                      features: inout [Int16], values: inout [Float], scratch: inout ReasonScratch) {
        let f = featureNames.count, n = input.rowCount, stride = explainer.contributionCount
        features = [Int16](repeating: -1, count: 3 * n)
        values = [Float](repeating: 0, count: 3 * n)
        let capacity = ReasonScratch.batchRows
        if scratch.rows.count < capacity * f { scratch.rows = [Float](repeating: 0, count: capacity * f) }
        if scratch.phis.count < capacity * stride { scratch.phis = [Double](repeating: 0, count: capacity * stride) }
        scratch.picked.removeAll(keepingCapacity: true)
        func flush(_ scratch: inout ReasonScratch) {
            let count = scratch.picked.count
            guard count > 0 else { return }
            scratch.rows.withUnsafeBufferPointer { x in
                scratch.phis.withUnsafeMutableBufferPointer { explainer.contributions(rows: x, count: count, into: $0, method: method) }
            }
            for (k, i) in scratch.picked.enumerated() {
                let best = Self.top3(scratch.phis[k * stride..<(k + 1) * stride], count: f)
                for j in 0..<best.count {
                    features[3 * i + j] = Int16(best[j].feature)
                    values[3 * i + j] = Float(best[j].contribution)
                }
            }
            scratch.picked.removeAll(keepingCapacity: true)
        }
        for i in 0..<n where probabilities[i] >= from {
            let k = scratch.picked.count
            for j in 0..<f { scratch.rows[k * f + j] = input.columns[j][i] }
            scratch.picked.append(i)
            if scratch.picked.count == capacity { flush(&scratch) }
        }
        flush(&scratch)
    }

    /// The top 3 positive contributions to `row`'s margin, biggest first (model feature indices).
    func topReasons(row: inout [Float], phi: inout [Double], method: TreeExplainer.Method = .approximate) -> [(feature: Int, contribution: Double)] {
        if method == .approximate, let attribution, let all = try? attribution.contributions(row: row) {
            for j in 0..<featureNames.count { phi[j] = all[j] }
        } else {
            row.withUnsafeBufferPointer { r in
                phi.withUnsafeMutableBufferPointer { p in explainer.contributions(row: r, into: p, method: method) }
            }
        }
        return Self.top3(phi, count: featureNames.count)
    }

    /// The 3 largest positive values of `phi[0..<count]`, biggest first (ties: lower index first).
    static func top3<C: RandomAccessCollection>(_ phi: C, count: Int) -> [(feature: Int, contribution: Double)]
    where C.Element == Double, C.Index == Int {
        var best: [(feature: Int, contribution: Double)] = []
        for j in 0..<count {
            let c = phi[phi.startIndex + j]
            guard c > 0 else { continue }
            if best.count == 3, c <= best[2].contribution { continue }
            let at = best.firstIndex { $0.contribution < c } ?? best.count
            best.insert((j, c), at: at)
            if best.count > 3 { best.removeLast() }
        }
        return best
    }

    /// One subscriber's probability, band and top-3 reasons from its profile (catalogue order).
    public func score(profile: [Float], explain: ExplainMode = .approx) -> (probability: Double, band: RiskBand, reasons: [Reason]) {
        let row = profileColumn.map { $0 < profile.count ? profile[$0] : .nan }
        var phi = [Double](repeating: 0, count: explainer.contributionCount)
        let margin: Double
        if explain == .approx, let attribution, let (m, all) = try? attribution.explain(row: row) {
            // Margin and reasons from one walk of the trees.
            margin = m
            phi = all
        } else {
            margin = forest.margin(row: row)
            row.withUnsafeBufferPointer { r in
                phi.withUnsafeMutableBufferPointer { p in explainer.contributions(row: r, into: p, method: explain.method) }
            }
        }
        let p = forest.transform(margin: margin)
        // Contributions as a job stores them (Float).
        let reasons = Self.top3(phi, count: featureNames.count).map { Reason(feature: featureNames[$0.feature], contribution: Double(Float($0.contribution))) }
        return (p, RiskBand(probability: p), reasons)
    }
}

/// Scores an active model over its segment's rows of one run of a walk (one per walk: its scratch
/// buffers are reused run after run). The segment's rows are gathered into contiguous columns of
/// the features the model reads, so a model for a tenth of the base walks its trees for a tenth.
struct OtherModelBlock {
    private var selected: [Int32] = []
    private var gathered: [Float] = []
    private var margins: [Double] = []
    private var probabilities: [Double] = []
    private var features: [Int16] = []
    private var values: [Float] = []
    private var shadowGathered: [Float] = []
    private var shadowMargins: [Double] = []
    private var shadowProbabilities: [Double] = []
    private var reasonScratch = ReasonScratch()

    /// Scores `other` over its segment's rows of the run into `out`, and its challenger (when
    /// `shadow` is set) over the same rows into `shadow`.
    mutating func score(_ other: ServedActiveModel, columns: [UnsafePointer<Float>], rows: Int, base: Int, options: RescoreOptions,
                        into out: inout ModelScores, shadow: inout ModelShadow?) throws {
        let model = other.model
        selected.removeAll(keepingCapacity: true)
        if let segment = other.segment {
            guard segment.maxColumn < columns.count else {
                throw ClusterError("model \(other.name)'s segment reads a column this shard's profiles do not hold (its extra columns are not loaded)")
            }
            for i in 0..<rows where segment.contains(columns, row: i) { selected.append(Int32(i)) }
        } else {
            selected.append(contentsOf: (0..<Int32(rows)))
        }
        let n = selected.count
        guard n > 0 else { return }
        let f = model.featureNames.count
        let all = n == rows
        if shadow != nil, let challenger = other.challenger?.model {
            try scoreShadow(challenger, columns: columns, rows: rows, all: all, into: &shadow)
        }
        var input = try model.input(columns, rows: rows)
        if !all { Self.gather(input, selected, into: &gathered) }  // the segment's rows of each feature the model reads
        margins = [Double](repeating: 0, count: n)
        probabilities = [Double](repeating: 0, count: n)
        let explain = options.reasons != .none
        let tabulated = explain && options.method == .approx ? model.attribution : nil
        if tabulated != nil {
            features = [Int16](repeating: -1, count: 3 * n)
            values = [Float](repeating: 0, count: 3 * n)
        }
        try gathered.withUnsafeBufferPointer { g throws in
            if !all { input = FeatureColumns(gathered: g, columns: f, rows: n) }
            try margins.withUnsafeMutableBufferPointer { m throws in
                try probabilities.withUnsafeMutableBufferPointer { p throws in
                    if let tabulated {
                        try features.withUnsafeMutableBufferPointer { fe throws in
                            try values.withUnsafeMutableBufferPointer { v throws in
                                try tabulated.score(input, margins: m.baseAddress!, outputs: p.baseAddress!, top: 3, features: fe.baseAddress!, values: v.baseAddress!)
                            }
                        }
                    } else {
                        try model.forest.score(input, margins: m.baseAddress!, outputs: p.baseAddress!, threads: 1)
                    }
                }
            }
            let reasonsFrom = options.reasonsFrom
            if explain && tabulated == nil {
                model.batchReasons(input, probabilities: probabilities, from: reasonsFrom, method: options.method.method,
                                   features: &features, values: &values, scratch: &reasonScratch)
            }
            for r in 0..<n {
                let p = probabilities[r]
                out.rows.elements.append(Int32(base) + selected[r])
                out.probabilities.elements.append(Float(p))
                out.bands.elements.append(RiskBand(probability: p).rawValue)
                if !explain || p < reasonsFrom {
                    out.reasons.elements.append(contentsOf: [-1, -1, -1])
                    out.contributions.elements.append(contentsOf: [0, 0, 0])
                } else {
                    // Tabulated in the walk, or explained in batches above.
                    out.reasons.elements.append(contentsOf: features[(3 * r)..<(3 * r + 3)])
                    out.contributions.elements.append(contentsOf: values[(3 * r)..<(3 * r + 3)])
                }
            }
        }
    }

    /// Copies rows `selected` of each column of `input` into `buffer`, column after column
    /// (`selected.count` values each), growing it when it is too small; `FeatureColumns(gathered:…)`
    /// reads them back.
    static func gather(_ input: FeatureColumns, _ selected: [Int32], into buffer: inout [Float]) {
        let n = selected.count
        if buffer.count < input.columns.count * n { buffer = [Float](repeating: 0, count: input.columns.count * n) }
        buffer.withUnsafeMutableBufferPointer { g in
            guard let base = g.baseAddress else { return }
            for (j, column) in input.columns.enumerated() {
                let to = base + j * n
                for (r, i) in selected.enumerated() { to[r] = column[Int(i)] }
            }
        }
    }

    /// The challenger's probabilities of the selected rows, appended to `shadow`.
    private mutating func scoreShadow(_ challenger: ScoringModel, columns: [UnsafePointer<Float>], rows: Int, all: Bool,
                                      into shadow: inout ModelShadow?) throws {
        let n = selected.count, f = challenger.featureNames.count
        let input = try challenger.input(columns, rows: rows)
        if !all { Self.gather(input, selected, into: &shadowGathered) }
        shadowMargins = [Double](repeating: 0, count: n)
        shadowProbabilities = [Double](repeating: 0, count: n)
        try shadowGathered.withUnsafeBufferPointer { g throws in
            let rowsIn = all ? input : FeatureColumns(gathered: g, columns: f, rows: n)
            try challenger.forest.score(rowsIn, margins: &shadowMargins, outputs: &shadowProbabilities)
        }
        for p in shadowProbabilities { shadow?.probabilities.elements.append(Float(p)) }
    }
}

/// Scratch of `ScoringModel.batchReasons`, reused run after run.
struct ReasonScratch {
    /// Rows explained per batch: enough to fill the explainer's blocks many times over, few enough
    /// that the scratch stays small (40 features: 160 KiB of rows, 328 KiB of contributions).
    static let batchRows = 1_024
    var rows: [Float] = []
    var phis: [Double] = []
    var picked: [Int] = []
}

extension FeatureColumns {
    /// `columns` columns of `rows` values each in `buffer`, column j starting at j × `stride`
    /// (by default one right after another, as `OtherModelBlock.gather` leaves them).
    init(gathered buffer: UnsafeBufferPointer<Float>, columns: Int, rows: Int, stride: Int? = nil) {
        let base = buffer.baseAddress, stride = stride ?? rows
        self.init(columns: base.map { b in (0..<columns).map { b + $0 * stride } } ?? [], rowCount: rows)
    }
}
