import SubscriberProfiles

/// Per-subscriber state that keeps the windowed features right as events age out: per-day buckets
/// for every `Series`, for as many days as its longest window reads (`Series.horizonDays`).
///
/// Layout (one subscriber):
/// - dense day rings, slot = day mod horizon: `calls` and `sms` (UInt16 per day, 120 days),
///   `call_minutes` (UInt16 tenths of a minute per day, 30 days), `data_mb` (UInt32 tenths of a MB
///   per day, 120 days) — the usage series most lines touch on most days;
/// - two 32-bit day masks (bit k = today − k): `active_days`, `roaming_days`;
/// - the last day of activity and of a top-up (Int32, any age);
/// - a sparse list of (day, series, amount) entries for the rare series (complaints, support calls,
///   tariff views, porting inquiries, late payments, offers, outages, top-ups, revenue, dropped calls),
///   one entry per series and day, dropped when older than the series' horizon.
///
/// Pure: time is passed in (`now`, ms since 1970); `apply` is a deterministic function of the state
/// and its arguments, so replaying the same events from a snapshot of the state gives the same state
/// and the same feature values.
public struct WindowedState: Sendable, Equatable {
    /// How late an event may arrive and still count: events older than now − 7 days are rejected as
    /// too late (every window is at least 30 days, so a late event always lands in a kept bucket).
    public static let allowedLatenessDays = 7
    public static let allowedLatenessMillis = Int64(allowedLatenessDays) * Timestamp.millisPerDay
    /// Events more than a day after now are rejected as in the future.
    public static let maxFutureMillis = Timestamp.millisPerDay

    static let longRing = 120, shortRing = 30
    /// Fixed-point scale of the tenth-unit rings.
    static let tenths = 10.0

    /// The day of the newest bucket (days since 1970-01-01 UTC); `Int32.min` before any.
    public private(set) var today: Int32 = .min
    public private(set) var lastActivityDay: Int32 = .min
    public private(set) var lastTopupDay: Int32 = .min
    var activeMask: UInt32 = 0
    var roamingMask: UInt32 = 0
    /// calls [0, 120), sms [120, 240), call minutes in tenths [240, 270).
    var small = [UInt16](repeating: 0, count: 2 * longRing + shortRing)
    /// Data in tenths of a MB.
    var data = [UInt32](repeating: 0, count: longRing)
    /// Rare series, sorted by (day, series).
    var sparse: [Entry] = []

    struct Entry: Sendable, Equatable {
        var day: Int32
        var series: Series
        var amount: Float
    }

    public init() {}

    // MARK: Bytes

    /// Bytes one subscriber's state takes in memory: the struct, the two rings' heap blocks (with
    /// their 32-byte array headers) and the sparse entries (12 bytes each).
    public var bytes: Int {
        MemoryLayout<WindowedState>.size + 32 + small.count * 2 + 32 + data.count * 4 + (sparse.isEmpty ? 0 : 32 + sparse.capacity * MemoryLayout<Entry>.stride)
    }

    /// The bytes of a state with `sparseEntries` rare-series entries.
    public static func bytes(sparseEntries: Int) -> Int {
        MemoryLayout<WindowedState>.size + 32 + (2 * longRing + shortRing) * 2 + 32 + longRing * 4 + (sparseEntries == 0 ? 0 : 32 + sparseEntries * MemoryLayout<Entry>.stride)
    }

    // MARK: Time

    /// Moves the newest bucket to `day`, expiring every bucket that falls out of its horizon.
    /// Moving backwards does nothing.
    public mutating func advance(to day: Int32) {
        if today == .min { today = day; return }
        guard day > today else { return }
        let gap = Int(day) - Int(today)
        for d in 1...min(gap, Self.longRing) {
            let slot = Self.slot(Int(today) + d, Self.longRing)
            small[slot] = 0
            small[Self.longRing + slot] = 0
            data[slot] = 0
        }
        for d in 1...min(gap, Self.shortRing) {
            small[2 * Self.longRing + Self.slot(Int(today) + d, Self.shortRing)] = 0
        }
        activeMask = gap >= 32 ? 0 : activeMask << UInt32(gap)
        roamingMask = gap >= 32 ? 0 : roamingMask << UInt32(gap)
        today = day
        sparse.removeAll { Int(day) - Int($0.day) >= $0.series.horizonDays }
    }

    static func slot(_ day: Int, _ n: Int) -> Int { ((day % n) + n) % n }

    // MARK: Adding

    /// The quantised amount a ring keeps for `amount` (what every window sums).
    public static func quantized(_ series: Series, _ amount: Double) -> Double {
        switch series {
        case .callMinutes, .dataMB: (amount * tenths).rounded() / tenths
        case .calls, .sms: amount.rounded()
        default: Double(Float(amount))
        }
    }

