import ArgumentParser
import ChurnCluster
import ChurnHTTP
import ClusterSystem
import Foundation
import Logging
import TreeModel
import Retention
import ServiceLifecycle
import Synchronization
import SubscriberEvents
import SubscriberProfiles

extension CoordinatorActor.Handoff: ExpressibleByArgument {}

struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the coordinator: shard map, rescoring jobs into PostgreSQL, live query routing. Stops cleanly on SIGTERM.")

    @Option(help: "Endpoint to listen on (tcp://HOST:PORT).")
    var listen: String = "tcp://127.0.0.1:7400"

    @Option(help: "PostgreSQL URL (profiles in, scores out), without a password: the password comes from PGPASSWORD or PGPASSFILE. Default: CHURNGRID_POSTGRES_URL.")
    var postgres: String?

    @Option(help: "Model file (XGBoost JSON or LightGBM text).")
    var model: String = "models/churn-default.json"

    @Option(help: "Shards of a new cluster (fixed once created).")
    var shards: Int = 1024

    @Option(help: "Cluster name.")
    var cluster: String = "churngrid"

    @Option(help: "Seconds without a heartbeat after which a worker counts as lost and its shards move to the others.")
    var unreachableAfter: Double = 3

    @Option(help: "Where a moved shard's new holder takes its profiles from while another worker holds them: stream (over ZeroMQ from that worker) or postgres.")
    var handoff: CoordinatorActor.Handoff = .stream

    @Option(help: "After a restart, seconds to wait for the saved shard map's workers to register again (keeping the shards they host) before their shards move to the workers present.")
    var rejoinGrace: Double = 15

    @Option(help: "Workers to wait for before placing shards for the first time (each shard is then loaded once, on its final owner); queries and jobs are refused meanwhile. A coordinator whose workers already host shards (a restart, a takeover) does not wait.")
    var minWorkers: Int = 1

    @Flag(help: "Keep a warm standby copy of every shard on a second worker (twice the profile memory): a lost worker's shards are served again as soon as the loss is detected, and queries reach the standby meanwhile.")
    var standbys = false

    @Option(help: "Seconds a job waits for PostgreSQL to come back (its writes retried meanwhile) before it fails.")
    var databaseDeadline: Double = 120

    @Option(help: "Seconds one PostgreSQL call may wait for the server before its connection is cut and the call retried (a stalled server).")
    var statementTimeout: Double = 300

    @Option(help: "Seconds a job waits for shards without a ready owner before it fails.")
    var unownedDeadline: Double = 600

    @Option(help: "Seconds a shard's rescoring may make no progress before it runs again elsewhere (its standby, or the worker it is moved to); the first answer counts.")
    var stragglerSeconds: Double = 60

    @Option(help: "The coordinator's name (default: its key's name, or 'coordinator'). Coordinators sharing a database need distinct names.")
    var name: String?

    @Option(help: "Seconds of lease: a standby coordinator on the same database takes over when the leader has not renewed its lease for this long. The leader renews every second.")
    var leaseSeconds: Double = 15

    @OptionGroup var security: ListenerSecurityOptions

    @Option(help: "Serve the HTTP API, the dashboard, /metrics, /healthz and /readyz on HOST:PORT (port 0 picks a free one). A non-loopback address needs --tls-cert and --tls-key, or --insecure.")
    var http: String?

    @Option(help: "PEM certificate chain file for HTTPS on --http.")
    var tlsCert: String?

    @Option(help: "PEM private key file for HTTPS on --http (keep it readable by this user only).")
    var tlsKey: String?

    @Option(help: "Trigger rules file (JSON, docs/triggers.md): every worker fires them on the events it applies. Default: Deploy/triggers.json when it exists; 'none' fires no triggers.")
    var triggers: String?

    @Option(help: "Days of subscriber events and fired triggers kept in PostgreSQL (older daily partitions are dropped; keep it longer than the interval between profile refreshes).")
    var eventRetentionDays: Int = 30

    @Option(help: "CLV: the share of a subscriber's revenue (arpu_30d) that is margin (docs/retention.md).")
    var clvMarginRate: Double = 0.35

    @Option(help: "CLV: the monthly discount rate.")
    var clvMonthlyDiscount: Double = 0.01

    @Option(help: "CLV: the horizon in months.")
    var clvHorizonMonths: Int = 24

    @Option(help: "Days contacts and campaign runs (with their actions) are kept in PostgreSQL; longer than any campaign's contact-policy window.")
    var contactRetentionDays: Int = 400

    func run() async throws {
        let logger = makeLogger("churngrid.coordinator")
        let clv: CLVSettings
        do {
            clv = try CLVSettings(marginRate: clvMarginRate, monthlyDiscount: clvMonthlyDiscount, horizonMonths: clvHorizonMonths)
        } catch {
            throw ValidationError("\(error)")
        }
        // Every flag in seconds, checked before anything starts.
        let unreachableDuration = try SecondsFlag.duration(unreachableAfter, "--unreachable-after")
        let leaseDuration = try SecondsFlag.duration(leaseSeconds, "--lease-seconds", floor: 2)
        let rejoinDuration = try SecondsFlag.duration(rejoinGrace, "--rejoin-grace")
        let databaseDuration = try SecondsFlag.duration(databaseDeadline, "--database-deadline")
        let unownedDuration = try SecondsFlag.duration(unownedDeadline, "--unowned-deadline")
        let stragglerDuration = try SecondsFlag.duration(stragglerSeconds, "--straggler-seconds", floor: 0.2)
        let statementDuration = try SecondsFlag.duration(statementTimeout, "--statement-timeout", floor: 1)
        var triggerPackage = TriggerPackage.none
        let triggers = triggers ?? (FileManager.default.fileExists(atPath: TriggerRules.defaultFileName) ? TriggerRules.defaultFileName : nil)
        if triggers == nil { logger.warning("no trigger rules (no --triggers, and no Deploy/triggers.json here): events fire no triggers") }
        if let triggers, triggers != "none" {
            let data = try readOptionFile(triggers, option: "--triggers")
            do {
                _ = try TriggerRules.parse(data, file: triggers, featureNames: FeatureCatalogue.names)
            } catch {
                // A feature beyond the catalogue is checked against the schema in force once the
                // coordinator reaches PostgreSQL; anything else is wrong whatever the schema.
                guard error.code == .unknownFeature else { throw ValidationError("--triggers: \(error)") }
            }
            triggerPackage = TriggerPackage(source: triggers, bytes: data)
        }
        guard contactRetentionDays >= 1 else { throw ValidationError("--contact-retention-days: at least 1") }
        guard eventRetentionDays >= 10 else { throw ValidationError("--event-retention-days: at least 10 (events may arrive 7 days late)") }
        var httpConfiguration: APIServer.Configuration?
        if let http {
            guard let (host, port) = APIServer.Configuration.parse(address: http) else { throw ValidationError("--http: HOST:PORT, e.g. 127.0.0.1:8080") }
            var c = APIServer.Configuration(host: host, port: port, logger: makeLogger("churngrid.http"))
            switch (tlsCert, tlsKey) {
            case (let cert?, let key?):
                if let refusal = SecretFile.refusal(path: key) { throw ValidationError("--tls-key \(key): \(refusal)") }
                c.tls = (cert, key)
            case (nil, nil):
                guard isLoopbackHost(host) || security.insecure else {
                    throw ValidationError("--http \(http) is not a loopback address and no --tls-cert/--tls-key were given: tokens would cross the network in clear. Give a certificate and key, or --insecure to accept that.")
                }
            default: throw ValidationError("--tls-cert and --tls-key go together")
            }
            httpConfiguration = c
        } else if tlsCert != nil || tlsKey != nil {
            throw ValidationError("--tls-cert/--tls-key need --http")
        }
        var node = ClusterActorSystem.Configuration(name: try name ?? security.keyName() ?? "coordinator", listen: listen, cluster: cluster, logger: logger)
        node.options.unreachableAfter = unreachableDuration
        try security.apply(to: &node)
        var configuration = CoordinatorService.Configuration(node: node, postgresURL: try postgresURL(option: postgres), modelPath: model)
        configuration.authorizedKeysPath = security.authorizedKeys
        configuration.shardCount = shards
        configuration.leasePeriod = leaseDuration
        configuration.settings.handoff = handoff
        configuration.settings.standbys = standbys
        guard minWorkers >= 1 else { throw ValidationError("--min-workers: at least 1") }
        configuration.settings.minWorkers = minWorkers
        configuration.settings.rejoinGrace = rejoinDuration
        configuration.settings.databaseDeadline = databaseDuration
        configuration.settings.unownedShardDeadline = unownedDuration
        configuration.settings.stragglerDeadline = stragglerDuration
        configuration.settings.statementTimeout = statementDuration
        configuration.settings.triggers = triggerPackage
        configuration.settings.eventRetentionDays = eventRetentionDays
        configuration.settings.clv = clv
        configuration.settings.contactRetentionDays = contactRetentionDays
        try await reportingClusterErrors {
            let service = try await CoordinatorService(configuration)
            var services: [any Service] = [service]
            if let httpConfiguration {
                let store = try await APIStore.open(url: configuration.postgresURL, logger: logger)
                services.append(APIServer(httpConfiguration, coordinator: service, store: store))
            }
            try await runUntilSignalled(services, announcing: "coordinator listening \(service.system.node.endpoint)", logger: logger)
        }
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a worker: joins the coordinator, loads its shards, scores them. Stops cleanly on SIGTERM.")

    @Option(help: "The coordinator's endpoint; several separated by commas (a leader and its standbys: the worker follows whichever leads).")
    var coordinator: String

    @Option(help: "The coordinator's public key file (NAME.pub), on a cluster with CURVE; with several coordinators, their files separated by commas in the order of --coordinator.")
    var coordinatorKey: String?

    @Option(help: "Endpoint to listen on (tcp://HOST:PORT; port * picks a free one).")
    var listen: String = "tcp://127.0.0.1:*"

    @Option(help: "The endpoint other nodes dial, when it differs from the bound one (a wildcard address, NAT).")
    var advertise: String?

    @Option(help: "Worker name, unique in the cluster (default: its key's name, or worker-PID).")
    var name: String?

    @Option(help: "This worker's own PostgreSQL URL, without a password (PGPASSWORD or PGPASSFILE). Default: CHURNGRID_POSTGRES_URL.")
    var postgres: String?

    @OptionGroup var security: ListenerSecurityOptions

    @Option(help: "Cores used to score a shard.")
    var threads: Int = defaultThreads()

    @Option(help: "Memory this worker may use for its shards and itself: bytes with K, M or G, or a percentage of the machine's (or the cgroup's) memory. The coordinator places shards within it.")
    var maxMemory: String = "80%"

    @Option(help: "Cluster name.")
    var cluster: String = "churngrid"

    @Option(help: "Serve /metrics, /healthz and /readyz over plain HTTP on HOST:PORT (no subscriber data; port 0 picks a free one).")
    var metrics: String?

    @Option(help: "Publish the triggers this worker fires on a ZeroMQ PUB socket bound here (tcp://HOST:PORT; with CURVE, subscribers need an authorized key): `churngrid triggers tail` subscribes to every worker's.")
    var triggersPublish: String?

    func run() async throws {
        let logger = makeLogger("churngrid.worker")
        let metricsAddress = try metrics.map { address in
            guard let parsed = APIServer.Configuration.parse(address: address) else { throw ValidationError("--metrics: HOST:PORT, e.g. 0.0.0.0:9464") }
            return parsed
        }
        var node = ClusterActorSystem.Configuration(name: try name ?? security.keyName() ?? "worker-\(getpid())", listen: listen, cluster: cluster, logger: logger)
        node.advertise = advertise
        node.options.unreachableAfter = .seconds(3)
        try security.apply(to: &node)
        let coordinators = coordinator.split(separator: ",").map { String($0) }.filter { !$0.isEmpty }
        guard !coordinators.isEmpty else { throw ValidationError("--coordinator: give the coordinator's endpoint") }
        var configuration = WorkerService.Configuration(node: node, coordinators: coordinators, threads: threads, postgresURL: try postgresURL(option: postgres))
        if security.curveKeys != nil {
            guard let coordinatorKey else { throw ValidationError("--curve-keys needs --coordinator-key (the coordinator's NAME.pub)") }
            configuration.coordinatorKeys = try coordinatorKeys(coordinatorKey)
        }
        configuration.authorizedKeysPath = security.authorizedKeys
        guard let memory = MemorySize.parse(maxMemory) else {
            throw ValidationError("--max-memory: bytes with K, M or G (e.g. 8G), or a percentage of the machine's memory (e.g. 80%)")
        }
        configuration.maxMemory = memory
        if let triggersPublish, security.curveKeys == nil, !isLoopback(triggersPublish), !security.insecure {
            throw ValidationError("--triggers-publish \(triggersPublish) is not a loopback address and no --curve-keys was given: anyone who reaches it could read every fired trigger (subscriber, event, scores). Give the worker a key and --authorized-keys, or --insecure to accept that.")
        }
        configuration.triggersPublish = triggersPublish
        // Which tree kernels this worker's models run (CHURNGRID_SCORING_KERNEL pins them).
        let kernel = ScoringKernel.processDefault
        logger.info("scoring kernels", metadata: ["kernel": "\(kernel.rawValue)", "instruction_set": "\(kernel.instructionSet)"])
        try await reportingClusterErrors {
            let service = try await WorkerService(configuration)
            var services: [any Service] = [service]
            if let (host, port) = metricsAddress { services.append(WorkerHTTP(host: host, port: port, service: service, logger: makeLogger("churngrid.http"))) }
            try await runUntilSignalled(services, announcing: "worker listening \(service.system.node.endpoint)", logger: logger)
        }
    }
}

