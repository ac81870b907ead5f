import Testing
import Uplift

@Suite("Observation times")
struct ObservationTimeTests {
    static let december3: Int64 = 1_796_256_000_000  // 2026-12-03T00:00:00Z

    @Test("dates are midnight UTC; timestamps keep milliseconds and apply their zone",
          arguments: [("2026-12-03", december3),
                      ("2026-12-03T10:15:00Z", december3 + 36_900_000),
                      ("2026-12-03t10:15:00z", december3 + 36_900_000),
                      ("2026-12-03 10:15:00+00", december3 + 36_900_000),
                      ("2026-12-03T12:15:00+02:00", december3 + 36_900_000),
                      ("2026-12-03T05:15:00-0500", december3 + 36_900_000),
                      ("2026-12-03T10:15:00.1234567Z", december3 + 36_900_123),
                      ("1970-01-01", 0),
                      ("2024-02-29T23:59:59Z", 1_709_251_199_000)])
    func accepted(_ c: (String, Int64)) {
        #expect(ObservationTime.millis(parsing: c.0) == c.1, "\(c.0)")
    }

    @Test("anything else is refused",
          arguments: ["", "2026-12-3", "2026-13-01", "2026-02-29", "2026-12-00", "12/03/2026", "2026-12-03T10:15Z",
                      "2026-12-03T10:15:00", "2026-12-03T24:00:00Z", "2026-12-03T10:60:00Z", "2026-12-03T10:15:00+2",
                      "2026-12-03T10:15:00.Z", "1969-12-31", "2026-12-03 ", "2026-12-03T10:15:00ZZ", "２026-12-03"])
    func refused(_ text: String) {
        #expect(ObservationTime.millis(parsing: text) == nil, "\(text)")
    }
}
