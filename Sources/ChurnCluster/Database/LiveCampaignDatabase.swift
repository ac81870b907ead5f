import Foundation
import Postgres
import Retention

/// The live campaign as PostgreSQL holds it (migration 13; docs/retention.md, "Real time"): what
/// the coordinator starts, stops and leases, and what the workers read and record decisions into.
struct LiveCampaignRecord: Sendable, Equatable {
    var runID: Int64
    var campaign: String
    var config: String
    var tierCuts: [Double]
    var clv: CLVWire
    var maxTriggerAgeSeconds: Int
    var generation: Int64
    var startedMillis: Int64
    var startedBy: String
}

enum LiveCampaignStore {
    /// The live campaign, if any.
    static func current(_ c: PostgresConnection) throws -> LiveCampaignRecord? {
        guard let r = try c.query("""
            SELECT l.run_id, r.campaign, l.config, l.tier_cuts::text, l.clv_margin_rate, l.clv_monthly_discount, l.clv_horizon_months,
                   l.max_trigger_age_seconds, l.contact_generation, floor(extract(epoch FROM l.started_at) * 1000)::bigint, l.started_by
            FROM campaign_live l JOIN campaign_runs r USING (run_id)
            """).rows.first else { return nil }
        guard let run = r[0].flatMap({ Int64($0) }), let margin = r[4].flatMap({ Double($0) }), let discount = r[5].flatMap({ Double($0) }),
              let horizon = r[6].flatMap({ Int($0) }), let age = r[7].flatMap({ Int($0) }), let generation = r[8].flatMap({ Int64($0) }),
              let started = r[9].flatMap({ Int64($0) }) else {
            throw ClusterError("campaign_live holds a row that cannot be read")
        }
        let cuts = (r[3] ?? "{}").trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").compactMap { Double($0) }
        var clv = CLVWire(.default)
        clv.marginRate = margin
        clv.monthlyDiscount = discount
        clv.horizonMonths = horizon
        return LiveCampaignRecord(runID: run, campaign: r[1] ?? "", config: r[2] ?? "", tierCuts: cuts, clv: clv, maxTriggerAgeSeconds: age,
                                  generation: generation, startedMillis: started, startedBy: r[10] ?? "")
    }

    /// The generation of the contact state (nil when no campaign is live).
    static func generation(_ c: PostgresConnection) throws -> (run: Int64, generation: Int64)? {
        guard let r = try c.query("SELECT run_id, contact_generation FROM campaign_live").rows.first,
              let run = r[0].flatMap({ Int64($0) }), let g = r[1].flatMap({ Int64($0) }) else { return nil }
        return (run, g)
    }

    /// What `node` has left of each resource it leases in `run`, and what the run has leased out
    /// so far to every worker (used or not), per resource: one query.
    static func room(_ c: PostgresConnection, run: Int64, node: String) throws -> (left: [String: Double], leased: [String: Double]) {
        var left: [String: Double] = [:], leased: [String: Double] = [:]
        for r in try c.query("""
            SELECT resource, sum(granted - used) FILTER (WHERE node = $2), sum(granted)
            FROM campaign_live_quotas WHERE run_id = $1 GROUP BY resource
            """, [String(run), node]).rows {
            guard let resource = r[0] else { continue }
            if let l = r[1].flatMap({ Double($0) }) { left[resource] = l }
            if let g = r[2].flatMap({ Double($0) }) { leased[resource] = g }
        }
        return (left, leased)
    }