/// Prints the line a parent process waits for (the endpoint), then runs `service` until SIGTERM/SIGINT.
func runUntilSignalled(_ service: some Service, announcing line: String, logger: Logger) async throws {
    try await runUntilSignalled([service], announcing: line, logger: logger)
}

/// The same for several services (a node and its HTTP server): when one ends, all end.
func runUntilSignalled(_ services: [any Service], announcing line: String, logger: Logger) async throws {
    print(line)
    fflush(nil)
    // A service that ends by itself (a drained worker) ends the process normally.
    let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
                                                  gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
}

struct RescoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rescore",
        abstract: "Start rescoring the whole base; with --wait, show progress and the summary.")

    @OptionGroup var target: CoordinatorOptions

    @Flag(help: "Wait for the job, showing shards done, subscribers/s and ETA.")
    var wait = false

    @Flag(help: "Print the final job status as JSON.")
    var json = false

    @Option(help: "Who gets top-3 reasons stored: all (default), at-risk (band medium or above), none.")
    var reasons: JobReasons = .all

    @Option(name: .customLong("explain-method"), help: "How reasons are computed: approx (path attribution, default) or exact (TreeSHAP).")
    var explainMethod: ExplainMethod = .approx

    func run() async throws {
        let logger = makeLogger("churngrid.rescore")
        let options = RescoreOptions(reasons: reasons.setting, method: explainMethod == .exact ? .exact : .approx)
        try await reportingClusterErrors {
            let status = try await withCoordinator(target, logger: logger) { client -> JobStatus? in
                // The standard job through the method every coordinator version answers.
                let id = options == .standard ? try await client.coordinator.startRescore() : try await client.coordinator.startRescore(options)
                guard wait else {
                    if json { try printJSON(["job_id": id]) } else { print("job \(id) started") }
                    return nil
                }
                logger.info("rescoring job started; waiting for it to end", metadata: ["job": "\(id)"])
                var status = try await waitForJob(client, id: id, showProgress: !json, target: target, logger: logger)
                // Where the time went (a coordinator one version older has no such method).
                status.timeline = try? await client.coordinator.jobTimeline(id: id)
                return status
            }
            guard let status else { return }
            if json { try printJSON(status) } else { print(jobSummary(status)) }
            if status.state != .completed { throw ExitCode(1) }
        }
    }
}

