/// The global step of a campaign run: with every shard's candidates, fill channel capacity and
/// budget in priority order and draw the control arm from the same selection.
///
/// Rules:
/// - **Priority** is a candidate's best expected value among its options (whatever the policy
///   says), ties by subscriber id ascending; candidates are sorted once, O(n log n).
/// - In priority order, a candidate gets its best-EV option that the policy allows, whose
///   channel has capacity left and whose cost fits the budget left.
/// - A **treatment** candidate consumes one unit of its channel's capacity and the offer's cost.
/// - A **control** candidate (`ControlGroup`) is recorded with the offer it would have had under
///   the same rules at the same point of the fill, but consumes nothing and is never contacted:
///   the two arms share cell, policy and priority cut-off, so they are comparable.
/// - A candidate whose options are all refused by the policy is `suppressed` (with the reason of
///   its best option); one with allowed options none of which fits is `noCapacity`.
public enum CampaignFill {
    /// What happened to one candidate.
    public enum Decision: Sendable, Equatable {
        /// To be contacted with this offer (index in `Campaign.offers`).
        case treatment(offer: Int)
        /// Held out; would have had this offer.
        case control(offer: Int)
        /// Every option refused by the contact policy; the reason of the best one.
        case suppressed(PolicyReason)
        /// Allowed options, but no capacity or budget left for any.
        case noCapacity
        /// No options at all (nothing worth offering).
        case noOffer
    }

    /// Counts of one channel or cell, per arm.
    public struct ArmCounts: Sendable, Equatable {
        public var treatment = 0
        public var control = 0
        public init(treatment: Int = 0, control: Int = 0) {
            self.treatment = treatment
            self.control = control
        }
    }

    /// The run's totals (what `campaign run --json` prints).
    public struct Summary: Sendable, Equatable {
        /// Candidates with at least one option.
        public var eligible = 0
        public var treatment = 0
        public var control = 0
        public var suppressedByPolicy = 0
        public var noCapacity = 0
        /// Per channel, per arm.
        public var perChannel: [Channel: ArmCounts] = [:]
        /// Per cell (`high/very_high`), per arm.
        public var perCell: [String: ArmCounts] = [:]
        /// Σ cost over the treatment arm, never above the budget.
        public var budgetUsed = 0.0
        /// Σ p × acceptance × effect × CLV over the treatment arm: the CLV the contacts are
        /// expected to save, before costs (`budgetUsed`); the net is the difference.
        public var expectedSavedCLV = 0.0
    }

    struct CellKey: Hashable {
        var tier: Int
        var band: RiskBand
    }

    /// The outcome of a fill.
    public struct Result: Sendable, Equatable {
        /// Per candidate, in the input's order.
        public var decisions: [Decision]
        /// Per candidate, in the input's order: its position in priority order (0 first).
        public var priority: [Int]
        public var summary: Summary
    }

    /// Fills with `campaign`'s offers, capacity and budget.
    public static func fill(_ candidates: FillCandidates, campaign: Campaign) -> Result {
        fill(candidates, offers: campaign.offers, capacity: campaign.capacity, budget: campaign.budget, tierNames: campaign.tierNames)
    }

    /// Fills with explicit limits.
    /// - Parameters:
    ///   - offers: the campaign's offers (channel and cost of each option's offer).
    ///   - capacity: contacts per channel; a channel absent is unlimited.
    ///   - budget: the most to spend on costs; nil is unlimited.
    ///   - tierNames: names of the value tiers, for `perCell`.
    public static func fill(_ candidates: FillCandidates, offers: [Offer], capacity: [Channel: Int], budget: Double?,
                            tierNames: [String]) -> Result {
        candidates.options.withUnsafeBufferPointer { options in
            candidates.optionStart.withUnsafeBufferPointer { starts in
                fill(candidates, options: options, starts: starts, offers: offers, capacity: capacity, budget: budget, tierNames: tierNames)
            }
        }
    }