    /// The contact state of `shards` as of one snapshot: the generation it belongs to, contacts and
    /// refusals since `since` (seconds), withheld consent and the do-not-contact list.
    static func contactState(_ c: PostgresConnection, shards: [Int], shardCount: Int, since: Int64) throws -> ShardContactState {
        try c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        do {
            var state = ShardContactState()
            state.generation = try c.query("SELECT contact_generation FROM campaign_live").scalar.flatMap { Int64($0) } ?? 0
            let list = "{" + shards.map(String.init).joined(separator: ",") + "}"
            let params: [String?] = [String(since), String(shardCount), list]
            for r in try c.query("""
                SELECT subscriber_id, channel, floor(extract(epoch FROM at))::bigint FROM contact_history
                WHERE at > to_timestamp($1) AND churngrid_shard(subscriber_id, $2) = ANY($3::integer[])
                """, params).rows {
                guard let id = r[0].flatMap({ Int64($0) }), let channel = r[1].flatMap({ Channel(rawValue: $0) }), let at = r[2].flatMap({ Int64($0) }) else { continue }
                state.histories[id, default: ContactHistory()].record(channel, at: at)
            }
            for r in try c.query("""
                SELECT subscriber_id, floor(extract(epoch FROM max(observed_at)))::bigint FROM subscriber_outcomes
                WHERE accepted = false AND observed_at > to_timestamp($1) AND churngrid_shard(subscriber_id, $2) = ANY($3::integer[])
                GROUP BY subscriber_id
                """, params).rows {
                guard let id = r[0].flatMap({ Int64($0) }), let at = r[1].flatMap({ Int64($0) }) else { continue }
                state.histories[id, default: ContactHistory()].recordRefusal(at: at)
            }
            for r in try c.query("SELECT subscriber_id, channel FROM contact_consent WHERE NOT consented AND churngrid_shard(subscriber_id, $1) = ANY($2::integer[])",
                                 [String(shardCount), list]).rows {
                guard let id = r[0].flatMap({ Int64($0) }), let channel = r[1].flatMap({ Channel(rawValue: $0) }) else { continue }
                state.withheld[id, default: []].insert(ChannelSet(channel))
            }
            for r in try c.query("SELECT subscriber_id FROM do_not_contact WHERE churngrid_shard(subscriber_id, $1) = ANY($2::integer[])", [String(shardCount), list]).rows {
                if let id = r[0].flatMap({ Int64($0) }) { state.doNotContact.insert(id) }
            }
            try c.execute("COMMIT")
            return state
        } catch {
            try? c.execute("ROLLBACK")
            throw error
        }
    }

    /// What `churngrid_live_decide` answered for one row (migration 13).
    enum RecordStatus: String, Sendable {
        case decided, already, stale, ended
        case doNotContact = "do_not_contact", noConsent = "no_consent", noCapacity = "no_capacity", noBudget = "no_budget"
    }

    /// Records decided triggers (`churngrid_live_decide`, one transaction): one status per row.
    static func record(_ c: PostgresConnection, run: Int64, node: String, generation: Int64, _ rows: [LiveActionRow]) throws -> [RecordStatus] {
        guard !rows.isEmpty else { return [] }
        func text(_ f: (LiveActionRow) -> String) -> String { ClusterDatabase.textArray(rows.map(f)) }
        func numbers(_ f: (LiveActionRow) -> Double) -> String { EventLog.doubleArray(rows.map(f)) }
        let reasons = text { r in "{" + r.reasons.map { "\"" + $0 + "\"" }.joined(separator: ",") + "}" }
        let statuses = try c.query("""
            SELECT unnest(churngrid_live_decide($1, $2, $3, $4::bigint[], $5::text[], $6::text[], $7::text[], $8::float8[], $9::float8[], $10::float8[],
                                                $11::float8[], $12::text[], $13::text[], $14::text[], $15::text[], $16::bigint[], $17::text[]))
            """, [String(run), node, String(generation), EventLog.intArray(rows.map(\.subscriberID)), text { $0.treated ? "treatment" : "control" },
                  text(\.offerID), text(\.channel), numbers(\.cost), numbers(\.expectedValue), numbers(\.probability), numbers(\.clv), text(\.tier),
                  text(\.band), reasons, ClusterDatabase.textArray(rows.map(\.script)), EventLog.intArray(rows.map(\.sendAfterMillis)), text(\.triggerID)])
            .rows.map { $0.first.flatMap { $0 } ?? "" }
        guard statuses.count == rows.count else { throw ClusterError("churngrid_live_decide answered \(statuses.count) statuses for \(rows.count) rows") }
        return try statuses.map { text in
            guard let status = RecordStatus(rawValue: text) else { throw ClusterError("churngrid_live_decide answered an unknown status '\(text.prefix(40))'") }
            return status
        }
    }
}

/// A decided trigger on its way to `campaign_actions` (and, treated, `contact_history`).
struct LiveActionRow: Sendable {
    var subscriberID: Int64
    var treated: Bool
    var offerID: String
    var channel: String
    var cost: Double
    var expectedValue: Double
    var probability: Double
    var clv: Double
    var tier: String
    var band: String
    /// Feature names (catalogue names: no quoting needed).
    var reasons: [String]
    var script: String?
    var sendAfterMillis: Int64
    var triggerID: String
}

/// The contact state of a worker's owned shards (see `LiveCampaignStore.contactState`).
struct ShardContactState: Sendable {
    var generation: Int64 = 0
    var histories: [Int64: ContactHistory] = [:]
    var withheld: [Int64: ChannelSet] = [:]
    var doNotContact: Set<Int64> = []
}

