import Retention
import SubscriberProfiles
import TreeModel

/// A shard's part of a campaign run, on a scoring thread: the values of its subscribers (first
/// pass, for the value tiers) and its candidates (second pass). Both score the profiles as they
/// are in memory now, with the model the cluster serves (the published job's model; events since
/// the job are included), and explain the way jobs do (path attribution).
extension ScoringModel {
    /// The distribution of value-if-retained over the shard's subscribers.
    func campaignValues(store: ProfileStore, clv: CLVSettings) -> ValueHistogram {
        var histogram = ValueHistogram()
        guard let arpu = arpuColumn else {
            for _ in 0..<store.count { histogram.add(0) }
            return histogram
        }
        store.forEachRun { (_: Int, rows: Int, _: UnsafePointer<Int64>, columns: [UnsafePointer<Float>]) in
            for i in 0..<rows { histogram.add(clv.valueIfRetained(arpu: Double(columns[arpu][i]))) }
        }
        return histogram
    }

    /// The shard's candidates: every subscriber is scored; those in a cell that allows an offer
    /// are explained (top-3 reasons) and ranked (`NextBestAction`); those with an offer worth
    /// making are returned.
    func campaignCandidates(shard: Int, store: ProfileStore, decide nba: NextBestAction, clv: CLVSettings, tiers: ValueTiers) throws -> ShardCandidates {
        var out = ShardCandidates(shard: shard, modelVersion: version)
        let campaign = nba.campaign
        let bands = Retention.RiskBand.allCases.count
        // Which cells allow an offer at all: most subscribers are in none and are never explained.
        var active = [Bool](repeating: false, count: campaign.tierCount * bands)
        for tier in 0..<campaign.tierCount {
            for band in Retention.RiskBand.allCases where !campaign.matrix.offers(tier: tier, band: band).isEmpty {
                active[tier * bands + Int(band.rawValue)] = true
            }
        }
        let f = featureNames.count
        var margins = [Double](), probabilities = [Double]()
        var row = [Float](repeating: 0, count: f)
        var phi = [Double](repeating: 0, count: explainer.contributionCount)
        var ranked = RankedOffers()
        let k = ShardCandidates.offersPerSubscriber
        try store.forEachRun { (_: Int, rows: Int, ids: UnsafePointer<Int64>, columns: [UnsafePointer<Float>]) throws in
            let input = try self.input(columns, rows: rows)
            margins = [Double](repeating: 0, count: rows)
            probabilities = [Double](repeating: 0, count: rows)
            try margins.withUnsafeMutableBufferPointer { m throws(ModelError) in
                try probabilities.withUnsafeMutableBufferPointer { p throws(ModelError) in
                    guard let mb = m.baseAddress, let pb = p.baseAddress else { return }
                    try forest.score(input, margins: mb, outputs: pb, threads: 1)
                }
            }
            out.scanned += rows
            for i in 0..<rows {
                let p = probabilities[i]
                let band = Retention.RiskBand(probability: p)
                let arpu = arpuColumn.map { Double(columns[$0][i]) } ?? .nan
                let value = clv.valueIfRetained(arpu: arpu)
                let tier = tiers.tier(of: value)
                guard tier < campaign.tierCount, active[tier * bands + Int(band.rawValue)] else { continue }
                out.inCell += 1
                for j in 0..<f { row[j] = input.columns[j][i] }
                let top = topReasons(row: &row, phi: &phi)
                // Campaign reasons name catalogue features (call scripts and offers know them); an extra
                // schema feature is left out of them.
                let reasons = TopReasons(top.map { profileColumn[$0.feature] }.filter { $0 < FeatureCatalogue.count })
                let worth = clv.clv(probability: p, arpu: arpu)
                let facts = SubscriberFacts(subscriberID: ids[i], probability: p, band: band, clv: worth, valueIfRetained: value,
                                            tier: tier, reasons: reasons)
                nba.rank(facts, feature: { c in c >= 0 && c < columns.count ? Double(columns[c][i]) : .nan }, into: &ranked)
                guard !ranked.isEmpty else { continue }
                out.ids.elements.append(ids[i])
                out.probabilities.elements.append(Float(p))
                out.clv.elements.append(Float(worth))
                out.tiers.elements.append(UInt8(clamping: tier))
                out.bands.elements.append(band.rawValue)
                let region = regionColumn.map { columns[$0][i] } ?? .nan
                out.regions.elements.append(region.isFinite && region >= 0 && region < 32_767 ? Int16(region) : -1)
                for r in 0..<3 {
                    let c = r < top.count && profileColumn[top[r].feature] < FeatureCatalogue.count ? profileColumn[top[r].feature] : -1
                    out.reasons.elements.append(Int16(clamping: c))
                    out.reasonValues.elements.append(c >= 0 ? columns[c][i] : .nan)
                }
                for j in 0..<k {
                    if j < ranked.count {
                        out.offers.elements.append(Int16(clamping: ranked[j].offer))
                        out.expectedValues.elements.append(Float(ranked[j].expectedValue))
                        out.savedCLV.elements.append(Float(ranked[j].expectedSavedCLV))
                    } else {
                        out.offers.elements.append(-1)
                        out.expectedValues.elements.append(0)
                        out.savedCLV.elements.append(0)
                    }
                }
            }
        }
        return out
    }
}