/// Polls the job until it ends, drawing a progress line. With `target`, a coordinator that stops
/// answering (it was stopped, or a standby took over) is looked for again at the target's
/// endpoints, and the job's end is read from whichever leads (a job interrupted by a takeover is
/// reported failed, with the reason the new leader recorded).
func waitForJob(_ client: ClusterClient, id: Int64, showProgress: Bool, target: CoordinatorOptions? = nil, logger: Logger? = nil) async throws -> JobStatus {
    var client = client, reconnected: [ClusterClient] = []
    defer { for c in reconnected { Task { await c.close() } } }
    var since: ContinuousClock.Instant?
    while true {
        let answer: JobStatus?
        do {
            answer = try await client.coordinator.job(id: id)
            since = nil
        } catch let error as RemoteCallError where target != nil && [.unreachable, .actorNotFound, .nodeRestarted, .timedOut].contains(error.code) {
            // The coordinator is gone: find the one that leads now (for up to two minutes).
            let start = since ?? .now
            since = start
            guard ContinuousClock.now - start < .seconds(120), let target, let logger else { throw error }
            if showProgress { FileHandle.standardError.write(Data("\n  the coordinator stopped answering (\(error.code)); looking for the one that leads …\n".utf8)) }
            try await Task.sleep(for: .seconds(1))
            if let next = try? await ClusterClient.connect(target.coordinator, credentials: try target.credentials(), logger: quiet(logger)) {
                reconnected.append(next)
                client = next
            }
            continue
        }
        guard let status = answer else {
            throw ClusterError("the coordinator knows no job \(id)")
        }
        // The coordinator's figures (for a job it did not run: the table's, which an operator can
        // edit) are bounded before they size the bar.
        if showProgress && (isatty(2) == 1 || status.state != .running || (status.seconds.isFinite && Int(min(max(status.seconds, 0), 1e9) * 5) % 25 == 0)) {
            let rate = status.subscribersPerSecond
            let left = Double(status.shardCount) - Double(status.shardsDone)
            let eta = status.shardsDone > 0 ? status.seconds / Double(status.shardsDone) * left : 0
            let width = 30
            let filled = status.shardCount > 0 ? Int(min(Double(width), max(0, Double(width) * Double(status.shardsDone) / Double(status.shardCount)))) : 0
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            FileHandle.standardError.write(Data(String(format: (isatty(2) == 1 ? "\r" : "") + "  job %lld [%@] %d/%d shards  %d subscribers  %.0f/s  ETA %.0fs   " + (isatty(2) == 1 ? "" : "\n"),
                id, bar, status.shardsDone, status.shardCount, status.subscribers, rate, eta).utf8))
        }
        if status.state != .running {
            if showProgress && isatty(2) == 1 { FileHandle.standardError.write(Data("\n".utf8)) }
            return status
        }
        try await Task.sleep(for: .milliseconds(200))
    }
}

