import ChurnCluster
import ClusterSystem
import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// The process's metrics in Prometheus' text format: swift-metrics' counters, gauges and
/// histograms (from every module) into one registry, each with its help text from
/// `MetricCatalogue`, plus gauges sampled when scraped.
public enum NodeMetrics {
    public static let registry = PrometheusCollectorRegistry()

    private static let bootstrapped: Bool = {
        MetricsSystem.bootstrap(CatalogueMetricsFactory(registry: registry))
        return true
    }()

    /// Routes swift-metrics into the registry (once per process; later calls do nothing).
    public static func bootstrap() { _ = bootstrapped }

    /// The samplers run before each scrape (gauges read from the node's state).
    private static let samplers = Mutex<[@Sendable () async -> Void]>([])

    public static func addSampler(_ sampler: @escaping @Sendable () async -> Void) {
        samplers.withLock { $0.append(sampler) }
    }

    /// The exposition: samplers first, then every metric.
    public static func exposition(system: ClusterActorSystem?) async -> [UInt8] {
        bootstrap()
        Gauge(label: "process_resident_memory_bytes").record(processResidentBytes())
        if let system {
            let t = system.transportStats
            Gauge(label: "churngrid_transport_outbound_in_flight").record(t.outboundInFlight)
            Gauge(label: "churngrid_transport_inbound_queued").record(t.inboundOutstanding)
            Gauge(label: "churngrid_transport_inbound_paused").record(t.inboundPaused ? 1 : 0)
        }
        for sampler in samplers.withLock({ $0 }) { await sampler() }
        return registry.emitToBuffer()
    }
}

/// Every metric a ChurnGrid node exposes, with its help text (Prometheus conventions: base
/// units, `_total` counters, `_seconds` durations). A metric missing here is exposed without
/// help, which `promtool check metrics` (a test) refuses.
public enum MetricCatalogue {
    public static let help: [String: String] = [
        "process_resident_memory_bytes": "Resident memory of the process in bytes.",
        "churngrid_transport_outbound_in_flight": "Distributed calls made by this node that wait for their reply.",
        "churngrid_transport_inbound_queued": "Distributed calls received and queued or executing.",
        "churngrid_transport_inbound_paused": "1 while reading new calls is paused because too many are outstanding (backpressure).",
        "churngrid_http_requests_total": "HTTP requests answered, by route template and status code.",
        "churngrid_http_request_duration_seconds": "HTTP request latency from arrival to response, by route template.",
        "churngrid_http_events_total": "Subscriber events taken by the HTTP API (POST /v1/events), by outcome.",
        "churngrid_queries_total": "Live score queries (single and batch ids), by outcome: found, not_found, unavailable, error.",
        "churngrid_query_duration_seconds": "Live query latency at the coordinator's HTTP API, by kind (single or batch request).",
        "churngrid_query_fallbacks_total": "Live queries that a worker's batch call could not answer (the call failed, or the shard had moved) and that went the single-query way.",
        "churngrid_queries_shed_total": "Live queries submitted without waiting that were shed at once: too many already waited for their worker, or too many were going the single-query way.",
        "churngrid_call_duration_seconds": "Latency of the distributed calls this node makes, from the call to its reply or failure, by method.",
        "churngrid_jobs_total": "Rescoring jobs ended, by outcome (completed or failed), since this coordinator took the lead (both at 0 from then).",
        "churngrid_last_completed_job_timestamp_seconds": "When the last rescoring job completed (seconds since 1970; read from PostgreSQL when the coordinator takes the lead); when none ever did, when the cluster first led.",
        "churngrid_last_failed_job_timestamp_seconds": "When the last rescoring job failed (seconds since 1970; read from PostgreSQL when the coordinator takes the lead, the jobs that lead failed included); absent while none ever failed.",
        "churngrid_model_drift_psi_max": "The last measured job's highest population stability index, over the model's features and the score (act from 0.25).",
        "churngrid_model_drift_features": "The model's features (and the score) at each drift level in the last measured job: stable, watch (PSI >= 0.1), act (>= 0.25).",
        "churngrid_job_running": "1 while a rescoring job runs.",
        "churngrid_job_shards_done": "Shards of the current or last job written.",
        "churngrid_job_shards": "Shards of the current or last job.",
        "churngrid_job_subscribers_scored": "Subscribers of the current or last job written.",
        "churngrid_job_subscribers_per_second": "Throughput of the current or last job (subscribers written per second).",
        "churngrid_copy_rows_total": "Score rows written to PostgreSQL with COPY.",
        "churngrid_heartbeats_missed_total": "Peers declared unreachable after missing their heartbeats.",
        "churngrid_shards": "Shards of the cluster by state: owned (assigned an owner), ready (owner loaded them), moving, unassigned.",
        "churngrid_node_shards": "Shards per node by role and state: owned, ready, standby.",
        "churngrid_nodes": "Workers by state: active, draining, silent.",
        "churngrid_coordinator_leading": "1 when this coordinator holds the lease and leads, 0 while it stands by.",
        "churngrid_database_reachable": "1 while this coordinator's PostgreSQL answers its calls, 0 from the first call that could not reach it until one is answered again.",
        "churngrid_shard_map_epoch": "The shard map's epoch (changes with every move).",
        "churngrid_worker_shards": "Shards hosted by this worker, by role: owner or standby.",
        "churngrid_worker_shards_loading": "Shards of an assignment this worker is loading now.",
        "churngrid_profile_bytes": "Bytes of subscriber profiles held in memory by this worker, by role.",
        "churngrid_event_state_bytes": "Bytes of real-time event state (the windowed day buckets) held by this worker, owned and standby shards together: 1.1-1.6 KB per subscriber with events.",
        "churngrid_profile_subscribers": "Subscribers held by this worker as owner.",
        "churngrid_event_log_oldest_timestamp_seconds": "Start (Unix time) of the oldest day of events kept after the last retention pass (the leader's, hourly).",
        "churngrid_event_log_held_by_profiles": "1 when the profiles' old as_of keeps event partitions the retention would drop (a load from subscriber_profiles replays them onto rows as of an old import): import profiles carrying those subscribers, or erase those no extract carries any more.",
        "churngrid_event_shards_blocked": "Owned shards whose events this worker does not take now, by state: replaying (the log is read back first; events answered retry), waiting (PostgreSQL away at the takeover), lost (a newer owner holds the fence).",
        "churngrid_api_sessions": "Dashboard sessions open on this coordinator.",
        "churngrid_events_applied_total": "Subscriber events logged and applied by this worker.",
        "churngrid_events_busy_total": "Subscriber events answered busy (the queue was full or too slow): the producer resends them later.",
        "churngrid_events_retried_total": "Subscriber events whose logging failed (PostgreSQL away): the producer resends them.",
        "churngrid_triggers_fired_total": "Retention triggers fired by this worker's owned shards.",
        "churngrid_live_decisions_total": "Fired triggers handled by the live campaign on this worker, by outcome: treatment, control, a policy reason, no_cell, no_offer, no_capacity, no_budget, already, too_old, not_owned, dropped.",
    ]
}

