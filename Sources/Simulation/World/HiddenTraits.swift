/// What the world knows about a subscriber and nobody else does, drawn when the subscriber joins
/// (from the seed, the id and the profile at that moment). The response type and the noise are
/// kept for life; the real reason is drawn again when the behaviour starts a new episode.
public struct HiddenTraits: Sendable, Equatable {
    /// How the subscriber reacts to a contact.
    public var response: ResponseType
    /// The real churn reason: a `FeatureCatalogue` index, one of `HiddenTraits.reasonColumns`.
    public var realReason: Int16
    /// A personal shift of the churn log-odds the model cannot see (normal, mean −σ²/2).
    public var noise: Float

    public init(response: ResponseType, realReason: Int16, noise: Float) {
        self.response = response
        self.realReason = realReason
        self.noise = noise
    }

    /// The standard deviation of `noise` on the log-odds scale. 0.5 keeps the model informative
    /// (its AUC on the true hazards stays high) without making it the truth.
    public static let noiseSD = 0.5

    /// The features a real reason can be, each weighted by how much it pushes this subscriber's
    /// churn above a typical subscriber's in the synthetic base's own churn mechanism
    /// (`SyntheticBase`: the same coefficients, applied to the excess over a typical value). The
    /// real reason is therefore what really drives the subscriber out in this world; the model,
    /// trained on that world, recovers it often but not always (its top reasons are attributions
    /// of an approximation, and the draw is proportional, not the largest term).
    static let reasonColumns: [Int] = [
        Column.arpuTrend, Column.callsTrend, Column.smsTrend, Column.dataTrend, Column.offnet,
        Column.support, Column.complaints, Column.late, Column.contractEnd, Column.promoEnd,
        Column.tariffViews, Column.portInquiries, Column.pressure, Column.priceGap, Column.dropped,
        Column.inactiveDays, Column.tenure,
    ]

    /// Reason weights for a profile, in `reasonColumns` order.
    static func reasonWeights(_ p: ProfileView) -> [Double] {
        let postpaid = p.value(Column.prepaid, or: 1) < 0.5
        let contract = p[Column.contractEnd]
        let promo = p[Column.promoEnd]
        return [
            2.5 * max(0, -p.value(Column.arpuTrend)),
            1.2 * max(0, -p.value(Column.callsTrend)),
            0.5 * max(0, -p.value(Column.smsTrend)),
            0.8 * max(0, -p.value(Column.dataTrend)),
            1.8 * max(0, p.value(Column.offnet) - 0.3),
            0.25 * p.value(Column.support),
            0.45 * p.value(Column.complaints),
            postpaid ? 0.35 * p.value(Column.late) : 0,
            postpaid && contract > -30 && contract < 60 ? 1.3 : 0,
            promo < 30 ? 0.5 : 0,
            0.35 * p.value(Column.tariffViews),
            0.9 * p.value(Column.portInquiries),
            1.6 * max(0, p.value(Column.pressure) - 0.35) + 0.001,
            0.04 * max(0, p.value(Column.priceGap)),
            8 * max(0, p.value(Column.dropped) - 0.02),
            0.03 * max(0, min(p.value(Column.inactiveDays), 30) - 3),
            p.value(Column.tenure, or: 24) < 6 ? 0.6 : 0,
        ].map { $0.isFinite && $0 > 0 ? $0 : 0 }
    }

    /// Response-type weights (persuadable, sure thing, lost cause, sleeping dog) for a profile:
    /// persuadables are more common with complaints, network problems, a price gap or an ending
    /// contract (there is something to fix); sure things with several services and lines; lost
    /// causes with porting inquiries or a line already going quiet; sleeping dogs among
    /// long-tenure subscribers who never complained (a call reminds them the market exists).
    static func responseWeights(_ p: ProfileView) -> (Double, Double, Double, Double) {
        let complaints = p.value(Column.complaints)
        let tenure = p.value(Column.tenure, or: 12)
        let contract = p[Column.contractEnd]
        let postpaid = p.value(Column.prepaid, or: 1) < 0.5
        var persuadable = 1.0 + 0.8 * complaints + 0.3 * p.value(Column.support)
        persuadable += 15 * max(0, p.value(Column.dropped) - 0.02) + 0.1 * p.value(Column.outage)
        persuadable += 0.12 * max(0, p.value(Column.priceGap)) + 0.2 * p.value(Column.tariffViews)
        persuadable += postpaid && contract > -30 && contract < 60 ? 0.8 : 0
        let sure = 1.2 + 0.3 * max(0, p.value(Column.services, or: 1) - 1) + 0.3 * max(0, p.value(Column.lines, or: 1) - 1)
            + (tenure >= 36 ? 0.4 : 0)
        let lost = 0.3 + 1.0 * p.value(Column.portInquiries) + (p.value(Column.inactiveDays) >= 14 ? 0.8 : 0)
            + (postpaid && contract < -30 ? 0.3 : 0)
        let quiet = complaints == 0 ? 1.0 : 0.2
        let dog = 0.2 + quiet * ((tenure >= 24 ? 0.6 : 0) + (tenure >= 60 ? 0.4 : 0))
        return (persuadable, sure, lost, dog)
    }

    /// Draws the traits of subscriber `id` joining with profile `p` in month `month`.
    static func draw(id: Int64, month: Int, profile p: ProfileView, _ random: WorldDraw) -> HiddenTraits {
        let (w0, w1, w2, w3) = responseWeights(p)
        var u = random.uniform(id, month: month, .responseType) * (w0 + w1 + w2 + w3)
        let response: ResponseType
        if u < w0 { response = .persuadable } else {
            u -= w0
            if u < w1 { response = .sureThing } else { response = u - w1 < w2 ? .lostCause : .sleepingDog }
        }
        let sd = noiseSD
        let noise = sd * random.normal(id, month: month, .noise) - sd * sd / 2
        return HiddenTraits(response: response, realReason: drawReason(id: id, month: month, profile: p, random), noise: Float(noise))
    }

    /// Draws the real churn reason of subscriber `id` from profile `p` (at joining, and again
    /// when its behaviour starts a new episode).
    static func drawReason(id: Int64, month: Int, profile p: ProfileView, _ random: WorldDraw) -> Int16 {
        let weights = reasonWeights(p)
        var v = random.uniform(id, month: month, .realReason) * weights.reduce(0, +)
        var reason = Column.pressure
        for (k, w) in weights.enumerated() where w > 0 {
            if v < w { reason = reasonColumns[k]; break }
            v -= w
        }
        return Int16(clamping: reason)
    }
}
