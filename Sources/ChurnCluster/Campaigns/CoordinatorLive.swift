import ClusterSystem
import Distributed
import Foundation
import Logging
import Retention
import WireFormat

/// `churngrid campaign live start`: the campaign file, and how old a trigger may be to be decided.
public struct LiveCampaignRequest: Sendable, WireCodable {
    public var config: BulkArray<UInt8>
    /// The file's name (named in errors).
    public var source: String
    public var maxTriggerAgeSeconds: Int

    /// The default: a trigger received more than 10 minutes ago is no longer real time.
    public static let defaultMaxTriggerAgeSeconds = 600

    public init(config: [UInt8], source: String, maxTriggerAgeSeconds: Int = Self.defaultMaxTriggerAgeSeconds) {
        self.config = BulkArray(config)
        self.source = source
        self.maxTriggerAgeSeconds = maxTriggerAgeSeconds
    }

    public func encode(to w: inout WireWriter) { w.write(config); w.write(source); w.write(maxTriggerAgeSeconds) }
    public init(from r: inout WireReader) throws(WireError) { config = try r.read(); source = try r.read(); maxTriggerAgeSeconds = try r.read() }
}

extension CoordinatorActor {
    /// How often the live campaign's leases are topped up (and a lost worker's taken back).
    static let liveLeaseInterval: Duration = .milliseconds(500)

    /// Makes a campaign the live campaign (docs/retention.md, "Real time"): from now on every
    /// trigger a worker fires goes through its decision on that worker. The value tiers are cut
    /// now, over the whole base (one pass over every shard, as a run's first pass), and kept for
    /// the campaign's life; its capacity and budget are for the whole time it is live, leased to
    /// the workers in chunks. Replaces the campaign live before (its run ends).
    /// - Returns: JSON `{"run_id", "campaign", "tier_cuts", "replaced_run", "max_trigger_age_seconds"}`.
    public distributed func startLiveCampaign(_ request: LiveCampaignRequest) async throws -> String {
        let caller = ClusterActorSystem.caller
        // Eligibility may read any feature of the schema in force: held on every worker first.
        let (campaign, extras) = try await parseCampaign(request.config.elements, source: request.source)
        guard (1...86_400).contains(request.maxTriggerAgeSeconds) else {
            throw CampaignRefusal(.invalidArgument, "max trigger age: 1 to 86400 seconds, not \(request.maxTriggerAgeSeconds)", field: "max_trigger_age_seconds")
        }
        guard !campaignBusy else { throw CampaignRefusal(.conflict, "a campaign run is deciding; start the live campaign when it has finished") }
        guard !erasing else { throw CampaignRefusal(.conflict, "subscribers are being erased; start the live campaign when the erasure has finished") }
        guard !deploying else { throw CampaignRefusal(.conflict, "a model is being deployed; start the live campaign when the deployment has finished") }
        campaignBusy = true
        defer { campaignBusy = false }
        let started = Date()
        let clv = settings.clv
        // Named in assignments from now (a worker joining meanwhile holds them too); the previous
        // list again if the campaign does not go live.
        let previousFeatures = liveFeatures
        var wentLive = false
        liveFeatures = previousFeatures + extras.filter { !previousFeatures.contains($0) }
        defer { if !wentLive { liveFeatures = previousFeatures } }
        if !extras.isEmpty { try await holdEverywhere(extras, for: campaign.name) }
        let histograms = try await everyShardPass(what: "values", of: "live campaign") { actor in
            try ValueHistogram(encodedBytes: try await actor.campaignValues(CLVWire(clv)).elements)
        }
        var merged = ValueHistogram()
        for h in histograms { merged.merge(h.1) }
        let tiers = ValueTiers(histogram: merged, quantiles: campaign.valueTierCuts)
        let config = String(decoding: request.config.elements, as: UTF8.self)
        let by = Self.callerName(caller)
        let startedMillis = Int64(started.timeIntervalSince1970 * 1000)
        let record = CampaignRunRecord(campaign: campaign.name, config: config, jobID: nil, modelVersion: model.version, startedMillis: startedMillis,
                                       createdBy: by, summary: { _, _ in "{}" })
        let live = LiveCampaignRecord(runID: 0, campaign: campaign.name, config: config, tierCuts: tiers.cuts, clv: CLVWire(clv),
                                      maxTriggerAgeSeconds: request.maxTriggerAgeSeconds, generation: Int64(startedMillis), startedMillis: startedMillis, startedBy: by)
        let (run, replaced): (Int64, Int64?)
        let capacity = Dictionary(uniqueKeysWithValues: campaign.capacity.map { ($0.key.rawValue, $0.value) })
        do {
            // Started again under the same request token: a start cut off at COMMIT that
            // committed after all is found, not made twice, and the operator is told it is live.
            (run, replaced) = try await writingAgainWhileUnavailable(
                "the live campaign's start waits for it (an earlier try that committed is found, not made twice)",
                metadata: ["campaign": "\(campaign.name)", "request": "\(record.requestToken)"],
                givingUp: { e in
                    ClusterError("campaign \(campaign.name): PostgreSQL did not take the live start within \(settings.databaseDeadline); whether a "
                                 + "cut-off try went live is known once PostgreSQL ends it (`campaign live status`) — request token \(record.requestToken): \(e)")
                }) { try await database.startLiveCampaign(record, live: live, capacity: capacity, budget: campaign.budget) }
        } catch let error as LeaseLost {
            lease.lost(error)
            throw ClusterError("this coordinator has lost its lease and is stepping down; the campaign did not go live")
        }
        // Workers that join from now on hold them too (every assignment names them).
        liveFeatures = extras
        wentLive = true
        await keepLiveLeases()
        await tellWorkersLiveChanged()
        await audit(caller, action: "campaign live start", target: "\(campaign.name) run \(run)", outcome: replaced.map { "ok: replaces run \($0)" } ?? "ok")
        logger.notice("live campaign started", metadata: ["run": "\(run)", "campaign": "\(campaign.name)", "tier_cuts": "\(tiers.cuts)",
                                                          "replaced": "\(replaced.map(String.init) ?? "-")"])
        var object: [String: Any] = ["run_id": run, "campaign": campaign.name, "tier_cuts": tiers.cuts, "max_trigger_age_seconds": request.maxTriggerAgeSeconds]
        object["replaced_run"] = replaced ?? NSNull()
        return Self.json(object)
    }

