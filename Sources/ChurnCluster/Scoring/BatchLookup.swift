import ClusterSystem
import Distributed
import SubscriberProfiles
import TreeModel
import WireFormat

/// Many subscribers' live scores asked of one worker at once: the ids with the shard each
/// belongs to (the caller's shard map), and how to explain them.
public struct LookupBatch: Sendable, WireCodable {
    public var ids: BulkArray<Int64>
    public var shards: BulkArray<Int32>
    public var explain: ExplainMode
    /// Also the answers of the models active beside the served one whose segment holds each
    /// subscriber (`?models=all`). Sent only when asked (a worker one version older ignores it and
    /// answers the served model alone).
    public var models = false

    public init(ids: [Int64], shards: [Int32], explain: ExplainMode, models: Bool = false) {
        self.ids = BulkArray(ids)
        self.shards = BulkArray(shards)
        self.explain = explain
        self.models = models
    }

    public func encode(to w: inout WireWriter) {
        w.write(ids); w.write(shards); w.write(explain)
        if models { w.write(true) }
    }
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        ids = try r.read(); shards = try r.read(); explain = try r.read()
        if r.remaining > 0 { models = try r.read() }
        guard ids.elements.count == shards.elements.count else { throw WireError(offset: at, expected: "as many shards as ids in a lookup batch") }
        guard ids.elements.count <= Self.maxCount else { throw WireError(offset: at, expected: "at most \(Self.maxCount) ids in a lookup batch") }
    }

    /// The most ids one batch may carry (the HTTP API takes up to 10,000 per request).
    public static let maxCount = 10_000
}

/// What a lookup found for one id of a batch.
public enum LookupOutcome: UInt8, Sendable, CaseIterable {
    case found = 0
    /// No such subscriber in its shard.
    case notFound = 1
    /// This worker does not own the shard (it moved): ask again with a fresh map.
    case notHere = 2
}

/// A worker's answer to a `LookupBatch`, column by column, in the batch's order.
public struct BatchScores: Sendable, WireCodable {
    public var outcomes: BulkArray<UInt8>
    public var probabilities: BulkArray<Double>
    /// 3 per id: the model feature index of each reason (-1: none).
    public var reasons: BulkArray<Int16>
    /// 3 per id.
    public var contributions: BulkArray<Float>
    /// The model's feature names (what `reasons` index).
    public var featureNames: [String]
    public var modelVersion: String
    public var node: String
    /// The challenger's version and feature names when it answered some rows (`fromChallenger`
    /// marks them, 1 per row; empty when it answered none).
    public var challengerVersion = ""
    public var challengerFeatureNames: [String] = []
    public var fromChallenger = BulkArray<UInt8>([])
    /// When the batch asked for them (`LookupBatch.models`): per row, the answers of the models
    /// active beside the served one whose segment holds the subscriber (empty for a row not found).
    public var active: [[ActiveModelAnswer]]?

    public var count: Int { outcomes.elements.count }

    public func outcome(_ i: Int) -> LookupOutcome { LookupOutcome(rawValue: outcomes.elements[i]) ?? .notHere }

    /// Whether row `i` was answered by the challenger.
    public func isChallenger(_ i: Int) -> Bool { i < fromChallenger.elements.count && fromChallenger.elements[i] == 1 }

    /// The version that answered row `i`.
    public func modelVersion(_ i: Int) -> String { isChallenger(i) ? challengerVersion : modelVersion }

    /// Reason `k` (0–2) of row `i`: its feature name and contribution, nil when it has none.
    public func reason(_ i: Int, _ k: Int) -> (feature: String, contribution: Double)? {
        let f = Int(reasons.elements[3 * i + k])
        let names = isChallenger(i) ? challengerFeatureNames : featureNames
        guard f >= 0, f < names.count else { return nil }
        return (names[f], Double(contributions.elements[3 * i + k]))
    }