/// swift-metrics into the Prometheus registry, with each metric's help text.
struct CatalogueMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    let buckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: MetricCatalogue.help[label] ?? "")
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(name: label, labels: dimensions, buckets: buckets, help: MetricCatalogue.help[label] ?? "")
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let c = handler as? Prometheus.Counter { registry.unregisterCounter(c) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let c = handler as? Prometheus.Counter { registry.unregisterCounter(c) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let g = handler as? Prometheus.Gauge { registry.unregisterGauge(g) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let g = handler as? Prometheus.Gauge { registry.unregisterGauge(g) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let h = handler as? DurationHistogram { registry.unregisterDurationHistogram(h) }
    }
}

/// Metric handles made once and reused: making one per request went through the registry's lock,
/// its dictionaries and the help-text check each time (a visible share of a request's CPU).
final class MetricHandles: Sendable {
    static let shared = MetricHandles()
    private let counters = Mutex<[String: Metrics.Counter]>([:])
    private let timers = Mutex<[String: Metrics.Timer]>([:])

    private static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.reduce(label) { $0 + "\u{1}" + $1.0 + "=" + $1.1 }
    }

    func counter(_ label: String, _ dimensions: [(String, String)] = []) -> Metrics.Counter {
        let k = Self.key(label, dimensions)
        if let c = counters.withLock({ $0[k] }) { return c }
        let c = Metrics.Counter(label: label, dimensions: dimensions)
        counters.withLock { $0[k] = $0[k] ?? c }
        return counters.withLock { $0[k] ?? c }
    }

    func timer(_ label: String, _ dimensions: [(String, String)] = []) -> Metrics.Timer {
        let k = Self.key(label, dimensions)
        if let t = timers.withLock({ $0[k] }) { return t }
        let t = Metrics.Timer(label: label, dimensions: dimensions)
        timers.withLock { $0[k] = $0[k] ?? t }
        return timers.withLock { $0[k] ?? t }
    }
}
