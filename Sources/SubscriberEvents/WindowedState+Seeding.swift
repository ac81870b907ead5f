import SubscriberProfiles

/// Seeding: the state a subscriber starts from when their first event arrives, built from the
/// profile imported from the warehouse, so that the first event changes the windowed features only
/// by what the event itself adds.
///
/// Every windowed update the catalogue declares (`windowedFeatures()`) is read back from buckets
/// spread evenly over its window, midpoint first: `r` items over `w` days land at ages
/// `⌊(2k + 1)·w / 2r⌋`, k = 0..<r, so one complaint in 90 days sits at age 45 and a count of `n`
/// over `w` days puts `n / w` on every day and the `n mod w` left over at those midpoints. The
/// same profile and day always give the same state (`==`).
///
/// What the buckets cannot hold exactly is rounded, and reads back within these bounds:
/// - counts (calls, SMS, complaints, support calls, tariff views, porting inquiries, late payments,
///   offers, top-ups) and day counts (active, roaming days) round to the nearest whole number;
///   `active_days_30d` and `roaming_days_30d` are clamped to 0…30;
/// - call minutes and data MB round to the nearest tenth (the rings' fixed point);
/// - revenue (`arpu_30d`), top-up amounts and outage hours are kept in `Float`, as one entry every
///   `seededSumSpacingDays` days of the window (3 in 30 days), exact to a `Float` rounding;
/// - a trend `t` of a series with `L` in the last 30 days puts `3L / (1 + t)` in the 90 days before,
///   rounded to the series' quantum and at least one quantum: a trend reads back within
///   `1.5·L / (B·(B − ½))` for `B` quanta before (exactly for the `Float` series, to a rounding).
///   A trend at or below −0.99 reads −0.99 (the last 30 days are kept, `1 + t` is clamped to 0.01);
///   with nothing in the last 30 days a trend can only read 0 or −1: below −0.5 the 90 days before
///   get three quanta (reads −1), otherwise nothing (reads 0). A trend is seeded only with the
///   30-day amount it divides;
/// - `dropped_call_rate` seeds `round(rate × calls_out_30d)` dropped calls: it reads back within
///   `0.5 / calls_out_30d`, and 0 when there were no calls (the rate is clamped to 0…1);
/// - `days_since_last_activity` and `days_since_last_topup` round to whole days, clamped to
///   0…`maximumSeededAge`; the active days' most recent day is the last activity when it falls in
///   the window (else the mask ends as recent as its count allows).
///
/// A missing (NaN) or absent feature seeds nothing for its series: it reads 0 (the days-since
/// features read nil, so the profile keeps its NaN). Negative counts and sums seed nothing (a
/// negative days-since counts as 0: today); infinite and huge values are clamped: a day of a
/// counting series holds at most 65,535 (the rings' UInt16), a day of data at most UInt32.max
/// tenths, a window of a `Float` sum at most `maximumSeededSum`.
///
/// Seed at the day `apply` will advance the state to (the later of the event's day and now's):
/// seeded at an earlier day, the state first ages the seeded buckets by the difference.
extension WindowedState {
    /// Each `Float` sum (revenue, top-up amount, outage hours) is seeded as one entry per this many
    /// days of its window, rather than one a day: 3 entries for 30 days keep the sparse list small.
    static let seededSumSpacingDays = 10
    /// The largest amount a `Float` sum is seeded with in one window (as `add` caps data per event).
    static let maximumSeededSum = 1e9
    /// The largest seeded days-since value (about 2,700 years).
    static let maximumSeededAge = 1_000_000
    /// The most of a counting series seeded on one day (the counting rings' UInt16).
    static let maximumDailyCount = Int(UInt16.max)

