import Foundation
import Testing
import Uplift

@Suite("Outcomes files")
struct OutcomesFileTests {
    static func parse(_ text: String) throws(OutcomesFileError) -> OutcomesFile {
        try OutcomesFile(bytes: Array(text.utf8), file: "outcomes.csv")
    }

    @Test("a good file: columns in any order, quotes, spaces, CRLF, dates and timestamps, unknown acceptance")
    func good() throws {
        let file = try Self.parse("""
            observed_at,accepted,subscriber_id,churned\r
            2026-12-03,1,1000000123,0\r
            "2026-12-04T10:15:00Z",,1000000124,1\r
            \r
             2026-12-05T00:00:00+01:00 , 0 ,"1000000125", 1\r

            """)
        let o = file.outcomes
        #expect(o.subscriberIDs == [1_000_000_123, 1_000_000_124, 1_000_000_125])
        #expect(o.churned == [false, true, true])
        #expect(o.accepted == [true, nil, false])
        #expect(o.observedAt == [ObservationTimeTests.december3, ObservationTimeTests.december3 + 86_400_000 + 36_900_000,
                                 ObservationTimeTests.december3 + 2 * 86_400_000 - 3_600_000])
        #expect(file.lines == [2, 3, 5])
    }

    @Test("the accepted column is optional")
    func withoutAccepted() throws {
        let file = try Self.parse("subscriber_id,churned,observed_at\n7,1,2026-12-03\n")
        #expect(file.outcomes.accepted == [nil] && file.outcomes.churned == [true])
    }

    @Test("read from disk; a missing file is unreadable, with its name")
    func fromDisk() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cg-outcomes-\(UUID()).csv").path
        try "subscriber_id,churned,observed_at\n1,0,2026-12-03\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try OutcomesFile.read(path: path).outcomes.count == 1)
        do {
            _ = try OutcomesFile.read(path: path + ".missing")
            Issue.record("a missing file was read")
        } catch {
            #expect(error.code == .unreadable && error.file == path + ".missing")
        }
    }

    struct Bad: Sendable, CustomStringConvertible {
        var text: String
        var code: OutcomesFileError.Code
        var line: Int
        var column: String?
        var mentions: String
        var description: String { "\(code) on line \(line)" }
    }

    static let header = "subscriber_id,churned,accepted,observed_at\n1,0,1,2026-12-03\n"

    static let bad: [Bad] = [
        Bad(text: header + "12a,0,1,2026-12-03\n", code: .malformedSubscriberID, line: 3, column: "subscriber_id", mentions: "'12a'"),
        Bad(text: header + ",0,1,2026-12-03\n", code: .malformedSubscriberID, line: 3, column: "subscriber_id", mentions: "''"),
        Bad(text: header + "99999999999999999999,0,1,2026-12-03\n", code: .malformedSubscriberID, line: 3, column: "subscriber_id", mentions: "99999999999999999999"),
        Bad(text: header + "2,2,1,2026-12-03\n", code: .notBinary, line: 3, column: "churned", mentions: "'2'"),
        Bad(text: header + "2,,1,2026-12-03\n", code: .notBinary, line: 3, column: "churned", mentions: "0 or 1"),
        Bad(text: header + "2,true,1,2026-12-03\n", code: .notBinary, line: 3, column: "churned", mentions: "'true'"),
        Bad(text: header + "2,0,yes,2026-12-03\n", code: .notBinary, line: 3, column: "accepted", mentions: "'yes'"),
        Bad(text: header + "2,0,1,2026-02-30\n", code: .malformedTime, line: 3, column: "observed_at", mentions: "'2026-02-30'"),
        Bad(text: header + "2,0,1,03/12/2026\n", code: .malformedTime, line: 3, column: "observed_at", mentions: "'03/12/2026'"),
        Bad(text: header + "2,0,1,2026-12-03T10:15:00\n", code: .malformedTime, line: 3, column: "observed_at", mentions: "zone"),
        Bad(text: header + "2,0,1,2026-12-03\n3,1,,2026-12-04\n2,1,0,2026-12-05\n", code: .duplicateSubscriber, line: 5,
            column: "subscriber_id", mentions: "first on line 3"),
        Bad(text: "subscriber_id,accepted,observed_at\n1,1,2026-12-03\n", code: .missingColumn, line: 1, column: "churned", mentions: "no churned"),
        Bad(text: "subscriber_id,churned\n1,1\n", code: .missingColumn, line: 1, column: "observed_at", mentions: "no observed_at"),
        Bad(text: "subscriber_id,churned,acepted,observed_at\n1,1,1,2026-12-03\n", code: .unknownColumn, line: 1, column: "acepted", mentions: "remove"),
        Bad(text: header + "2,0,1\n", code: .malformedCSV, line: 3, column: nil, mentions: "expected 4 fields"),
        Bad(text: "", code: .malformedCSV, line: 1, column: nil, mentions: "empty"),
    ]

    @Test("each kind of bad line is named: code, line, column and the cell", arguments: bad)
    func badLines(_ c: Bad) {
        do {
            _ = try Self.parse(c.text)
            Issue.record("accepted a file with \(c.code) on line \(c.line)")
        } catch {
            #expect(error.code == c.code)
            #expect(error.file == "outcomes.csv" && error.line == c.line && error.column == c.column, "\(error)")
            #expect(error.description.contains(c.mentions), "\(error)")
            #expect(error.description.hasPrefix("outcomes.csv:\(c.line)"), "\(error)")
        }
    }
}
