/// Attributes observed outcomes to a campaign run and measures it: churn in treatment against
/// control, uplift with its interval, subscribers retained, net value, the same per offer, channel,
/// reason and cell, and how well the run's ranking found the persuadable (Qini, uplift@30%).
///
/// Attribution: a subscriber of the run is matched with their outcomes observed in the window
/// `(run, run + window]` — after the run (an outcome at the run's own instant cannot be a response
/// to it) and up to the window's end inclusive. With several outcomes in the window (imports of
/// successive snapshots), the latest observation counts; on a tie the later row.
///
/// A run's subscriber with no outcome in the window is **unobserved**. By default they are left
/// out of both arms and counted in `unobserved`: assuming they stayed would bias the uplift when
/// the outcome feed covers the arms differently (a call centre records outcomes of the contacted
/// only, say). `assumeRetainedWithoutOutcome` counts them as not churned instead — for feeds that
/// list churners only.
public enum CampaignOutcome {
    /// Which offers count as spent in `offer_cost`.
    public enum CostBasis: String, Sendable, Hashable {
        /// Every offer sent to a treated subscriber (the default): a discount may be conditional on
        /// acceptance, but a call's cost is spent at the contact, and a report should not look
        /// better because acceptance went unrecorded.
        case sent
        /// Offers accepted by the subscriber, and those whose acceptance is unknown (charged rather
        /// than assumed free). For offers whose cost is only incurred when taken up.
        case acceptedOrUnknown = "accepted_or_unknown"
    }

    /// How a report is computed; the defaults are issue 14's.
    public struct Options: Sendable, Equatable {
        /// How long after the run outcomes are attributed to it: 30 days by default, at most 3,650.
        public var window: Duration = .seconds(30 * 86_400)
        /// Counts a subscriber without an outcome in the window as retained instead of leaving them
        /// out (see the type's documentation for why the default is false).
        public var assumeRetainedWithoutOutcome = false
        /// Which offers' costs are subtracted.
        public var costBasis: CostBasis = .sent

        public init(window: Duration = .seconds(30 * 86_400), assumeRetainedWithoutOutcome: Bool = false,
                    costBasis: CostBasis = .sent) {
            self.window = window
            self.assumeRetainedWithoutOutcome = assumeRetainedWithoutOutcome
            self.costBasis = costBasis
        }
    }

    /// The report of run `runID`, decided at `runAt`.
    /// - Parameters:
    ///   - runAt: when the run decided, milliseconds since 1970 UTC (`ObservationTime`).
    ///   - actions: the run's actions, one per subscriber.
    ///   - outcomes: observed outcomes; those of other subscribers or outside the window are ignored.
    /// - Throws: `CampaignOutcomeError` for a subscriber with two actions, a cost, CLV or expected
    ///   value that is not a finite number (or a negative cost), or a window outside (0, 3650 days].
    public static func report(runID: String, runAt: Int64, actions: CampaignActions, outcomes: Outcomes,
                              options: Options = Options()) throws(CampaignOutcomeError) -> CampaignReport {
        let windowMillis = try millis(options.window)
        try validate(actions)
        let runEnd = runAt + windowMillis

        var rowOf: [Int64: Int32] = [:]
        rowOf.reserveCapacity(actions.count)
        for (row, id) in actions.subscriberIDs.enumerated() {
            if let earlier = rowOf.updateValue(Int32(truncatingIfNeeded: row), forKey: id) {
                throw CampaignOutcomeError(.duplicateSubscriber, subscriberID: id,
                                           "subscriber \(id) has two actions in the run (rows \(earlier) and \(row)); a run decides once per subscriber")
            }
        }
        // For each action, the latest outcome in the window (-1: none).
        var matched = [Int32](repeating: -1, count: actions.count)
        for o in 0..<outcomes.count {
            let at = outcomes.observedAt[o]
            guard at > runAt, at <= runEnd, let row = rowOf[outcomes.subscriberIDs[o]] else { continue }
            let previous = matched[Int(row)]
            if previous < 0 || outcomes.observedAt[Int(previous)] <= at {
                matched[Int(row)] = Int32(truncatingIfNeeded: o)
            }
        }

        var overall = GroupTally()
        var perOffer = [GroupTally](repeating: GroupTally(), count: actions.offers.names.count)
        var perChannel = [GroupTally](repeating: GroupTally(), count: actions.channels.names.count)
        var perReason = [GroupTally](repeating: GroupTally(), count: actions.reasons.names.count)
        var perCell = [GroupTally](repeating: GroupTally(), count: actions.cells.names.count)
        var unobserved = CampaignReport.Unobserved(treatment: 0, control: 0)
        var scores: [Double] = [], treated: [Bool] = [], retained: [Bool] = []
        scores.reserveCapacity(actions.count)
        treated.reserveCapacity(actions.count)
        retained.reserveCapacity(actions.count)

        for row in 0..<actions.count {
            let arm = actions.arms[row]
            let churned: Bool
            var accepted: Bool? = nil
            let o = Int(matched[row])
            if o >= 0 {
                churned = outcomes.churned[o]
                accepted = outcomes.accepted[o]
            } else if options.assumeRetainedWithoutOutcome {
                churned = false
            } else {
                switch arm {
                case .treatment: unobserved.treatment += 1
                case .control: unobserved.control += 1
                }
                continue
            }
            let charged = arm == .treatment && (options.costBasis == .sent || accepted != false)
            let cost = charged ? actions.costs[row] : 0
            let clv = actions.clvs[row]
            overall.record(arm: arm, churned: churned, clv: clv, cost: cost)
            perOffer[Int(actions.offers.codes[row])].record(arm: arm, churned: churned, clv: clv, cost: cost)
            perChannel[Int(actions.channels.codes[row])].record(arm: arm, churned: churned, clv: clv, cost: cost)
            perReason[Int(actions.reasons.codes[row])].record(arm: arm, churned: churned, clv: clv, cost: cost)
            perCell[Int(actions.cells.codes[row])].record(arm: arm, churned: churned, clv: clv, cost: cost)
            scores.append(actions.expectedValues[row])
            treated.append(arm == .treatment)
            retained.append(!churned)
        }

        func groups(_ tallies: [GroupTally], _ column: KeyColumn) -> [String: CampaignReport.Group] {
            var out: [String: CampaignReport.Group] = [:]
            for (code, name) in column.names.enumerated() where tallies[code].hasSubscribers {
                out[name] = tallies[code].group
            }
            return out
        }
        // Validated above: every score is finite and the columns have one entry per counted row.
        let curve = try? UpliftCurve(scores: scores, treated: treated, retained: retained)
        return CampaignReport(
            runID: runID, windowDays: Double(windowMillis) / Double(ObservationTime.millisPerDay),
            overall: overall.group, unobserved: unobserved,
            perOffer: groups(perOffer, actions.offers), perChannel: groups(perChannel, actions.channels),
            perReason: groups(perReason, actions.reasons), perCell: groups(perCell, actions.cells),
            qini: curve?.qiniCoefficient, upliftAt30Pct: curve?.upliftAtK(0.3))
    }

