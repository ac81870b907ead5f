import SubscriberProfiles
import TreeModel
import WireFormat

/// A model active beside the served one (docs/models.md, "Several models"): scored in every
/// rescoring job, in the same walk over each shard's profiles as the served model, for the
/// subscribers of its segment. Travels with every assignment, so a worker that joins, restarts or
/// takes shards over scores what the others score.
public struct ActiveModelPackage: Sendable, WireCodable, Equatable {
    public var name: String
    public var model: ModelPackage
    /// The segment's canonical text (`ModelSegment.description`); empty: every subscriber.
    public var segment: String

    public init(name: String, model: ModelPackage, segment: String) {
        self.name = name
        self.model = model
        self.segment = segment
    }

    public func encode(to w: inout WireWriter) { w.write(name); w.write(model); w.write(segment) }
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        name = try r.read(); model = try r.read(); segment = try r.read()
        guard (1...64).contains(name.utf8.count), segment.utf8.count <= ModelSegment.maxBytes else {
            throw WireError(offset: at, expected: "an active model with a name of 1–64 bytes and a segment of at most \(ModelSegment.maxBytes) bytes")
        }
    }

    public static func == (a: ActiveModelPackage, b: ActiveModelPackage) -> Bool {
        a.name == b.name && a.model.version == b.model.version && a.segment == b.segment
    }
}

/// The most models active beside the served one.
public let maxActiveModels = 32

/// An active model as a worker holds it: compiled against its profiles, its segment bound to
/// their columns.
struct ServedActiveModel: Sendable {
    let name: String
    let model: ScoringModel
    let segmentText: String
    let segment: BoundSegment?
    /// Its challenger: answers a share of its live answers, scored in shadow in jobs.
    var challenger: ServedChallenger?

    /// The version that answers live for `subscriber`: the challenger within its share, else this model.
    func answering(_ subscriber: Int64) -> ScoringModel {
        challenger?.model(for: subscriber, champion: model) ?? model
    }
}

/// The challengers of active models (docs/models.md, "Champion and challenger"). Pure.
public enum ActiveChallengers {
    /// Whether `challengers` fit `active`: at most one per active model, each named as one and of
    /// another version than it.
    public static func fit(_ challengers: [ChallengerPackage], active: [ActiveModelPackage]) -> Bool {
        guard Set(challengers.map(\.name)).count == challengers.count else { return false }
        return challengers.allSatisfy { c in active.contains { $0.name == c.name && $0.model.version != c.model.version } }
    }

    /// `challengers` without those that no longer fit `active` (their model deactivated, or its
    /// champion now at the challenger's version): a change of champion ends its challenger.
    public static func kept(_ challengers: [ChallengerPackage], active: [ActiveModelPackage], previous: [ActiveModelPackage]) -> [ChallengerPackage] {
        // Its model still active, at the version it challenged.
        challengers.filter { c in
            guard let now = active.first(where: { $0.name == c.name }) else { return false }
            return previous.first(where: { $0.name == c.name })?.model.version == now.model.version
        }
    }
}

/// An active model's challenger scored in shadow over a shard in a job: its probability of each
/// of the model's segment rows (`ModelScores.rows` of the model of the same name, in order).
public struct ModelShadow: Sendable, WireCodable {
    /// The active model it challenges.
    public var name: String
    /// The challenger's version.
    public var version: String
    public var probabilities: BulkArray<Float>

    init(name: String, version: String) {
        self.name = name
        self.version = version
        probabilities = BulkArray([])
    }

    public func encode(to w: inout WireWriter) { w.write(name); w.write(version); w.write(probabilities) }
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        name = try r.read(); version = try r.read(); probabilities = try r.read()
        guard probabilities.elements.allSatisfy({ $0 >= 0 && $0 <= 1 }) else {
            throw WireError(offset: at, expected: "shadow probabilities of model \(name) between 0 and 1")
        }
    }
}

