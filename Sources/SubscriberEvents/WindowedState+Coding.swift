import WireFormat

/// The wire form of a subscriber's windowed state: what travels with a shard when it moves to
/// another worker. Compact, because most subscribers touch few series: only what is not empty is
/// written, ring buckets by age with a bitmap of the non-empty days, counts of one as a tag.
///
///     version      UInt8 (1)
///     present      UInt16: bit 0 today, 1 last activity, 2 last top-up, 3 active mask,
///                  4 roaming mask, 5–8 the calls, SMS, call-minute and data rings, 9 sparse entries
///     today        Int32                                     (if present; else nothing follows)
///     last days    LEB128 age (today − day) each             (if present)
///     masks        UInt32 each, non-zero                      (if present)
///     each ring    LEB128 n (days covered: the oldest non-empty age + 1), ⌈n/8⌉ bytes of bitmap
///                  (bit a: age a is non-empty), then each non-empty bucket, by age, as the zigzag
///                  LEB128 of its difference to the previous one (the first's to 0)
///     sparse       LEB128 count, then per entry, oldest first: LEB128 age, a tag (the series'
///                  raw value, + 0x80 when the amount is exactly 1) and otherwise the Float amount
///
/// The encoding is canonical: decoding accepts exactly what encoding writes (minimal LEB128, no
/// empty parts marked present, no set padding bits), so a decoded state encodes to the same bytes.
extension WindowedState: WireCodable {
    /// The format written by `encode(to:)`.
    static let wireVersion: UInt8 = 1
    /// Version and presence bits.
    public static var minimumEncodedSize: Int { 3 }

    private enum Part {
        static let today: UInt16 = 1 << 0, lastActivity: UInt16 = 1 << 1, lastTopup: UInt16 = 1 << 2
        static let activeMask: UInt16 = 1 << 3, roamingMask: UInt16 = 1 << 4
        /// The rings' bits: `ring << k` for `ringSeries[k]`.
        static let ring: UInt16 = 1 << 5
        static let sparse: UInt16 = 1 << 9
        static let all: UInt16 = (1 << 10) - 1
        static let amountIsOne: UInt8 = 0x80
    }

    /// At most one entry per sparse series and day of its horizon.
    static let maximumSparseEntries = Series.allCases.filter(isSparse).reduce(0) { $0 + $1.horizonDays }

    /// Bytes of this state's wire form (`encode(to:)`).
    public var encodedBytes: Int { wireBytes().count }

    /// Appends the state. A sparse amount that is not finite and at least 0 (only an event with a
    /// NaN value, which the parser rejects, could leave one) is written as 0.
    public func encode(to w: inout WireWriter) {
        w.writeFixed(Self.wireVersion)
        guard today != .min else { w.writeFixed(UInt16(0)); return }
        var present = Part.today
        if lastActivityDay != .min { present |= Part.lastActivity }
        if lastTopupDay != .min { present |= Part.lastTopup }
        if activeMask != 0 { present |= Part.activeMask }
        if roamingMask != 0 { present |= Part.roamingMask }
        for (k, s) in Self.ringSeries.enumerated() where coveredDays(s) > 0 { present |= Part.ring << UInt16(k) }
        if !sparse.isEmpty { present |= Part.sparse }
        w.writeFixed(present)
        w.writeFixed(today)
        if lastActivityDay != .min { w.writeLength(max(0, Int(today) - Int(lastActivityDay))) }
        if lastTopupDay != .min { w.writeLength(max(0, Int(today) - Int(lastTopupDay))) }
        if activeMask != 0 { w.writeFixed(activeMask) }
        if roamingMask != 0 { w.writeFixed(roamingMask) }
        for s in Self.ringSeries {
            let n = coveredDays(s)
            guard n > 0 else { continue }
            w.writeLength(n)
            var byte: UInt8 = 0
            for a in 0..<n {
                if ringValue(s, age: a) != 0 { byte |= 1 << UInt8(a % 8) }
                if a % 8 == 7 || a == n - 1 { w.writeFixed(byte); byte = 0 }
            }
            // Neighbouring days hold similar amounts: each bucket goes as its difference to the
            // previous non-empty one (zigzag), which keeps seeded rings at about a byte a day.
            var previous: Int64 = 0
            for a in 0..<n {
                let v = Int64(ringValue(s, age: a))
                guard v != 0 else { continue }
                let delta = v - previous
                w.writeLength(Int(delta >= 0 ? 2 * delta : -2 * delta - 1))
                previous = v
            }
        }
        if !sparse.isEmpty {
            w.writeLength(sparse.count)
            for e in sparse {
                w.writeLength(max(0, Int(today) - Int(e.day)))
                let amount: Float = e.amount.isFinite && e.amount >= 0 ? e.amount : 0
                if amount.bitPattern == Float(1).bitPattern {
                    w.writeFixed(e.series.rawValue | Part.amountIsOne)
                } else {
                    w.writeFixed(e.series.rawValue)
                    w.writeFixed(amount.bitPattern)
                }
            }
        }
    }

