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

        - `event_id`: 1–\(EventParser.maxIDBytes) bytes of UTF-8, no control characters; (`source`, `event_id`) is unique: a re-sent event keeps its `at`, and the log's key is (`source`, `event_id`, `at`) (see "Durability").
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

        A subscriber's state is made on its first event, seeded from its profile so that the windowed
        features keep their imported values (`WindowedState.seeded`): counts and sums spread evenly
        over their windows, trends as the 3 months before, the last activity and top-up days from the
        days-since features.

        ## Sending events

        `churngrid events replay --input FILE.ndjson [--rate N] [--send-tick-us T] [--coordinator ADDR] [--json]`
        streams a file (`-`: standard input) at N events a second (0: as fast as the cluster takes them),
        open loop: event k is due at start + k/N, and its acknowledgement latency counts from then. At a
        rate the sender wakes at most every T µs (default 1,000; 0: for each event) and sends the events
        then due together, as a producer reading a stream sends what it has read; an event sent late
        counts its lateness.
        `ClusterClient.send(events:)` is the same path for programs. Events go straight to the worker
        owning the subscriber's shard (the cached shard map, as queries), in batches of up to 10,000,
        several in flight. Each event gets one answer:

        | answer | meaning | the producer |
        |---|---|---|
        | `accepted` | logged durably and applied, with its shard's sequence number | done |
        | `duplicate` | the same (`source`, `event_id`, `at`) was logged before; not applied again | done |
        | `rejected` | wrong in itself (a reason above, or `unknown_subscriber`) | done; `replay` names the line |
        | `not_owner` | the worker no longer owns the shard (it moved, failed over) | resends with a fresh map |
        | `busy` | the worker's queue is full (bounded: 200,000 events, and the oldest waiting batch at most 0.5 s old) | resends after the delay given |
        | `retry` | the outcome is unknown (the database went away mid-write), or its shard replays the log before it takes events | resends; if it had been logged it comes back `duplicate` |

        `replay --json` prints one line at the end: `{"events", "accepted", "duplicates", "rejected",
        "rejected_by_reason": {…}, "events_per_second", "triggers", "ack_us": {"p50", "p99", "p999", "max"},
        "trigger_us": {…}, "resent", "resent_by_reason": {"not_owner", "busy", "retry", "unreachable",
        "no_owner", "misanswered"}, "unsettled", "seconds", "started_at_us", "send_tick_us"}` (with a rate,
        `send_tick_us` is the sender's tick; `resent_by_reason`: what the events sent again were
        answered, or that the call failed, or that the map named no owner;
        `started_at_us`: the wall-clock time, µs since 1970, at which the first event was due; with
        `--rate R` event k of the file was due at `started_at_us + k × 10⁶ / R`); it exits 4 when some
        events were still unsettled at the end (send the file again: nothing is applied twice), and 5
        when it had events and every one was rejected (the wrong file, a binary, a base without these subscribers): the
        report is printed all the same, and stderr names the commonest reasons.

        ## Durability: logged before acknowledged, applied exactly once

        The owning worker takes everything waiting (up to 8,192 events) and, in one PostgreSQL
        transaction: checks it still holds each shard's **fence** (`churngrid_event_owners`: the
        node, the (term, epoch) it took the shard in and the generation of its last raise, read
        `FOR SHARE`) and inserts the events into
        **`subscriber_events`** with `ON CONFLICT DO NOTHING`. Only then does it apply them in memory,
        in sequence order, and acknowledge. So:

        - An acknowledged event is in the log. It survives SIGKILL of its worker, of the coordinator,
          and a PostgreSQL restart; a write whose outcome is unknown is answered `retry`, and the
          shard replays the log before it takes more events, so memory and log never disagree.
        - Each shard numbers its events (`seq`); the in-memory state records the last number applied.
          A new owner numbers past the highest number the shard's log ever held (kept in
          `churngrid_event_owners.seq_floor` when an erasure or the retention deletes the newest rows),
          never again a number a standby copy already applied.
          A shard streamed to another worker carries its profiles, its windowed states, its triggers'
          cool-downs and that number; the receiver replays the log after it. A shard loaded from
          PostgreSQL replays every event received after the profiles' snapshot (`as_of` in
          `churngrid_profile_snapshots`, written by `generate` and `profiles import --as-of`), so the
          nightly refresh never drops the events that arrived after the extract was taken (give
          `--as-of` the time the warehouse took the extract; the default is the import's start). Such
          a copy never applies an event received before that time, also after it moves. A subscriber
          whose row the last import did not carry (a delta import, or one the extract left out) is
          as of the import that wrote its row: the events received after that one's `as_of` are
          replayed onto it (its row's `updated_at` names that import): the retention never drops a
          partition a load would replay onto the oldest such row (each import records the earliest
          `as_of` its rows are still as of, `oldest_as_of`, counted in the pass that counts them).
          Under delta imports the log is therefore kept back to the oldest row's import, and the
          coordinator says so (below) until an import carries those rows again or their subscribers
          are erased (rows no extract carries any more, e.g. departed subscribers, hold it until then). A copy that arrives with no
          event state (from a peer one version older, or sent before its older rows caught up with
          the log) is loaded from PostgreSQL instead. A standby copy follows the log every
          2 seconds and replays the rest when it is promoted.
        - A new owner raises the fence before it replays (waiting for the previous owner's write in
          progress to commit): a stale owner that wakes up can no longer log, so it cannot acknowledge
          what the new owner would never see; its events are answered `not_owner`.
        - A write whose connection failed (outcome unknown) is followed, before the shard takes more
          events, by its owner raising the fence again (a new generation) and replaying the log. A
          write the server is still running (its client gone, the server unaware) either holds the
          fence already, and the raise waits until it commits, so the replay applies it; or it has not
          locked the fence yet (it waits for a lock on the table, say), and then finds the generation
          changed and logs nothing. Never does it log events after the replay that memory would miss
          (they would be answered `duplicate` when resent and never applied).
        - Duplicates: `subscriber_events` is partitioned by the day of `at` (PostgreSQL requires the
          partition key in a unique constraint), so its primary key is (`source`, `event_id`, `at`). A
          re-sent event carries the same `at` and always meets its first copy; duplicates are detected
          for as long as the day's partition is kept. An `event_id` reused with another `at` is taken
          as another event.
        - Retention: the coordinator creates the daily partitions ahead and drops those older than
          `--event-retention-days` (default 30) every hour, for the events and `retention_triggers`.
          A partition a load from PostgreSQL would still replay is kept whatever the setting: events
          received after the profiles' `as_of` (the oldest row's, above) may be up to 7 days late, so partitions from 9 days
          before `as_of` on stay until a refresh moves it (the coordinator warns, and sets
          `churngrid_event_log_held_by_profiles` to 1, while stale profiles hold the log past the
          retention; `churngrid_event_log_oldest_timestamp_seconds` is how far back it goes). Duplicates are detected only
          while their day's partition is kept.

        Each applied event rescores its subscriber with the shard's model (the probability before and
        after); the reasons are computed for the triggers it fires. `churngrid score ID` shows the last
        events applied to a subscriber and `churngrid status` the events, triggers, lag and the event
        state's bytes per subscriber of each worker, and the owned shards not taking events: replaying
        the log first (after a write whose outcome is unknown or a takeover whose replay did not finish;
        their events are answered `retry`, and they replay once PostgreSQL answers, without waiting
        for the next event), waiting for PostgreSQL to raise their fences, or held by a newer owner
        (metric `churngrid_event_shards_blocked{state}`, alert `ChurnGridEventShardsBlocked`). A worker
        whose figures did not come is named with the error (`status --json`: `events_unanswered`, by
        worker name; `events_error` when the workers could not be listed). The
        state's bytes are also `churngrid_event_state_bytes` on the worker's `/metrics`.

        ## Triggers

        Rules (`coordinator --triggers FILE`, see `docs/triggers.md`; without the flag the coordinator
        uses `Deploy/triggers.json` when it is there, and `--triggers none` fires none) are evaluated on
        every applied event, by the worker that applies it. A fired trigger is written to
        `retention_triggers` (the durable feed; its id is derived from the rule and the event, so a
        replay never writes it twice) and published at once, best-effort, on the worker's ZeroMQ PUB
        socket (`worker --triggers-publish tcp://HOST:PORT`; with CURVE only authorized keys may
        subscribe). `churngrid triggers tail [--json]` subscribes to every worker's.

        A trigger row that cannot be written (PostgreSQL away, the table locked) is kept in memory (at
        most 1,000,000 a worker, oldest dropped first) and written again with the next group and at every
        standby refresh (2 s; waiting 200 ms at most for a lock there), with the warning "trigger rows
        could not be written yet" at most every 10 s. A shard streamed away (a drain, a rebalance) takes
        its unwritten rows with it (within the last day, at most 10,000 a shard): the worker it moves to
        writes them, named for the worker that fired them, so a worker that exits before the database is
        back loses none ("trigger rows not written at stop" counts what it still held).

        """
        return s
    }
}