func jobSummary(_ s: JobStatus) -> String {
    var text = "job \(s.id) \(s.state): \(s.subscribers) subscribers in \(s.shardsDone)/\(s.shardCount) shards, "
        + String(format: "%.1f s (%.0f subscribers/s)", s.seconds, s.subscribersPerSecond)
        + ", model \(s.modelVersion), \(s.retries) shard retries"
    if let e = s.error { text += "\n  error: \(e)" }
    if let t = s.timeline {
        text += String(format: "\n  timeline: last scores in at %.1f s, last write at %.1f s, publication %.1f s (shard calls %.1f s, writes %.1f s over %d transactions)",
                       t.scoringEnded, t.writingEnded, t.publish, t.shardCalls, t.writeBusy, t.writes)
    }
    return text
}

struct ScoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "One subscriber's churn score computed now: probability, risk band, top-3 reasons, model, shard and node.")

    @Argument(help: "Subscriber id.")
    var subscriber: Int64

    @OptionGroup var target: CoordinatorOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let logger = makeLogger("churngrid.score")
        try await reportingClusterErrors {
            let (answer, recent, others) = try await withCoordinator(target, logger: logger) { client -> (ScoreLookup, [RecentEvent], [ActiveModelAnswer]) in
                let answer = try await client.score(subscriber)
                // The extras only beside a score, and briefly: right after a worker died they could
                // each wait for it (the answer came from elsewhere) and keep the operator waiting.
                guard case .found = answer else { return (answer, [], []) }
                let recent = await briefly { try await client.recentEvents(of: subscriber) } ?? []
                let others = await briefly { try await client.activeModelScores(of: subscriber) } ?? []
                return (answer, recent, others)
            }
            switch answer {
            case .found(let s):
                if json {
                    try printJSON(ScoreWithEvents(score: s, recentEvents: recent, activeModels: others))
                } else {
                    print(describe(s))
                    for o in others {
                        let reasons = o.reasons.map { String(format: "%@ (+%.2f)", $0.feature, $0.contribution) }.joined(separator: ", ")
                        print(String(format: "  model %@  p=%.4f  %@  reasons: %@  [%@]", o.name, o.probability, o.riskBand, reasons.isEmpty ? "none" : reasons, o.modelVersion))
                    }
                    for e in recent.reversed() {
                        print(String(format: "  event %@  %@%@  %@/%@  seq %lld  → p=%.4f", Timestamp.format(e.at), e.type,
                                     e.value == 1 ? "" : String(format: " %g", e.value), e.source, e.eventID, e.seq, e.probabilityAfter))
                    }
                }
            case .notFound(let id, let shard):
                if json { try printJSON(["error": "not found", "subscriber_id": "\(id)", "shard": "\(shard)"]) }
                FileHandle.standardError.write(Data("not found: subscriber \(id) is not in shard \(shard)\n".utf8))
                throw ExitCode(2)
            case .unavailable(let shard, let reason):
                FileHandle.standardError.write(Data("unavailable: shard \(shard): \(reason)\n".utf8))
                throw ExitCode(3)
            }
        }
    }
}

