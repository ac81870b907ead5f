import SubscriberProfiles

extension EventCatalogue {
    /// `docs/events.md`, rendered from the catalogue (a test fails when the file differs;
    /// `CHURNGRID_UPDATE_DOCS=1 swift test --filter SubscriberEvents` rewrites it).
    public static func markdown() -> String {
        var s = """
        # Subscriber events

        <!-- Generated from Sources/SubscriberEvents/EventCatalogue.swift by EventCatalogue.markdown(); do not edit.
             CHURNGRID_UPDATE_DOCS=1 swift test --filter SubscriberEvents rewrites it. -->

        Events update subscriber profiles (`docs/features.md`) as they happen. The wire form is NDJSON,
        one event a line:

            {"event_id": "b-42", "source": "billing", "subscriber_id": 1000000123, "type": "complaint", "at": "2026-12-03T10:15:00Z", "value": 1.0}

        - `event_id`: 1–\(EventParser.maxIDBytes) bytes of UTF-8, no control characters; (`source`, `event_id`) is unique.
        - `source`: optional, default `\(EventParser.defaultSource)`; the same limits.
        - `subscriber_id`: a positive integer below 2^63.
        - `type`: one of the types below.
        - `at`: RFC 3339 with a zone (`Z` or `±HH:MM`), years 1970–9999, milliseconds kept. At most
          \(WindowedState.maxFutureMillis / 3_600_000) hours after now; older than now − \(WindowedState.allowedLatenessDays) days (the allowed lateness) is too late.
        - `value`: a number, as the type says: *required*, *optional* (a default when omitted) or
          *none* (omitted, or `1` — one occurrence). No other field is accepted; a line is at most
          \(EventParser.maxLineBytes) bytes.

        A rejected line has one reason: \(RejectionReason.allCases.map { "`\($0.code)`" }.joined(separator: ", ")).

        ## Types

        | type | value | unit | range | meaning |
        |---|---|---|---|---|

        """
        for spec in specs {
            let rule: String
            switch spec.value {
            case .required: rule = "required"
            case .optional(let d): rule = "optional (\(UpdateKind.number(d)))"
            case .forbidden: rule = "none"
            }
            let range = spec.value == .forbidden ? "—" : "\(UpdateKind.number(spec.range.lowerBound))–\(UpdateKind.number(spec.range.upperBound))"
            s += "| `\(spec.type.rawValue)` | \(rule) | \(spec.unit) | \(range) | \(spec.meaning) |\n"
        }
        s += """

        ## Profile updates

        Each type declares its updates by feature name. A feature the profile schema lacks is skipped,
        with a warning when the schema is bound (with today's schema: \(missingFeatures().map { "`\($0)`" }.joined(separator: ", "))).

        | type | feature | update |
        |---|---|---|

        """
        let have = Set(FeatureCatalogue.names)
        for spec in specs {
            for u in spec.updates {
                let note = have.contains(u.feature) ? "" : " *(not in the schema: skipped)*"
                s += "| `\(spec.type.rawValue)` | `\(u.feature)`\(note) | \(u.kind.text) |\n"
            }
            if let signal = spec.signal {
                s += "| `\(spec.type.rawValue)` | signal `\(signal)` | at least \(UpdateKind.number(billShockFactor))× the usual monthly revenue (the average of the 3 months before the last 30 days) and \(UpdateKind.number(billShockMinimumExcess)) above it |\n"
            }
        }
        s += """

        ## Windowed state

        Windowed features are computed from per-subscriber, per-day buckets (`WindowedState`), so
        30/90-day counts, days since the last activity and trends stay right as events age out. Each
        series keeps as many days as its longest window reads; a trend reads 120 (the last 30 days and
        the 3 months before):

        | series | days kept | fed by |
        |---|---|---|

        """
        for series in Series.allCases {
            let feeders = specs.filter { $0.feeds.contains { $0.series == series } }.map { "`\($0.type.rawValue)`" + ($0.feeds.first { $0.series == series }!.amount == nil ? " (value)" : "") }
            s += "| `\(series.name)` | \(series == .topupDays ? "last day only" : "\(series.horizonDays)") | \(feeders.joined(separator: ", ")) |\n"
        }
        s += """

        Layout: dense day rings (slot = day mod length) for the series most lines touch daily —
        `calls` and `sms` (16-bit counts, 120 days), `call_minutes` (16-bit tenths of a minute, 30 days),
        `data_mb` (32-bit tenths of a MB, 120 days); two 32-bit day masks for `active_days` and
        `roaming_days`; the last activity and top-up days; and a sparse list of (day, series, amount)
        entries, one per series and day, for the rare series. `advance(to:)` clears the ring slots and
        mask bits of the days that left and drops expired entries. Size: \(WindowedState.bytes(sparseEntries: 0)) bytes per
        subscriber with no rare events, \(WindowedState.bytes(sparseEntries: 8)) with 8 entries (a typical line with a few
        contacts, top-ups and bills), \(WindowedState.bytes(sparseEntries: 40)) with 40.

        Lateness: an event older than now − \(WindowedState.allowedLatenessDays) days is rejected as too late, so a late
        event always lands in a kept bucket (every window is at least 30 days). `apply(event, now:)` is
        a deterministic function of the state, the event and now: the same events replayed from a
        copy of the state give the same state and the same feature values.

        """
        return s
    }
}
