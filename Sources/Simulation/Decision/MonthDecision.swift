import Retention

/// One month's decision of a strategy over the whole base, at the monthly budget: it marks each
/// part's rows as treatment (with the offer), control (with the offer it would have had) or
/// untouched, and returns what it spent.
///
/// Every strategy but `none` goes through the same `CampaignFill` (priority order, channel
/// capacity, budget, the contact policy's verdicts and the campaign's `ControlGroup`); they differ
/// in their candidates' priorities and options:
/// - `nba`: `NextBestAction` over the cell of each subscriber with its top-3 reasons, options
///   ranked by expected value — the engine as a campaign run uses it.
/// - `random`, `risk`, `value`: every subscriber, priority a random number, the probability or
///   the value if retained; options every offer the subscriber is eligible for, in file order
///   (the first one it can get, by capacity, budget and policy, is its offer).
struct MonthDecision: Sendable {
    let strategy: TargetingStrategy
    let campaign: Campaign
    let budget: Double
    let model: ChurnModel
    let random: WorldDraw
    let nba: NextBestAction
    let policy: ContactPolicy
    let control: ControlGroup
    /// Whether the matrix cell `tier × 4 + band` allows any offer.
    let cellHasOffers: [Bool]

    /// Baseline candidates handed to one `CampaignFill` call at a time (its result is the same as
    /// one call over them all, since the fill is greedy in priority order).
    static let chunkSize = 1 << 16

    init(strategy: TargetingStrategy, campaign: Campaign, budget: Double, model: ChurnModel, random: WorldDraw) {
        self.strategy = strategy
        self.campaign = campaign
        self.budget = budget
        self.model = model
        self.random = random
        nba = NextBestAction(campaign: campaign)
        policy = ContactPolicy(campaign: campaign)
        control = ControlGroup(campaign: campaign.name, fraction: campaign.controlFraction)
        var cells: [Bool] = []
        for tier in 0..<campaign.matrix.tierCount {
            for band in RiskBand.allCases { cells.append(!campaign.matrix.offers(tier: tier, band: band).isEmpty) }
        }
        cellHasOffers = cells
    }

    /// Decides month `month` at time `now`; `run` runs a phase on every part's thread.
    /// - Returns: the budget used (offer costs of the treatment arm), never above `budget`.
    func decide(parts: [Part], month: Int, now: Int64, tiers: ValueTiers, run: (@Sendable (Part) -> Void) -> Void) -> Double {
        for p in parts { p.resetDecisions() }
        switch strategy {
        case .none: return 0
        case .nba: return decideNBA(parts: parts, now: now, tiers: tiers, run: run)
        case .random, .risk, .value: return decideBaseline(parts: parts, month: month, now: now, tiers: tiers, run: run)
        }
    }

    private func hasOffers(tier: Int, band: RiskBand) -> Bool {
        let cell = tier * RiskBand.allCases.count + Int(band.rawValue)
        return cellHasOffers.indices.contains(cell) && cellHasOffers[cell]
    }

    // MARK: Next-best action

    private func decideNBA(parts: [Part], now: Int64, tiers: ValueTiers, run: (@Sendable (Part) -> Void) -> Void) -> Double {
        run { part in
            let pop = part.population
            part.candidates = FillCandidates()
            part.candidateRows = []
            var scratch = ChurnModel.ExplainScratch(model)
            var ranked = RankedOffers()
            for r in 0..<pop.count {
                let p = part.probabilities[r]
                let band = RiskBand(probability: p)
                let v = part.valueIfRetained[r]
                let tier = tiers.tier(of: v)
                guard hasOffers(tier: tier, band: band) else { continue }
                let facts = SubscriberFacts(subscriberID: pop.ids[r], probability: p, band: band, clv: part.clv[r],
                                            valueIfRetained: v, tier: tier, reasons: model.topReasons(pop, row: r, scratch: &scratch))
                nba.rank(facts, feature: { Double(pop.value(r, $0)) }, into: &ranked)
                guard !ranked.isEmpty else { continue }
                let verdicts = policy.verdicts(history: pop.histories[r], permissions: ContactPermissions(), now: now)
                part.candidates.append(facts, ranked: ranked, verdicts: verdicts, offers: campaign.offers, isControl: control.contains(facts.subscriberID))
                part.candidateRows.append(Int32(r))
            }
        }
        var all = FillCandidates()
        var rows: [(part: Int, row: Int)] = []
        for p in parts {
            all.append(contentsOf: p.candidates)
            rows.append(contentsOf: p.candidateRows.map { (p.index, Int($0)) })
            p.candidates = FillCandidates()
            p.candidateRows = []
        }
        let result = CampaignFill.fill(all, offers: campaign.offers, capacity: campaign.capacity, budget: budget, tierNames: campaign.tierNames)
        for (i, d) in result.decisions.enumerated() { mark(parts, rows[i], d) }
        return result.summary.budgetUsed
    }

