import Foundation
import WireFormat

/// The model registry (docs/models.md, "Registry"): every model version brought to the cluster,
/// stored in PostgreSQL (`model_registry`) with its file, features, who added it and when; and
/// the one the cluster serves (`model_served`). `churngrid models add|list|show|remove|deploy`.
public enum ModelRegistry {
    /// The name `coordinator --model FILE` registers its file under.
    public static let defaultName = "churn"
    /// A model file's size at most (the biggest operator models are a few tens of MB of JSON).
    public static let maxBytes = 64 << 20

    /// A registry name: 1–64 of a–z, 0–9, '_', '.', '-', starting with a letter or digit.
    public static func validName(_ name: String) throws(ClusterError) -> String {
        let ok = !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D }
            && name.utf8.first.map { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) } == true
        guard ok else { throw ClusterError("model name '\(name.prefix(80))' is not valid: 1–64 of a–z, 0–9, '_', '.', '-', starting with a letter or digit") }
        return name
    }

    /// The file format of model bytes, by their contents: "xgboost" (JSON) or "lightgbm" (text).
    public static func format(of bytes: [UInt8]) -> String {
        let first = bytes.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
        return first == UInt8(ascii: "{") ? "xgboost" : "lightgbm"
    }

    /// The version `asked` names among `versions`: itself, or the one version it is a prefix of
    /// (at least 6 characters, e.g. `m-3f2a`).
    /// - Throws: `ModelRefusal` naming the versions there are, when none or several match.
    public static func resolve(_ asked: String, among versions: [String], model name: String) throws(ModelRefusal) -> String {
        if versions.contains(asked) { return asked }
        let matches = asked.count >= 6 ? versions.filter { $0.hasPrefix(asked) } : []
        if matches.count == 1, let only = matches.first { return only }
        if versions.isEmpty { throw ModelRefusal(.unknownModel, "no model named '\(name)' is registered (churngrid models list)") }
        if matches.count > 1 { throw ModelRefusal(.ambiguousVersion, "version '\(asked)' of model '\(name)' is ambiguous: \(matches.sorted().joined(separator: ", "))") }
        throw ModelRefusal(.unknownVersion, "model '\(name)' has no version '\(asked.prefix(80))'; its versions: \(versions.sorted().joined(separator: ", "))")
    }
}

/// A registry operation refused for a reason its caller can act on. A caller in the coordinator's
/// process (the HTTP API) answers with the status the kind means; a remote caller sees the text.
public struct ModelRefusal: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case unknownModel, unknownVersion, ambiguousVersion
        /// A job, a campaign run, an erasure or another deployment is running.
        case busy
        /// The served version cannot be removed.
        case served
        /// The version does not load (it loaded when it was added: another build, a changed catalogue).
        case unloadable
        /// The version already has a drift reference (a file's, or its first job's): it is kept.
        case referenceExists
        /// The model has no challenger to promote.
        case noChallenger
        /// A segment that does not parse or names what the schema lacks.
        case invalidSegment
        /// The model is not active beside the served one.
        case notActive
    }

    public var kind: Kind
    public var description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// One registered model version (without its bytes).
public struct RegisteredModel: Sendable, Codable, WireCodable, Equatable {
    public var name: String
    public var version: String
    /// The file it was added from.
    public var source: String
    /// "xgboost" or "lightgbm".
    public var format: String
    public var features: [String]
    public var bytes: Int
    public var sha256: String
    public var addedBy: String
    /// ms since 1970.
    public var addedAt: Int64
    /// Whether the cluster serves it now.
    public var served: Bool

    public init(name: String, version: String, source: String, format: String, features: [String], bytes: Int, sha256: String,
                addedBy: String, addedAt: Int64, served: Bool) {
        self.name = name; self.version = version; self.source = source; self.format = format; self.features = features
        self.bytes = bytes; self.sha256 = sha256; self.addedBy = addedBy; self.addedAt = addedAt; self.served = served
    }

    public func encode(to w: inout WireWriter) {
        w.write(name); w.write(version); w.write(source); w.write(format); w.write(features); w.write(bytes); w.write(sha256)
        w.write(addedBy); w.write(addedAt); w.write(served)
    }

    public init(from r: inout WireReader) throws(WireError) {
        name = try r.read(); version = try r.read(); source = try r.read(); format = try r.read(); features = try r.read()
        bytes = try r.read(); sha256 = try r.read(); addedBy = try r.read(); addedAt = try r.read(); served = try r.read()
    }
}

