import Foundation
import Postgres

/// What campaign runs read from and write to PostgreSQL (docs/retention.md): the contact policy's
/// state, a run's actions and contacts (one transaction), exports, outcomes and what a report
/// attributes. The decisions themselves are made by the shards and the coordinator.
extension ClusterDatabase {
    /// The published job and its model, if any.
    func publishedJob() async throws -> (id: Int64, modelVersion: String)? {
        try await run { c in
            guard let r = try c.query("SELECT j.id, j.model_version FROM churngrid_published p JOIN scoring_jobs j ON j.id = p.job_id").rows.first,
                  let id = r[0].flatMap({ Int64($0) }), let version = r[1] else { return nil }
            return (id, version)
        }
    }

    /// The contact policy's state for a run at `now`: contacts since `contactsSince`, refusals
    /// (an outcome with accepted = false after a contact) since `refusalsSince`, channels
    /// withheld by consent and the do-not-contact list. Only subscribers with something on
    /// record appear (a run that contacts thousands a day keeps this small).
    func contactPolicyRows(contactsSince: Int64, refusalsSince: Int64) async throws -> ContactPolicyRows {
        try await run { c in
            var rows = ContactPolicyRows()
            // When this was read, by PostgreSQL's clock: live decisions recorded since are checked
            // again when the run is written (`writeCampaignRun`).
            rows.readAtMillis = try c.query("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint").scalar.flatMap { Int64($0) } ?? 0
            for r in try c.query("""
                SELECT subscriber_id, channel, floor(extract(epoch FROM at))::bigint FROM contact_history
                WHERE at > to_timestamp($1)
                """, [String(contactsSince)]).rows {
                guard let id = r[0].flatMap({ Int64($0) }), let channel = r[1], let at = r[2].flatMap({ Int64($0) }) else { continue }
                rows.contacts[id, default: []].append((channel, at))
            }
            for r in try c.query("""
                SELECT subscriber_id, floor(extract(epoch FROM max(observed_at)))::bigint FROM subscriber_outcomes
                WHERE accepted = false AND observed_at > to_timestamp($1) GROUP BY subscriber_id
                """, [String(refusalsSince)]).rows {
                guard let id = r[0].flatMap({ Int64($0) }), let at = r[1].flatMap({ Int64($0) }) else { continue }
                rows.refusals[id] = at
            }
            for r in try c.query("SELECT subscriber_id, channel FROM contact_consent WHERE NOT consented").rows {
                guard let id = r[0].flatMap({ Int64($0) }), let channel = r[1] else { continue }
                rows.withheld[id, default: []].append(channel)
            }
            for r in try c.query("SELECT subscriber_id FROM do_not_contact").rows {
                if let id = r[0].flatMap({ Int64($0) }) { rows.doNotContact.insert(id) }
            }
            return rows
        }
    }

    /// Writes a run: its row, every action (both arms) and the treatment arm's contacts, in one
    /// transaction fenced by this coordinator's term — a run is recorded whole or not at all.
    ///
    /// With a live campaign: the run raises its contact generation at the end (live decisions wait
    /// for this transaction, then reload the contact state), and drops the actions of subscribers
    /// the live campaign decided for since `liveSince` − 60 s (the run may not have seen those contacts).
    /// - Returns: the run's id and the actions dropped for that reason.
    ///
    /// The run's row carries `run.requestToken` (unique): written again after a write whose outcome
    /// is unknown (its connection failed, perhaps at COMMIT), the row's INSERT waits for that
    /// write's transaction to end, and finds the run it committed instead of writing a second one.
    func writeCampaignRun(_ run: CampaignRunRecord, actions all: [CampaignActionRow], liveSince: Int64) async throws -> (id: Int64, dropped: [CampaignActionRow]) {
        let term = term
        return try await self.run { c in
            do {
                return try Self.writeCampaignRun(c, run, actions: all, liveSince: liveSince, term: term)
            } catch let e as PostgresError where Self.isRequestTokenConflict(e) {
                // An earlier try of this request committed after all: that is the run.
                guard let id = try c.query("SELECT run_id FROM campaign_runs WHERE request_token = $1", [run.requestToken]).scalar.flatMap({ Int64($0) }) else {
                    throw e
                }
                // Its actions are ours less those it dropped (one per subscriber and run): usually none.
                let kept = Int(try c.query("SELECT count(*) FROM campaign_actions WHERE run_id = $1", [String(id)]).scalar ?? "") ?? -1
                guard kept != all.count else { return (id, []) }
                let missing = Set(try c.query("""
                    SELECT a.id FROM unnest($2::bigint[]) AS a(id)
                    WHERE NOT EXISTS (SELECT 1 FROM campaign_actions x WHERE x.run_id = $1 AND x.subscriber_id = a.id)
                    """, [String(id), EventLog.intArray(all.map(\.subscriberID))]).rows.compactMap { $0[0].flatMap { Int64($0) } })
                return (id, all.filter { missing.contains($0.subscriberID) })
            }
        }
    }