    // MARK: Baselines

    private func decideBaseline(parts: [Part], month: Int, now: Int64, tiers: ValueTiers, run: (@Sendable (Part) -> Void) -> Void) -> Double {
        let strategy = self.strategy, random = self.random
        run { part in
            let pop = part.population
            var ranking: [RankEntry] = []
            ranking.reserveCapacity(pop.count)
            for r in 0..<pop.count {
                let id = pop.ids[r]
                let priority: Double
                switch strategy {
                case .risk: priority = part.probabilities[r]
                case .value: priority = part.valueIfRetained[r]
                default: priority = random.uniform(id, month: month, .randomPriority)
                }
                guard priority.isFinite else { continue }
                ranking.append(RankEntry(priority: priority, id: id, part: Int32(part.index), row: Int32(r)))
            }
            ranking.sort(by: RankEntry.before)
            part.ranking = ranking
        }
        // The parts' sorted rankings are merged lazily: only as far as the budget reaches.
        var cursor = [Int](repeating: 0, count: parts.count)
        func next() -> RankEntry? {
            var best: RankEntry?
            var from = -1
            for (k, p) in parts.enumerated() where cursor[k] < p.ranking.count {
                let e = p.ranking[cursor[k]]
                if best.map({ RankEntry.before(e, $0) }) ?? true { best = e; from = k }
            }
            if from >= 0 { cursor[from] += 1 }
            return best
        }
        var used = 0.0
        var capacityLeft = campaign.capacity
        let offers = campaign.offers
        while true {
            // A hair below what is left, so that rounding never puts the total above the budget.
            let budgetLeft = max(0, budget - used - budget * 1e-12)
            let affordable = offers.contains { o in o.cost <= budgetLeft && (capacityLeft[o.channel].map { $0 > 0 } ?? true) }
            guard affordable else { break }
            var chunk: [RankEntry] = []
            chunk.reserveCapacity(Self.chunkSize)
            while chunk.count < Self.chunkSize, let e = next() { chunk.append(e) }
            guard !chunk.isEmpty else { break }
            var candidates = FillCandidates()
            candidates.reserve(chunk.count, optionsEach: offers.count)
            var options: [FillOption] = []
            for e in chunk {
                let pop = parts[Int(e.part)].population, r = Int(e.row)
                let verdicts = policy.verdicts(history: pop.histories[r], permissions: ContactPermissions(), now: now)
                options.removeAll(keepingCapacity: true)
                for (k, o) in offers.enumerated() where o.eligibility.allSatisfy({ $0.admits(Double(pop.value(r, $0.feature))) }) {
                    options.append(FillOption(offer: k, expectedValue: e.priority, verdict: verdicts[o.channel]))
                }
                let part = parts[Int(e.part)]
                candidates.append(subscriberID: e.id, tier: tiers.tier(of: part.valueIfRetained[r]),
                                  band: RiskBand(probability: part.probabilities[r]), isControl: control.contains(e.id), options: options)
            }
            let result = CampaignFill.fill(candidates, offers: offers, capacity: capacityLeft, budget: budgetLeft, tierNames: campaign.tierNames)
            for (i, d) in result.decisions.enumerated() { mark(parts, (Int(chunk[i].part), Int(chunk[i].row)), d) }
            used += result.summary.budgetUsed
            for (channel, counts) in result.summary.perChannel {
                if let c = capacityLeft[channel] { capacityLeft[channel] = c - counts.treatment }
            }
        }
        for p in parts { p.ranking = [] }
        return used
    }

    /// Records a fill decision on its row.
    private func mark(_ parts: [Part], _ at: (part: Int, row: Int), _ d: CampaignFill.Decision) {
        let part = parts[at.part]
        switch d {
        case .treatment(let k):
            part.arm[at.row] = .treatment
            part.offer[at.row] = Int16(clamping: k)
        case .control(let k):
            part.arm[at.row] = .control
            part.offer[at.row] = Int16(clamping: k)
        case .suppressed, .noCapacity, .noOffer:
            break
        }
    }
}