    /// Adds `amount` of `series` on `day` (which must be within the series' horizon of `today`).
    mutating func add(_ series: Series, day: Int32, _ given: Double) {
        let age = Int(today) - Int(day)
        guard age >= 0, age < series.horizonDays, given.isFinite else { return }
        // Bounded before the integer rings' conversions (the catalogue's ranges are far inside
        // it); the Float entries take the amount as given (seeding spreads sums up to 1e12).
        let amount = min(max(given, -1e9), 1e9)
        switch series {
        case .calls, .sms:
            let k = (series == .calls ? 0 : Self.longRing) + Self.slot(Int(day), Self.longRing)
            small[k] = UInt16(clamping: Int(small[k]) + Int(amount.rounded()))
        case .callMinutes:
            let k = 2 * Self.longRing + Self.slot(Int(day), Self.shortRing)
            small[k] = UInt16(clamping: Int(small[k]) + Int((amount * Self.tenths).rounded()))
        case .dataMB:
            let k = Self.slot(Int(day), Self.longRing)
            data[k] = UInt32(clamping: Int64(data[k]) + Int64((amount * Self.tenths).rounded()))
        case .activeDays:
            if age < 32 { activeMask |= 1 << UInt32(age) }
            lastActivityDay = max(lastActivityDay, day)
        case .roamingDays:
            if age < 32 { roamingMask |= 1 << UInt32(age) }
        case .topupDays:
            lastTopupDay = max(lastTopupDay, day)
        default:
            // Sorted insert or merge into the (day, series) entry.
            var lo = 0, hi = sparse.count
            while lo < hi {
                let mid = (lo + hi) / 2
                let e = sparse[mid]
                if e.day < day || (e.day == day && e.series.rawValue < series.rawValue) { lo = mid + 1 } else { hi = mid }
            }
            if lo < sparse.count, sparse[lo].day == day, sparse[lo].series == series {
                sparse[lo].amount += Float(given)
            } else {
                sparse.insert(Entry(day: day, series: series, amount: Float(given)), at: lo)
            }
        }
    }

    // MARK: Reading

    /// The sum of `series` over the days [today − last + 1 … today − first] (ages first..<last).
    public func sum(_ series: Series, ages: Range<Int>) -> Double {
        guard today != .min else { return 0 }
        let ages = ages.clamped(to: 0..<series.horizonDays)
        guard !ages.isEmpty else { return 0 }
        switch series {
        case .calls, .sms:
            let base = series == .calls ? 0 : Self.longRing
            var s = 0
            for a in ages { s += Int(small[base + Self.slot(Int(today) - a, Self.longRing)]) }
            return Double(s)
        case .callMinutes:
            var s = 0
            for a in ages { s += Int(small[2 * Self.longRing + Self.slot(Int(today) - a, Self.shortRing)]) }
            return Double(s) / Self.tenths
        case .dataMB:
            var s: Int64 = 0
            for a in ages { s += Int64(data[Self.slot(Int(today) - a, Self.longRing)]) }
            return Double(s) / Self.tenths
        case .activeDays, .roamingDays:
            let mask = series == .activeDays ? activeMask : roamingMask
            var s = 0
            for a in ages where a < 32 && mask & (1 << UInt32(a)) != 0 { s += 1 }
            return Double(s)
        case .topupDays:
            return 0
        default:
            var s = 0.0
            for e in sparse where e.series == series {
                let a = Int(today) - Int(e.day)
                if ages.contains(a) { s += Double(e.amount) }
            }
            return s
        }
    }

    /// The current value of one windowed update kind; nil for kinds that are not windowed.
    public func windowedValue(_ kind: EventCatalogue.UpdateKind) -> Double? {
        switch kind {
        case .count(let s, let d), .sum(let s, let d), .distinctDays(let s, let d):
            return sum(s, ages: 0..<d)
        case .trend(let s):
            let last = sum(s, ages: 0..<30), before = sum(s, ages: 30..<120) / 3
            return before > 0 ? last / before - 1 : 0
        case .daysSinceLast(let s):
            let day = s == .topupDays ? lastTopupDay : lastActivityDay
            return day == .min || today == .min ? nil : Double(Int(today) - Int(day))
        case .ratio(let n, let d, let days):
            let a = sum(n, ages: 0..<days), b = max(sum(d, ages: 0..<days), a)
            return b > 0 ? a / b : 0
        case .setToValue, .setToValueScaled, .addValue, .add:
            return nil
        }
    }

    /// Every windowed feature the catalogue declares, by name, as of `today`: what a daily refresh
    /// writes so that counts fall as events expire even without new events.
    public func windowedFeatures() -> [ProfileWrite] {
        var out: [ProfileWrite] = [], seen = Set<String>()
        for spec in EventCatalogue.specs {
            for u in spec.updates where !seen.contains(u.feature) {
                if let v = windowedValue(u.kind) {
                    seen.insert(u.feature)
                    out.append(ProfileWrite(feature: u.feature, operation: .set(v)))
                }
            }
        }
        return out
    }