    /// The run written under `requestToken`: its id, its summary (the JSON `campaign run --json`
    /// printed) and whether it was a run of `config` (the campaign file) over `job` (nil: any);
    /// nil when no run was written under it.
    func campaignRun(requestToken: String, config: String, job: Int64?) async throws -> (id: String, summary: String, same: Bool)? {
        try await run { c in
            guard let row = try c.query("""
                SELECT run_id, summary::text, config = $2::jsonb AND ($3::bigint IS NULL OR job_id = $3::bigint)
                FROM campaign_runs WHERE request_token = $1
                """, [requestToken, config, job.map { String($0) }]).rows.first, row.count == 3,
                  let id = row[0], let summary = row[1] else { return nil }
            return (id, summary, row[2] == "t")
        }
    }

    /// Whether `e` is a run's INSERT finding its request token taken: an earlier try of the same
    /// request committed (the unique violation names the column in its detail, or its constraint
    /// `campaign_runs_request_token_key` in its message).
    static func isRequestTokenConflict(_ e: PostgresError) -> Bool {
        e.sqlState == "23505" && (e.detail ?? e.message).contains("request_token")
    }

    private static func writeCampaignRun(_ c: PostgresConnection, _ run: CampaignRunRecord, actions all: [CampaignActionRow], liveSince: Int64,
                                         term: Int64?) throws -> (id: Int64, dropped: [CampaignActionRow]) {
        try Self.transaction(c, fencedBy: term) {
            let actions = all
            guard let inserted = try c.query("""
                INSERT INTO campaign_runs (campaign, config, job_id, model_version, term, started_at, created_by, summary, request_token)
                VALUES ($1, $2::jsonb, $3, $4, $5, to_timestamp($6::double precision / 1000), $7, '{}', $8)
                RETURNING run_id
                """, [run.campaign, run.config, run.jobID.map { String($0) }, run.modelVersion, term.map { String($0) },
                      String(run.startedMillis), run.createdBy, run.requestToken]).scalar, let id = Int64(inserted) else {
                throw ClusterError("PostgreSQL returned no campaign run id")
            }
            try c.copyIn("""
                COPY campaign_actions (run_id, subscriber_id, arm, offer_id, channel, cost, priority, expected_value,
                    probability, clv, tier, band, reasons, script, send_after) FROM STDIN (FORMAT binary)
                """) { w in
                var e = BinaryCopyEncoder()
                for a in actions {
                    e.beginRow(fields: 15)
                    e.int64(id); e.int64(a.subscriberID); e.text(a.treated ? "treatment" : "control"); e.text(a.offerID); e.text(a.channel)
                    e.float32OrNull(a.cost); e.int32(a.priority); e.float32OrNull(a.expectedValue); e.float32OrNull(a.probability)
                    e.float32OrNull(a.clv); e.text(a.tier); e.text(a.band); e.textArray(a.reasons)
                    if let script = a.script { e.text(script) } else { e.null() }
                    e.timestamp(microsecondsSince1970: a.sendAfterMillis * 1000)
                    if e.bytes.count > 1 << 20 { try w.write(e.take()) }
                }
                e.finish()
                try w.write(e.take())
            }
            try c.copyIn("COPY contact_history (subscriber_id, channel, at, run_id, offer_id) FROM STDIN (FORMAT binary)") { w in
                var e = BinaryCopyEncoder()
                for a in actions where a.treated {
                    e.beginRow(fields: 5)
                    e.int64(a.subscriberID); e.text(a.channel); e.timestamp(microsecondsSince1970: a.sendAfterMillis * 1000)
                    e.int64(id); e.text(a.offerID)
                    if e.bytes.count > 1 << 20 { try w.write(e.take()) }
                }
                e.finish()
                try w.write(e.take())
            }
            // Last (the live campaign's row is held only from here to COMMIT): its contact state
            // changes, so its workers' next writes wait for this commit and then reload; and the
            // subscribers it decided for that this run may not have seen are left out of the run.
            // A live decision committed after the run read the contacts was made at most a live
            // statement's timeout (60 s) before it committed: everything decided since `liveSince`
            // less that is left out (more than needed, never less).
            var dropped: [CampaignActionRow] = []
            if let live = try c.query("UPDATE campaign_live SET contact_generation = contact_generation + 1 RETURNING run_id").scalar {
                let decided = Set(try c.query("""
                    SELECT DISTINCT subscriber_id FROM campaign_actions
                    WHERE run_id = $1 AND decided_at >= to_timestamp($2::double precision / 1000) - interval '60 seconds'
                    """, [live, String(liveSince)]).rows.compactMap { $0[0].flatMap { Int64($0) } })
                dropped = actions.filter { decided.contains($0.subscriberID) }
                if !dropped.isEmpty {
                    let ids = EventLog.intArray(dropped.map(\.subscriberID))
                    try c.query("DELETE FROM campaign_actions WHERE run_id = $1 AND subscriber_id = ANY($2::bigint[])", [String(id), ids])
                    try c.query("DELETE FROM contact_history WHERE run_id = $1 AND subscriber_id = ANY($2::bigint[])", [String(id), ids])
                }
            }
            // The summary names the run, so it is written once the id is known.
            try c.query("UPDATE campaign_runs SET summary = $2::jsonb WHERE run_id = $1", [String(id), run.summary(id, dropped)])
            return (id, dropped)
        }
    }

