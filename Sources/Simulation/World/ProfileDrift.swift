#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a surviving subscriber's profile ages in a month: the account gets older, dates come
/// closer, and the behaviour signals either start a new episode (with probability
/// `episodeProbability`: they become those of a freshly drawn subscriber, `EpisodePool`, and the
/// real churn reason is drawn again from the new profile) or calm down a little (trends revert
/// towards 0, a complaint is forgotten after a while). Together they keep the base's risk mix
/// roughly stable month after month. A contact counts in `retention_offers_12m`.
///
/// Not modelled: an accepted discount lowering the bill, a renewal after an accepted call.
/// Offers change the month's hazard only (`HiddenResponse`).
enum ProfileDrift {
    /// The monthly chance that a subscriber's behaviour starts a new episode.
    static let episodeProbability = 0.3
    /// The behaviour signals a new episode replaces.
    static let episodeColumns: [Int] = [
        Column.arpuTrend, Column.callsTrend, Column.smsTrend, Column.dataTrend, Column.offnet, Column.named("active_days_30d"),
        Column.inactiveDays, Column.support, Column.complaints, Column.tickets, Column.outage, Column.tariffViews,
        Column.portInquiries,
    ]

    /// Usage and revenue trends and the standard deviation of their monthly noise.
    static let trends: [(column: Int, sd: Double)] = [(Column.arpuTrend, 0.06), (Column.callsTrend, 0.12), (Column.smsTrend, 0.15), (Column.dataTrend, 0.12)]
    /// Counts and their monthly chances of a step down (when positive) and a step up.
    static let counts: [(column: Int, down: Double, up: Double)] = [
        (Column.support, 0.2, 0.05), (Column.complaints, 0.15, 0.02), (Column.tickets, 0.25, 0.02),
        (Column.tariffViews, 0.2, 0.05), (Column.portInquiries, 0.2, 0.01), (Column.late, 0.1, 0.03),
    ]

    /// Ages `row` of `population` by one month (month `month`, for the draws).
    static func age(_ population: Population, row r: Int, month: Int, contacted: Bool, episodes: EpisodePool, _ random: WorldDraw) {
        let id = population.ids[r]
        var k = 0
        func u() -> Double {
            k += 1
            return random.uniform(id, month: month, .drift, k)
        }
        func add(_ c: Int, _ delta: Float) {
            let v = population.value(r, c)
            if !v.isNaN { population.set(r, c, v + delta) }
        }
        add(Column.tenure, 1)
        add(Column.deviceAge, 1)
        if u() < 1.0 / 12 { add(Column.customerAge, 1) }
        // Contract: a month closer; an ended contract is renewed for two years now and then.
        let contract = population.value(r, Column.contractEnd)
        if !contract.isNaN {
            if contract < -90, u() < 0.15 { population.set(r, Column.contractEnd, 720) } else { population.set(r, Column.contractEnd, contract - 30) }
        }
        let promo = population.value(r, Column.promoEnd)
        if !promo.isNaN { population.set(r, Column.promoEnd, promo - 30 < -30 ? .nan : promo - 30) }
        if random.uniform(id, month: month, .episode) < episodeProbability {
            let donor = Int(random.bits(id, month: month, .episodeDonor) % UInt64(EpisodePool.size))
            for c in episodeColumns {
                let v = episodes.value(donor, c)
                if !v.isNaN { population.set(r, c, v) }
            }
            // Late payments exist for postpaid lines only.
            if !population.value(r, Column.late).isNaN {
                let v = episodes.value(donor, Column.late)
                population.set(r, Column.late, v.isNaN ? 0 : v)
            }
            population.traits[r].realReason = HiddenTraits.drawReason(id: id, month: month + 1, profile: population.view(r), random)
        } else {
            calmDown(population, row: r, u)
        }
        let arpu = population.value(r, Column.arpu)
        let trend = population.value(r, Column.arpuTrend)
        if !arpu.isNaN, !trend.isNaN { population.set(r, Column.arpu, max(0, arpu * (1 + 0.1 * trend))) }
        add(Column.priceGap, Float((u() - 0.5) * 1.0))
        let offers = population.value(r, Column.retentionOffers)
        if !offers.isNaN {
            var n = offers
            if n > 0, u() < 1.0 / 12 { n -= 1 }
            if contacted { n += 1 }
            population.set(r, Column.retentionOffers, n)
        }
    }

    /// A month without a new episode: trends revert towards 0 with fresh noise, counts step down
    /// now and then (and up, rarely), outage hours are redrawn half the time.
    static func calmDown(_ population: Population, row r: Int, _ u: () -> Double) {
        for (c, sd) in trends {
            let v = population.value(r, c)
            guard !v.isNaN else { continue }
            let noise = (u() + u() + u() - 1.5) * 2 * sd  // ≈ normal(0, sd)
            population.set(r, c, Float(0.8 * Double(v) + noise))
        }
        // Counts: a step down with some chance when positive, a step up now and then.
        for (c, down, up) in counts {
            let v = population.value(r, c)
            guard !v.isNaN else { continue }
            let x = u()
            if v > 0, x < down { population.set(r, c, v - 1) } else if x > 1 - up { population.set(r, c, v + 1) }
        }
        let outage = population.value(r, Column.outage)
        if !outage.isNaN, u() < 0.5 { population.set(r, Column.outage, Float(-log(1 - u()) * 1.0)) }
    }
}