func describe(_ s: LiveScore) -> String {
    let reasons = s.reasons.map { String(format: "%@ (+%.2f)", $0.feature, $0.contribution) }.joined(separator: ", ")
    return String(format: "subscriber %lld  p=%.4f  %@  reasons: %@  [model %@, shard %d on %@, epoch %lld]",
                  s.subscriberID, s.probability, s.riskBand, reasons.isEmpty ? "none" : reasons, s.modelVersion, s.shard, s.node, s.epoch)
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Nodes, their shards, subscribers and memory, the model, the shard map epoch and the running or last job.")

    @OptionGroup var target: CoordinatorOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let logger = makeLogger("churngrid.status")
        try await reportingClusterErrors {
            let (status, report, routingError, challengers) = try await withCoordinator(target, logger: logger) { client in
                let status = try await client.coordinator.status()
                var report: (answered: [WorkerEventStatus], unanswered: [String: String]) = ([], [:])
                var routingError: String?
                do { report = try await client.eventStatusReport() } catch { routingError = "\(error)" }
                return (status, report, routingError, (try? await client.coordinator.challengerList()) ?? [])
            }
            let events = report.answered
            if json { try printJSON(StatusWithEvents(status: status, events: events, unanswered: report.unanswered, error: routingError)); return }
            print("coordinator \(status.coordinator)")
            let challenger = status.challenger.map { String(format: " (challenger %@ for %.2f%% of live answers)", $0.version, $0.percent) } ?? ""
            print("shards \(status.shardCount), epoch \(status.epoch), model \(status.modelVersion)\(challenger), unassigned \(status.unassignedShards), moving \(status.movingShards)")
            for a in status.activeModels {
                let challenger = challengers.first { $0.name == a.name }
                    .map { String(format: " (challenger %@ for %.2f%% of its live answers)", $0.version, $0.percent) } ?? ""
                print("active model \(a.name) \(a.version) beside it, for " + (a.segment.isEmpty ? "every subscriber" : "segment \(a.segment)") + challenger)
            }
            if let starting = status.starting { print("starting: \(starting) before shards are placed") }
            if let placement = status.placement { print("placement: \(placement.description)") }
            if let database = status.database { print("database: \(database.description)") }
            for w in status.workers {
                print(String(format: "  %@  %@  %d shards  %d subscribers  profiles %.1f MB (%.0f B/subscriber)  standby %d shards %.1f MB  RSS %.1f MB  %d cores",
                             w.name, w.endpoint, w.shards, w.subscribers, Double(w.profileBytes) / 1e6,
                             w.subscribers > 0 ? Double(w.profileBytes) / Double(w.subscribers) : 0, w.standbyShards, Double(w.standbyBytes) / 1e6,
                             Double(w.residentBytes) / 1e6, w.cores))
            }
            // A worker whose event figures did not come is named, not left out.
            if let routingError { print("  events: the workers could not be listed (\(routingError))") }
            for (name, error) in report.unanswered.sorted(by: { $0.key < $1.key }) {
                print("  \(name)  events: no answer (\(error))")
            }
            for e in events {
                let groups = e.stats.groups > 0 ? String(format: "; %d groups, %.2f ms each", e.stats.groups, Double(e.stats.writeMicros) / Double(e.stats.groups) / 1000) : ""
                let live = e.stats.liveRun > 0 ? "; live campaign run \(e.stats.liveRun): \(e.stats.liveDecided) actions, \(e.stats.liveSkipped) triggers without" : ""
                let feed = groups + live + (e.triggerFeed.isEmpty ? "" : "; triggers on " + e.triggerFeed) + blockedShards(e.stats)
                print("  \(e.name)  " + String(format: "events: %.0f/s, triggers %.1f/s, lag %.1f s; %d applied, %d duplicates, %d rejected, %d triggers; state for %d subscribers (%.0f B each)",
                                                e.stats.eventsPerSecond, e.stats.triggersPerSecond, Double(e.stats.lagMillis) / 1000,
                                                e.stats.applied, e.stats.duplicates, e.stats.rejected, e.stats.triggers,
                                                e.stats.subscribersWithState,
                                                e.stats.subscribersWithState > 0 ? Double(e.stats.stateBytes) / Double(e.stats.subscribersWithState) : 0) + feed)
            }
            for s in status.silentWorkers { print("  \(s)  (not answering)") }
            for l in status.shardLoads ?? [] where l.fromTable + l.fromSnapshot + l.streamed + l.snapshotsWritten > 0 {
                print("  \(l.worker)  shards loaded: \(l.fromSnapshot) from snapshots, \(l.fromTable) from subscriber_profiles, \(l.streamed) streamed"
                      + (l.snapshotsRejected > 0 ? "; \(l.snapshotsRejected) snapshots rejected (last: \(l.lastRejection))" : "")
                      + (l.snapshotsWritten > 0 ? "; \(l.snapshotsWritten) snapshots written" : ""))
            }
            if let job = status.job { print(jobSummary(job)) }
            if let drift = status.drift { print(driftSummary(drift)) }
        }
    }
}