    /// The fill over the candidates' option table, read through buffers (this runs over millions of rows).
    private static func fill(_ candidates: FillCandidates, options: UnsafeBufferPointer<FillOption>, starts: UnsafeBufferPointer<Int>,
                             offers: [Offer], capacity: [Channel: Int], budget: Double?, tierNames: [String]) -> Result {
        let n = min(candidates.count, starts.count - 1)
        // Candidate i's options; empty for a malformed table (never a trap).
        func optionsOf(_ i: Int) -> Slice<UnsafeBufferPointer<FillOption>> {
            let a = starts[i], b = starts[i + 1]
            guard a >= 0, a <= b, b <= options.count else { return options[0..<0] }
            return options[a..<b]
        }
        // Channel and cost per offer in flat arrays: copying an `Offer` per candidate would retain its strings and lists.
        let offerChannel = offers.map(\.channel.index), offerCost = offers.map(\.cost)
        let usable: (FillOption) -> Bool = { $0.expectedValue.isFinite && $0.offer >= 0 && $0.offer < offerCost.count }
        // One sort over (priority, id); options with a non-finite value or an unknown offer are ignored.
        var order: [(best: Double, id: Int64, index: Int)] = []
        order.reserveCapacity(n)
        for i in 0..<n {
            var best = -Double.infinity
            for o in optionsOf(i) where usable(o) { best = max(best, o.expectedValue) }
            order.append((best, candidates.subscriberIDs[i], i))
        }
        order.sort { $0.best != $1.best ? $0.best > $1.best : $0.id < $1.id }

        var left = Channel.allCases.map { c -> Int in capacity[c].map { max(0, $0) } ?? Int.max }
        let budgetLimit = budget.map { max(0, $0) } ?? .infinity
        var decisions = Array(repeating: Decision.noOffer, count: n)
        var priority = Array(repeating: 0, count: n)
        var summary = Summary()
        var channelCounts = Array(repeating: ArmCounts(), count: Channel.allCases.count)
        // Cells of known tiers in an array; a tier out of range (bad input) in a dictionary.
        let bands = RiskBand.allCases.count
        var cellCounts = Array(repeating: ArmCounts(), count: tierNames.count * bands)
        var otherCells: [CellKey: ArmCounts] = [:]
        var sorted: [FillOption] = []
        let byValue: (FillOption, FillOption) -> Bool = {
            $0.expectedValue != $1.expectedValue ? $0.expectedValue > $1.expectedValue : $0.offer < $1.offer
        }

        for (rank, entry) in order.enumerated() {
            let i = entry.index
            priority[i] = rank
            guard entry.best > -Double.infinity else { continue }
            summary.eligible += 1
            sorted.removeAll(keepingCapacity: true)
            var inOrder = true
            for o in optionsOf(i) where usable(o) {
                if let last = sorted.last, byValue(o, last) { inOrder = false }
                sorted.append(o)
            }
            // Options from `NextBestAction` arrive ranked already; only others are sorted.
            if !inOrder { sorted.sort(by: byValue) }
            var chosen: FillOption?
            var anyAllowed = false
            for o in sorted where o.verdict.isAllowed {
                anyAllowed = true
                // Compared as it will be summed, so `budgetUsed` never exceeds the budget by a rounding.
                guard left[offerChannel[o.offer]] > 0, summary.budgetUsed + offerCost[o.offer] <= budgetLimit else { continue }
                chosen = o
                break
            }
            guard let o = chosen else {
                if !anyAllowed, case .suppressed(let why) = sorted[0].verdict {
                    decisions[i] = .suppressed(why)
                    summary.suppressedByPolicy += 1
                } else {
                    decisions[i] = .noCapacity
                    summary.noCapacity += 1
                }
                continue
            }
            let channel = offerChannel[o.offer], cost = offerCost[o.offer]
            let tier = Int(candidates.tiers[i]), band = candidates.bands[i]
            let cell = tier >= 0 && tier < tierNames.count ? tier * bands + Int(band.rawValue) : -1
            if candidates.isControl[i] {
                decisions[i] = .control(offer: o.offer)
                summary.control += 1
                channelCounts[channel].control += 1
                if cell >= 0 { cellCounts[cell].control += 1 } else { otherCells[CellKey(tier: tier, band: band), default: .init()].control += 1 }
            } else {
                decisions[i] = .treatment(offer: o.offer)
                summary.treatment += 1
                channelCounts[channel].treatment += 1
                if cell >= 0 { cellCounts[cell].treatment += 1 } else { otherCells[CellKey(tier: tier, band: band), default: .init()].treatment += 1 }
                if left[channel] != Int.max { left[channel] -= 1 }
                summary.budgetUsed += cost
                summary.expectedSavedCLV += o.expectedValue + cost
            }
        }
        for c in Channel.allCases where channelCounts[c.index] != ArmCounts() { summary.perChannel[c] = channelCounts[c.index] }
        for (cell, counts) in cellCounts.enumerated() where counts != ArmCounts() {
            summary.perCell[tierNames[cell / bands] + "/" + RiskBand.allCases[cell % bands].wireName] = counts
        }
        for (key, counts) in otherCells { summary.perCell["tier\(key.tier)/" + key.band.wireName] = counts }
        return Result(decisions: decisions, priority: priority, summary: summary)
    }
}
