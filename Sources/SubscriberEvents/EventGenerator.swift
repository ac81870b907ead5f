import SubscriberProfiles

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A realistic event stream for the synthetic base (`SyntheticBase`, same seed, same ids as
/// `churngrid generate`): every subscriber is a set of Poisson processes, one per event type, with
/// rates taken from their profile (calls, SMS and data from their usage, complaints, support calls,
/// tariff views and porting inquiries from their contact counts, top-ups, bills, roaming, late
/// payments…). Subscribers who churn within 30 days grow more dissatisfied over the stream: their
/// usage falls towards 30% while their complaints, support calls, tariff views and porting
/// inquiries rise up to 2.5×. A complaint, support call or dropped call sometimes starts a burst of
/// follow-ups (minutes to hours later), and outages bring dropped calls and complaints.
///
/// Time: the superposition of every process, so timestamps increase (with up to ±30 s of jitter);
/// a share of events is duplicated (the same line again, a little later) and a share is late (its
/// `at` hours to ten days before the stream's clock — beyond 7 days it is too late). Deterministic
/// for a seed. Memory: 97 bytes per subscriber (18 rates, total, usual bill, churn flag, the alias table),
/// 10M subscribers ≈ 1 GB.
public struct EventGenerator {
    public struct Options: Sendable {
        public var subscribers: Int
        public var events: Int
        public var seed: UInt64 = 1
        /// The stream's first instant (ms since 1970); default 2026-12-01T00:00:00Z.
        public var start: Int64 = 1_796_083_200_000
        /// Share of emitted lines that repeat an earlier event (same source and id).
        public var duplicateShare = 0.005
        /// Share of events sent late.
        public var lateShare = 0.005
        public var firstID: Int64 = 1_000_000_000

        public init(subscribers: Int, events: Int, seed: UInt64 = 1) {
            self.subscribers = subscribers
            self.events = events
            self.seed = seed
        }
    }

    public let options: Options
    /// Whether subscriber i churns within 30 days (from the base).
    public let churned: [Bool]
    /// Per subscriber, 18 maximum rates (events per day), one per `EventType`.
    let rates: [Float]
    let totals: [Double]
    /// Per subscriber, the usual monthly bill (arpu_30d).
    let usualBill: [Float]
    let aliasProbability: [Float]
    let alias: [Int32]
    let totalRate: Double
    /// The stream's span in ms (expected to hold `events` events).
    public let spanMillis: Double

    var rng: SplitMix
    var clock: Double
    var emitted = 0
    var sequence = 0
    /// Events waiting for their time: bursts, duplicates and late ones, kept sorted by emission time.
    var pending: [(emitAt: Double, event: SubscriberEvent)] = []

    static let typeCount = EventType.allCases.count
    static let jitterMillis = 30_000.0
    /// The types whose rate churners see fall (usage) or rise (dissatisfaction).
    static let usageTypes: Set<EventType> = [.call, .sms, .dataSession, .topup, .roamingDay]
    static let intentTypes: Set<EventType> = [.complaint, .supportCall, .tariffView, .portOutInquiry]
    static let intentGrowth = 2.5

    public init(_ options: Options) {
        self.options = options
        let n = max(0, options.subscribers)
        var rates = [Float](repeating: 0, count: n * Self.typeCount)
        var churned = [Bool](repeating: false, count: n)
        var totals = [Double](repeating: 0, count: n)
        var usualBill = [Float](repeating: 0, count: n)
        func f(_ p: UnsafeBufferPointer<Float>, _ name: String) -> Double {
            guard let k = FeatureCatalogue.index(of: name) else { return 0 }
            let v = Double(p[k])
            return v.isFinite ? max(0, v) : 0
        }
        SyntheticBase(seed: options.seed, firstID: options.firstID).generate(0..<n) { id, p, label in
            let i = Int(id - options.firstID)
            churned[i] = label
            usualBill[i] = Float(max(1, f(p, "arpu_30d")))
            let prepaid = f(p, "is_prepaid") > 0.5
            let calls = f(p, "calls_out_30d") / 30
            var r = [Double](repeating: 0, count: Self.typeCount)
            r[EventType.call.index] = calls
            r[EventType.sms.index] = f(p, "sms_out_30d") / 30
            r[EventType.dataSession.index] = f(p, "data_mb_30d") > 0 ? 3 : 0
            r[EventType.topup.index] = prepaid ? max(0.02, f(p, "topups_30d") / 30) : 0
            r[EventType.balance.index] = prepaid ? 0.05 : 0
            r[EventType.bill.index] = prepaid ? 0 : 1.0 / 30
            r[EventType.paymentLate.index] = prepaid ? 0 : (f(p, "late_payments_6m") + 0.1) / 180
            r[EventType.supportCall.index] = (f(p, "support_calls_30d") + 0.05) / 30
            r[EventType.complaint.index] = (f(p, "complaints_90d") + 0.02) / 90
            r[EventType.ticketOpened.index] = (f(p, "complaints_90d") + 0.05) / 180
            r[EventType.ticketClosed.index] = 0  // follows an opened ticket
            r[EventType.droppedCall.index] = calls * f(p, "dropped_call_rate")
            r[EventType.tariffView.index] = (f(p, "other_tariff_views_30d") + 0.05) / 30
            r[EventType.portOutInquiry.index] = (f(p, "port_out_inquiries_90d") + 0.005) / 90
            r[EventType.roamingDay.index] = f(p, "roaming_days_30d") / 30
            let contractEnd = Double(p[FeatureCatalogue.index(of: "days_to_contract_end")!])
            r[EventType.contractRenewed.index] = !prepaid && contractEnd.isFinite && contractEnd < 60 ? 1.0 / 120 : 0
            r[EventType.retentionOfferMade.index] = (f(p, "retention_offers_12m") + 0.05) / 365
            r[EventType.networkOutage.index] = 0.004 * (1 + f(p, "outage_hours_30d"))
            var total = 0.0
            for t in EventType.allCases {
                // The maximum over the stream: churners' intent rates grow up to 2.5×.
                let m = label && Self.intentTypes.contains(t) ? Self.intentGrowth : 1
                rates[i * Self.typeCount + t.index] = Float(r[t.index] * m)
                total += Double(Float(r[t.index] * m))
            }
            totals[i] = total
        }
        self.rates = rates
        self.churned = churned
        self.totals = totals
        self.usualBill = usualBill
        // Vose's alias table over the subscribers' total rates.
        let sum = totals.reduce(0, +)
        totalRate = sum
        var probability = [Float](repeating: 1, count: n)
        var alias = [Int32](repeating: 0, count: n)
        if n > 0 && sum > 0 {
            var scaled = totals.map { $0 * Double(n) / sum }
            var small: [Int] = [], large: [Int] = []
            for (i, s) in scaled.enumerated() { if s < 1 { small.append(i) } else { large.append(i) } }
            while let s = small.popLast(), let l = large.last {
                probability[s] = Float(scaled[s])
                alias[s] = Int32(l)
                scaled[l] -= 1 - scaled[s]
                if scaled[l] < 1 { large.removeLast(); small.append(l) }
            }
            for l in large { probability[l] = 1; alias[l] = Int32(l) }
            for s in small { probability[s] = 1; alias[s] = Int32(s) }
        }
        aliasProbability = probability
        self.alias = alias
        // Thinning keeps about 80% of the candidates; the span is sized for `events` lines.
        spanMillis = sum > 0 ? Double(options.events) / (sum * 0.8) * Double(Timestamp.millisPerDay) : 0
        rng = SplitMix(seed: options.seed ^ 0x5EED_E7E7_0000_0001)
        clock = Double(options.start)
    }

    /// Calls `body` with every event of the stream, in emission order (`options.events` of them).
    public mutating func generate(_ body: (SubscriberEvent) throws -> Void) rethrows {
        while let e = next() { try body(e) }
    }

    /// The next event, or nil after `options.events`.
    public mutating func next() -> SubscriberEvent? {
        guard emitted < options.events, options.subscribers > 0, totalRate > 0 else { return nil }
        while true {
            // The next candidate of the superposed processes, unless a pending event is due first.
            let gap = -log(1 - rng.uniform()) / totalRate * Double(Timestamp.millisPerDay)
            let candidateTime = clock + gap
            if let first = pending.first, first.emitAt <= candidateTime {
                pending.removeFirst()
                clock = max(clock, first.emitAt)
                return emit(first.event)
            }
            clock = candidateTime
            guard let event = candidate() else { continue }
            return emit(event)
        }
    }

    private mutating func emit(_ event: SubscriberEvent) -> SubscriberEvent {
        emitted += 1
        if rng.uniform() < options.duplicateShare {
            schedule(event, at: clock + rng.uniform(1_000, 600_000))
        }
        return event
    }

    private mutating func schedule(_ event: SubscriberEvent, at time: Double) {
        var lo = 0, hi = pending.count
        while lo < hi { let m = (lo + hi) / 2; if pending[m].emitAt <= time { lo = m + 1 } else { hi = m } }
        pending.insert((time, event), at: lo)
    }

    /// Draws a subscriber and a type; nil when thinning rejects it.
    private mutating func candidate() -> SubscriberEvent? {
        let n = options.subscribers
        let k = Int(rng.next() % UInt64(n))
        let i = rng.uniform() < Double(aliasProbability[k]) ? k : Int(alias[k])
        var u = rng.uniform() * totals[i]
        var type = EventType.call
        for t in EventType.allCases {
            u -= Double(rates[i * Self.typeCount + t.index])
            if u < 0 { type = t; break }
        }
        if rates[i * Self.typeCount + type.index] == 0 { return nil }
        // Thinning: churners' usage falls to 30% and their intent rises to 2.5× over the stream;
        // everyone else keeps 80% of the candidates (the same mean, less noise in the realism).
        let progress = spanMillis > 0 ? min(1, max(0, (clock - Double(options.start)) / spanMillis)) : 0
        var keep = 0.8
        if churned[i] {
            if Self.usageTypes.contains(type) { keep = 1 - 0.7 * progress }
            if Self.intentTypes.contains(type) { keep = (1 + 1.5 * progress) / Self.intentGrowth }
        }
        guard rng.uniform() < keep else { return nil }
        if type == .ticketClosed { return nil }
        let subscriber = options.firstID + Int64(i)
        var at = clock + rng.uniform(-Self.jitterMillis, Self.jitterMillis)
        if rng.uniform() < options.lateShare { at = clock - rng.uniform(3_600_000, 10 * Double(Timestamp.millisPerDay)) }
        let event = make(subscriber, type, index: i, at: Int64(max(Double(options.start) - 11 * Double(Timestamp.millisPerDay), at)))
        followUps(after: event, index: i)
        return event
    }

    private mutating func make(_ subscriber: Int64, _ type: EventType, index i: Int, at: Int64) -> SubscriberEvent {
        sequence += 1
        let source: String
        switch type {
        case .bill, .topup, .balance, .paymentLate: source = "billing"
        case .call, .sms, .dataSession, .droppedCall, .roamingDay, .networkOutage: source = "network"
        case .supportCall, .complaint, .ticketOpened, .ticketClosed, .retentionOfferMade: source = "care"
        case .tariffView, .portOutInquiry: source = "selfcare"
        case .contractRenewed: source = "crm"
        }
        let value: Double?
        switch type {
        case .call: value = (rng.exponential(2.6) * 10).rounded() / 10
        case .dataSession: value = (rng.lognormal(3.5, 1.4) * 10).rounded() / 10
        case .topup: value = [5.0, 10, 10, 15, 20, 20, 30, 50][Int(rng.next() % 8)]
        case .balance: value = (rng.lognormal(1.5, 1.0) * 100).rounded() / 100
        case .bill:
            // Bills follow the line's usual level; about 2% are a bill shock (3–6×).
            let usual = Double(usualBill[i]) * rng.lognormal(0, 0.1)
            value = ((rng.uniform() < 0.02 ? rng.uniform(3, 6) : 1) * usual * 100).rounded() / 100
        case .contractRenewed: value = [12.0, 24, 24, 36][Int(rng.next() % 4)]
        case .networkOutage: value = min(720, max(0.1, (rng.exponential(2) * 10).rounded() / 10))
        default: value = nil
        }
        return SubscriberEvent(eventID: "\(source.prefix(1))\(String(sequence, radix: 36))", source: source,
                               subscriberID: subscriber, type: type, at: at, value: value)
    }

    /// Bursts: a complaint, support call, dropped call or outage sometimes brings more of the same
    /// kind of trouble within hours; an opened ticket is closed days later.
    private mutating func followUps(after event: SubscriberEvent, index i: Int) {
        let base = Double(event.at)
        switch event.type {
        case .complaint, .supportCall, .droppedCall, .networkOutage:
            let p = churned[i] ? 0.5 : 0.2
            guard rng.uniform() < p else { return }
            let count = 1 + Int(rng.next() % (churned[i] ? 6 : 3))
            var t = max(base, clock)
            for _ in 0..<count {
                t += rng.exponential(1_800_000)
                let kinds: [EventType] = churned[i] ? [.supportCall, .complaint, .tariffView, .portOutInquiry, .droppedCall]
                                                    : [.supportCall, .droppedCall, .complaint, .tariffView]
                let kind = kinds[Int(rng.next() % UInt64(kinds.count))]
                schedule(make(event.subscriberID, kind, index: i, at: Int64(t)), at: t)
            }
        case .ticketOpened:
            let t = max(base, clock) + rng.uniform(0.2, 6) * Double(Timestamp.millisPerDay)
            schedule(make(event.subscriberID, .ticketClosed, index: i, at: Int64(t)), at: t)
        default:
            break
        }
    }
}

/// SplitMix64: small, fast, reproducible.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }
    mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * uniform() }
    mutating func exponential(_ mean: Double) -> Double { -mean * log(1 - uniform()) }
    mutating func normal() -> Double {
        let u = max(uniform(), 0x1p-60), v = uniform()
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
    }
    mutating func lognormal(_ mu: Double, _ sigma: Double) -> Double { exp(mu + sigma * normal()) }
}
