import SubscriberProfiles

/// The subscriber event catalogue: the one place that defines every event type, its `value`
/// (required, optional or forbidden, unit, valid range) and how it updates the profile, by
/// feature name (`FeatureCatalogue`). `docs/events.md` is rendered from it (`EventCatalogue.markdown()`)
/// and a test fails when the two differ.
public enum EventType: String, Sendable, CaseIterable, Hashable {
    case call
    case sms
    case dataSession = "data_session"
    case topup
    case balance
    case bill
    case paymentLate = "payment_late"
    case supportCall = "support_call"
    case complaint
    case ticketOpened = "ticket_opened"
    case ticketClosed = "ticket_closed"
    case droppedCall = "dropped_call"
    case tariffView = "tariff_view"
    case portOutInquiry = "port_out_inquiry"
    case roamingDay = "roaming_day"
    case contractRenewed = "contract_renewed"
    case retentionOfferMade = "retention_offer_made"
    case networkOutage = "network_outage"

    /// The type's catalogue entry.
    public var spec: EventCatalogue.Spec { EventCatalogue.specs[index] }

    /// Position in `allCases` (the wire code of the type, stable as long as cases are only appended).
    public var index: Int { Self.indexTable[self]! }
    private static let indexTable: [EventType: Int] = Dictionary(uniqueKeysWithValues: allCases.enumerated().map { ($1, $0) })

    /// Every type by its wire code (`allCases` is rebuilt on each use; the event path reads this).
    public static let byIndex: [EventType] = allCases

    /// The type named `name` on the wire, or nil.
    public init?(wireName name: some StringProtocol) {
        self.init(rawValue: String(name))
    }
}

/// A windowed quantity kept per subscriber by `WindowedState`: per-day amounts over `horizonDays`.
public enum Series: UInt8, Sendable, CaseIterable, Hashable {
    /// Outgoing calls (count).
    case calls
    /// Outgoing call minutes.
    case callMinutes
    /// SMS sent (count).
    case sms
    /// Mobile data (MB).
    case dataMB
    /// Revenue: bills (postpaid) and top-ups (prepaid), in currency.
    case revenue
    /// Top-ups (count).
    case topups
    /// Top-up amounts (currency).
    case topupAmount
    /// Late payments (count).
    case latePayments
    /// Calls to customer care (count).
    case supportCalls
    /// Formal complaints (count).
    case complaints
    /// Calls dropped by the network (count).
    case droppedCalls
    /// Views of other tariffs (count).
    case tariffViews
    /// Porting inquiries (count).
    case portOutInquiries
    /// Retention offers made (count).
    case retentionOffers
    /// Network outage hours.
    case outageHours
    /// Days with any chargeable activity (a day flag).
    case activeDays
    /// Days with roaming activity (a day flag).
    case roamingDays
    /// Top-ups, for the days since the last one.
    case topupDays

    /// Days of history kept: the longest window read from it (trends read 120: the last 30 days
    /// and the 90 before).
    public var horizonDays: Int {
        switch self {
        case .calls, .sms, .dataMB, .revenue: 120
        case .complaints, .portOutInquiries: 90
        case .latePayments: 180
        case .retentionOffers: 365
        case .callMinutes, .topups, .topupAmount, .supportCalls, .droppedCalls, .tariffViews, .outageHours, .activeDays, .roamingDays, .topupDays: 30
        }
    }

    /// Snake-case name used in the documentation.
    public var name: String {
        switch self {
        case .calls: "calls"
        case .callMinutes: "call_minutes"
        case .sms: "sms"
        case .dataMB: "data_mb"
        case .revenue: "revenue"
        case .topups: "topups"
        case .topupAmount: "topup_amount"
        case .latePayments: "late_payments"
        case .supportCalls: "support_calls"
        case .complaints: "complaints"
        case .droppedCalls: "dropped_calls"
        case .tariffViews: "tariff_views"
        case .portOutInquiries: "port_out_inquiries"
        case .retentionOffers: "retention_offers"
        case .outageHours: "outage_hours"
        case .activeDays: "active_days"
        case .roamingDays: "roaming_days"
        case .topupDays: "topup_days"
        }
    }
}

public enum EventCatalogue {
    /// Whether an event carries a `value`.
    public enum ValueRule: Sendable, Equatable {
        /// `value` must be present, finite and within `range`.
        case required
        /// `value` may be omitted (then `default` is used); when present it must be within `range`.
        case optional(default: Double)
        /// The event is one occurrence: `value` is omitted, or exactly 1 (the count of one event);
        /// any other value is rejected as not allowed.
        case forbidden
    }

