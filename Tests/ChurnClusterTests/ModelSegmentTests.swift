@testable import ChurnCluster
import Foundation
import SubscriberProfiles
import Testing
import WireFormat

@Suite("Model segments: parsing, canonical text, matching; active models' scores on the wire")
struct ModelSegmentTests {
    static let schema = try! FeatureSchema(id: "subscriber_id", features: FeatureSchema.catalogue.features + [
        .init(name: "contract", kind: .category(["Month-to-month", "One year", "Two year", "it's"])),
    ])
    static let names = schema.names

    @Test("conditions joined by 'and': comparisons, 'in' lists, 'is [not] missing', true/false and category names; printed canonically and read back the same")
    func parseAndPrint() throws {
        let s = try ModelSegment.parse("contract in ('Month-to-month', 'One year') AND tenure_months < 12 and is_prepaid = true and arpu_30d >= 9.5 and region is not missing",
                                       features: Self.names, schema: Self.schema)
        #expect(s.description == "contract in (0, 1) and tenure_months < 12 and is_prepaid = 1 and arpu_30d >= 9.5 and region is not missing")
        #expect(try ModelSegment.parse(s.description, features: nil) == s)
        #expect(s.features == ["contract", "tenure_months", "is_prepaid", "arpu_30d", "region"])
        #expect(try ModelSegment.parse("contract = 'it''s'", features: Self.names, schema: Self.schema).description == "contract = 3")
        #expect(try ModelSegment.parse("region != -1 and region <= 4 and region > 0.5", features: Self.names).description == "region != -1 and region <= 4 and region > 0.5")
    }

    @Test("bad segments: a clear error naming the place and, for a misspelt feature or category, the closest names")
    func refusals() {
        func error(_ text: String) -> String {
            do { _ = try ModelSegment.parse(text, features: Self.names, schema: Self.schema); return "parsed" } catch { return error.description }
        }
        #expect(error("tenure_monthz < 3").contains("'tenure_monthz' at byte 1 is not a feature of the schema in force (closest: tenure_months"))
        #expect(error("contract = 'Two years'").contains("'Two years' at byte 12 is not a category of 'contract' (closest: Two year"))
        #expect(error("tenure_months = 'x'").contains("only a category feature's values are named"))
        #expect(error("tenure_months < 3 or is_prepaid = 1").contains("expected 'and' or the end at byte 19"))
        #expect(error("tenure_months").contains("expected one of = != < <= > >= in is"))
        #expect(error("tenure_months in (1, 2").contains("expected ',' or ')' at the end"))
        #expect(error("tenure_months = 'open").contains("is not closed"))
        #expect(error("tenure_months ! 3").contains("must be '!='"))
        #expect(error("tenure_months < 1e99").contains("is not a number"))
        #expect(error("").contains("the segment is empty"))
        #expect(error("tenure_months is present").contains("expected 'missing' or 'not missing'"))
        #expect(error(String(repeating: "tenure_months < 1 and ", count: 40) + "is_prepaid = 1").contains("the segment has"))
        #expect(error("tenure_months in (" + (0...300).map(String.init).joined(separator: ", ") + ")").contains("more than 256 values"))
    }

    @Test("matching: a missing value matches only 'is missing'; every clause must hold")
    func matching() throws {
        let s = try ModelSegment.parse("tenure_months < 12 and is_prepaid in (1)", features: Self.names)
        let tenure: [Float] = [3, 30, .nan, 5], prepaid: [Float] = [1, 1, 1, 0]
        let bound = try s.bind { $0 == "tenure_months" ? 0 : ($0 == "is_prepaid" ? 1 : nil) }
        let hits = tenure.withUnsafeBufferPointer { t in
            prepaid.withUnsafeBufferPointer { p in (0..<4).map { bound.contains([t.baseAddress!, p.baseAddress!], row: $0) } }
        }
        #expect(hits == [true, false, false, false])
        let missing = try ModelSegment.parse("tenure_months is missing", features: Self.names).bind { _ in 0 }
        #expect(tenure.withUnsafeBufferPointer { t in (0..<4).map { missing.contains([t.baseAddress!], row: $0) } } == [false, false, true, false])
        #expect(throws: ModelSegmentError.self) { try s.bind { _ in nil } }
    }

    @Test("an active model's scores cross the wire whole; mismatched lengths, unordered rows or rows beyond the shard are refused")
    func wire() throws {
        var m = ModelScores(name: "churn-90d", version: "m-1", segment: "is_prepaid = 1")
        m.rows = BulkArray([0, 2]); m.probabilities = BulkArray([0.1, 0.9]); m.bands = BulkArray([0, 3])
        m.reasons = BulkArray([1, 2, -1, 0, -1, -1]); m.contributions = BulkArray([0.5, 0.2, 0, 0.7, 0, 0])
        var w = WireWriter()
        w.write(m)
        let back = try ModelScores.decode(w.take())
        #expect(back.segment == "is_prepaid = 1" && back.rows.elements == [0, 2] && back.probabilities.elements == [0.1, 0.9] && back.reasons.elements == m.reasons.elements)
        var unordered = m
        unordered.rows = BulkArray([2, 0])
        var u = WireWriter()
        u.write(unordered)
        #expect(throws: WireError.self) { try ModelScores.decode(u.take()) }
        var short = m
        short.bands = BulkArray([0])
        var s = WireWriter()
        s.write(short)
        #expect(throws: WireError.self) { try ModelScores.decode(s.take()) }
        #expect(m.fits(3) && !m.fits(2))
        let package = ActiveModelPackage(name: "churn-90d", model: ModelPackage(version: "m-1", source: "x", bytes: [1, 2]), segment: "is_prepaid = 1")
        var p = WireWriter()
        p.write(package)
        #expect(try ActiveModelPackage.decode(p.take()) == package)
    }
}