    public func encode(to w: inout WireWriter) {
        w.write(outcomes); w.write(probabilities); w.write(reasons); w.write(contributions)
        w.write(featureNames); w.write(modelVersion); w.write(node)
        w.write(challengerVersion); w.write(challengerFeatureNames); w.write(fromChallenger)
        if let active {
            w.write(active.count)
            for answers in active { w.write(answers) }
        }
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        outcomes = try r.read(); probabilities = try r.read(); reasons = try r.read(); contributions = try r.read()
        featureNames = try r.read(); modelVersion = try r.read(); node = try r.read()
        if r.remaining > 0 {  // a worker one version older sends none
            challengerVersion = try r.read(); challengerFeatureNames = try r.read(); fromChallenger = try r.read()
        }
        let n = outcomes.elements.count
        if r.remaining > 0 {
            let k: Int = try r.read()
            guard k == n else { throw WireError(offset: at, expected: "one list of active models' answers per row of the batch scores (\(n)), not \(k)") }
            var lists: [[ActiveModelAnswer]] = []
            lists.reserveCapacity(n)
            for _ in 0..<k {
                let answers: [ActiveModelAnswer] = try r.read()
                guard answers.count <= maxActiveModels else { throw WireError(offset: at, expected: "at most \(maxActiveModels) active models' answers per row") }
                lists.append(answers)
            }
            active = lists
        }
        guard probabilities.elements.count == n, reasons.elements.count == 3 * n, contributions.elements.count == 3 * n else {
            throw WireError(offset: at, expected: "batch scores with matching column lengths (\(n) ids)")
        }
        guard fromChallenger.elements.isEmpty || (fromChallenger.elements.count == n && fromChallenger.elements.allSatisfy({ $0 <= 1 })) else {
            throw WireError(offset: at, expected: "a challenger mark (0 or 1) per row of the batch scores")
        }
        guard outcomes.elements.allSatisfy({ Int($0) < LookupOutcome.allCases.count }) else {
            throw WireError(offset: at, expected: "lookup outcomes 0–\(LookupOutcome.allCases.count - 1)")
        }
        let widest = max(featureNames.count, challengerFeatureNames.count)
        guard reasons.elements.allSatisfy({ $0 >= -1 && Int($0) < widest }) else {
            throw WireError(offset: at, expected: "reason indices below the \(widest) feature names")
        }
    }

    init(capacity n: Int, model: ScoringModel?, challenger: ServedChallenger? = nil, node: String, active: Bool = false) {
        outcomes = BulkArray([]); probabilities = BulkArray([]); reasons = BulkArray([]); contributions = BulkArray([])
        outcomes.elements.reserveCapacity(n); probabilities.elements.reserveCapacity(n)
        reasons.elements.reserveCapacity(3 * n); contributions.elements.reserveCapacity(3 * n)
        featureNames = model?.featureNames ?? []
        modelVersion = model?.version ?? ""
        self.node = node
        if let challenger {
            challengerVersion = challenger.model.version
            challengerFeatureNames = challenger.model.featureNames
            fromChallenger.elements.reserveCapacity(n)
        }
        if active { self.active = [] }
    }

    mutating func append(_ outcome: LookupOutcome) {
        if !challengerVersion.isEmpty { fromChallenger.elements.append(0) }
        active?.append([])
        outcomes.elements.append(outcome.rawValue)
        probabilities.elements.append(0)
        reasons.elements.append(contentsOf: [-1, -1, -1])
        contributions.elements.append(contentsOf: [0, 0, 0])
    }
}