/// A model's versions with the drift of each version's last measured job (`models show`).
public struct ModelDetails: Sendable, Codable, WireCodable {
    public var name: String
    /// Newest first.
    public var versions: [RegisteredModel]
    /// Per version (same order): its last measured job's drift, nil when none was measured.
    public var drift: [DriftReport?]
    /// The challenger served beside this model (nil: none).
    public var challenger: ChallengerStatus?
    /// Per version (same order): the last completed job that scored it, with its figures over the
    /// subscribers it scored; nil when none did (or only jobs published before these were kept).
    /// Not on the wire (a client one version older reads `ModelDetails` strictly): the coordinator's
    /// `modelLastJobs(name:)` answers it, and `models show` fills it in.
    public var lastJobs: [ModelJobFigures?] = []

    public init(name: String, versions: [RegisteredModel], drift: [DriftReport?]) {
        self.name = name
        self.versions = versions
        self.drift = drift
    }

    public func encode(to w: inout WireWriter) {
        w.write(name); w.write(versions)
        w.write(drift.count)
        for d in drift {
            w.write(d != nil)
            if let d { w.write(d) }
        }
        w.write(challenger)
    }

    public init(from r: inout WireReader) throws(WireError) {
        name = try r.read(); versions = try r.read()
        let at = r.offset
        let n: Int = try r.read()
        guard n == versions.count else { throw WireError(offset: at, expected: "one drift entry per version") }
        drift = []
        for _ in 0..<n {
            let present: Bool = try r.read()
            drift.append(present ? try r.read(DriftReport.self) : nil)
        }
        if r.remaining > 0 { challenger = try r.read() }
    }
}

/// A model version's figures in one job (`scoring_job_models`): the subscribers it scored (its
/// segment's, for an active model), their mean probability and how many fell in each risk band.
public struct ModelJobFigures: Sendable, Codable, WireCodable, Equatable {
    public var job: Int64
    /// `served` or `active`.
    public var role: String
    /// The segment scored (canonical text; empty: everyone).
    public var segment: String
    public var subscribers: Int
    public var meanProbability: Double
    /// Subscribers per band, low … very high.
    public var perBand: [Int]

    public init(job: Int64, role: String, segment: String, subscribers: Int, meanProbability: Double, perBand: [Int]) {
        self.job = job
        self.role = role
        self.segment = segment
        self.subscribers = subscribers
        self.meanProbability = meanProbability
        self.perBand = perBand
    }

    public func encode(to w: inout WireWriter) {
        w.write(job); w.write(role); w.write(segment); w.write(subscribers); w.write(meanProbability); w.write(perBand)
    }

    public init(from r: inout WireReader) throws(WireError) {
        job = try r.read(); role = try r.read(); segment = try r.read(); subscribers = try r.read()
        meanProbability = try r.read(); perBand = try r.read()
    }
}

/// What a deployment did (`models deploy`).
public struct ModelDeployment: Sendable, Codable, WireCodable, Equatable {
    public var name: String
    public var version: String
    /// The version served before ("" when the same was already served: nothing changed).
    public var previous: String
    /// Workers switched.
    public var workers: Int
    /// From the first worker told to switch to the last one's answer: the window in which some
    /// shards answered with the old version and others with the new.
    public var switchSeconds: Double
    /// The whole deployment (loading the model on every worker included).
    public var seconds: Double
    /// Workers that did not confirm the switch, even when asked again (with why): they still
    /// answer with the old version; `models deploy` again finishes the deployment.
    public var unconfirmed: [String] = []
    /// Set when the version was deployed as challenger: its share of live answers, in percent.
    public var challengerPercent: Double?

    public init(name: String, version: String, previous: String, workers: Int, switchSeconds: Double, seconds: Double) {
        self.name = name; self.version = version; self.previous = previous; self.workers = workers
        self.switchSeconds = switchSeconds; self.seconds = seconds
    }

    public func encode(to w: inout WireWriter) {
        w.write(name); w.write(version); w.write(previous); w.write(workers); w.write(switchSeconds); w.write(seconds); w.write(unconfirmed)
        w.write(challengerPercent)
    }

    public init(from r: inout WireReader) throws(WireError) {
        name = try r.read(); version = try r.read(); previous = try r.read(); workers = try r.read(); switchSeconds = try r.read(); seconds = try r.read()
        if r.remaining > 0 { unconfirmed = try r.read() }
        if r.remaining > 0 { challengerPercent = try r.read() }
    }
}