    /// Days of the ring of `s` up to its oldest non-empty bucket (0: the ring is empty).
    private func coveredDays(_ s: Series) -> Int {
        var days = s.horizonDays
        while days > 0, ringValue(s, age: days - 1) == 0 { days -= 1 }
        return days
    }

    /// Reads a state, checking everything a state built by `apply` satisfies.
    /// - Throws: `WireError` on truncated or malformed bytes: an unknown version or presence bit, a
    ///   part marked present but empty, a day out of range, a bucket too large for its ring, a
    ///   non-minimal LEB128, sparse entries out of (day, series) order, repeated, of a series kept
    ///   elsewhere, older than their series' horizon or with an amount that is not finite and ≥ 0.
    public init(from r: inout WireReader) throws(WireError) {
        let versionAt = r.offset
        let version = try r.readFixed(UInt8.self)
        guard version == Self.wireVersion else {
            throw WireError(offset: versionAt, expected: "windowed state format \(Self.wireVersion), found \(version)")
        }
        let presentAt = r.offset
        let present = try r.readFixed(UInt16.self)
        guard present & ~Part.all == 0, present == 0 || present & Part.today != 0 else {
            throw WireError(offset: presentAt, expected: "windowed state parts (bits 0–9, bit 0 with any other), found \(present)")
        }
        guard present != 0 else { self.init(); return }
        let todayAt = r.offset
        let today = try r.readFixed(Int32.self)
        guard today != .min else { throw WireError(offset: todayAt, expected: "a day after Int32.min") }
        // A last day must be a day (not Int32.min, which means none).
        let oldestAge = Int(today) - Int(Int32.min) - 1
        var lastActivity = Int32.min, lastTopup = Int32.min
        if present & Part.lastActivity != 0 {
            lastActivity = Int32(Int(today) - Int(try r.readVarUInt(max: UInt64(oldestAge), "the last activity's age (at most \(oldestAge))")))
        }
        if present & Part.lastTopup != 0 {
            lastTopup = Int32(Int(today) - Int(try r.readVarUInt(max: UInt64(oldestAge), "the last top-up's age (at most \(oldestAge))")))
        }
        var state = WindowedState(today: today, lastActivityDay: lastActivity, lastTopupDay: lastTopup)
        if present & Part.activeMask != 0 { state.activeMask = try r.readMask("the active days' mask") }
        if present & Part.roamingMask != 0 { state.roamingMask = try r.readMask("the roaming days' mask") }
        for (k, s) in Self.ringSeries.enumerated() where present & (Part.ring << UInt16(k)) != 0 {
            try state.readRing(s, from: &r)
        }
        if present & Part.sparse != 0 { try state.readSparse(from: &r) }
        self = state
    }

