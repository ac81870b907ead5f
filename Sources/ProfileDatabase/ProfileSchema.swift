import Postgres
import SubscriberProfiles

/// ChurnGrid's tables, created and upgraded by ChurnGrid itself: numbered migrations, each
/// applied once in its own transaction and recorded in `churngrid_schema_migrations`. Running
/// them again is a no-op; two processes migrating at once are serialised by an advisory lock.
public enum ProfileSchema {
    /// One schema change.
    public struct Migration: Sendable {
        public var version: Int
        public var name: String
        public var sql: String
    }

    /// Advisory lock id held while migrating ("churngri" in ASCII).
    static let lockID: Int64 = 0x6368_7572_6E67_7269

    /// Every migration, in order.
    public static let migrations: [Migration] = [
        Migration(version: 1, name: "shard key and subscriber profiles", sql: """
            -- The shard key; see ShardKey.swift. Never change it.
            CREATE FUNCTION churngrid_mix32(x bigint, s integer) RETURNS bigint
                LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                RETURN ((x # (x >> s)) * 1540483477) & 4294967295;
            CREATE FUNCTION churngrid_shard_key(id bigint) RETURNS integer
                LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                RETURN (churngrid_mix32(churngrid_mix32((id # (id >> 32)) & 4294967295, 32), 15)
                        # (churngrid_mix32(churngrid_mix32((id # (id >> 32)) & 4294967295, 32), 15) >> 13)) >> 1;
            CREATE FUNCTION churngrid_shard(id bigint, shard_count integer) RETURNS integer
                LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                RETURN ((churngrid_shard_key(id)::bigint * shard_count) >> 31)::integer;

            -- The source of truth for profiles: one row per subscriber; NULL = missing.
            CREATE TABLE subscriber_profiles (
                subscriber_id bigint PRIMARY KEY,
                shard_key integer NOT NULL GENERATED ALWAYS AS (churngrid_shard_key(subscriber_id)) STORED,
            \(FeatureCatalogue.names.map { "    \($0) real," }.joined(separator: "\n"))
                updated_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX subscriber_profiles_shard_key ON subscriber_profiles (shard_key);
            """),
        Migration(version: 2, name: "cluster, shard map, scoring jobs and churn scores", sql: """
            -- The cluster's fixed shard count (chosen once) and the shard map's epoch.
            CREATE TABLE churngrid_cluster (
                singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                shard_count integer NOT NULL CHECK (shard_count > 0),
                epoch bigint NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE churngrid_shard_map (
                shard integer PRIMARY KEY,
                node text,
                epoch bigint NOT NULL
            );
            CREATE TABLE scoring_models (
                version text PRIMARY KEY,
                source text NOT NULL,
                features text[] NOT NULL,
                first_used_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE scoring_jobs (
                id bigserial PRIMARY KEY,
                model_version text NOT NULL REFERENCES scoring_models (version),
                state text NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
                shard_count integer NOT NULL,
                shards_done integer NOT NULL DEFAULT 0,
                subscribers bigint NOT NULL DEFAULT 0,
                started_at timestamptz NOT NULL DEFAULT now(),
                finished_at timestamptz,
                error text
            );
            -- One row per shard written: the guard that makes a shard's scores land exactly once.
            CREATE TABLE scoring_job_shards (
                job_id bigint NOT NULL REFERENCES scoring_jobs (id) ON DELETE CASCADE,
                shard integer NOT NULL,
                subscribers integer NOT NULL,
                node text NOT NULL,
                written_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (job_id, shard)
            );
            -- Partitioned by job: a job writes its own partition without index maintenance; the
            -- unique index is built when the job completes (which also proves exactly-once).
            CREATE TABLE churn_scores (
                job_id bigint NOT NULL,
                subscriber_id bigint NOT NULL,
                probability real NOT NULL,
                risk_band smallint NOT NULL,
                region smallint,
                reason1 smallint, reason2 smallint, reason3 smallint,
                contribution1 real, contribution2 real, contribution3 real
            ) PARTITION BY LIST (job_id);
            CREATE TABLE scoring_job_summaries (
                job_id bigint PRIMARY KEY REFERENCES scoring_jobs (id) ON DELETE CASCADE,
                subscribers bigint NOT NULL,
                mean_probability double precision NOT NULL,
                deciles double precision[] NOT NULL,
                histogram bigint[] NOT NULL,
                per_band jsonb NOT NULL,
                per_region jsonb NOT NULL
            );
            -- The job readers see: switched in the same transaction that completes a job.
            CREATE TABLE churngrid_published (
                singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                job_id bigint NOT NULL REFERENCES scoring_jobs (id),
                published_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE FUNCTION churngrid_risk_band(band smallint) RETURNS text
                LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                RETURN (ARRAY['low', 'medium', 'high', 'very_high'])[band + 1];
            -- The current scores: always the latest completed job, never a partial one.
            CREATE VIEW churn_scores_current AS
                SELECT s.subscriber_id, s.probability, churngrid_risk_band(s.risk_band) AS risk_band, s.region,
                       m.features[s.reason1 + 1] AS reason1, s.contribution1,
                       m.features[s.reason2 + 1] AS reason2, s.contribution2,
                       m.features[s.reason3 + 1] AS reason3, s.contribution3,
                       s.job_id, j.model_version, j.finished_at AS scored_at
                FROM churn_scores s
                JOIN scoring_jobs j ON j.id = s.job_id
                JOIN scoring_models m ON m.version = j.model_version
                WHERE s.job_id = (SELECT job_id FROM churngrid_published);
            """),
        Migration(version: 3, name: "standby copies in the shard map", sql: """
            -- The worker holding a warm copy of the shard, which takes over when the owner is lost.
            ALTER TABLE churngrid_shard_map ADD COLUMN standby text;
            """),
        Migration(version: 4, name: "audit log", sql: """
            -- Who did what to the cluster: every admin and operator action, with the caller's name,
            -- role and key (or token), as the node that carried it out saw it.
            CREATE TABLE churngrid_audit_log (
                id bigserial PRIMARY KEY,
                at timestamptz NOT NULL DEFAULT now(),
                actor text NOT NULL,
                roles text NOT NULL,
                credential text NOT NULL,
                action text NOT NULL,
                target text NOT NULL,
                outcome text NOT NULL
            );
            CREATE INDEX churngrid_audit_log_at ON churngrid_audit_log (at);
            """),
        Migration(version: 5, name: "coordinator lease and terms", sql: """
            -- The coordinator's lease: one holder at a time, by term (compare-and-set). A standby
            -- coordinator takes the lease (term + 1) when the holder stopped renewing it. Every
            -- write a coordinator makes first takes a KEY SHARE lock on this row with its own term:
            -- a takeover changes `term` (a unique key), so it waits for those writes to commit,
            -- and every later write of the old holder finds its term gone and is refused.
            CREATE TABLE churngrid_lease (
                singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                term bigint NOT NULL UNIQUE CHECK (term > 0),
                holder text NOT NULL,
                endpoint text NOT NULL,
                renewals bigint NOT NULL DEFAULT 0,
                acquired_at timestamptz NOT NULL DEFAULT now(),
                renewed_at timestamptz NOT NULL DEFAULT now()
            );
            -- The term of the coordinator that ran each job.
            ALTER TABLE scoring_jobs ADD COLUMN term bigint;
            """),
        Migration(version: 6, name: "HTTP API tokens and the highest-risk subscribers of a job", sql: """
            -- Bearer tokens of the HTTP API: only the SHA-256 of each token is kept (the token is
            -- shown once, when created). A revoked token keeps its row (and its name) for the audit.
            CREATE TABLE churngrid_api_tokens (
                name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$'),
                role text NOT NULL CHECK (role IN ('reader', 'operator', 'admin')),
                token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
                created_at timestamptz NOT NULL DEFAULT now(),
                created_by text NOT NULL,
                revoked_at timestamptz
            );
            -- A job's ten highest-risk subscribers with their reasons (the dashboard's panel),
            -- collected while its scores are written: no scan of the scores afterwards.
            ALTER TABLE scoring_job_summaries ADD COLUMN top_risk jsonb NOT NULL DEFAULT '[]';
            """),
        Migration(version: 7, name: "risk bands per region in a job's summary", sql: """
            -- Subscribers per home region and risk band: {"3": {"low": …, "medium": …, "high": …, "very_high": …}}.
            ALTER TABLE scoring_job_summaries ADD COLUMN per_region_band jsonb NOT NULL DEFAULT '{}';
            """),
        Migration(version: 8, name: "subscriber events, their owners, retention triggers and profile snapshots", sql: """
            -- The durable log of applied events (docs/events.md). Partitioned by the day of the event's
            -- own time `at`: a re-sent event (same source, event_id and at) always meets its first copy
            -- in the same partition, so (source, event_id, at) is unique for as long as the partition is
            -- kept (the retention). Rows are written by the shard's owner under the fence below, numbered
            -- per shard (`seq`, increasing in the order applied; gaps where a duplicate was refused).
            CREATE TABLE subscriber_events (
                source text NOT NULL,
                event_id text NOT NULL,
                at timestamptz NOT NULL,
                subscriber_id bigint NOT NULL,
                shard integer NOT NULL,
                seq bigint NOT NULL,
                type smallint NOT NULL,
                value double precision NOT NULL,
                -- The owner's clock when it applied the event (ms since 1970): what a replay uses as now.
                received_ms bigint NOT NULL,
                PRIMARY KEY (source, event_id, at)
            ) PARTITION BY RANGE (at);
            CREATE INDEX subscriber_events_shard_seq ON subscriber_events (shard, seq);
            -- The fence: a shard's events are written only by the owner named here, under the
            -- (term, epoch) it took the shard in; a new owner raises it before it replays the log.
            CREATE TABLE churngrid_event_owners (
                shard integer PRIMARY KEY,
                node text NOT NULL,
                term bigint NOT NULL,
                epoch bigint NOT NULL,
                since timestamptz NOT NULL DEFAULT now()
            );
            -- Fired triggers (the durable feed). `trigger_id` is derived from the rule and the event,
            -- so a replay that fires it again writes nothing new. Partitioned like the events.
            CREATE TABLE retention_triggers (
                trigger_id text NOT NULL,
                event_at timestamptz NOT NULL,
                rule text NOT NULL,
                subscriber_id bigint NOT NULL,
                source text NOT NULL,
                event_id text NOT NULL,
                event_type text NOT NULL,
                probability_before real NOT NULL,
                probability_after real NOT NULL,
                band text NOT NULL,
                reasons text[] NOT NULL,
                contributions real[] NOT NULL,
                model_version text NOT NULL,
                node text NOT NULL,
                fired_at timestamptz NOT NULL,
                PRIMARY KEY (trigger_id, event_at)
            ) PARTITION BY RANGE (event_at);
            CREATE INDEX retention_triggers_subscriber ON retention_triggers (subscriber_id, event_at);
            -- When the profiles in subscriber_profiles were taken (a generated base, a warehouse import):
            -- a shard loaded from them replays the events its owner received after the newest `as_of`.
            CREATE TABLE churngrid_profile_snapshots (
                id bigserial PRIMARY KEY,
                as_of timestamptz NOT NULL,
                source text NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now()
            );
            -- The daily partitions of both tables for [from, to): created when missing.
            CREATE FUNCTION churngrid_event_partitions(from_day date, to_day date) RETURNS integer
                LANGUAGE plpgsql AS $$
            DECLARE d date; made integer := 0;
            BEGIN
                PERFORM pg_advisory_xact_lock(7236828316512383589);
                d := from_day;
                WHILE d < to_day LOOP
                    IF to_regclass('subscriber_events_p' || to_char(d, 'YYYYMMDD')) IS NULL THEN
                        EXECUTE format('CREATE TABLE subscriber_events_p%s PARTITION OF subscriber_events FOR VALUES FROM (%L) TO (%L)',
                                       to_char(d, 'YYYYMMDD'), d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
                        made := made + 1;
                    END IF;
                    IF to_regclass('retention_triggers_p' || to_char(d, 'YYYYMMDD')) IS NULL THEN
                        EXECUTE format('CREATE TABLE retention_triggers_p%s PARTITION OF retention_triggers FOR VALUES FROM (%L) TO (%L)',
                                       to_char(d, 'YYYYMMDD'), d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
                    END IF;
                    d := d + 1;
                END LOOP;
                RETURN made;
            END $$;
            """),
        Migration(version: 9, name: "customer lifetime value, retention campaigns, contact policy and outcomes", sql: """
            -- CLV of each scored subscriber (docs/retention.md): m × Σ_{t=1..H} (1 − p)^t / (1 + d)^t with the
            -- cluster's settings at the time of the job; NULL where the job did not know the revenue.
            ALTER TABLE churn_scores ADD COLUMN clv real;
            CREATE OR REPLACE VIEW churn_scores_current AS
                SELECT s.subscriber_id, s.probability, churngrid_risk_band(s.risk_band) AS risk_band, s.region,
                       m.features[s.reason1 + 1] AS reason1, s.contribution1,
                       m.features[s.reason2 + 1] AS reason2, s.contribution2,
                       m.features[s.reason3 + 1] AS reason3, s.contribution3,
                       s.job_id, j.model_version, j.finished_at AS scored_at, s.clv
                FROM churn_scores s
                JOIN scoring_jobs j ON j.id = s.job_id
                JOIN scoring_models m ON m.version = j.model_version
                WHERE s.job_id = (SELECT job_id FROM churngrid_published);
            -- The CLV settings every job uses (coordinator --clv-…), recorded per job.
            ALTER TABLE scoring_jobs ADD COLUMN clv_settings jsonb;
            -- One campaign run: its file as given, the job and model it decided over, its totals.
            CREATE TABLE campaign_runs (
                run_id bigserial PRIMARY KEY,
                campaign text NOT NULL,
                config jsonb NOT NULL,
                job_id bigint REFERENCES scoring_jobs (id),
                model_version text NOT NULL,
                term bigint,
                started_at timestamptz NOT NULL,
                finished_at timestamptz NOT NULL DEFAULT now(),
                created_by text NOT NULL,
                summary jsonb NOT NULL
            );
            CREATE INDEX campaign_runs_campaign ON campaign_runs (campaign, started_at);
            -- What a run decided per subscriber. A control row names the offer it would have had and is
            -- never contacted. `priority` is the rank in the run's fill order (1 = decided first).
            CREATE TABLE campaign_actions (
                run_id bigint NOT NULL REFERENCES campaign_runs (run_id) ON DELETE CASCADE,
                subscriber_id bigint NOT NULL,
                arm text NOT NULL CHECK (arm IN ('treatment', 'control')),
                offer_id text NOT NULL,
                channel text NOT NULL,
                cost real NOT NULL,
                priority integer NOT NULL,
                expected_value real NOT NULL,
                probability real NOT NULL,
                clv real NOT NULL,
                tier text NOT NULL,
                band text NOT NULL,
                reasons text[] NOT NULL,
                script text,
                send_after timestamptz NOT NULL,
                PRIMARY KEY (run_id, subscriber_id)
            );
            CREATE INDEX campaign_actions_subscriber ON campaign_actions (subscriber_id);
            -- Every contact made (treatment actions of runs and real-time decisions): what the contact
            -- policy counts. Kept for `--contact-retention-days`.
            CREATE TABLE contact_history (
                subscriber_id bigint NOT NULL,
                channel text NOT NULL,
                at timestamptz NOT NULL,
                run_id bigint,
                offer_id text NOT NULL
            );
            CREATE INDEX contact_history_subscriber ON contact_history (subscriber_id, at);
            CREATE INDEX contact_history_at ON contact_history (at);
            -- Consent per channel (a row with consented = false withholds the channel) and the
            -- do-not-contact list: maintained by the operator's CRM.
            CREATE TABLE contact_consent (
                subscriber_id bigint NOT NULL,
                channel text NOT NULL,
                consented boolean NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (subscriber_id, channel)
            );
            CREATE TABLE do_not_contact (
                subscriber_id bigint PRIMARY KEY,
                since timestamptz NOT NULL DEFAULT now(),
                note text
            );
            -- Observed outcomes (churngrid outcomes import): whether the subscriber churned and whether
            -- it accepted the offer it was made (NULL = not known), as observed at a time.
            CREATE TABLE subscriber_outcomes (
                subscriber_id bigint NOT NULL,
                observed_at timestamptz NOT NULL,
                churned boolean NOT NULL,
                accepted boolean,
                imported_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (subscriber_id, observed_at)
            );
            """),
        Migration(version: 10, name: "profile generation and per-shard profile snapshots", sql: """
            -- The generation of subscriber_profiles: raised by every statement that changes the table
            -- (an import, generate, any SQL), in that statement's transaction. A snapshot records the
            -- generation its profiles descend from and loads only while it is still the current one.
            CREATE TABLE churngrid_profile_generation (
                singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                generation bigint NOT NULL
            );
            INSERT INTO churngrid_profile_generation VALUES (true, 1);
            -- One compact snapshot per shard (ProfileSnapshotFormat: ids, packed feature columns, the
            -- shard's event state, checksum), written by `churngrid profiles snapshot`: a worker loading
            -- the shard reads it instead of the wide table and replays the events after applied_seq.
            CREATE TABLE churngrid_shard_snapshots (
                shard integer PRIMARY KEY,
                shard_count integer NOT NULL,
                generation bigint NOT NULL,
                applied_seq bigint NOT NULL,
                subscribers integer NOT NULL,
                format integer NOT NULL,
                taken_at timestamptz NOT NULL,
                written_at timestamptz NOT NULL DEFAULT now(),
                node text NOT NULL,
                data bytea NOT NULL
            );
            -- Already compact: stored out of line without PostgreSQL's own compression (cheaper to read).
            ALTER TABLE churngrid_shard_snapshots ALTER COLUMN data SET STORAGE EXTERNAL;
            CREATE FUNCTION churngrid_profiles_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE churngrid_profile_generation SET generation = generation + 1;
                DELETE FROM churngrid_shard_snapshots;
                RETURN NULL;
            END $$;
            CREATE TRIGGER subscriber_profiles_changed AFTER INSERT OR UPDATE OR DELETE ON subscriber_profiles
                FOR EACH STATEMENT EXECUTE FUNCTION churngrid_profiles_changed();
            CREATE TRIGGER subscriber_profiles_truncated AFTER TRUNCATE ON subscriber_profiles
                FOR EACH STATEMENT EXECUTE FUNCTION churngrid_profiles_changed();
            """),
        Migration(version: 11, name: "model drift: reference populations and per-job PSI", sql: """
            -- A model version's reference population (docs/models.md, "Drift"): per feature the edges
            -- of its bins (the distinct deciles of a sample of the first job that scored the version)
            -- and the counts of that job in them, plus the score's ('(score)', 20 equal-width bins).
            CREATE TABLE model_drift_reference (
                model_version text NOT NULL,
                feature text NOT NULL,
                edges double precision[] NOT NULL,
                counts bigint[] NOT NULL,
                job_id bigint NOT NULL,
                taken_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (model_version, feature)
            );
            -- Every job's population stability index per feature and for the score against its model
            -- version's reference; level: stable (< 0.1), watch (>= 0.1), act (>= 0.25).
            CREATE TABLE model_drift (
                job_id bigint NOT NULL,
                model_version text NOT NULL,
                reference_job_id bigint NOT NULL,
                feature text NOT NULL,
                psi double precision NOT NULL,
                level text NOT NULL CHECK (level IN ('stable', 'watch', 'act')),
                counts bigint[] NOT NULL,
                measured_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (job_id, feature)
            );
            """),
        Migration(version: 12, name: "model registry and the served model", sql: """
            -- Every model version brought to the cluster (docs/models.md, "Registry"): its file as given,
            -- its features, who added it and when. `version` is the model's own id (the FNV-1a of its
            -- bytes, as every answer and job names it).
            CREATE TABLE model_registry (
                name text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
                version text NOT NULL,
                source text NOT NULL,
                format text NOT NULL,
                features text[] NOT NULL,
                bytes bytea NOT NULL,
                sha256 text NOT NULL,
                added_by text NOT NULL,
                added_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (name, version)
            );
            -- The model the cluster serves (one row): what a coordinator that starts or takes over
            -- serves, so a restart never rolls a deployment back.
            CREATE TABLE model_served (
                singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                name text NOT NULL,
                version text NOT NULL,
                since timestamptz NOT NULL DEFAULT now(),
                deployed_by text NOT NULL,
                FOREIGN KEY (name, version) REFERENCES model_registry (name, version)
            );
            """),
        Migration(version: 13, name: "real-time retention: the live campaign, its quotas and decided triggers", sql: """
            -- The campaign decided in real time (docs/retention.md, "Real time"): at most one, a campaign run
            -- of its own (its actions are the triggers decided). Workers read it from here; a change of
            -- `contact_generation` (a batch run or an outcomes import wrote contacts or refusals) makes
            -- their in-memory contact state stale: their next decisions are refused until they reload it.
            CREATE TABLE campaign_live (
                singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                run_id bigint NOT NULL REFERENCES campaign_runs (run_id) ON DELETE CASCADE,
                -- The campaign file as given (its bytes: workers parse what the operator wrote).
                config text NOT NULL,
                tier_cuts float8[] NOT NULL,
                clv_margin_rate float8 NOT NULL,
                clv_monthly_discount float8 NOT NULL,
                clv_horizon_months integer NOT NULL,
                capacity jsonb NOT NULL,
                budget float8,
                max_trigger_age_seconds integer NOT NULL,
                contact_generation bigint NOT NULL DEFAULT 1,
                started_at timestamptz NOT NULL DEFAULT now(),
                started_by text NOT NULL
            );
            -- Capacity (per channel) and budget leased to each worker by the coordinator: a worker
            -- spends only what it was granted; the coordinator grants no more than the campaign has and
            -- takes back what a lost worker had not spent.
            CREATE TABLE campaign_live_quotas (
                run_id bigint NOT NULL REFERENCES campaign_runs (run_id) ON DELETE CASCADE,
                node text NOT NULL,
                resource text NOT NULL,
                granted float8 NOT NULL DEFAULT 0,
                used float8 NOT NULL DEFAULT 0 CHECK (used <= granted + 1e-6),
                PRIMARY KEY (run_id, node, resource)
            );
            -- A decided trigger's action: which trigger, which worker, when.
            ALTER TABLE campaign_actions ADD COLUMN trigger_id text, ADD COLUMN decided_by text, ADD COLUMN decided_at timestamptz;
            CREATE SEQUENCE churngrid_live_priority CYCLE MAXVALUE 2147483647;
            -- Records decided triggers of the live run `p_run` for worker `p_node`, whose contact state
            -- is of `p_generation`: one status per row. In order, a row is 'do_not_contact' or
            -- 'no_consent' (the CRM's tables, read now), 'already' (the subscriber has an action in the
            -- run: a replayed or second trigger), 'no_budget' or 'no_capacity' (the worker's lease has no
            -- room; a control row needs the room too but spends none), else 'decided' (the action, and
            -- for the treatment arm the contact, written). Every row is 'ended' when the run is no longer live and 'stale' when
            -- the contact state changed since the worker read it.
            CREATE FUNCTION churngrid_live_decide(p_run bigint, p_node text, p_generation bigint, ids bigint[], arms text[], offers text[],
                                                  channels text[], costs float8[], evs float8[], probs float8[], clvs float8[], tiers text[],
                                                  bands text[], reasons text[], scripts text[], send_after_ms bigint[], trigger_ids text[])
                RETURNS text[] LANGUAGE plpgsql AS $$
            DECLARE
                live record;
                result text[] := '{}';
                n integer := coalesce(array_length(ids, 1), 0);
                capped boolean;
                inserted integer;
            BEGIN
                SELECT run_id, contact_generation, capacity, budget INTO live FROM campaign_live FOR SHARE;
                IF NOT FOUND OR live.run_id <> p_run THEN RETURN array_fill('ended'::text, ARRAY[n]); END IF;
                IF live.contact_generation <> p_generation THEN RETURN array_fill('stale'::text, ARRAY[n]); END IF;
                FOR i IN 1..n LOOP
                    IF EXISTS (SELECT 1 FROM do_not_contact WHERE subscriber_id = ids[i]) THEN
                        result := result || 'do_not_contact'::text; CONTINUE;
                    END IF;
                    IF EXISTS (SELECT 1 FROM contact_consent WHERE subscriber_id = ids[i] AND channel = channels[i] AND NOT consented) THEN
                        result := result || 'no_consent'::text; CONTINUE;
                    END IF;
                    INSERT INTO campaign_actions (run_id, subscriber_id, arm, offer_id, channel, cost, priority, expected_value, probability, clv,
                                                  tier, band, reasons, script, send_after, trigger_id, decided_by, decided_at)
                    VALUES (p_run, ids[i], arms[i], offers[i], channels[i], costs[i], nextval('churngrid_live_priority')::integer, evs[i], probs[i],
                            clvs[i], tiers[i], bands[i], reasons[i]::text[], scripts[i], to_timestamp(send_after_ms[i] / 1000.0), trigger_ids[i],
                            p_node, clock_timestamp())
                    ON CONFLICT (run_id, subscriber_id) DO NOTHING;
                    GET DIAGNOSTICS inserted = ROW_COUNT;
                    IF inserted = 0 THEN result := result || 'already'::text; CONTINUE; END IF;
                    capped := live.capacity ? channels[i];
                    IF arms[i] = 'treatment' THEN
                        -- The budget's row before the channel's, the order the coordinator's lease
                        -- round locks them in (by resource name): no deadlock between the two.
                        IF live.budget IS NOT NULL THEN
                            UPDATE campaign_live_quotas SET used = used + costs[i]
                            WHERE run_id = p_run AND node = p_node AND resource = 'budget' AND used + costs[i] <= granted;
                            IF NOT FOUND THEN
                                DELETE FROM campaign_actions WHERE run_id = p_run AND subscriber_id = ids[i];
                                result := result || 'no_budget'::text; CONTINUE;
                            END IF;
                        END IF;
                        IF capped THEN
                            UPDATE campaign_live_quotas SET used = used + 1
                            WHERE run_id = p_run AND node = p_node AND resource = channels[i] AND used + 1 <= granted;
                            IF NOT FOUND THEN
                                IF live.budget IS NOT NULL THEN
                                    UPDATE campaign_live_quotas SET used = used - costs[i] WHERE run_id = p_run AND node = p_node AND resource = 'budget';
                                END IF;
                                DELETE FROM campaign_actions WHERE run_id = p_run AND subscriber_id = ids[i];
                                result := result || 'no_capacity'::text; CONTINUE;
                            END IF;
                        END IF;
                        INSERT INTO contact_history (subscriber_id, channel, at, run_id, offer_id)
                        VALUES (ids[i], channels[i], to_timestamp(send_after_ms[i] / 1000.0), p_run, offers[i]);
                    ELSE
                        IF capped AND NOT EXISTS (SELECT 1 FROM campaign_live_quotas WHERE run_id = p_run AND node = p_node
                                                  AND resource = channels[i] AND used + 1 <= granted) THEN
                            DELETE FROM campaign_actions WHERE run_id = p_run AND subscriber_id = ids[i];
                            result := result || 'no_capacity'::text; CONTINUE;
                        END IF;
                        IF live.budget IS NOT NULL AND NOT EXISTS (SELECT 1 FROM campaign_live_quotas WHERE run_id = p_run AND node = p_node
                                                                   AND resource = 'budget' AND used + costs[i] <= granted) THEN
                            DELETE FROM campaign_actions WHERE run_id = p_run AND subscriber_id = ids[i];
                            result := result || 'no_budget'::text; CONTINUE;
                        END IF;
                    END IF;
                    result := result || 'decided'::text;
                END LOOP;
                RETURN result;
            END $$;
            """),
        Migration(version: 14, name: "a challenger beside the served model", sql: """
            -- The challenger (docs/models.md, "Champion and challenger"): another version of the served
            -- model answering a deterministic share of live queries, in basis points (10000 = all).
            -- Deploying a champion (or promoting the challenger) clears it.
            ALTER TABLE model_served
                ADD COLUMN challenger_version text,
                ADD COLUMN challenger_basis_points integer CHECK (challenger_basis_points BETWEEN 1 AND 10000),
                ADD COLUMN challenger_since timestamptz,
                ADD COLUMN challenger_by text,
                ADD CONSTRAINT model_served_challenger_registered FOREIGN KEY (name, challenger_version) REFERENCES model_registry (name, version),
                ADD CONSTRAINT model_served_challenger_complete CHECK ((challenger_version IS NULL) = (challenger_basis_points IS NULL)),
                ADD CONSTRAINT model_served_challenger_other CHECK (challenger_version IS DISTINCT FROM version);
            -- Jobs score the challenger in shadow: its probability of every subscriber, one partition per
            -- job (created with the job when it has a challenger, unique by subscriber when published,
            -- dropped with the job's scores).
            ALTER TABLE scoring_jobs ADD COLUMN challenger_version text;
            CREATE TABLE churn_shadow_scores (
                job_id bigint NOT NULL,
                subscriber_id bigint NOT NULL,
                probability real NOT NULL
            ) PARTITION BY LIST (job_id);
            -- The published job's shadow scores, with the challenger version they came from.
            CREATE VIEW churn_scores_challenger AS
                SELECT h.subscriber_id, h.probability, j.challenger_version AS model_version, h.job_id
                FROM churn_shadow_scores h
                JOIN churngrid_published p ON p.job_id = h.job_id
                JOIN scoring_jobs j ON j.id = h.job_id;
            """),
        Migration(version: 15, name: "the feature schema as data", sql: """
            -- The feature schema (docs/models.md, "The feature schema"): every version applied by
            -- `profiles migrate --schema`, the newest in force. subscriber_profiles has one column per
            -- feature of it. A database starts with the built-in catalogue as version 1.
            CREATE TABLE churngrid_feature_schema (
                version integer PRIMARY KEY CHECK (version > 0),
                document jsonb NOT NULL,
                features integer NOT NULL CHECK (features > 0),
                summary text NOT NULL,
                applied_by text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            );
            INSERT INTO churngrid_feature_schema (version, document, features, summary, applied_by)
            VALUES (1, $schema$\(FeatureSchema.catalogue.document())$schema$, \(FeatureSchema.catalogue.count),
                    'the built-in catalogue', 'churngrid');
            """),
        Migration(version: 16, name: "several models: active models with segments, per-model scores", sql: """
            -- Models active beside the served one (docs/models.md, "Several models"): every job scores each
            -- over its segment (canonical text; '' = every subscriber) in the same pass as the served model.
            CREATE TABLE model_active (
                name text PRIMARY KEY,
                version text NOT NULL,
                segment text NOT NULL DEFAULT '',
                since timestamptz NOT NULL DEFAULT now(),
                activated_by text NOT NULL,
                FOREIGN KEY (name, version) REFERENCES model_registry (name, version)
            );
            -- Every model a job scored: the served one ('served') and those active beside it ('active'),
            -- with how many subscribers each scored (set when the job is published).
            CREATE TABLE scoring_job_models (
                job_id bigint NOT NULL REFERENCES scoring_jobs (id) ON DELETE CASCADE,
                model_name text NOT NULL,
                model_version text NOT NULL REFERENCES scoring_models (version),
                role text NOT NULL CHECK (role IN ('served', 'active')),
                segment text NOT NULL DEFAULT '',
                subscribers bigint,
                PRIMARY KEY (job_id, model_name)
            );
            -- Drift per model of a job: the served one's and each active model's (a coordinator of the previous
            -- release, which keys it by job and feature, no longer stores drift during a rolling upgrade).
            ALTER TABLE model_drift DROP CONSTRAINT model_drift_pkey, ADD PRIMARY KEY (job_id, model_version, feature);
            -- Each shard's claim also counts the rows it wrote of every active model (name -> rows).
            ALTER TABLE scoring_job_shards ADD COLUMN models jsonb;
            -- Scores are per model: the rows written so far are the served model's (named as it is served now).
            -- The default stays so that a coordinator of the previous release, which does not name the
            -- model, can still write its jobs during a rolling upgrade (docs/operations.md).
            DO $$ BEGIN
                EXECUTE format('ALTER TABLE churn_scores ADD COLUMN model_name text NOT NULL DEFAULT %L',
                               coalesce((SELECT name FROM model_served), 'churn'));
            END $$;
            INSERT INTO scoring_job_models (job_id, model_name, model_version, role, subscribers)
                SELECT id, coalesce((SELECT name FROM model_served), 'churn'), model_version, 'served',
                       CASE WHEN state = 'completed' THEN subscribers END
                FROM scoring_jobs;
            -- The published job's scores: one row per model and subscriber.
            CREATE OR REPLACE VIEW churn_scores_current AS
                SELECT s.subscriber_id, s.probability, churngrid_risk_band(s.risk_band) AS risk_band, s.region,
                       m.features[s.reason1 + 1] AS reason1, s.contribution1,
                       m.features[s.reason2 + 1] AS reason2, s.contribution2,
                       m.features[s.reason3 + 1] AS reason3, s.contribution3,
                       s.job_id, coalesce(jm.model_version, j.model_version) AS model_version, j.finished_at AS scored_at, s.clv, s.model_name
                FROM churn_scores s
                JOIN scoring_jobs j ON j.id = s.job_id
                -- A job of a coordinator of the previous release records no models: its rows are its model's.
                LEFT JOIN scoring_job_models jm ON jm.job_id = s.job_id AND jm.model_name = s.model_name
                JOIN scoring_models m ON m.version = coalesce(jm.model_version, j.model_version)
                WHERE s.job_id = (SELECT job_id FROM churngrid_published);
            -- The same rows by what they are: each model name's champion (a challenger's scores, in shadow,
            -- are in churn_scores_challenger), one row per subscriber and model name.
            CREATE VIEW churn_scores_champion AS
                SELECT subscriber_id, model_name, model_version, probability, risk_band, region,
                       reason1, contribution1, reason2, contribution2, reason3, contribution3, clv, job_id, scored_at
                FROM churn_scores_current;
            """),
        Migration(version: 17, name: "each model's summary of a job", sql: """
            -- Each model's figures over the subscribers it scored in the job (an active model's segment):
            -- {"subscribers", "mean_probability", "deciles", "histogram", "per_band"}, the keys of the job's
            -- own summary (scoring_job_summaries); NULL for jobs published before.
            ALTER TABLE scoring_job_models ADD COLUMN summary jsonb;
            """),
        Migration(version: 18, name: "drift references per population", sql: """
            -- A drift reference is of the population it was taken over: '' every subscriber (the served
            -- model, a model active over everyone, or a file given with `models add --reference`, job_id 0),
            -- else an active model's segment (canonical text). A version scored over another population
            -- (its segment changed, or it is served after it was active over a segment) takes a reference
            -- of its own instead of reporting the change of population as drift; a file's reference serves
            -- every population. (A coordinator of the previous release can then neither store a reference
            -- nor add a model with `--reference`: finish the upgrade first.)
            ALTER TABLE model_drift_reference ADD COLUMN population text NOT NULL DEFAULT '';
            -- References taken before by a job that scored the version as an active model over a segment
            -- are of that segment.
            UPDATE model_drift_reference r SET population = m.segment
                FROM scoring_job_models m
                WHERE r.job_id <> 0 AND m.job_id = r.job_id AND m.model_version = r.model_version AND m.role = 'active';
            ALTER TABLE model_drift_reference DROP CONSTRAINT model_drift_reference_pkey,
                ADD PRIMARY KEY (model_version, population, feature);
            """),
        Migration(version: 19, name: "a challenger per active model", sql: """
            -- A model active beside the served one can have a challenger too (docs/models.md, "Champion and
            -- challenger"): another version of it answering a deterministic share of its live answers, in
            -- basis points, scored in shadow over its segment in every job. A change of its version (activating
            -- another, promoting the challenger) or deactivating it ends the challenger.
            ALTER TABLE model_active
                ADD COLUMN challenger_version text,
                ADD COLUMN challenger_basis_points integer CHECK (challenger_basis_points BETWEEN 1 AND 10000),
                ADD COLUMN challenger_since timestamptz,
                ADD COLUMN challenger_by text,
                -- The version it challenges (a coordinator of the previous release that activates another
                -- version during a rolling upgrade leaves it; the next coordinator ends such a challenger).
                ADD COLUMN challenger_of text,
                ADD CONSTRAINT model_active_challenger_registered FOREIGN KEY (name, challenger_version) REFERENCES model_registry (name, version),
                ADD CONSTRAINT model_active_challenger_complete CHECK ((challenger_version IS NULL) = (challenger_basis_points IS NULL)),
                ADD CONSTRAINT model_active_challenger_other CHECK (challenger_version IS DISTINCT FROM version);
            -- Every model of a job with the version of its challenger scored in shadow beside it (NULL: none).
            ALTER TABLE scoring_job_models ADD COLUMN challenger_version text;
            UPDATE scoring_job_models m SET challenger_version = j.challenger_version
                FROM scoring_jobs j WHERE m.job_id = j.id AND m.role = 'served' AND j.challenger_version IS NOT NULL;
            -- Shadow scores name the active model whose challenger gave them; NULL: the served model's (so its
            -- rows stay as narrow as before; so are the rows written before this migration, and those of a
            -- coordinator of the previous release during a rolling upgrade).
            ALTER TABLE churn_shadow_scores ADD COLUMN model_name text;
            -- The published job's shadow scores: the challenger version and the model it challenges.
            CREATE OR REPLACE VIEW churn_scores_challenger AS
                SELECT h.subscriber_id, h.probability, coalesce(m.challenger_version, j.challenger_version) AS model_version, h.job_id,
                       coalesce(h.model_name, served.model_name) AS model_name
                FROM churn_shadow_scores h
                JOIN churngrid_published p ON p.job_id = h.job_id
                JOIN scoring_jobs j ON j.id = h.job_id
                LEFT JOIN scoring_job_models served ON served.job_id = h.job_id AND served.role = 'served'
                LEFT JOIN scoring_job_models m ON m.job_id = h.job_id AND m.model_name = coalesce(h.model_name, served.model_name);
            """),
        Migration(version: 20, name: "workers turned away", sql: """
            -- A worker process that alone could not take its shards while PostgreSQL answered (docs/cluster.md,
            -- "When placing fails"): kept here so that a restarted coordinator, or a standby taking over, refuses
            -- the same process (name, endpoint, incarnation and key) at once instead of moving shards to it again.
            -- Another process of the same name (restarted) clears the row.
            CREATE TABLE churngrid_turned_away (
                node text PRIMARY KEY,
                endpoint text NOT NULL,
                incarnation bigint NOT NULL,
                public_key text NOT NULL,
                reason text NOT NULL,
                turned_away_at timestamptz NOT NULL DEFAULT now()
            );
            """),
        Migration(version: 21, name: "event sequence floors", sql: """
            -- The highest sequence number a shard's log has held, kept when rows that held it are deleted
            -- (an erasure, retention dropping an idle shard's last partition): an owner loaded from the
            -- table numbers its next events past it, never again a number a standby already applied.
            ALTER TABLE churngrid_event_owners ADD COLUMN seq_floor bigint NOT NULL DEFAULT 0;
            """),
        Migration(version: 22, name: "event fence generations", sql: """
            -- Raised by one at every raise of a shard's fence (a takeover, or its owner's replay after a
            -- write whose outcome it does not know): an owner writes only under the generation it raised
            -- last, so a write cut off before it locked its fence can never commit after that replay.
            ALTER TABLE churngrid_event_owners ADD COLUMN generation bigint NOT NULL DEFAULT 0;
            """),
        Migration(version: 23, name: "campaign run request tokens", sql: """
            -- One per `campaign run` request, written with its run: a write whose COMMIT was cut off is
            -- written again under the same token, which waits for the cut one to end and then either
            -- finds its run (it committed) or writes it (it did not) — never twice. Batch runs and live
            -- starts carry one; NULL for runs written before.
            ALTER TABLE campaign_runs ADD COLUMN request_token text UNIQUE;
            """),
        Migration(version: 24, name: "rows an import left older", sql: """
            -- How many rows of subscriber_profiles an import (or generated base) left as of an earlier
            -- one (rows its file did not carry): a shard loaded from the table replays onto each of
            -- those the events received after its own import's as_of. 0: none, and loads skip the
            -- look-up; NULL (recorded before): unknown, looked up.
            ALTER TABLE churngrid_profile_snapshots ADD COLUMN older_rows bigint;
            """),
        Migration(version: 25, name: "the oldest import rows are still as of", sql: """
            -- The earliest as_of among the imports whose rows subscriber_profiles still holds (this one's
            -- included), counted in the same pass as older_rows: the event log's retention keeps what a
            -- load from the table would replay onto the oldest of them. NULL (recorded before): unknown,
            -- worked out once by the retention and stored.
            ALTER TABLE churngrid_profile_snapshots ADD COLUMN oldest_as_of timestamptz;
            """),
    ]

