import WireFormat

/// Which subscribers a challenger answers for (docs/models.md, "Champion and challenger"): a
/// deterministic share, by a hash of the model's name and the subscriber's id, so a subscriber
/// always gets the same version while the traffic share stays the same, every worker agrees
/// without asking anyone, and raising the share only adds subscribers. Pure.
public enum ChallengerSplit {
    /// Shares are in basis points: 10,000 is every subscriber.
    public static let basis = 10_000

    /// The subscriber's bucket for model `name`, 0..<10,000: FNV-1a (64-bit) over the name's
    /// UTF-8 bytes and then the id's 8 little-endian bytes, finished with SplitMix64's mixer,
    /// modulo 10,000.
    public static func bucket(name: String, subscriber: Int64) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        var id = UInt64(bitPattern: subscriber)
        for _ in 0..<8 {
            h ^= id & 0xff
            h = h &* 0x100_0000_01b3
            id >>= 8
        }
        h = (h ^ (h >> 30)) &* 0xbf58_476d_1ce4_e5b9
        h = (h ^ (h >> 27)) &* 0x94d0_49bb_1331_11eb
        h ^= h >> 31
        return Int(h % UInt64(basis))
    }

    /// Whether the challenger answers for `subscriber` at a share of `basisPoints`.
    public static func answersChallenger(name: String, subscriber: Int64, basisPoints: Int) -> Bool {
        basisPoints > 0 && bucket(name: name, subscriber: subscriber) < basisPoints
    }

    /// A share in percent (0 < pct ≤ 100, at most two decimals' worth) as basis points.
    public static func basisPoints(percent: Double) throws(ClusterError) -> Int {
        guard percent.isFinite, percent > 0, percent <= 100 else {
            throw ClusterError("a challenger's traffic is a percentage above 0 and at most 100, not \(percent)")
        }
        return max(1, Int((percent * 100).rounded()))
    }
}

/// The challenger a coordinator serves beside the champion: which model name it challenges, its
/// version's file, and its share of live answers. Travels with every assignment, so a worker that
/// joins, restarts or takes shards over answers as the others do.
public struct ChallengerPackage: Sendable, WireCodable {
    public var name: String
    public var model: ModelPackage
    public var basisPoints: Int

    public init(name: String, model: ModelPackage, basisPoints: Int) {
        self.name = name
        self.model = model
        self.basisPoints = basisPoints
    }

    public func encode(to w: inout WireWriter) { w.write(name); w.write(model); w.write(basisPoints) }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        name = try r.read(); model = try r.read(); basisPoints = try r.read()
        guard (1...ChallengerSplit.basis).contains(basisPoints) else {
            throw WireError(offset: at, expected: "a challenger share of 1–\(ChallengerSplit.basis) basis points, found \(basisPoints)")
        }
    }
}

/// What a worker and its shards answer with beside the champion.
struct ServedChallenger: Sendable {
    let name: String
    let model: ScoringModel
    let basisPoints: Int

    /// The model that answers for `subscriber`: this challenger's within its share, else `champion`.
    func model(for subscriber: Int64, champion: ScoringModel) -> ScoringModel {
        ChallengerSplit.answersChallenger(name: name, subscriber: subscriber, basisPoints: basisPoints) ? model : champion
    }
}

/// The challenger as `status` shows it.
public struct ChallengerStatus: Sendable, WireCodable, Codable, Equatable {
    /// The model it challenges (the served one).
    public var name: String
    public var version: String
    /// Its share of live answers, in percent.
    public var percent: Double

    public init(name: String, version: String, percent: Double) {
        self.name = name
        self.version = version
        self.percent = percent
    }

    init(_ package: ChallengerPackage) {
        self.init(name: package.name, version: package.model.version, percent: Double(package.basisPoints) / 100)
    }

    public func encode(to w: inout WireWriter) { w.write(name); w.write(version); w.write(percent) }
    public init(from r: inout WireReader) throws(WireError) { name = try r.read(); version = try r.read(); percent = try r.read() }
}
