/// The control group of a campaign: a deterministic holdout, the same on every shard, node and run.
///
/// **Hash.** `h` = 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3) over the
/// UTF-8 bytes of the campaign name, one 0 byte, then the 8 bytes of the subscriber id
/// (two's-complement `Int64`, little-endian); then the splitmix64 finalizer
/// (`h ^= h >> 30; h *= 0xbf58476d1ce4e5b9; h ^= h >> 27; h *= 0x94d049bb133111eb; h ^= h >> 31`).
/// The subscriber's draw is `u = (h >> 11) / 2^53` in [0, 1); it is in the control group when
/// `u < control_fraction`. The finalizer spreads FNV's weak low bits, so consecutive ids draw
/// independently; including the name gives each campaign its own holdout.
///
/// A holdout is drawn among the subscribers the run selects (same cell, policy and priority cut-off
/// as the treated, see `CampaignFill`), recorded with the offer they would have had, and never contacted.
public struct ControlGroup: Sendable, Equatable {
    /// The FNV-1a state after the campaign name and the 0 byte: the per-subscriber part is 8 bytes.
    private let prefix: UInt64
    /// The holdout share, in [0, 1].
    public let fraction: Double

    /// The holdout of campaign `campaign` with share `fraction`.
    public init(campaign: String, fraction: Double) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in campaign.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        prefix = (h ^ 0) &* 0x0000_0100_0000_01B3
        self.fraction = fraction.isNaN ? 0 : fraction
    }

    /// The subscriber's draw `u` in [0, 1).
    @inlinable
    public func draw(_ subscriberID: Int64) -> Double { Double(hash(subscriberID) >> 11) * 0x1p-53 }

    /// Whether the subscriber is held out.
    @inlinable
    public func contains(_ subscriberID: Int64) -> Bool { draw(subscriberID) < fraction }

    /// The finalised hash of the subscriber (documented above).
    public func hash(_ subscriberID: Int64) -> UInt64 {
        var h = prefix
        var id = UInt64(bitPattern: subscriberID)
        for _ in 0..<8 {
            h = (h ^ (id & 0xFF)) &* 0x0000_0100_0000_01B3
            id >>= 8
        }
        h ^= h >> 30
        h = h &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 27
        h = h &* 0x94D0_49BB_1331_11EB
        h ^= h >> 31
        return h
    }

    /// Whether subscriber `subscriberID` is in campaign `campaign`'s control group of share `fraction`.
    public static func isControl(campaign: String, subscriberID: Int64, fraction: Double) -> Bool {
        ControlGroup(campaign: campaign, fraction: fraction).contains(subscriberID)
    }
}