    static func millis(_ window: Duration) throws(CampaignOutcomeError) -> Int64 {
        let (seconds, attoseconds) = window.components
        let maxSeconds: Int64 = 3650 * 86_400
        guard seconds >= 0, seconds <= maxSeconds, seconds > 0 || attoseconds > 0 else {
            throw CampaignOutcomeError(.badWindow, subscriberID: nil,
                                       "the observation window is \(window); it must be more than 0 and at most 3650 days")
        }
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    static func validate(_ actions: CampaignActions) throws(CampaignOutcomeError) {
        for row in 0..<actions.count {
            let id = actions.subscriberIDs[row]
            func check(_ value: Double, _ name: String, nonNegative: Bool = false) throws(CampaignOutcomeError) {
                guard value.isFinite, !nonNegative || value >= 0 else {
                    throw CampaignOutcomeError(.badValue, subscriberID: id,
                                               "the \(name) of subscriber \(id)'s action is \(value); it must be a finite\(nonNegative ? ", non-negative" : "") number")
                }
            }
            try check(actions.expectedValues[row], "expected value")
            try check(actions.costs[row], "cost", nonNegative: true)
            try check(actions.clvs[row], "CLV")
        }
    }
}

/// Counts of one group while the report is made.
struct GroupTally {
    var arms = UpliftTally<Int>.Arms()
    var treatedCLV = 0.0
    var cost = 0.0

    var hasSubscribers: Bool { arms.treatment.subscribers + arms.control.subscribers > 0 }

    mutating func record(arm: UpliftReport.Arm, churned: Bool, clv: Double, cost: Double) {
        switch arm {
        case .treatment:
            arms.treatment.subscribers += 1
            if churned { arms.treatment.events += 1 }
            treatedCLV += clv
            self.cost += cost
        case .control:
            arms.control.subscribers += 1
            if churned { arms.control.events += 1 }
        }
    }

    var group: CampaignReport.Group {
        let n = arms.treatment.subscribers
        return CampaignReport.Group(uplift: arms.report, meanTreatedCLV: n > 0 ? treatedCLV / Double(n) : nil, offerCost: cost)
    }
}

/// A campaign run that cannot be measured: what is wrong and for which subscriber.
public struct CampaignOutcomeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable {
            case duplicateSubscriber = "duplicate_subscriber", badValue = "bad_value", badWindow = "bad_window"
        }
        let base: Base

        /// A subscriber with two actions in one run.
        public static let duplicateSubscriber = Code(base: .duplicateSubscriber)
        /// An expected value, cost or CLV that is NaN or infinite, or a negative cost.
        public static let badValue = Code(base: .badValue)
        /// An observation window that is not positive or longer than 3650 days.
        public static let badWindow = Code(base: .badWindow)

        public var description: String { base.rawValue }
    }

    /// The kind of problem.
    public var code: Code
    /// The subscriber concerned, when one is.
    public var subscriberID: Int64?
    /// What was wrong and what was expected.
    public var message: String

    init(_ code: Code, subscriberID: Int64?, _ message: String) {
        self.code = code
        self.subscriberID = subscriberID
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