    /// Drops contacts and campaign runs (with their actions) older than `days` (the coordinator's
    /// hourly maintenance; `--contact-retention-days`).
    /// - Returns: contacts and runs dropped.
    func pruneCampaigns(olderThanDays days: Int) async throws -> (contacts: Int, runs: Int) {
        try await run { c in
            let contacts = try c.query("WITH d AS (DELETE FROM contact_history WHERE at < now() - make_interval(days => $1) RETURNING 1) SELECT count(*) FROM d",
                                       [String(days)]).scalar
            let runs = try c.query("""
                WITH d AS (DELETE FROM campaign_runs WHERE started_at < now() - make_interval(days => $1)
                           AND run_id NOT IN (SELECT run_id FROM campaign_live) RETURNING 1) SELECT count(*) FROM d
                """,
                                   [String(days)]).scalar
            return (Int(contacts ?? "0") ?? 0, Int(runs ?? "0") ?? 0)
        }
    }

    /// A run's treatment actions on `channel`, as CSV lines (header first) for the channel's system.
    func exportCampaignActions(run id: Int64, channel: String) async throws -> String {
        try await run { c in
            guard try c.query("SELECT 1 FROM campaign_runs WHERE run_id = $1", [String(id)]).rows.count == 1 else {
                throw CampaignRefusal(.unknownRun, "campaign run \(id) does not exist", field: "run")
            }
            var out = "subscriber_id,offer_id,channel,send_after,priority,expected_value,reasons,script\n"
            try c.copyOut("""
                COPY (SELECT subscriber_id, offer_id, channel, to_char(send_after AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), priority,
                             expected_value, array_to_string(reasons, ';'), script
                      FROM campaign_actions WHERE run_id = \(id) AND arm = 'treatment' AND channel = '\(channel.replacingOccurrences(of: "'", with: "''"))'
                      ORDER BY priority) TO STDOUT (FORMAT csv)
                """) { chunk in
                out += String(decoding: chunk, as: UTF8.self)
            }
            return out
        }
    }