/// What `status` and `models list` show of an active model.
public struct ActiveModelStatus: Sendable, WireCodable, Codable, Equatable {
    public var name: String
    public var version: String
    /// The segment's canonical text; empty: every subscriber.
    public var segment: String

    public init(name: String, version: String, segment: String) {
        self.name = name
        self.version = version
        self.segment = segment
    }

    public func encode(to w: inout WireWriter) { w.write(name); w.write(version); w.write(segment) }
    public init(from r: inout WireReader) throws(WireError) { name = try r.read(); version = try r.read(); segment = try r.read() }
}

/// One active model's scores of a shard in a job: its segment's subscribers only, by their row in
/// the shard's scores (`ShardScores.ids`), with probability, band and top-3 reasons (feature index
/// in this model, -1 for none) and contributions.
public struct ModelScores: Sendable, WireCodable {
    public var name: String
    public var version: String
    /// The segment scored (canonical text; empty: everyone): a worker on a stale one is refused.
    public var segment: String
    /// Positions in `ShardScores.ids`, increasing.
    public var rows: BulkArray<Int32>
    public var probabilities: BulkArray<Float>
    public var bands: BulkArray<UInt8>
    /// 3 per subscriber.
    public var reasons: BulkArray<Int16>
    /// 3 per subscriber.
    public var contributions: BulkArray<Float>

    public var count: Int { rows.elements.count }

    init(name: String, version: String, segment: String) {
        self.name = name
        self.version = version
        self.segment = segment
        rows = BulkArray([]); probabilities = BulkArray([]); bands = BulkArray([]); reasons = BulkArray([]); contributions = BulkArray([])
    }

    public func encode(to w: inout WireWriter) {
        w.write(name); w.write(version); w.write(segment); w.write(rows); w.write(probabilities); w.write(bands); w.write(reasons); w.write(contributions)
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        name = try r.read(); version = try r.read(); segment = try r.read(); rows = try r.read(); probabilities = try r.read(); bands = try r.read()
        reasons = try r.read(); contributions = try r.read()
        let n = rows.elements.count
        guard probabilities.elements.count == n, bands.elements.count == n, reasons.elements.count == 3 * n, contributions.elements.count == 3 * n else {
            throw WireError(offset: at, expected: "an active model's scores with matching column lengths (\(n) subscribers)")
        }
        guard probabilities.elements.allSatisfy({ $0 >= 0 && $0 <= 1 }) else { throw WireError(offset: at, expected: "probabilities between 0 and 1") }
        guard bands.elements.allSatisfy({ Int($0) < RiskBand.allCases.count }) else { throw WireError(offset: at, expected: "risk bands 0–\(RiskBand.allCases.count - 1)") }
        var last: Int32 = -1
        for row in rows.elements {
            guard row > last else { throw WireError(offset: at, expected: "increasing row positions") }
            last = row
        }
    }

    /// Whether every row is a position of a shard's `count` scores.
    func fits(_ count: Int) -> Bool { rows.elements.last.map { Int($0) < count } ?? true }
}

/// One active model's live answer for a subscriber in its segment (`churngrid score`).
public struct ActiveModelAnswer: Sendable, WireCodable, Codable, Equatable {
    public var name: String
    public var modelVersion: String
    public var probability: Double
    public var riskBand: String
    public var reasons: [Reason]

    public init(name: String, modelVersion: String, probability: Double, riskBand: String, reasons: [Reason]) {
        self.name = name
        self.modelVersion = modelVersion
        self.probability = probability
        self.riskBand = riskBand
        self.reasons = reasons
    }

    public func encode(to w: inout WireWriter) { w.write(name); w.write(modelVersion); w.write(probability); w.write(riskBand); w.write(reasons) }
    public init(from r: inout WireReader) throws(WireError) {
        name = try r.read(); modelVersion = try r.read(); probability = try r.read(); riskBand = try r.read(); reasons = try r.read()
    }
}