extension ScoringModel {
    /// Scores and explains the subscribers of `batch` found in `stores` (shard → profiles) on
    /// the calling thread, each with the version that answers for it (this model, or `challenger`
    /// within its share); ids whose shard is not in `stores` are `notHere`.
    ///
    /// The found rows' features are gathered per answering model and scored as one batch, as a
    /// job does: path attribution tabulated per leaf gives margins and top-3 reasons in one walk
    /// of the trees (the single query's `score(profile:explain:)` uses the same tables, so both
    /// agree); exact TreeSHAP, or path attribution of a model too big to tabulate, explains the
    /// rows tree by tree over the batch (`batchReasons`).
    func score(batch: LookupBatch, stores: [Int: LoadedShard], challenger: ServedChallenger? = nil, others: [ServedActiveModel] = [],
               node: String) -> BatchScores {
        let n = batch.ids.elements.count
        var out = BatchScores(capacity: n, model: self, challenger: challenger, node: node, active: batch.models)
        // Pass 1: each id's row, and the features of the found ones gathered by the model that answers.
        let champion = LookupGather(self, capacity: n), other = challenger.map { LookupGather($0.model, capacity: n) }
        var placed: [LookupPlace] = []
        placed.reserveCapacity(n)
        for i in 0..<n {
            let id = batch.ids.elements[i]
            guard let loaded = stores[Int(batch.shards.elements[i])] else {
                placed.append(.missing(.notHere))
                continue
            }
            guard let row = loaded.store.row(of: id) else {
                placed.append(.missing(.notFound))
                continue
            }
            let gather = challenger.flatMap { c in ChallengerSplit.answersChallenger(name: c.name, subscriber: id, basisPoints: c.basisPoints) ? other : nil } ?? champion
            placed.append(.found(store: loaded.store, row: row, gather: gather, slot: gather.add(loaded.store, row: row)))
        }
        // Pass 2: each model's rows as one batch.
        let method = batch.explain.method
        var batched = true
        do {
            try champion.explain(method: method)
            try other?.explain(method: method)
        } catch {
            batched = false
        }
        // Pass 3: the answers in the batch's order.
        var profile: [Float] = []
        for (i, place) in placed.enumerated() {
            guard case .found(let store, let row, let gather, let slot) = place else {
                if case .missing(let outcome) = place { out.append(outcome) }
                continue
            }
            if !batched || batch.models {
                if profile.count != store.width { profile = [Float](repeating: 0, count: store.width) }
                profile.withUnsafeMutableBufferPointer { store.profile(row: row, into: $0) }
            }
            out.outcomes.elements.append(LookupOutcome.found.rawValue)
            if challenger != nil { out.fromChallenger.elements.append(gather === champion ? 0 : 1) }
            if batched {
                out.probabilities.elements.append(gather.probabilities[slot])
                out.reasons.elements.append(contentsOf: gather.features[(3 * slot)..<(3 * slot + 3)])
                out.contributions.elements.append(contentsOf: gather.values[(3 * slot)..<(3 * slot + 3)])
            } else {
                // Never expected (the gathered columns are the model's own): row by row instead.
                let model = gather.model
                let (p, _, reasons) = model.score(profile: profile, explain: batch.explain)
                out.probabilities.elements.append(p)
                for k in 0..<3 {
                    let reason = k < reasons.count ? reasons[k] : nil
                    out.reasons.elements.append(Int16(reason.flatMap { model.featureNames.firstIndex(of: $0.feature) } ?? -1))
                    out.contributions.elements.append(reason.map { Float($0.contribution) } ?? 0)
                }
            }
            if batch.models {
                // Each active model whose segment holds the subscriber.
                let id = batch.ids.elements[i]
                out.active?.append(others.compactMap { other in
                    guard other.segment?.contains(profile: profile) ?? true else { return nil }
                    let model = other.answering(id)  // its challenger within its share
                    let (p, band, reasons) = model.score(profile: profile)  // path attribution, as a single query's
                    return ActiveModelAnswer(name: other.name, modelVersion: model.version, probability: p, riskBand: band.description, reasons: reasons)
                })
            }
        }
        return out
    }
}

/// Where a lookup batch's id stands after pass 1: not answerable, or found and gathered.
private enum LookupPlace {
    case missing(LookupOutcome)
    case found(store: ProfileStore, row: Int, gather: LookupGather, slot: Int)
}

/// One model's rows of a lookup batch: their features gathered column by column (`capacity`
/// values a column, the first `count` used), then scored and explained together.
private final class LookupGather {
    let model: ScoringModel
    let capacity: Int
    private(set) var count = 0
    private var columns: [Float]
    private(set) var probabilities: [Double] = []
    /// 3 per row: model feature indices, biggest first (-1: none).
    private(set) var features: [Int16] = []
    /// 3 per row: their contributions (0 where none).
    private(set) var values: [Float] = []