    /// Applies the migrations `connection`'s database lacks.
    /// - Returns: the versions applied now (empty when already up to date).
    /// - Throws: `PostgresError`; a failed migration is rolled back whole.
    @discardableResult
    public static func migrate(_ connection: PostgresConnection) throws(PostgresError) -> [Int] {
        try connection.execute("SET client_min_messages TO warning")  // no NOTICEs for what already exists
        try connection.query("SELECT pg_advisory_lock($1)", [String(lockID)])
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [String(lockID)]) }
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS churngrid_schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        let applied = Set(try connection.query("SELECT version FROM churngrid_schema_migrations").rows.compactMap { $0[0].flatMap(Int.init) })
        var now: [Int] = []
        for m in migrations where !applied.contains(m.version) {
            try connection.execute("BEGIN")
            do {
                try connection.execute(m.sql)
                try connection.query("INSERT INTO churngrid_schema_migrations (version, name) VALUES ($1, $2)", [String(m.version), m.name])
                try connection.execute("COMMIT")
            } catch {
                try? connection.execute("ROLLBACK")
                throw PostgresError(error.code, sqlState: error.sqlState, message: error.message, detail: error.detail,
                                    context: "applying migration \(m.version) (\(m.name))")
            }
            now.append(m.version)
        }
        return now
    }

    /// The profile columns in `subscriber_profiles`, in catalogue order.
    public static var featureColumns: String { FeatureCatalogue.names.joined(separator: ", ") }
}
