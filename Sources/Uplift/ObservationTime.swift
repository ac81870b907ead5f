/// Times of outcomes and runs: milliseconds since 1970-01-01T00:00:00Z, as the events and the
/// profile import count them, parsed from the ISO 8601 forms an operator's export has.
///
/// Accepted:
/// - a date, `2026-12-03`: that day's start, 00:00 UTC. An outcome dated the day of a run is
///   therefore before any run made later that day and is not attributed to it — a same-day
///   observation cannot show a response to the offer;
/// - a timestamp, `2026-12-03T10:15:00Z`: `T`, `t` or a space between date and time (PostgreSQL's
///   text form uses a space), seconds required, an optional fraction (milliseconds kept, finer
///   digits dropped), and a zone required: `Z`, `z`, `±HH:MM`, `±HHMM` or `±HH` — a time without
///   a zone would depend on where the file was written.
///
/// Years 1970–9999, real calendar dates (2026-02-29 is refused), hours 00–23, minutes and seconds
/// 00–59.
public enum ObservationTime {
    public static let millisPerSecond: Int64 = 1000
    public static let millisPerDay: Int64 = 86_400_000

    /// The time `text` names, or nil when it is not one of the accepted forms.
    public static func millis(parsing text: String) -> Int64? {
        var copy = text
        return copy.withUTF8 { millis(ArraySlice($0)) }
    }

    /// The time the bytes of a CSV cell name; nil when they are not one of the accepted forms.
    static func millis(_ b: ArraySlice<UInt8>) -> Int64? {
        var i = b.startIndex
        let end = b.endIndex
        func digits(_ count: Int) -> Int? {
            guard end - i >= count else { return nil }
            var v = 0
            for _ in 0..<count {
                let d = Int(b[i]) - 48
                guard d >= 0, d <= 9 else { return nil }
                v = v * 10 + d
                i += 1
            }
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < end, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2), expect(UInt8(ascii: "-")),
              let day = digits(2) else { return nil }
        guard year >= 1970, (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year) else { return nil }
        let midnight = Int64(daysSinceEpoch(year: year, month: month, day: day)) * millisPerDay
        if i == end { return midnight }

        guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else { return nil }
        i += 1
        guard let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2), expect(UInt8(ascii: ":")),
              let second = digits(2), hour <= 23, minute <= 59, second <= 59 else { return nil }
        var millis = 0
        if expect(UInt8(ascii: ".")) {
            var place = 100, seen = 0
            while i < end, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") {
                millis += Int(b[i] - 48) * place
                place /= 10
                seen += 1
                i += 1
            }
            guard seen > 0, seen <= 9 else { return nil }
        }
        guard i < end else { return nil }  // no zone
        var offsetMinutes = 0
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let hours = digits(2), hours <= 23 else { return nil }
            var minutes = 0
            if i < end {
                _ = expect(UInt8(ascii: ":"))
                guard let m = digits(2), m <= 59 else { return nil }
                minutes = m
            }
            offsetMinutes = sign * (hours * 60 + minutes)
        default:
            return nil
        }
        guard i == end else { return nil }
        let local = midnight + Int64(((hour * 60 + minute) * 60 + second) * 1000 + millis)
        return local - Int64(offsetMinutes) * 60_000
    }

    static func isLeap(_ year: Int) -> Bool { (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days from 1970-01-01 to the date (Hinnant's `days_from_civil`, proleptic Gregorian).
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