extension ClusterDatabase {
    /// Makes `campaign` the live campaign (replacing the one live before, whose run ends), as a
    /// run of its own, in one transaction fenced by this coordinator's term.
    ///
    /// The run's row carries `run.requestToken`, as a batch run's does (`writeCampaignRun`): tried
    /// again after a start whose outcome is unknown (its connection failed, perhaps at COMMIT), it
    /// waits for that start's transaction to end and returns the run it made live, if it committed.
    /// - Returns: the new run's id and the run that was live before, if any.
    func startLiveCampaign(_ run: CampaignRunRecord, live: LiveCampaignRecord, capacity: [String: Int], budget: Double?) async throws -> (run: Int64, replaced: Int64?) {
        let term = term
        return try await self.run { c in
            do {
                return try Self.startLiveCampaign(c, run, live: live, capacity: capacity, budget: budget, term: term)
            } catch let e as PostgresError where Self.isRequestTokenConflict(e) {
                // An earlier try of this request committed after all: that run is live (or was, and
                // has been replaced or stopped since).
                guard let row = try c.query("""
                    SELECT r.run_id, (r.summary->>'replaces')::bigint, l.run_id IS NOT NULL
                    FROM campaign_runs r LEFT JOIN campaign_live l ON l.run_id = r.run_id WHERE r.request_token = $1
                    """, [run.requestToken]).rows.first, let id = row[0].flatMap({ Int64($0) }) else { throw e }
                guard row[2] == "t" else {
                    throw ClusterError("campaign \(run.campaign) went live as run \(id), and was stopped or replaced since (`campaign live status`)")
                }
                return (id, row[1].flatMap { Int64($0) })
            }
        }
    }

    private static func startLiveCampaign(_ c: PostgresConnection, _ run: CampaignRunRecord, live: LiveCampaignRecord, capacity: [String: Int],
                                          budget: Double?, term: Int64?) throws -> (run: Int64, replaced: Int64?) {
        try Self.transaction(c, fencedBy: term) {
            let replaced = try c.query("SELECT run_id FROM campaign_live FOR UPDATE").scalar.flatMap { Int64($0) }
            let summary = replaced.map { "{\"live\": true, \"replaces\": \($0)}" } ?? "{\"live\": true}"
            guard let inserted = try c.query("""
                INSERT INTO campaign_runs (campaign, config, job_id, model_version, term, started_at, created_by, summary, request_token)
                VALUES ($1, $2::jsonb, NULL, $3, $4, to_timestamp($5::double precision / 1000), $6, $7::jsonb, $8)
                RETURNING run_id
                """, [run.campaign, run.config, run.modelVersion, term.map { String($0) }, String(run.startedMillis), run.createdBy,
                      summary, run.requestToken]).scalar,
                  let id = Int64(inserted) else {
                throw ClusterError("PostgreSQL returned no campaign run id")
            }
            if let replaced { try Self.endLive(c, run: replaced) }
            let cap = "{" + capacity.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
            // A new run's generation is its start time: never one a worker holds for the run before.
            try c.query("""
                INSERT INTO campaign_live (run_id, config, tier_cuts, clv_margin_rate, clv_monthly_discount, clv_horizon_months, capacity, budget,
                                           max_trigger_age_seconds, contact_generation, started_at, started_by)
                VALUES ($1, $2, $3::float8[], $4, $5, $6, $7::jsonb, $8, $9, $10, to_timestamp($11::double precision / 1000), $12)
                """, [String(id), live.config, EventLog.doubleArray(live.tierCuts), String(live.clv.marginRate), String(live.clv.monthlyDiscount),
                      String(live.clv.horizonMonths), cap, budget.map { String($0) }, String(live.maxTriggerAgeSeconds),
                      String(live.generation), String(live.startedMillis), live.startedBy])
            return (id, replaced)
        }
    }

    /// Ends the live campaign, if any: its row goes (workers' writes are refused from now on) and
    /// its run's summary is written from its actions.
    /// - Returns: the run that was live.
    func stopLiveCampaign() async throws -> Int64? {
        let term = term
        return try await run { c in
            try Self.transaction(c, fencedBy: term) {
                guard let run = try c.query("SELECT run_id FROM campaign_live FOR UPDATE").scalar.flatMap({ Int64($0) }) else { return nil }
                try Self.endLive(c, run: run)
                return run
            }
        }
    }

    private static func endLive(_ c: PostgresConnection, run: Int64) throws {
        try c.query("DELETE FROM campaign_live WHERE run_id = $1", [String(run)])
        try c.query("UPDATE campaign_runs SET finished_at = now(), summary = $2::jsonb WHERE run_id = $1", [String(run), try liveSummary(c, run: run)])
    }

