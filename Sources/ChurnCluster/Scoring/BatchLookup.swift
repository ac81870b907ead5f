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
    func score(batch: LookupBatch, stores: [Int: LoadedShard], challenger: ServedChallenger? = nil, others: [ServedActiveModel] = [],
               node: String) -> BatchScores {
        let n = batch.ids.elements.count
        var out = BatchScores(capacity: n, model: self, challenger: challenger, node: node, active: batch.models)
        var profile = [Float](repeating: 0, count: stores.values.first?.store.width ?? 0)
        let method = batch.explain.method
        var champion = RowScratch(self), other = challenger.map { RowScratch($0.model) }
        for i in 0..<n {
            let id = batch.ids.elements[i]
            guard let loaded = stores[Int(batch.shards.elements[i])] else {
                out.append(.notHere)
                continue
            }
            let store = loaded.store
            guard let r = store.row(of: id) else {
                out.append(.notFound)
                continue
            }
            if profile.count != store.width { profile = [Float](repeating: 0, count: store.width) }
            profile.withUnsafeMutableBufferPointer { store.profile(row: r, into: $0) }
            let answersChallenger = challenger.map { ChallengerSplit.answersChallenger(name: $0.name, subscriber: id, basisPoints: $0.basisPoints) } ?? false
            let scored: (p: Double, reasons: Reasons3)
            if answersChallenger, let s = other?.score(profile, method: method) {
                scored = s
                out.fromChallenger.elements.append(1)
            } else {
                scored = champion.score(profile, method: method)
                if challenger != nil { out.fromChallenger.elements.append(0) }
            }
            out.outcomes.elements.append(LookupOutcome.found.rawValue)
            out.probabilities.elements.append(scored.p)
            let (a, b, c) = scored.reasons
            out.reasons.elements.append(Int16(a.0)); out.reasons.elements.append(Int16(b.0)); out.reasons.elements.append(Int16(c.0))
            out.contributions.elements.append(a.1); out.contributions.elements.append(b.1); out.contributions.elements.append(c.1)
            if batch.models {
                // Each active model whose segment holds the subscriber.
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

/// Three reasons: feature index (-1: none) and contribution.
private typealias Reasons3 = ((Int, Float), (Int, Float), (Int, Float))

/// One model's buffers for scoring and explaining one profile after another.
private struct RowScratch {
    let model: ScoringModel
    var row: [Float]
    var phi: [Double]

    init(_ model: ScoringModel) {
        self.model = model
        row = [Float](repeating: 0, count: model.featureNames.count)
        phi = [Double](repeating: 0, count: model.explainer.contributionCount)
    }

    /// The probability of `profile` and its top 3 positive contributions, biggest first (feature
    /// index and contribution; -1 and 0 where there are fewer).
    mutating func score(_ profile: [Float], method: TreeExplainer.Method) -> (p: Double, reasons: Reasons3) {
        let f = row.count, model = model
        for j in 0..<f { let c = model.profileColumn[j]; row[j] = c < profile.count ? profile[c] : .nan }
        let p = row.withUnsafeBufferPointer { model.forest.transform(margin: model.forest.margin(row: $0)) }
        row.withUnsafeBufferPointer { r in
            phi.withUnsafeMutableBufferPointer { model.explainer.contributions(row: r, into: $0, method: method) }
        }
        var top: (Int, Int, Int) = (-1, -1, -1)
        for j in 0..<f where phi[j] > 0 {
            if top.0 < 0 || phi[j] > phi[top.0] {
                top = (j, top.0, top.1)
            } else if top.1 < 0 || phi[j] > phi[top.1] {
                top = (top.0, j, top.1)
            } else if top.2 < 0 || phi[j] > phi[top.2] {
                top.2 = j
            }
        }
        func at(_ j: Int) -> (Int, Float) { (j, j >= 0 ? Float(phi[j]) : 0) }
        return (p, (at(top.0), at(top.1), at(top.2)))
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