    /// The state at `today = day` whose windowed features reproduce those of `profile` (in the
    /// order of `featureNames`, NaN = missing) as closely as the buckets allow; the rounding rules
    /// are in the comment of this extension.
    /// - Parameters:
    ///   - profile: The imported profile, one value per name of `featureNames` (a shorter profile
    ///     lacks the rest).
    ///   - featureNames: The profile's schema; the first of duplicate names counts.
    ///   - day: The day of the subscriber's first event (days since 1970-01-01 UTC). `Int32.min`
    ///     (no day) gives the empty state.
    public static func seeded(from profile: [Float], featureNames: [String] = FeatureCatalogue.names, day: Int32) -> WindowedState {
        seeded(from: profile, day: day) { featureNames.firstIndex(of: $0) }
    }

    /// The seeding with a feature's column given by `column` (a schema binding's index: no
    /// search through the names per feature, which a worker seeding on every first event pays).
    static func seeded(from profile: [Float], day: Int32, column: (String) -> Int?) -> WindowedState {
        guard day != .min else { return WindowedState() }
        func value(_ feature: String) -> Double? {
            guard let k = column(feature), k < profile.count, !profile[k].isNaN else { return nil }
            return Double(profile[k])
        }
        let plan = seedPlan
        var lastActivity = Int32.min, lastTopup = Int32.min
        for u in plan.lastDays {
            guard case .daysSinceLast(let s) = u.kind, let v = value(u.feature) else { continue }
            let age = min(clampedUnits(v, cap: maximumSeededAge), Int(day) - Int(Int32.min) - 1)
            if s == .topupDays { lastTopup = Int32(Int(day) - age) } else { lastActivity = Int32(Int(day) - age) }
        }
        var state = WindowedState(today: day, lastActivityDay: lastActivity, lastTopupDay: lastTopup)
        // Series whose last 30 days were seeded from a present feature: only they get a trend.
        var known: UInt32 = 0
        for u in plan.windows {
            guard let v = value(u.feature) else { continue }
            switch u.kind {
            case .count(let s, let d):
                known |= 1 << UInt32(s.rawValue)
                state.spread(s, units: clampedUnits(v * quantaPerUnit(s), cap: d * maximumDaily(s)), over: 0..<min(d, s.horizonDays))
            case .sum(let s, let d):
                known |= 1 << UInt32(s.rawValue)
                if isRing(s) {
                    state.spread(s, units: clampedUnits(v * quantaPerUnit(s), cap: d * maximumDaily(s)), over: 0..<min(d, s.horizonDays))
                } else {
                    state.spread(s, amount: min(v, maximumSeededSum), over: 0..<min(d, s.horizonDays))
                }
            case .distinctDays(let s, let d):
                state.seedDays(s, count: clampedUnits(v, cap: min(d, 32)), window: min(d, 32))
            default:
                break
            }
        }
        for u in plan.derived {
            guard let v = value(u.feature) else { continue }
            switch u.kind {
            case .trend(let s) where known & (1 << UInt32(s.rawValue)) != 0 && s.horizonDays >= 120:
                let last = state.sum(s, ages: 0..<30)
                if isRing(s) || !isFloatSum(s) {
                    let lastUnits = (last * quantaPerUnit(s)).rounded()
                    let before = amountBefore(last: lastUnits, trend: v, quantum: 1)
                    state.spread(s, units: clampedUnits(before, cap: 90 * maximumDaily(s)), over: 30..<120)
                } else {
                    state.spread(s, amount: min(amountBefore(last: last, trend: v, quantum: 0.01), 1_000 * maximumSeededSum), over: 30..<120)
                }
            case .ratio(let n, let d, let days):
                let rate = min(max(v, 0), 1)
                let count = rate * state.sum(d, ages: 0..<days)
                state.spread(n, units: clampedUnits(count * quantaPerUnit(n), cap: days * maximumDaily(n)), over: 0..<min(days, n.horizonDays))
            default:
                break
            }
        }
        return state
    }

    /// `seeded(from:featureNames:day:)` with the schema of `binding`.
    public static func seeded(from profile: [Float], binding: ProfileSchemaBinding, day: Int32) -> WindowedState {
        seeded(from: profile, day: day) { binding.column(of: $0) }
    }