    init(_ model: ScoringModel, capacity: Int) {
        self.model = model
        self.capacity = capacity
        columns = [Float](repeating: .nan, count: model.featureNames.count * capacity)
    }

    /// Gathers the model's features of `row` of `store` (missing where the store holds no such
    /// column); returns the row's slot in this batch.
    func add(_ store: ProfileStore, row: Int) -> Int {
        let slot = count, capacity = capacity, features = model.profileColumn
        columns.withUnsafeMutableBufferPointer { c in
            guard let base = c.baseAddress else { return }
            store.values(row: row, features: features, into: base + slot, stride: capacity)
        }
        count += 1
        return slot
    }

    /// Probabilities and top-3 reasons of every gathered row, by `method`.
    /// - Throws: `ModelError` if the model refuses the gathered columns (it cannot: there is one
    ///   per model feature).
    func explain(method: TreeExplainer.Method) throws(ModelError) {
        let n = count, model = model
        probabilities = [Double](repeating: 0, count: n)
        features = [Int16](repeating: -1, count: 3 * n)
        values = [Float](repeating: 0, count: 3 * n)
        guard n > 0 else { return }
        var margins = [Double](repeating: 0, count: n)
        let tabulated = method == .approximate ? model.attribution : nil
        try columns.withUnsafeBufferPointer { c throws(ModelError) in
            // Column j starts at j × capacity; its first n values are this batch's rows.
            let input = FeatureColumns(gathered: c, columns: model.featureNames.count, rows: n, stride: capacity)
            if let tabulated {
                try tabulated.score(input, margins: &margins, outputs: &probabilities, top: 3, features: &features, values: &values)
            } else {
                try model.forest.score(input, margins: &margins, outputs: &probabilities)
                var scratch = ReasonScratch()
                model.batchReasons(input, probabilities: probabilities, from: -.infinity, method: method,
                                   features: &features, values: &values, scratch: &scratch)
            }
        }
    }
}

extension WorkerActor {
    /// Many subscribers' live scores with reasons (the HTTP API's batch endpoint): computed off
    /// this actor, so it goes on placing and serving shards meanwhile. Ids of shards this worker
    /// does not own come back `notHere`.
    public distributed func lookup(batch: LookupBatch) async -> BatchScores {
        let stores = ownedStores(batch.shards.elements)
        let model = currentModel, challenger = currentChallenger, node = actorSystem.node.name
        let others = batch.models ? activeModels : []
        return await Self.score(batch, stores: stores, model: model, challenger: challenger, others: others, node: node)
    }

    /// Scores the batch in slices of 256, yielding between them: a large batch (or an exact one)
    /// never holds one of the few pool threads long enough to delay this worker's heartbeats or
    /// its other calls.
    private nonisolated static func score(_ batch: LookupBatch, stores: [Int: LoadedShard], model: ScoringModel?, challenger: ServedChallenger?,
                                          others: [ServedActiveModel], node: String) async -> BatchScores {
        guard let model else {
            var out = BatchScores(capacity: batch.ids.elements.count, model: nil, node: node, active: batch.models)
            for _ in batch.ids.elements { out.append(.notHere) }
            return out
        }
        let n = batch.ids.elements.count, slice = 256
        guard n > slice else { return model.score(batch: batch, stores: stores, challenger: challenger, others: others, node: node) }
        var out = BatchScores(capacity: n, model: model, challenger: challenger, node: node, active: batch.models)
        var start = 0
        while start < n {
            let end = min(n, start + slice)
            let part = model.score(batch: LookupBatch(ids: Array(batch.ids.elements[start..<end]), shards: Array(batch.shards.elements[start..<end]),
                                                      explain: batch.explain, models: batch.models),
                                   stores: stores, challenger: challenger, others: others, node: node)
            if let answers = part.active { out.active?.append(contentsOf: answers) }
            out.outcomes.elements += part.outcomes.elements
            out.fromChallenger.elements += part.fromChallenger.elements
            out.probabilities.elements += part.probabilities.elements
            out.reasons.elements += part.reasons.elements
            out.contributions.elements += part.contributions.elements
            start = end
            await Task.yield()
        }
        return out
    }
}
