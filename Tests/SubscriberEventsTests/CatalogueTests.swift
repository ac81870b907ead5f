import Foundation
import Testing
@testable import SubscriberEvents
import SubscriberProfiles

@Suite("Event catalogue")
struct EventCatalogueTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("docs/events.md is the catalogue's rendering (CHURNGRID_UPDATE_DOCS=1 rewrites it)")
    func docsInSync() throws {
        let url = Self.root.appendingPathComponent("docs/events.md")
        let rendered = EventCatalogue.markdown()
        if ProcessInfo.processInfo.environment["CHURNGRID_UPDATE_DOCS"] == "1" {
            try rendered.write(to: url, atomically: true, encoding: .utf8)
        }
        let onDisk = try String(contentsOf: url, encoding: .utf8)
        #expect(onDisk == rendered, "docs/events.md differs from EventCatalogue.markdown(): run CHURNGRID_UPDATE_DOCS=1 swift test --filter SubscriberEvents")
    }

    @Test("the issue's eighteen types, in order, each with a spec of its own")
    func types() {
        let names = ["call", "sms", "data_session", "topup", "balance", "bill", "payment_late", "support_call", "complaint",
                     "ticket_opened", "ticket_closed", "dropped_call", "tariff_view", "port_out_inquiry", "roaming_day",
                     "contract_renewed", "retention_offer_made", "network_outage"]
        #expect(EventType.allCases.map(\.rawValue) == names)
        #expect(EventCatalogue.specs.map(\.type) == EventType.allCases)
        for t in EventType.allCases { #expect(t.spec.type == t) }
        #expect(EventType.call.spec.value == .required && EventType.call.spec.unit == "minutes")
        #expect(EventType.networkOutage.spec.unit == "hours" && EventType.dataSession.spec.unit == "MB")
        #expect(EventType.complaint.spec.value == .forbidden)
    }

    @Test("every update names a catalogue feature except the documented one, and binding skips it with a warning")
    func updatesByName() {
        #expect(EventCatalogue.missingFeatures() == ["days_since_last_topup"])
        let binding = ProfileSchemaBinding()
        #expect(binding.warnings.count == 1 && binding.warnings[0].contains("days_since_last_topup"))
        // A smaller schema: writes to features it lacks are skipped and counted.
        let small = ProfileSchemaBinding(featureNames: ["complaints_90d", "balance"])
        #expect(small.warnings.count == EventCatalogue.missingFeatures(in: ["complaints_90d", "balance"]).count)
        var profile: [Float] = [.nan, 5]
        let skipped = small.apply([ProfileWrite(feature: "complaints_90d", operation: .set(2)),
                                   ProfileWrite(feature: "balance", operation: .add(-10, floor: 0)),
                                   ProfileWrite(feature: "open_tickets", operation: .add(1, floor: 0))], to: &profile)
        #expect(skipped == 1 && profile == [2, 0])
        // Windowed kinds read a series that the type feeds or that exists.
        for spec in EventCatalogue.specs {
            for u in spec.updates {
                switch u.kind {
                case .count(let s, let d), .sum(let s, let d), .distinctDays(let s, let d):
                    #expect(d <= s.horizonDays, "\(u.feature)")
                    #expect(spec.feeds.contains { $0.series == s }, "\(spec.type) \(u.feature)")
                default: break
                }
            }
        }
    }
}
