import ClusterSystem
import Distributed
import SubscriberEvents
import SubscriberProfiles
import TreeModel
import WireFormat

extension WorkerActor {
    /// Loads (parses and compiles) a model ahead of a deployment's switch, so the switch itself
    /// is quick on every worker (coordinator only).
    /// - Returns: the model's version.
    public distributed func prepareModel(_ package: ModelPackage, term: Int64) async throws -> String {
        try obey(term: term, epoch: nil, "prepareModel")
        if model?.version == package.version || preparedModel?.version == package.version { return package.version }
        if let challenger, challenger.model.version == package.version {
            // Promoting the challenger: it is loaded already.
            preparedModel = challenger.model
            return package.version
        }
        let bytes = package.bytes.elements, source = package.source
        let next: ScoringModel
        do {
            // Its extra columns are loaded on every held shard before it is (and while the served
            // model keeps answering).
            next = try await compile(bytes: bytes, source: source)
        } catch {
            throw ClusterError("\(actorSystem.node.name) cannot load model \(package.version): \(error)")
        }
        guard next.version == package.version else {
            throw ClusterError("\(actorSystem.node.name) loaded model \(next.version) from bytes sent as \(package.version)")
        }
        preparedModel = next
        return next.version
    }

    /// Switches every shard held here (owner and standby) and the event path to the prepared
    /// model `version` (coordinator only). Each shard switches in one step between two answers.
    /// A challenger ends with it (a new champion, or the challenger promoted).
    public distributed func switchModel(version: String, term: Int64) async throws {
        try obey(term: term, epoch: nil, "switchModel")
        if model?.version == version {
            if challenger != nil, let model {
                challenger = nil
                await switchShards(to: model)
                logger.notice("challenger ended", metadata: ["model": "\(version)"])
            }
            return
        }
        guard let next = preparedModel, next.version == version else {
            throw ClusterError("\(actorSystem.node.name) has not loaded model \(version): prepare it first")
        }
        challenger = nil
        await switchShards(to: next)
        // The event path too before the switch counts as done: if it fails, a retry does it all again.
        try await events.replaceModel(next)
        eventsModel = next.version
        model = next
        preparedModel = nil
        logger.notice("model deployed", metadata: ["model": "\(version)", "shards": "\(owned.count)", "standbys": "\(standing.count)"])
    }

    /// Every hosted shard answers with `next` (and the challenger held now) from now on.
    func switchShards(to next: ScoringModel) async {
        let challenger = challenger
        for actor in owned.values { await actor.whenLocal { $0.use(next, challenger: challenger) } }
        for actor in standing.values { await actor.whenLocal { $0.use(next, challenger: challenger) } }
    }

    /// Serves `order`'s challenger beside the model from now on — the prepared version (or the
    /// one served already, at another share) — or none (coordinator only). Each shard switches in
    /// one step between two answers.
    public distributed func switchChallenger(_ order: ChallengerOrder, term: Int64) async throws {
        try obey(term: term, epoch: nil, "switchChallenger")
        guard let model else { throw ClusterError("\(actorSystem.node.name) serves no model yet") }
        guard let version = order.version else {
            guard challenger != nil else { return }
            challenger = nil
            await switchShards(to: model)
            logger.notice("challenger ended", metadata: ["model": "\(model.version)"])
            return
        }
        let loaded: ScoringModel
        if let c = challenger, c.model.version == version {
            loaded = c.model
        } else if let prepared = preparedModel, prepared.version == version {
            loaded = prepared
        } else {
            throw ClusterError("\(actorSystem.node.name) has not loaded model \(version): prepare it first")
        }
        guard version != model.version else { throw ClusterError("model \(version) is the champion; it cannot also be its challenger") }
        challenger = ServedChallenger(name: order.name, model: loaded, basisPoints: order.basisPoints)
        if preparedModel?.version == version { preparedModel = nil }
        await switchShards(to: model)
        logger.notice("challenger deployed", metadata: ["model": "\(version)", "champion": "\(model.version)", "basis_points": "\(order.basisPoints)",
                                                         "shards": "\(owned.count)", "standbys": "\(standing.count)"])
    }