/// Owned shards whose events a worker does not take now, said only when there are any.
func blockedShards(_ s: EventStats) -> String {
    var parts: [String] = []
    if s.shardsReplaying > 0 { parts.append("\(s.shardsReplaying) replaying the log (their events answered retry)") }
    if s.shardsWaiting > 0 { parts.append("\(s.shardsWaiting) waiting for PostgreSQL to take their events over") }
    if s.shardsLost > 0 { parts.append("\(s.shardsLost) held by a newer owner (their events refused)") }
    return parts.isEmpty ? "" : "; shards not taking events: " + parts.joined(separator: ", ")
}

struct NodesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodes",
        abstract: "The cluster's members: list them, drain one.",
        subcommands: [List.self, Drain.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Members with their state (active, draining) and shards.")

        @OptionGroup var target: CoordinatorOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let logger = makeLogger("churngrid.nodes")
            try await reportingClusterErrors {
                let nodes = try await withCoordinator(target, logger: logger) { try await $0.coordinator.nodes() }
                if json { try printJSON(nodes); return }
                for n in nodes {
                    print("\(n.name)  \(n.state)  \(n.endpoint)  \(n.shards) shards (\(n.readyShards) ready), standby for \(n.standbyShards)")
                }
            }
        }
    }

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a worker's shards to the other workers (it keeps answering until each batch has moved), then stop it.")

        @Argument(help: "The worker's name.")
        var node: String

        @OptionGroup var target: CoordinatorOptions

        func run() async throws {
            let logger = makeLogger("churngrid.nodes")
            try await reportingClusterErrors {
                let start = ContinuousClock.now
                let moved = try await withCoordinator(target, logger: logger) { client in
                    // Progress every 5 s while the coordinator moves the shards: how many the worker
                    // still owns and hosts as a standby.
                    try await withProgress({ [node] in
                        guard let info = await briefly({ try await client.coordinator.nodes() })?.first(where: { $0.name == node }) else { return nil }
                        return "\(node) \(info.state.rawValue): \(info.shards) shards still owned, \(info.standbyShards) standby copies"
                    }) {
                        try await ClusterActorSystem.$callTimeout.withValue(.seconds(3600)) { try await client.coordinator.drain(node) }
                    }
                }
                print(String(format: "%@ drained: %d shards moved in %.1f s; it has left the cluster", node, moved,
                             Double((ContinuousClock.now - start) / .milliseconds(1)) / 1000))
            }
        }
    }
}

