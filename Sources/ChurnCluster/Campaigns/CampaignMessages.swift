import Retention
import WireFormat

/// The CLV settings on the wire (the coordinator's, sent with each campaign request so every
/// shard values its subscribers the same way).
public struct CLVWire: Sendable, WireCodable, Equatable {
    public var marginRate: Double
    public var monthlyDiscount: Double
    public var horizonMonths: Int

    public init(_ s: CLVSettings) {
        marginRate = s.marginRate
        monthlyDiscount = s.monthlyDiscount
        horizonMonths = s.horizonMonths
    }

    public func encode(to w: inout WireWriter) { w.write(marginRate); w.write(monthlyDiscount); w.write(horizonMonths) }
    public init(from r: inout WireReader) throws(WireError) {
        marginRate = try r.read(); monthlyDiscount = try r.read(); horizonMonths = try r.read()
    }

    /// The settings, checked (a hostile frame gets an error, not a trap).
    func settings() throws -> CLVSettings {
        try CLVSettings(marginRate: marginRate, monthlyDiscount: monthlyDiscount, horizonMonths: horizonMonths)
    }
}

/// Coordinator → shard, the second pass of a campaign run: the campaign file, the CLV settings
/// and the value tiers' cut values (from the first pass over every shard).
public struct CampaignDecisionRequest: Sendable, WireCodable {
    /// The campaign file's bytes (JSON), parsed and checked again by the shard.
    public var campaign: BulkArray<UInt8>
    public var source: String
    public var clv: CLVWire
    /// Value-if-retained cut values (ascending): tier k holds values in [cuts[k−1], cuts[k]).
    public var cuts: [Double]

    public init(campaign: [UInt8], source: String, clv: CLVWire, cuts: [Double]) {
        self.campaign = BulkArray(campaign)
        self.source = source
        self.clv = clv
        self.cuts = cuts
    }

    public func encode(to w: inout WireWriter) { w.write(campaign); w.write(source); w.write(clv); w.write(cuts) }
    public init(from r: inout WireReader) throws(WireError) {
        campaign = try r.read(); source = try r.read(); clv = try r.read(); cuts = try r.read()
    }
}

/// A shard's candidates for a campaign: the subscribers whose cell allows an offer and that have
/// at least one offer worth making, each with up to `offersPerSubscriber` offers ranked by
/// expected value (column by column). The contact policy, the control group, capacity and budget
/// are applied by the coordinator over every shard's candidates.
public struct ShardCandidates: Sendable, WireCodable {
    public static let offersPerSubscriber = 3

    public var shard: Int
    public var modelVersion: String
    /// Subscribers the shard decided for (all of them).
    public var scanned: Int
    /// Of those, in a cell of the matrix that allows an offer.
    public var inCell: Int
    public var ids: BulkArray<Int64>
    public var probabilities: BulkArray<Float>
    public var clv: BulkArray<Float>
    public var tiers: BulkArray<UInt8>
    public var bands: BulkArray<UInt8>
    public var regions: BulkArray<Int16>
    /// 3 per subscriber: `FeatureCatalogue` indices, −1 for none.
    public var reasons: BulkArray<Int16>
    /// 3 per subscriber: the reason features' profile values (for the call script).
    public var reasonValues: BulkArray<Float>
    /// `offersPerSubscriber` per subscriber: offer indices in the campaign, −1 for none.
    public var offers: BulkArray<Int16>
    /// `offersPerSubscriber` per subscriber: each offer's expected value.
    public var expectedValues: BulkArray<Float>
    /// `offersPerSubscriber` per subscriber: each offer's expected saved CLV (value plus cost).
    public var savedCLV: BulkArray<Float>

    public var count: Int { ids.elements.count }

    init(shard: Int, modelVersion: String) {
        self.shard = shard
        self.modelVersion = modelVersion
        scanned = 0
        inCell = 0
        ids = BulkArray([]); probabilities = BulkArray([]); clv = BulkArray([]); tiers = BulkArray([]); bands = BulkArray([])
        regions = BulkArray([]); reasons = BulkArray([]); reasonValues = BulkArray([]); offers = BulkArray([])
        expectedValues = BulkArray([]); savedCLV = BulkArray([])
    }

    public func encode(to w: inout WireWriter) {
        w.write(shard); w.write(modelVersion); w.write(scanned); w.write(inCell)
        w.write(ids); w.write(probabilities); w.write(clv); w.write(tiers); w.write(bands); w.write(regions)
        w.write(reasons); w.write(reasonValues); w.write(offers); w.write(expectedValues); w.write(savedCLV)
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        shard = try r.read(); modelVersion = try r.read(); scanned = try r.readCount("subscribers scanned"); inCell = try r.readCount("subscribers in a cell")
        ids = try r.read(); probabilities = try r.read(); clv = try r.read(); tiers = try r.read(); bands = try r.read(); regions = try r.read()
        reasons = try r.read(); reasonValues = try r.read(); offers = try r.read(); expectedValues = try r.read(); savedCLV = try r.read()
        let n = ids.elements.count, k = Self.offersPerSubscriber
        guard probabilities.elements.count == n, clv.elements.count == n, tiers.elements.count == n, bands.elements.count == n,
              regions.elements.count == n, reasons.elements.count == 3 * n, reasonValues.elements.count == 3 * n,
              offers.elements.count == k * n, expectedValues.elements.count == k * n, savedCLV.elements.count == k * n else {
            throw WireError(offset: at, expected: "campaign candidates with matching column lengths (\(n) subscribers)")
        }
        guard bands.elements.allSatisfy({ Int($0) < RiskBand.allCases.count }) else {
            throw WireError(offset: at, expected: "risk bands 0–\(RiskBand.allCases.count - 1)")
        }
        guard probabilities.elements.allSatisfy({ $0 >= 0 && $0 <= 1 }) else {
            throw WireError(offset: at, expected: "probabilities between 0 and 1")
        }
    }
}