    /// Takes an assignment's challenger (loading it when it is new here). One that does not load
    /// here is logged and not served (the champion answers alone; jobs refuse this worker's shards
    /// until it is fixed, since their shadow scores are missing): the assignment itself goes on.
    func follow(challenger package: ChallengerPackage?) async {
        guard let package else {
            if challenger != nil, let model {
                challenger = nil
                await switchShards(to: model)
            }
            return
        }
        if let c = challenger, c.model.version == package.model.version, c.name == package.name, c.basisPoints == package.basisPoints { return }
        let loaded: ScoringModel
        if let c = challenger, c.model.version == package.model.version {
            loaded = c.model
        } else if let prepared = preparedModel, prepared.version == package.model.version {
            loaded = prepared
        } else {
            let bytes = package.model.bytes.elements, source = package.model.source
            do {
                loaded = try await compile(bytes: bytes, source: source)
                guard loaded.version == package.model.version else {
                    throw ClusterError("the bytes sent as \(package.model.version) are model \(loaded.version)")
                }
            } catch {
                logger.error("the challenger does not load here: not served (the champion answers alone)",
                             metadata: ["model": "\(package.model.version)", "error": "\(error)"])
                if challenger != nil, let model {
                    challenger = nil
                    await switchShards(to: model)
                }
                return
            }
        }
        challenger = ServedChallenger(name: package.name, model: loaded, basisPoints: package.basisPoints)
        if let model { await switchShards(to: model) }
    }
}

/// What a worker serves as challenger: a version of model `name` it has prepared, at a share of
/// `basisPoints`, or none (`version` nil).
public struct ChallengerOrder: Sendable, WireCodable {
    public var name: String
    public var version: String?
    public var basisPoints: Int

    public init(name: String, version: String?, basisPoints: Int) {
        self.name = name
        self.version = version
        self.basisPoints = basisPoints
    }

    public func encode(to w: inout WireWriter) { w.write(name); w.write(version); w.write(basisPoints) }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        name = try r.read(); version = try r.read(); basisPoints = try r.read()
        guard version == nil || (1...ChallengerSplit.basis).contains(basisPoints) else {
            throw WireError(offset: at, expected: "a challenger share of 1–\(ChallengerSplit.basis) basis points, found \(basisPoints)")
        }
    }
}

extension EventIngest {
    /// Events are rescored with `model` from the next group on (rules and shard count kept).
    func replaceModel(_ model: ScoringModel) async throws {
        let confined = confined
        try await thread.run { confined.configure(model: model, rules: confined.applier?.rules, shardCount: confined.shardCount) }
    }
}

extension WorkerActor {
    /// Loads the other version of a comparison (coordinator only).
    public distributed func prepareComparison(_ package: ModelPackage, term: Int64) async throws -> String {
        try obey(term: term, epoch: nil, "prepareComparison")
        if comparisonModel?.version == package.version { return package.version }
        let bytes = package.bytes.elements, source = package.source
        do {
            comparisonModel = try await compile(bytes: bytes, source: source)
        } catch {
            throw ClusterError("\(actorSystem.node.name) cannot load model \(package.version): \(error)")
        }
        return package.version
    }

    /// Scores every subscriber of the shards owned here with the served model and the prepared
    /// other version, on a scoring thread: their histograms (first pass) or their top-decile
    /// counts against `request.thresholds` (second pass). See `ModelComparison`.
    public distributed func compareModels(_ request: CompareRequest, term: Int64) async throws -> ComparisonPart {
        try await compare(request, activeModel: "", segment: "", term: term)
    }

    /// As `compareModels(_:term:)`, with the active model `activeModel` in place of the served
    /// one, over its segment's subscribers (refused when this worker holds it over another
    /// segment than `segment`, the coordinator's: the population would differ).
    public distributed func compareModels(_ request: CompareRequest, activeModel: String, segment: String, term: Int64) async throws -> ComparisonPart {
        try await compare(request, activeModel: activeModel, segment: segment, term: term)
    }