    /// Stores outcomes (one transaction): every subscriber must exist (the first unknown ones are
    /// named with their lines, and nothing is written); a second outcome of a subscriber at the same
    /// time replaces the first.
    /// - Returns: rows inserted and rows replaced.
    func importOutcomes(_ batch: OutcomeBatch) async throws -> (inserted: Int, replaced: Int) {
        try await run { c in
            try Self.transaction(c) {
                try c.execute("CREATE TEMP TABLE IF NOT EXISTS churngrid_outcome_stage (line integer, subscriber_id bigint, observed_ms bigint, churned boolean, accepted boolean) ON COMMIT DELETE ROWS")
                try c.copyIn("COPY churngrid_outcome_stage (line, subscriber_id, observed_ms, churned, accepted) FROM STDIN (FORMAT csv)") { w in
                    var text = ""
                    text.reserveCapacity(1 << 20)
                    for i in 0..<batch.ids.count {
                        let accepted = batch.accepted[i] < 0 ? "" : (batch.accepted[i] == 1 ? "t" : "f")
                        text += "\(batch.lines[i]),\(batch.ids[i]),\(batch.observedAtMillis[i]),\(batch.churned[i] == 1 ? "t" : "f"),\(accepted)\n"
                        if text.utf8.count > 1 << 20 { try w.write(Array(text.utf8)); text.removeAll(keepingCapacity: true) }
                    }
                    try w.write(Array(text.utf8))
                }
                let unknown = try c.query("""
                    SELECT s.line, s.subscriber_id FROM churngrid_outcome_stage s
                    WHERE NOT EXISTS (SELECT 1 FROM subscriber_profiles p WHERE p.subscriber_id = s.subscriber_id)
                    ORDER BY s.line LIMIT 5
                    """).rows
                if !unknown.isEmpty {
                    let named = unknown.map { "line \($0[0] ?? "?"): subscriber \($0[1] ?? "?")" }.joined(separator: "; ")
                    throw CampaignRefusal(.unknownSubscribers, "\(batch.source): unknown subscribers (\(named)); nothing was imported",
                                          lines: unknown.compactMap { $0[0].flatMap { Int($0) } })
                }
                let counts = try c.query("""
                    WITH staged AS (SELECT line, subscriber_id, to_timestamp(observed_ms / 1000.0) AS observed_at, churned, accepted FROM churngrid_outcome_stage),
                    latest AS (SELECT DISTINCT ON (subscriber_id, observed_at) * FROM staged ORDER BY subscriber_id, observed_at, line DESC),
                    up AS (INSERT INTO subscriber_outcomes (subscriber_id, observed_at, churned, accepted)
                           SELECT subscriber_id, observed_at, churned, accepted FROM latest
                           ON CONFLICT (subscriber_id, observed_at) DO UPDATE SET churned = excluded.churned, accepted = excluded.accepted, imported_at = now()
                           RETURNING (xmax = 0) AS inserted)
                    SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
                    """).rows.first
                // Refusals are part of the contact state the live campaign's workers hold.
                try c.query("UPDATE campaign_live SET contact_generation = contact_generation + 1")
                return (Int(counts?[0] ?? "0") ?? 0, Int(counts?[1] ?? "0") ?? 0)
            }
        }
    }