/// Connects a client to the coordinator at `endpoint`, runs `body` with it and closes it, also
/// when `body` throws. Client commands log only warnings and errors.
func withCoordinator<T>(_ target: CoordinatorOptions, logger: Logger, _ body: (ClusterClient) async throws -> T) async throws -> T {
    let client = try await ClusterClient.connect(target.coordinator, credentials: try target.credentials(), logger: quiet(logger))
    do {
        let result = try await body(client)
        await client.close()
        return result
    } catch {
        await client.close()
        throw error
    }
}

/// Client commands log only warnings and errors.
func quiet(_ logger: Logger) -> Logger {
    var l = logger
    l.logLevel = .warning
    return l
}

/// Cluster errors as one clear line and exit code 1.
/// A call's answer within 5 s, nil when it fails or takes longer (for extras beside an answer).
func briefly<T: Sendable>(_ call: () async throws -> T) async -> T? {
    try? await ClusterActorSystem.$callTimeout.withValue(.seconds(5)) { try await call() }
}

func reportingClusterErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let e as ExitCode {
        throw e
    } catch let e as ValidationError {
        throw e
    } catch let e as RemoteCallError where e.code == .notAuthorized {
        FileHandle.standardError.write(Data("\(e.message)\n".utf8))  // "not authorized: <method> needs role <r>"
        throw ExitCode(4)
    } catch let e as RemoteCallError where e.code == .remoteThrew {
        // What the node said first; which call it answered after.
        FileHandle.standardError.write(Data("error: \(e.message)\n  (the answer of \(e.method) on \(e.node))\n".utf8))
        throw ExitCode(1)
    } catch let e as RemoteCallError where e.code == .actorNotFound && e.actor == CoordinatorActor.name {
        // A coordinator standing by has no coordinator actor (after a failover, the old leader).
        FileHandle.standardError.write(Data("""
            error: \(e.node) does not lead: it is a coordinator standing by (or not a coordinator). Give every coordinator's \
            endpoint, comma-separated (--coordinator tcp://A:7400,tcp://B:7400): the one that leads answers.
              (\(e))

            """.utf8))
        throw ExitCode(1)
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

extension BenchCommand {
    struct Queries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open-loop live queries at a fixed rate (random subscribers of a generated base), straight to the owning worker or through the coordinator: latency from each query's scheduled send, failures included (HdrHistogram), and the rate achieved.")

        @OptionGroup var target: CoordinatorOptions

        @Option(help: "Queries per second, sent on schedule whatever happened to the earlier ones.")
        var rate = 200.0

        @Option(help: "Seconds to run.")
        var duration = 10.0

        @Option(help: "Client connections (each its own node; query i goes to connection i mod C).")
        var connections = 1

        @Option(help: "Batch calls per worker and connection on the wire at once (concurrent queries to a worker share batch calls).")
        var inFlight = 4

        @Option(help: "Subscribers in the base (ids 1000000000 …).")
        var subscribers = 1_000_000

        @Option(help: "Seed of the random ids.")
        var seed: UInt64 = 1

        @Option(help: "Seconds to wait for the last answers after the schedule ends (unanswered ones fail).")
        var drain = 5.0

        @Option(name: .customLong("send-tick-us"), help: "The sending thread wakes at most every this many microseconds and sends the queries then due (0: a wake-up per query); a query sent late counts its lateness.")
        var sendTickMicroseconds = 100

        enum Route: String, ExpressibleByArgument, CaseIterable {
            case direct, coordinator
        }

        @Option(help: "direct: to the owning node with the client's cached shard map (what `churngrid score` does); coordinator: through the coordinator.")
        var via = Route.direct

        @Option(name: .customLong("explain-method"), help: "How each answer's reasons are computed: approx (path attribution, default) or exact (TreeSHAP).")
        var explainMethod: ExplainMethod = .approx

        @Flag(help: "Also end the schedule early when standard input closes (scripts that stop the load when their work is done).")
        var stopOnStdinEof = false

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard rate > 0, duration > 0, (1...64).contains(connections), (1...256).contains(inFlight), subscribers > 0, drain >= 0, drain <= 3600,
                  (0...10_000).contains(sendTickMicroseconds) else {
                throw ValidationError("rate, duration and subscribers are positive, connections 1–64, in-flight 1–256, drain 0–3600 s, send tick 0–10000 µs")
            }
            guard explainMethod == .approx || via == .direct else {
                throw ValidationError("--explain-method exact needs --via direct (the coordinator's single query explains by path attribution)")
            }
            guard rate * duration <= Double(OpenLoopRecorder.maxQueries) else {
                throw ValidationError("at most \(OpenLoopRecorder.maxQueries) queries per run (rate × duration)")
            }
        }

        func run() async throws {
            let logger = makeLogger("churngrid.bench")
            try await reportingClusterErrors {
                var clients: [ClusterClient] = []
                do {
                    for _ in 0..<connections {
                        let client = try await ClusterClient.connect(target.coordinator, credentials: try target.credentials(), batchesInFlight: inFlight, logger: quiet(logger))
                        clients.append(client)
                        try await client.prepareRouting()
                    }
                } catch {
                    for c in clients { await c.close() }
                    throw error
                }
                let direct = via == .direct
                let explain: ExplainMode = explainMethod == .exact ? .exact : .approx
                let targets: [QueryLoadGenerator.Target] = clients.map { client in
                    { id, done in
                        if direct {
                            client.submit(id, explain: explain) { outcome in
                                switch outcome {
                                case .found: done(.found)
                                case .notFound: done(.notFound)
                                case .unavailable, .failed, .shed: done(.failed)
                                }
                            }
                        } else {
                            Task {
                                switch try? await client.coordinator.score(id) {
                                case .found: done(.found)
                                case .notFound: done(.notFound)
                                case .unavailable, nil: done(.failed)
                                }
                            }
                        }
                    }
                }
                var options = QueryLoadGenerator.Options(rate: rate, seconds: duration, subscribers: subscribers)
                options.seed = seed
                options.drain = try SecondsFlag.duration(drain, "--drain")
                options.sendTick = .microseconds(sendTickMicroseconds)
                if stopOnStdinEof {
                    let stop = watchStandardInput()
                    options.stop = { stop.isSet }
                }
                let result = await QueryLoadGenerator.run(options, targets: targets)
                let batches = clients.reduce((calls: 0, queries: 0)) { ($0.calls + $1.coalescingCounts.calls, $0.queries + $1.coalescingCounts.queries) }
                for c in clients { await c.close() }
                if json {
                    try printJSON(QueriesReport(result: result, connections: connections, batchCalls: batches.calls, batchedQueries: batches.queries,
                                                sendTickMicroseconds: sendTickMicroseconds))
                } else {
                    print(String(format: "%d queries at %.0f/s over %d connection(s): %d failed, %d not found; achieved %.0f/s; latency from the scheduled send p50 %.0f µs, p90 %.0f µs, p99 %.0f µs, p99.9 %.0f µs, max %.0f µs; %d batch calls carried %d queries",
                                 result.queries, result.rate, connections, result.failed, result.not_found, result.achieved_per_second,
                                 result.p50_us, result.p90_us, result.p99_us, result.p999_us, result.max_us, batches.calls, batches.queries))
                }
            }
        }
    }
}