    // MARK: Applying

    /// Applies `event` as of `now` (ms since 1970): rejects it when too late or in the future
    /// (nothing changes), otherwise advances to the event's day (or now's, whichever is later), adds
    /// it to its series and returns the writes its catalogue updates declare.
    public mutating func apply(_ event: SubscriberEvent, now: Int64) -> EventOutcome {
        if let r = event.valueRejection { return EventOutcome(rejection: r) }
        if event.at > now &+ Self.maxFutureMillis { return EventOutcome(rejection: .inFuture) }
        if event.at < now &- Self.allowedLatenessMillis { return EventOutcome(rejection: .tooLate) }
        let nowDay = Int32(clamping: Timestamp.floorDiv(now, Timestamp.millisPerDay))
        let day = event.day
        // `now` may go backwards between calls (a replay with other clocks): the state's own day
        // bounds lateness too, so a late event always lands in a kept bucket.
        if today != .min, Int(today) - Int(day) > Self.allowedLatenessDays + 1 { return EventOutcome(rejection: .tooLate) }
        advance(to: max(nowDay, day, today))
        let spec = event.type.spec
        var outcome = EventOutcome()
        if event.type == .bill {
            let usual = sum(.revenue, ages: 30..<120) / 3
            outcome.usualMonthlyRevenue = usual
            outcome.billShock = usual > 0 && event.value >= EventCatalogue.billShockFactor * usual
                && event.value - usual >= EventCatalogue.billShockMinimumExcess
        }
        for (series, amount) in spec.feeds { add(series, day: day, amount ?? event.value) }
        outcome.writes.reserveCapacity(spec.updates.count)
        for u in spec.updates {
            let op: ProfileWrite.Operation
            switch u.kind {
            case .setToValue: op = .set(event.value)
            case .setToValueScaled(let f): op = .set((event.value * f).rounded())
            case .addValue: op = .add(event.value, floor: nil)
            case .add(let delta, let floor): op = .add(delta, floor: floor)
            default:
                guard let v = windowedValue(u.kind) else { continue }
                op = .set(v)
            }
            outcome.writes.append(ProfileWrite(feature: u.feature, operation: op))
        }
        return outcome
    }
}

/// One change to one profile feature, by name.
public struct ProfileWrite: Sendable, Equatable {
    public enum Operation: Sendable, Equatable {
        /// The feature becomes this value.
        case set(Double)
        /// This is added to the feature (missing counts as 0), never going below `floor`.
        case add(Double, floor: Double?)
    }
    public var feature: String
    public var operation: Operation

    public init(feature: String, operation: Operation) {
        self.feature = feature
        self.operation = operation
    }
}

/// What applying one event gave.
public struct EventOutcome: Sendable, Equatable {
    /// Set when the event was not applied (nothing changed).
    public var rejection: RejectionReason?
    /// The profile writes, in catalogue order.
    public var writes: [ProfileWrite] = []
    /// A bill far above the subscriber's usual (`EventCatalogue.billShockFactor`).
    public var billShock = false
    /// For a bill: the average monthly revenue of the three months before the last 30 days.
    public var usualMonthlyRevenue: Double?

    public init(rejection: RejectionReason? = nil) { self.rejection = rejection }
    public var applied: Bool { rejection == nil }
}

/// Profile writes bound to a schema (a list of feature names): a write naming a feature the schema
/// lacks is skipped, and `warnings` says so once per feature.
public struct ProfileSchemaBinding: Sendable {
    public let featureNames: [String]
    private let index: [String: Int]

    /// The column of `feature` in this schema (the first of duplicate names), or nil.
    public func column(of feature: String) -> Int? { index[feature] }
    /// One line per catalogue feature the schema lacks.
    public let warnings: [String]

    public init(featureNames: [String] = FeatureCatalogue.names) {
        self.featureNames = featureNames
        var index: [String: Int] = [:]
        for (i, n) in featureNames.enumerated() where index[n] == nil { index[n] = i }
        self.index = index
        warnings = EventCatalogue.missingFeatures(in: featureNames).map {
            "event updates of feature '\($0)' are skipped: the profile schema has no such feature"
        }
    }

    /// Applies `writes` to `profile` (in this schema's order; NaN = missing); returns how many were
    /// skipped for want of a feature.
    @discardableResult
    public func apply(_ writes: [ProfileWrite], to profile: inout [Float]) -> Int {
        var skipped = 0
        for w in writes {
            guard let k = index[w.feature], k < profile.count else { skipped += 1; continue }
            switch w.operation {
            case .set(let v): profile[k] = Float(v)
            case .add(let d, let floor):
                let current = profile[k].isNaN ? 0 : Double(profile[k])
                var v = current + d
                if let floor { v = max(floor, v) }
                profile[k] = Float(v)
            }
        }
        return skipped
    }
}