    // MARK: Plan

    /// The catalogue's windowed updates, one per feature, in the order seeding needs them: the last
    /// days (the active days are placed after them), the windows, then what is derived from the
    /// windows (trends, ratios).
    struct SeedPlan: Sendable {
        var lastDays: [EventCatalogue.Update] = []
        var windows: [EventCatalogue.Update] = []
        var derived: [EventCatalogue.Update] = []
    }

    static let seedPlan: SeedPlan = {
        var plan = SeedPlan(), seen = Set<String>()
        for spec in EventCatalogue.specs {
            for u in spec.updates where seen.insert(u.feature).inserted {
                switch u.kind {
                case .daysSinceLast: plan.lastDays.append(u)
                case .count, .sum, .distinctDays: plan.windows.append(u)
                case .trend, .ratio: plan.derived.append(u)
                case .setToValue, .setToValueScaled, .addValue, .add: seen.remove(u.feature)
                }
            }
        }
        return plan
    }()

    /// The 90 days' amount before the last 30 that makes `trend` read `t` after `last` (both in
    /// quanta when `quantum` is 1): `3·last / (1 + t)`, with `1 + t` at least 0.01 and the result
    /// at least one quantum; with nothing last, three quanta for a trend below −0.5, else nothing.
    static func amountBefore(last: Double, trend t: Double, quantum: Double) -> Double {
        guard last > 0 else { return t <= -0.5 ? 3 * quantum : 0 }
        return max(3 * last / max(1 + t, 0.01), quantum)
    }

    /// `x` rounded to a whole number within 0…cap; NaN and negatives give 0, +∞ gives `cap`.
    static func clampedUnits(_ x: Double, cap: Int) -> Int {
        guard x > 0 else { return 0 }
        let r = x.rounded()
        return r >= Double(cap) ? cap : Int(r)
    }

    // MARK: Buckets by age

    /// The series kept in dense day rings (the rest, but for the masks and last days, are sparse).
    static let ringSeries: [Series] = [.calls, .sms, .callMinutes, .dataMB]

    static func isRing(_ s: Series) -> Bool {
        s == .calls || s == .sms || s == .callMinutes || s == .dataMB
    }

    /// Whether `s` lives in the sparse list (`add`'s default case).
    static func isSparse(_ s: Series) -> Bool {
        !isRing(s) && s != .activeDays && s != .roamingDays && s != .topupDays
    }

    /// Sparse series summed as `Float` amounts rather than counted.
    static func isFloatSum(_ s: Series) -> Bool {
        s == .revenue || s == .topupAmount || s == .outageHours
    }

    /// Bucket quanta per unit of the series: 10 for the tenth rings, 1 otherwise.
    static func quantaPerUnit(_ s: Series) -> Double {
        s == .callMinutes || s == .dataMB ? tenths : 1
    }

    /// The most one day's bucket of `s` holds, in quanta.
    static func maximumDaily(_ s: Series) -> Int {
        s == .dataMB ? Int(UInt32.max) : maximumDailyCount
    }

    /// The ring bucket of `s` for the day `age` days before `today`, in quanta.
    func ringValue(_ s: Series, age: Int) -> UInt32 {
        let day = Int(today) - age
        switch s {
        case .calls: return UInt32(small[Self.slot(day, Self.longRing)])
        case .sms: return UInt32(small[Self.longRing + Self.slot(day, Self.longRing)])
        case .callMinutes: return UInt32(small[2 * Self.longRing + Self.slot(day, Self.shortRing)])
        case .dataMB: return data[Self.slot(day, Self.longRing)]
        default: return 0
        }
    }