    private func compare(_ request: CompareRequest, activeModel: String, segment wanted: String, term: Int64) async throws -> ComparisonPart {
        try obey(term: term, epoch: nil, "compareModels")
        guard let served = model else { throw ClusterError("\(actorSystem.node.name) serves no model yet") }
        var champion = served, segment: BoundSegment?
        if !activeModel.isEmpty {
            // An active model's champion, over its segment.
            guard let active = activeModels.first(where: { $0.name == activeModel }) else {
                throw ClusterError("\(actorSystem.node.name) does not score model \(activeModel) beside the served one")
            }
            guard active.segmentText == wanted else {
                throw ClusterError("\(actorSystem.node.name) scores model \(activeModel) over segment '\(active.segmentText)', not '\(wanted)': compare when every worker has the change")
            }
            champion = active.model
            segment = active.segment
        }
        guard let challenger = comparisonModel, challenger.version == request.version else {
            throw ClusterError("\(actorSystem.node.name) has not loaded model \(request.version) to compare with")
        }
        guard request.thresholds.isEmpty || request.thresholds.count == 2 else { throw ClusterError("a comparison's second pass has two thresholds") }
        var held: [LoadedShard] = []
        for shard in Set(request.shards).sorted() {
            guard owned[shard] != nil, let store = stores[shard] else {
                throw ClusterError("\(actorSystem.node.name) does not own shard \(shard) (it moved): run the comparison again")
            }
            held.append(store)
        }
        let churned = Set(request.churned.elements), retained = Set(request.retained.elements), thresholds = request.thresholds
        let shards = held
        let compared = champion, within = segment
        var part = try await scoring.run { try Self.compare(shards, compared, challenger, churned: churned, retained: retained, thresholds: thresholds, segment: within) }
        part.version = champion.version
        return part
    }

    static func compare(_ stores: [LoadedShard], _ a: ScoringModel, _ b: ScoringModel, churned: Set<Int64>, retained: Set<Int64>,
                        thresholds: [Double], segment: BoundSegment? = nil) throws -> ComparisonPart {
        let bins = ComparisonHistograms.bins
        let histograms = !thresholds.isEmpty
        var h = [Int32](repeating: 0, count: histograms ? 0 : 6 * bins)
        var top = [0, 0, 0], subscribers = 0
        var ma = [Double](), pa = [Double](), mb = [Double](), pb = [Double]()
        var selected: [Int32] = [], gatheredA: [Float] = [], gatheredB: [Float] = []
        for loaded in stores {
            try loaded.store.forEachRun { (_: Int, rows: Int, ids: UnsafePointer<Int64>, columns: [UnsafePointer<Float>]) throws in
                if let segment, segment.maxColumn >= columns.count {
                    throw ClusterError("the compared model's segment reads a column these profiles do not hold (its extra columns are not loaded)")
                }
                let inputA = try a.input(columns, rows: rows), inputB = try b.input(columns, rows: rows)
                var n = rows
                if let segment {
                    // Only the segment's rows are scored, by both models: gathered into contiguous columns.
                    selected.removeAll(keepingCapacity: true)
                    for i in 0..<rows where segment.contains(columns, row: i) { selected.append(Int32(i)) }
                    n = selected.count
                    if n == 0 { return }
                    OtherModelBlock.gather(inputA, selected, into: &gatheredA)
                    OtherModelBlock.gather(inputB, selected, into: &gatheredB)
                }
                ma = [Double](repeating: 0, count: n); pa = ma; mb = ma; pb = ma
                if segment == nil {
                    try a.forest.score(inputA, margins: &ma, outputs: &pa)
                    try b.forest.score(inputB, margins: &mb, outputs: &pb)
                } else {
                    try gatheredA.withUnsafeBufferPointer { ga throws in
                        try gatheredB.withUnsafeBufferPointer { gb throws in
                            try a.forest.score(FeatureColumns(gathered: ga, columns: inputA.columns.count, rows: n), margins: &ma, outputs: &pa)
                            try b.forest.score(FeatureColumns(gathered: gb, columns: inputB.columns.count, rows: n), margins: &mb, outputs: &pb)
                        }
                    }
                }
                for r in 0..<n {
                    let i = segment == nil ? r : Int(selected[r])
                    subscribers += 1
                    if histograms {
                        if pa[r] >= thresholds[0] { top[0] += 1 }
                        if pb[r] >= thresholds[1] { top[1] += 1 }
                        if pa[r] >= thresholds[0] && pb[r] >= thresholds[1] { top[2] += 1 }
                        continue
                    }
                    let x = ComparisonHistograms.bin(pa[r]), y = ComparisonHistograms.bin(pb[r])
                    h[x] &+= 1
                    h[bins + y] &+= 1
                    if churned.contains(ids[i]) {
                        h[2 * bins + x] &+= 1
                        h[3 * bins + y] &+= 1
                    } else if retained.contains(ids[i]) {
                        h[4 * bins + x] &+= 1
                        h[5 * bins + y] &+= 1
                    }
                }
            }
        }
        return ComparisonPart(version: a.version, subscribers: subscribers, histograms: h, top: histograms ? top : [])
    }
}