    /// A run's actions joined with the outcomes observed in (run start, run start + `windowDays`]:
    /// what a report attributes (the newest outcome in the window per subscriber).
    func campaignRunForReport(run id: Int64, windowDays: Int) async throws -> CampaignReportRows {
        try await run { c in
            guard let header = try c.query("""
                SELECT campaign, floor(extract(epoch FROM started_at) * 1000)::bigint, summary::text FROM campaign_runs WHERE run_id = $1
                """, [String(id)]).rows.first, let started = header[1].flatMap({ Int64($0) }) else {
                throw CampaignRefusal(.unknownRun, "campaign run \(id) does not exist", field: "run")
            }
            var rows = CampaignReportRows(campaign: header[0] ?? "", startedMillis: started, summary: header[2] ?? "{}")
            try c.copyOut("""
                COPY (SELECT a.subscriber_id, a.arm = 'treatment', a.offer_id, a.channel, a.cost, a.expected_value, a.clv, a.tier || '/' || a.band,
                             coalesce(a.reasons[1], ''), o.churned, o.accepted, floor(extract(epoch FROM o.observed_at) * 1000)::bigint
                      FROM campaign_actions a
                      LEFT JOIN LATERAL (SELECT churned, accepted, observed_at FROM subscriber_outcomes o
                                         WHERE o.subscriber_id = a.subscriber_id AND o.observed_at > to_timestamp(\(started) / 1000.0)
                                           AND o.observed_at <= to_timestamp(\(started) / 1000.0) + make_interval(days => \(windowDays))
                                         ORDER BY o.observed_at DESC LIMIT 1) o ON true
                      WHERE a.run_id = \(id) ORDER BY a.priority) TO STDOUT (FORMAT text)
                """) { chunk in
                rows.text += String(decoding: chunk, as: UTF8.self)
            }
            return rows
        }
    }
}

/// The contact policy's state as PostgreSQL holds it (see `contactPolicyRows`).
struct ContactPolicyRows: Sendable {
    /// Per subscriber: (channel, seconds since 1970) of each contact in the window.
    var contacts: [Int64: [(channel: String, at: Int64)]] = [:]
    /// Per subscriber: the latest refusal (seconds since 1970).
    var refusals: [Int64: Int64] = [:]
    /// Per subscriber: channels without consent.
    var withheld: [Int64: [String]] = [:]
    var doNotContact: Set<Int64> = []
    /// When PostgreSQL read them (ms since 1970).
    var readAtMillis: Int64 = 0
}

/// A campaign run's row.
struct CampaignRunRecord: Sendable {
    var campaign: String
    /// The campaign file as given (JSON).
    var config: String
    var jobID: Int64?
    var modelVersion: String
    var startedMillis: Int64
    var createdBy: String
    /// Names this request's run (unique): a write tried again after its outcome was unknown finds
    /// the run an earlier try committed.
    var requestToken = UUID().uuidString
    /// The run's totals as JSON, given its id and the actions dropped when it was written.
    var summary: @Sendable (Int64, [CampaignActionRow]) -> String
}

/// One decided action (a row of `campaign_actions`).
struct CampaignActionRow: Sendable {
    var subscriberID: Int64
    var treated: Bool
    var offerID: String
    var channel: String
    var cost: Float
    var priority: Int32
    var expectedValue: Float
    var probability: Float
    var clv: Float
    var tier: String
    var band: String
    var reasons: [String]
    var script: String?
    var sendAfterMillis: Int64
}

/// Parsed outcomes on their way to `subscriber_outcomes`.
public struct OutcomeBatch: Sendable {
    public var source: String
    public var lines: [Int32]
    public var ids: [Int64]
    /// 0 or 1.
    public var churned: [UInt8]
    /// 0, 1, or −1 for unknown.
    public var accepted: [Int8]
    public var observedAtMillis: [Int64]

    public init(source: String, lines: [Int32], ids: [Int64], churned: [UInt8], accepted: [Int8], observedAtMillis: [Int64]) {
        self.source = source
        self.lines = lines
        self.ids = ids
        self.churned = churned
        self.accepted = accepted
        self.observedAtMillis = observedAtMillis
    }
}

/// A run's actions with their attributed outcomes, as PostgreSQL's text COPY lines:
/// subscriber, treated (t/f), offer, channel, cost, expected value, clv, cell, first reason,
/// churned (t/f/\N), accepted (t/f/\N), observed at (ms since 1970, \N).
struct CampaignReportRows: Sendable {
    var campaign: String
    var startedMillis: Int64
    var summary: String
    var text = ""
}