    /// How one event updates one feature. Windowed kinds read a `Series` kept by `WindowedState`.
    public enum UpdateKind: Sendable, Equatable {
        /// The number of events of the series within the last `days` days.
        case count(Series, days: Int)
        /// The sum of the events' values within the last `days` days.
        case sum(Series, days: Int)
        /// The number of days within the last `days` days with at least one event of the series.
        case distinctDays(Series, days: Int)
        /// The last 30 days over the average of the three 30-day months before, minus 1 (0 when
        /// the months before are empty).
        case trend(Series)
        /// Whole days since the last event of the series (its day to the current day).
        case daysSinceLast(Series)
        /// `numerator / max(denominator, numerator)` over the last `days` days (0 when both are 0).
        case ratio(Series, over: Series, days: Int)
        /// The feature becomes the event's value.
        case setToValue
        /// The feature becomes the event's value times `factor` (e.g. months to days).
        case setToValueScaled(Double)
        /// The event's value is added to the feature.
        case addValue
        /// `delta` is added to the feature, never going below `floor`.
        case add(Double, floor: Double)
    }

    /// One declared update: a feature, by name, and how the event changes it.
    public struct Update: Sendable, Equatable {
        public var feature: String
        public var kind: UpdateKind
        public init(_ feature: String, _ kind: UpdateKind) {
            self.feature = feature
            self.kind = kind
        }
    }

    /// One event type's entry.
    public struct Spec: Sendable {
        public var type: EventType
        public var meaning: String
        public var value: ValueRule
        /// Unit of `value` ("—" when the type carries none).
        public var unit: String
        /// Valid values (checked when a value is given).
        public var range: ClosedRange<Double>
        /// The windowed series this event adds to, with the amount it adds (`nil` = its value).
        public var feeds: [(series: Series, amount: Double?)]
        /// The profile updates it declares.
        public var updates: [Update]
        /// A signal `WindowedState.apply` reports besides the feature values (e.g. bill shock).
        public var signal: String?
    }

    /// A bill is a bill shock when it is at least `billShockFactor` times the subscriber's usual
    /// monthly revenue (the average of the three 30-day months before the last 30 days) and at
    /// least `billShockMinimumExcess` above it.
    public static let billShockFactor = 2.0
    public static let billShockMinimumExcess = 20.0
    /// Days of a month in `contract_renewed` (months → `days_to_contract_end`).
    public static let daysPerMonth = 30.4375

    /// Chargeable activity: what feeds `active_days_30d` and `days_since_last_activity`.
    private static let activity: [Update] = [
        .init("active_days_30d", .distinctDays(.activeDays, days: 30)),
        .init("days_since_last_activity", .daysSinceLast(.activeDays)),
    ]