/// `bench queries --json`: the open-loop figures, the connections, and how the client batched.
struct QueriesReport: Encodable {
    let result: OpenLoopResult
    let connections: Int
    let batchCalls: Int
    let batchedQueries: Int
    let sendTickMicroseconds: Int
    enum Keys: String, CodingKey { case connections, batch_calls, batched_queries, send_tick_us }
    func encode(to encoder: Encoder) throws {
        try result.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(connections, forKey: .connections)
        try c.encode(batchCalls, forKey: .batch_calls)
        try c.encode(batchedQueries, forKey: .batched_queries)
        try c.encode(sendTickMicroseconds, forKey: .send_tick_us)
    }
}


/// Set once standard input is closed (the parent process asks this one to finish).
final class StopFlag: Sendable {
    let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
}

func watchStandardInput() -> StopFlag {
    let stop = StopFlag()
    Thread.detachNewThread {
        var byte: UInt8 = 0
        while read(0, &byte, 1) > 0 {}
        stop.flag.store(true, ordering: .relaxed)
    }
    return stop
}

/// `score --json`: the live score's keys, and the last events applied to the subscriber.
struct ScoreWithEvents: Encodable {
    let score: LiveScore
    let recentEvents: [RecentEvent]
    /// The models active beside the served one whose segment holds the subscriber.
    let activeModels: [ActiveModelAnswer]
    enum Keys: String, CodingKey { case recentEvents = "recent_events", activeModels = "active_models" }
    func encode(to encoder: Encoder) throws {
        try score.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(recentEvents, forKey: .recentEvents)
        try c.encode(activeModels, forKey: .activeModels)
    }
}

/// `status --json`: the cluster's keys, each worker's event figures under `events`, and under
/// `events_unanswered` the workers whose figures did not come, by name, each with the error (a
/// frozen or lost worker is named, not left out; `{}` when every worker answered). When the
/// workers could not even be listed, `events_error` says why.
struct StatusWithEvents: Encodable {
    let status: ClusterStatus
    let events: [WorkerEventStatus]
    let unanswered: [String: String]
    let error: String?
    enum Keys: String, CodingKey {
        case events
        case unanswered = "events_unanswered"
        case error = "events_error"
    }
    func encode(to encoder: Encoder) throws {
        try status.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(events, forKey: .events)
        try c.encode(unanswered, forKey: .unanswered)
        try c.encodeIfPresent(error, forKey: .error)
    }
}

/// `rescore --reasons`.
enum JobReasons: String, ExpressibleByArgument, CaseIterable {
    case all
    case atRisk = "at-risk"
    case none

    var setting: RescoreOptions.Reasons {
        switch self {
        case .all: .all
        case .atRisk: .atRisk
        case .none: .none
        }
    }
}