    /// Ends the live campaign: workers stop deciding triggers (a write of theirs after this is
    /// refused), and its run's summary is written.
    /// - Returns: the run's summary (JSON); `{"run_id": null}` when no campaign was live.
    public distributed func stopLiveCampaign() async throws -> String {
        let caller = ClusterActorSystem.caller
        let run: Int64?
        do {
            run = try await database.stopLiveCampaign()
        } catch let error as LeaseLost {
            lease.lost(error)
            throw ClusterError("this coordinator has lost its lease and is stepping down; the live campaign was not stopped")
        }
        guard let run else { return "{\"run_id\": null}" }
        await tellWorkersLiveChanged()
        await audit(caller, action: "campaign live stop", target: "run \(run)", outcome: "ok")
        logger.notice("live campaign stopped", metadata: ["run": "\(run)"])
        return try await database.run { c in try ClusterDatabase.liveSummary(c, run: run) }
    }

    /// The live campaign and its run's totals so far (JSON); `{"run_id": null}` when none is live.
    public distributed func liveCampaignStatus() async throws -> String {
        try await database.liveCampaignStatus() ?? "{\"run_id\": null}"
    }

    /// One round of leasing (`LiveQuotas`): members low on capacity or budget get more, workers no
    /// longer members give back what they did not spend. Called every `liveLeaseInterval`.
    func keepLiveLeases() async {
        let names = memberWorkers().map(\.name), waitingFor = awaited
        do {
            try await lease.held()
            let changed = try await database.leaseLiveQuotas(members: names, keeping: waitingFor) { live in
                // The dearest offer is the budget's smallest useful chunk.
                let campaign = try? Campaign.check(Array(live.config.utf8), source: "campaign_live")
                return ["budget": campaign?.offers.map(\.cost).max() ?? 1]
            }
            if !changed.isEmpty {
                logger.debug("live campaign leases", metadata: ["changed": "\(changed.map { "\($0.node)/\($0.resource)=\($0.granted)" })"])
            }
        } catch let error as LeaseLost {
            lease.lost(error)
        } catch {
            logger.warning("could not lease the live campaign's capacity and budget", metadata: ["error": "\(error)"])
        }
    }

    /// Tells every member to read the live campaign again now (best effort: they poll anyway).
    func tellWorkersLiveChanged() async {
        let term = term
        await withTaskGroup(of: Void.self) { group in
            for (_, worker) in memberWorkers() {
                group.addTask { try? await worker.liveCampaignChanged(term: term) }
            }
        }
    }

    static func json(_ object: [String: Any]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