    /// Every event type, in `EventType.allCases` order.
    public static let specs: [Spec] = [
        Spec(type: .call, meaning: "An outgoing call; `value` is its duration.", value: .required, unit: "minutes", range: 0...1_440,
             feeds: [(.calls, 1), (.callMinutes, nil), (.activeDays, 1)],
             updates: [
                .init("calls_out_30d", .count(.calls, days: 30)),
                .init("call_minutes_out_30d", .sum(.callMinutes, days: 30)),
                .init("calls_trend_3m", .trend(.calls)),
                .init("dropped_call_rate", .ratio(.droppedCalls, over: .calls, days: 30)),
             ] + activity, signal: nil),
        Spec(type: .sms, meaning: "An SMS sent.", value: .forbidden, unit: "—", range: 1...1,
             feeds: [(.sms, 1), (.activeDays, 1)],
             updates: [
                .init("sms_out_30d", .count(.sms, days: 30)),
                .init("sms_trend_3m", .trend(.sms)),
             ] + activity, signal: nil),
        Spec(type: .dataSession, meaning: "A mobile data session; `value` is the data it used.", value: .required, unit: "MB", range: 0...1_000_000,
             feeds: [(.dataMB, nil), (.activeDays, 1)],
             updates: [
                .init("data_mb_30d", .sum(.dataMB, days: 30)),
                .init("data_trend_3m", .trend(.dataMB)),
             ] + activity, signal: nil),
        Spec(type: .topup, meaning: "A prepaid top-up; `value` is its amount (revenue for a prepaid line, and added to the balance).", value: .required, unit: "currency", range: 0.01...10_000,
             feeds: [(.topups, 1), (.topupAmount, nil), (.revenue, nil), (.topupDays, 1)],
             updates: [
                .init("topups_30d", .count(.topups, days: 30)),
                .init("topup_amount_30d", .sum(.topupAmount, days: 30)),
                .init("arpu_30d", .sum(.revenue, days: 30)),
                .init("arpu_trend_3m", .trend(.revenue)),
                .init("balance", .addValue),
                .init("days_since_last_topup", .daysSinceLast(.topupDays)),
             ], signal: nil),
        Spec(type: .balance, meaning: "The prepaid balance changed; `value` is the new balance.", value: .required, unit: "currency", range: -10_000...1_000_000,
             feeds: [], updates: [.init("balance", .setToValue)], signal: nil),
        Spec(type: .bill, meaning: "A postpaid bill was issued; `value` is its amount (revenue). A bill far above the subscriber's usual is a bill shock.", value: .required, unit: "currency", range: 0...1_000_000,
             feeds: [(.revenue, nil)],
             updates: [
                .init("arpu_30d", .sum(.revenue, days: 30)),
                .init("arpu_trend_3m", .trend(.revenue)),
             ], signal: "bill_shock"),
        Spec(type: .paymentLate, meaning: "A postpaid bill was not paid by its due date.", value: .forbidden, unit: "—", range: 1...1,
             feeds: [(.latePayments, 1)], updates: [.init("late_payments_6m", .count(.latePayments, days: 180))], signal: nil),
        Spec(type: .supportCall, meaning: "A call to customer care.", value: .forbidden, unit: "—", range: 1...1,
             feeds: [(.supportCalls, 1)], updates: [.init("support_calls_30d", .count(.supportCalls, days: 30))], signal: nil),
        Spec(type: .complaint, meaning: "A formal complaint.", value: .forbidden, unit: "—", range: 1...1,
             feeds: [(.complaints, 1)], updates: [.init("complaints_90d", .count(.complaints, days: 90))], signal: nil),
        Spec(type: .ticketOpened, meaning: "A support ticket was opened.", value: .forbidden, unit: "—", range: 1...1,
             feeds: [], updates: [.init("open_tickets", .add(1, floor: 0))], signal: nil),
        Spec(type: .ticketClosed, meaning: "A support ticket was closed.", value: .forbidden, unit: "—", range: 1...1,
             feeds: [], updates: [.init("open_tickets", .add(-1, floor: 0))], signal: nil),
        Spec(type: .droppedCall, meaning: "A call of the line dropped by the network.", value: .forbidden, unit: "—", range: 1...1,
             feeds: [(.droppedCalls, 1)], updates: [.init("dropped_call_rate", .ratio(.droppedCalls, over: .calls, days: 30))], signal: nil),
        Spec(type: .tariffView, meaning: "Another tariff viewed in the self-care app.", value: .forbidden, unit: "—", range: 1...1,
             feeds: [(.tariffViews, 1)], updates: [.init("other_tariff_views_30d", .count(.tariffViews, days: 30))], signal: nil),
        Spec(type: .portOutInquiry, meaning: "A request for the porting code or the porting conditions.", value: .forbidden, unit: "—", range: 1...1,
             feeds: [(.portOutInquiries, 1)], updates: [.init("port_out_inquiries_90d", .count(.portOutInquiries, days: 90))], signal: nil),
        Spec(type: .roamingDay, meaning: "A day with roaming activity (chargeable).", value: .forbidden, unit: "—", range: 1...1,
             feeds: [(.roamingDays, 1), (.activeDays, 1)],
             updates: [.init("roaming_days_30d", .distinctDays(.roamingDays, days: 30))] + activity, signal: nil),
        Spec(type: .contractRenewed, meaning: "The commitment was renewed; `value` is the new commitment period (24 when omitted).", value: .optional(default: 24), unit: "months", range: 1...60,
             feeds: [], updates: [.init("days_to_contract_end", .setToValueScaled(daysPerMonth))], signal: nil),
        Spec(type: .retentionOfferMade, meaning: "A retention offer was made to the line.", value: .forbidden, unit: "—", range: 1...1,
             feeds: [(.retentionOffers, 1)], updates: [.init("retention_offers_12m", .count(.retentionOffers, days: 365))], signal: nil),
        Spec(type: .networkOutage, meaning: "A network outage in the line's home cell; `value` is its duration.", value: .required, unit: "hours", range: 0.01...720,
             feeds: [(.outageHours, nil)], updates: [.init("outage_hours_30d", .sum(.outageHours, days: 30))], signal: nil),
    ]

    /// The features named by some update that `featureNames` (a profile schema) lacks: those
    /// updates are skipped, with a warning. With the default schema: `days_since_last_topup`.
    public static func missingFeatures(in featureNames: [String] = FeatureCatalogue.names) -> [String] {
        let have = Set(featureNames)
        var seen = Set<String>(), missing: [String] = []
        for spec in specs {
            for u in spec.updates where !have.contains(u.feature) && seen.insert(u.feature).inserted { missing.append(u.feature) }
        }
        return missing
    }
}

extension EventCatalogue.UpdateKind {
    /// The update in words, for `docs/events.md`.
    public var text: String {
        switch self {
        case .count(let s, let d): "count of `\(s.name)` over \(d) days"
        case .sum(let s, let d): "sum of `\(s.name)` over \(d) days"
        case .distinctDays(let s, let d): "days with `\(s.name)` over \(d) days"
        case .trend(let s): "trend of `\(s.name)`: last 30 days / average of the 3 months before − 1"
        case .daysSinceLast(let s): "days since the last `\(s.name)`"
        case .ratio(let n, let d, let days): "`\(n.name)` / max(`\(d.name)`, `\(n.name)`) over \(days) days"
        case .setToValue: "set to `value`"
        case .setToValueScaled(let f): "set to `value` × \(f)"
        case .addValue: "add `value`"
        case .add(let delta, let floor): "\(delta >= 0 ? "add" : "subtract") \(Self.number(abs(delta))) (not below \(Self.number(floor)))"
        }
    }

    static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)
    }
}