    /// A live run's totals (JSON): actions per arm and channel, budget used, leases.
    static func liveSummary(_ c: PostgresConnection, run: Int64) throws -> String {
        try c.query("""
            SELECT jsonb_build_object(
                'live', true, 'run_id', $1::bigint,
                'treatment', (SELECT count(*) FROM campaign_actions WHERE run_id = $1 AND arm = 'treatment'),
                'control', (SELECT count(*) FROM campaign_actions WHERE run_id = $1 AND arm = 'control'),
                'budget_used', (SELECT coalesce(sum(cost), 0) FROM campaign_actions WHERE run_id = $1 AND arm = 'treatment'),
                'per_channel', (SELECT coalesce(jsonb_object_agg(channel, counts), '{}'::jsonb) FROM (
                    SELECT channel, jsonb_build_object('treatment', count(*) FILTER (WHERE arm = 'treatment'),
                                                       'control', count(*) FILTER (WHERE arm = 'control')) AS counts
                    FROM campaign_actions WHERE run_id = $1 GROUP BY channel) x),
                'leases', (SELECT coalesce(jsonb_agg(jsonb_build_object('node', node, 'resource', resource, 'granted', granted, 'used', used)
                                                     ORDER BY node, resource), '[]'::jsonb)
                           FROM campaign_live_quotas WHERE run_id = $1))::text
            """, [String(run)]).scalar ?? "{}"
    }

    /// The live campaign's status (JSON) with its run's totals so far; nil when none is live.
    func liveCampaignStatus() async throws -> String? {
        try await run { c in
            guard let live = try LiveCampaignStore.current(c) else { return nil }
            let summary = try Self.liveSummary(c, run: live.runID)
            guard var object = (try? JSONSerialization.jsonObject(with: Data(summary.utf8))) as? [String: Any] else { return summary }
            object["campaign"] = live.campaign
            object["tier_cuts"] = live.tierCuts
            object["max_trigger_age_seconds"] = live.maxTriggerAgeSeconds
            object["contact_generation"] = live.generation
            object["started_at_ms"] = live.startedMillis
            object["started_by"] = live.startedBy
            guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return summary }
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// One round of leasing (`LiveQuotas`) over the live campaign's leases, fenced; nothing when
    /// no campaign is live.
    /// - Returns: the leases changed.
    func leaseLiveQuotas(members: [String], keeping: Set<String>, units: @escaping @Sendable (LiveCampaignRecord) -> [String: Double]) async throws -> [LiveQuotas.Lease] {
        let term = term
        return try await run { c in
            // Most rounds change nothing: they read without a lock and stop there, so the workers'
            // writes (which spend the same rows) never wait for them.
            guard let row = try c.query("SELECT run_id, capacity::text, budget FROM campaign_live").rows.first,
                  let run = row[0].flatMap({ Int64($0) }), let live = try LiveCampaignStore.current(c) else { return [] }
            let capacity = (try? JSONSerialization.jsonObject(with: Data((row[1] ?? "{}").utf8))) as? [String: Int] ?? [:]
            let quotas = LiveQuotas(totals: LiveQuotas.totals(capacity: capacity, budget: row[2].flatMap { Double($0) }), units: units(live))
            guard !quotas.round(try Self.leases(c, run: run, locked: false), members: members, keeping: keeping).isEmpty else { return [] }
            return try Self.transaction(c, fencedBy: term) {
                // SKIP LOCKED: while a batch run's write holds the row, this round is skipped rather
                // than holding the coordinator's connection. A run's totals never change; another run
                // live by now waits for the next round.
                guard try c.query("SELECT run_id FROM campaign_live FOR SHARE SKIP LOCKED").scalar.flatMap({ Int64($0) }) == run else { return [] }
                let changed = quotas.round(try Self.leases(c, run: run, locked: true), members: members, keeping: keeping)
                for l in changed {
                    try c.query("""
                        INSERT INTO campaign_live_quotas (run_id, node, resource, granted) VALUES ($1, $2, $3, $4)
                        ON CONFLICT (run_id, node, resource) DO UPDATE SET granted = excluded.granted
                        """, [String(run), l.node, l.resource, String(l.granted)])
                }
                return changed
            }
        }
    }

    /// The leases of `run`; `locked`: FOR UPDATE, in the order the workers' writes lock them.
    private static func leases(_ c: PostgresConnection, run: Int64, locked: Bool) throws -> [LiveQuotas.Lease] {
        try c.query("SELECT node, resource, granted, used FROM campaign_live_quotas WHERE run_id = $1" + (locked ? " ORDER BY node, resource FOR UPDATE" : ""),
                    [String(run)]).rows.compactMap { r in
            guard let node = r[0], let resource = r[1], let granted = r[2].flatMap({ Double($0) }), let used = r[3].flatMap({ Double($0) }) else { return nil }
            return LiveQuotas.Lease(node: node, resource: resource, granted: granted, used: used)
        }
    }
}