    /// Reads one ring's buckets (see the format) into this state's empty ring of `s`.
    private mutating func readRing(_ s: Series, from r: inout WireReader) throws(WireError) {
        let at = r.offset
        let n = Int(try r.readVarUInt(max: UInt64(s.horizonDays), "the days of the \(s.name) ring (at most \(s.horizonDays))"))
        guard n > 0 else { throw WireError(offset: at, expected: "a non-empty \(s.name) ring") }
        // Read the bitmap first, then the buckets it marks.
        var bitmap: (UInt64, UInt64) = (0, 0)
        for b in 0..<(n + 7) / 8 {
            let byteAt = r.offset
            let byte = try r.readFixed(UInt8.self)
            let bits = min(8, n - 8 * b)
            guard bits == 8 || byte >> UInt8(bits) == 0 else {
                throw WireError(offset: byteAt, expected: "no \(s.name) bucket beyond the \(n) days covered")
            }
            if b < 8 { bitmap.0 |= UInt64(byte) << UInt64(8 * b) } else { bitmap.1 |= UInt64(byte) << UInt64(8 * (b - 8)) }
        }
        func marked(_ a: Int) -> Bool { a < 64 ? (bitmap.0 >> UInt64(a)) & 1 != 0 : (bitmap.1 >> UInt64(a - 64)) & 1 != 0 }
        guard marked(n - 1) else { throw WireError(offset: at, expected: "the \(s.name) ring's oldest covered day to be non-empty") }
        let most = Int64(Self.maximumDaily(s))
        var previous: Int64 = 0
        for a in 0..<n where marked(a) {
            let at = r.offset
            let zigzag = Int64(try r.readVarUInt(max: UInt64(2 * most), "a \(s.name) bucket's difference"))
            let v = previous + (zigzag & 1 == 0 ? zigzag / 2 : -(zigzag + 1) / 2)
            guard v > 0, v <= most else {
                throw WireError(offset: at, expected: "a \(s.name) bucket of 1…\(most) (its bit is set), found \(v)")
            }
            setRingValue(s, age: a, UInt32(v))
            previous = v
        }
    }

    /// Reads the sparse entries into this state's empty list.
    private mutating func readSparse(from r: inout WireReader) throws(WireError) {
        let countAt = r.offset
        let count = try r.readLength(unit: 2)
        guard count > 0, count <= Self.maximumSparseEntries else {
            throw WireError(offset: countAt, expected: "1…\(Self.maximumSparseEntries) sparse entries, found \(count)")
        }
        var entries: [Entry] = []
        entries.reserveCapacity(min(count, r.remaining / 2))
        for _ in 0..<count {
            let at = r.offset
            let age = Int(try r.readVarUInt(max: 365, "a sparse entry's age (at most 365)"))
            let tag = try r.readFixed(UInt8.self)
            guard let series = Series(rawValue: tag & ~Part.amountIsOne), Self.isSparse(series) else {
                throw WireError(offset: r.offset - 1, expected: "a series kept in the sparse list, found tag \(tag)")
            }
            guard age < series.horizonDays, Int(today) - age >= Int(Int32.min) else {
                throw WireError(offset: at, expected: "a \(series.name) entry within its \(series.horizonDays)-day horizon, found age \(age)")
            }
            let day = Int32(Int(today) - age)
            var amount: Float = 1
            if tag & Part.amountIsOne == 0 {
                let amountAt = r.offset
                amount = Float(bitPattern: try r.readFixed(UInt32.self))
                guard amount.isFinite, amount >= 0, amount.bitPattern != Float(1).bitPattern else {
                    throw WireError(offset: amountAt, expected: "a finite \(series.name) amount ≥ 0 (1 as a tag), found \(amount)")
                }
            }
            if let p = entries.last, !(p.day < day || (p.day == day && p.series.rawValue < series.rawValue)) {
                throw WireError(offset: at, expected: "sparse entries in increasing (day, series) order, each once")
            }
            entries.append(Entry(day: day, series: series, amount: amount))
        }
        sparse = entries
    }
}

extension WireReader {
    /// Reads a minimal unsigned LEB128 of at most 5 bytes and at most `max` (`what` names it).
    fileprivate mutating func readVarUInt(max: UInt64, _ what: @autoclosure () -> String) throws(WireError) -> UInt64 {
        let start = offset
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try readFixed(UInt8.self)
            v |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 {
                guard b != 0 || shift == 0 else { throw WireError(offset: start, expected: "\(what()) as a minimal LEB128") }
                break
            }
            shift += 7
            guard shift < 35 else { throw WireError(offset: start, expected: "\(what()) in at most 5 bytes") }
        }
        guard v <= max else { throw WireError(offset: start, expected: "\(what()), found \(v)") }
        return v
    }

    /// Reads a non-zero day mask.
    fileprivate mutating func readMask(_ what: String) throws(WireError) -> UInt32 {
        let at = offset
        let mask = try readFixed(UInt32.self)
        guard mask != 0 else { throw WireError(offset: at, expected: "\(what), non-zero as it is marked present") }
        return mask
    }
}