    /// Sets the ring bucket of `s` for the day `age` days before `today` (clamped to its width).
    mutating func setRingValue(_ s: Series, age: Int, _ v: UInt32) {
        let day = Int(today) - age
        switch s {
        case .calls: small[Self.slot(day, Self.longRing)] = UInt16(clamping: v)
        case .sms: small[Self.longRing + Self.slot(day, Self.longRing)] = UInt16(clamping: v)
        case .callMinutes: small[2 * Self.longRing + Self.slot(day, Self.shortRing)] = UInt16(clamping: v)
        case .dataMB: data[Self.slot(day, Self.longRing)] = v
        default: break
        }
    }

    // MARK: Building

    /// A state at `today` holding only its last activity and last top-up days (`Int32.min`: none;
    /// a day after `today` is ignored), with empty buckets. Those days are set the way `apply` sets
    /// them (they are only written there): each is replayed as an event, then the state advances.
    init(today: Int32, lastActivityDay: Int32, lastTopupDay: Int32) {
        self.init()
        guard today != .min else { return }
        let activity = lastActivityDay != .min && lastActivityDay <= today
        let topup = lastTopupDay != .min && lastTopupDay <= today
        // Oldest first: the state only moves forward.
        let topupFirst = topup && (!activity || lastTopupDay < lastActivityDay)
        if topupFirst { advance(to: lastTopupDay); add(.topupDays, day: lastTopupDay, 1) }
        if activity { advance(to: lastActivityDay); add(.activeDays, day: lastActivityDay, 1) }
        if topup, !topupFirst { advance(to: lastTopupDay); add(.topupDays, day: lastTopupDay, 1) }
        advance(to: today)
        activeMask = 0
    }

    /// Adds `units` quanta of `s` over the ages `ages`: the same on every day, the remainder one
    /// each at the midpoints.
    mutating func spread(_ s: Series, units: Int, over ages: Range<Int>) {
        let w = ages.count
        guard units > 0, w > 0 else { return }
        let q = units / w, r = units % w
        var k = 0
        for i in 0..<w {
            var n = q
            if k < r, i == (2 * k + 1) * w / (2 * r) { n += 1; k += 1 }
            guard n > 0 else { continue }
            let age = ages.lowerBound + i
            if Self.isRing(s) {
                setRingValue(s, age: age, UInt32(clamping: Int(ringValue(s, age: age)) + n))
            } else if Int(today) - age > Int(Int32.min) {
                add(s, day: Int32(Int(today) - age), Double(n))
            }
        }
    }

    /// Adds `amount` of a sparse `Float` series over the ages `ages`, as one entry per
    /// `seededSumSpacingDays` days at the midpoints; the last entry takes the `Float` remainder.
    mutating func spread(_ s: Series, amount: Double, over ages: Range<Int>) {
        let w = ages.count
        guard amount > 0, w > 0 else { return }
        let slots = max(1, w / Self.seededSumSpacingDays)
        let each = Float(amount / Double(slots))
        for k in 0..<slots {
            let age = ages.lowerBound + (2 * k + 1) * w / (2 * slots)
            let part = k == slots - 1 ? Float(amount - Double(each) * Double(slots - 1)) : each
            guard Int(today) - age > Int(Int32.min), part > 0 else { continue }
            add(s, day: Int32(Int(today) - age), Double(part))
        }
    }

    /// Sets the day mask of `s` to `count` days within the last `window`: ending at the last
    /// activity when it is known and leaves room, otherwise at the midpoints.
    mutating func seedDays(_ s: Series, count n: Int, window w: Int) {
        var mask: UInt32 = 0
        if n > 0 {
            if s == .activeDays, lastActivityDay != .min {
                let a0 = min(Int(today) - Int(lastActivityDay), w - n)
                for k in 0..<n { mask |= 1 << UInt32(a0 + k * (w - a0) / n) }
            } else {
                for k in 0..<n { mask |= 1 << UInt32((2 * k + 1) * w / (2 * n)) }
            }
        }
        switch s {
        case .activeDays: activeMask = mask
        case .roamingDays: roamingMask = mask
        default: break
        }
    }
}
