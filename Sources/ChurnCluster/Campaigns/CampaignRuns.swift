import ClusterSystem
import Distributed
import Foundation
import Logging
import Retention
import Uplift
import SubscriberProfiles
import WireFormat

/// `churngrid campaign run`: the file, and the job the operator expects it to decide over.
public struct CampaignRunRequest: Sendable, WireCodable {
    public var config: BulkArray<UInt8>
    /// The file's name (named in errors).
    public var source: String
    /// The job the operator reviewed: the run is refused unless it is the published one.
    public var job: Int64?
    /// The caller's name for this request (`--request-token`, the HTTP `Idempotency-Key`): asked
    /// again with the same token — after a timeout, a cut connection — the coordinator answers
    /// with the run that token already wrote instead of running again (nil: a token of its own).
    public var requestToken: String?

    public init(config: [UInt8], source: String, job: Int64?, requestToken: String? = nil) {
        self.config = BulkArray(config)
        self.source = source
        self.job = job
        self.requestToken = requestToken
    }

    /// A caller's token: 1–128 letters, digits and `._:-`.
    public static func validToken(_ token: String) -> Bool {
        !token.isEmpty && token.utf8.count <= 128 && token.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._:-".unicodeScalars.contains($0)) }
    }

    /// The token is written only when there is one: a coordinator one release older reads the
    /// request without it (and refuses one with it, which the CLI then sends again without).
    public func encode(to w: inout WireWriter) {
        w.write(config); w.write(source); w.write(job)
        if let requestToken { w.write(Optional(requestToken)) }
    }
    public init(from r: inout WireReader) throws(WireError) {
        config = try r.read(); source = try r.read(); job = try r.read()
        requestToken = r.remaining > 0 ? try r.read() : nil  // a caller one version older sends none
    }
}

/// Outcomes on the wire (`churngrid outcomes import`), column by column.
public struct OutcomeBatchWire: Sendable, WireCodable {
    public var source: String
    public var lines: BulkArray<Int32>
    public var ids: BulkArray<Int64>
    public var churned: BulkArray<UInt8>
    /// 0, 1, or 255 for unknown.
    public var accepted: BulkArray<UInt8>
    public var observedAtMillis: BulkArray<Int64>

    public init(_ b: OutcomeBatch) {
        source = b.source
        lines = BulkArray(b.lines); ids = BulkArray(b.ids); churned = BulkArray(b.churned)
        accepted = BulkArray(b.accepted.map { $0 < 0 ? 255 : UInt8($0) }); observedAtMillis = BulkArray(b.observedAtMillis)
    }

    public func encode(to w: inout WireWriter) {
        w.write(source); w.write(lines); w.write(ids); w.write(churned); w.write(accepted); w.write(observedAtMillis)
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        source = try r.read(); lines = try r.read(); ids = try r.read(); churned = try r.read(); accepted = try r.read(); observedAtMillis = try r.read()
        let n = ids.elements.count
        guard lines.elements.count == n, churned.elements.count == n, accepted.elements.count == n, observedAtMillis.elements.count == n else {
            throw WireError(offset: at, expected: "outcome columns of equal length (\(n))")
        }
        guard churned.elements.allSatisfy({ $0 <= 1 }), accepted.elements.allSatisfy({ $0 <= 1 || $0 == 255 }) else {
            throw WireError(offset: at, expected: "churned 0/1 and accepted 0/1/unknown")
        }
    }

    var batch: OutcomeBatch {
        OutcomeBatch(source: source, lines: lines.elements, ids: ids.elements, churned: churned.elements,
                     accepted: accepted.elements.map { $0 == 255 ? -1 : Int8($0) }, observedAtMillis: observedAtMillis.elements)
    }
}

extension CoordinatorActor {
    /// Shard calls of a campaign pass in flight per worker.
    static let campaignCallsPerWorker = 2
    /// The most outcomes one import carries (a bigger file is split by the client).
    public static let maxOutcomesPerImport = 5_000_000

    /// Decides a campaign over the whole base and records it (docs/retention.md): each shard ranks
    /// its subscribers' offers (value tiers from a first pass over every shard), then this
    /// coordinator applies the contact policy, draws the control group and fills capacity and
    /// budget in priority order, and writes the run, its actions and its contacts in one
    /// transaction. One run at a time.
    /// - Returns: the run's summary (JSON, the keys `campaign run --json` prints).
    public distributed func runCampaign(_ request: CampaignRunRequest) async throws -> String {
        let caller = ClusterActorSystem.caller
        let callerToken = request.requestToken
        let started = Date()
        let clock = ContinuousClock.now
        // Eligibility may read any feature of the schema in force.
        let (campaign, extras) = try await parseCampaign(request.config.elements, source: request.source)
        guard !campaignBusy else { throw CampaignRefusal(.conflict, "another campaign run is deciding; run this one when it has finished") }
        guard !erasing else { throw CampaignRefusal(.conflict, "subscribers are being erased; run the campaign when the erasure has finished") }
        guard !deploying else { throw CampaignRefusal(.conflict, "a model is being deployed; run the campaign when the deployment has finished") }
        campaignBusy = true
        defer { campaignBusy = false; campaignProgress.begin(.idle) }
        if let token = request.requestToken {
            guard CampaignRunRequest.validToken(token) else {
                throw CampaignRefusal(.invalidArgument, "request token: 1–128 letters, digits and '._:-'", field: "request_token")
            }
            // Asked again (its caller timed out, its connection was cut): the run it wrote, not another.
            if let earlier = try await database.campaignRun(requestToken: token, config: String(decoding: request.config.elements, as: UTF8.self), job: request.job) {
                guard earlier.same else {
                    throw CampaignRefusal(.conflict, "request token \(token) was used by run \(earlier.id) for another campaign file or job: "
                                          + "give this request a token of its own (a token names one intended run)")
                }
                logger.notice("campaign run asked again with its request token: the run it wrote is answered, nothing is decided again",
                              metadata: ["campaign": "\(campaign.name)", "request": "\(token)", "run": "\(earlier.id)"])
                return earlier.summary
            }
        }
        guard let published = try await database.publishedJob() else {
            throw CampaignRefusal(.conflict, "no job has been published yet: run `churngrid rescore --wait` first (a campaign decides over the published scores)")
        }
        if let asked = request.job, asked != published.id {
            throw CampaignRefusal(.conflict, "job \(asked) is not the published job (\(published.id)); a campaign decides over the published job — run it with --job \(published.id), or publish another job first")
        }
        guard published.modelVersion == model.version else {
            throw CampaignRefusal(.conflict, "the published job \(published.id) was scored with model \(published.modelVersion) but the cluster serves \(model.version): rescore first")
        }
        let clv = settings.clv
        if ContactPolicy(campaign: campaign).historyDays > settings.contactRetentionDays {
            logger.warning("the campaign's contact policy looks further back than contacts are kept; its caps undercount",
                           metadata: ["policy_days": "\(ContactPolicy(campaign: campaign).historyDays)", "contact_retention_days": "\(settings.contactRetentionDays)"])
        }
        logger.info("campaign run started", metadata: ["campaign": "\(campaign.name)", "job": "\(published.id)", "offers": "\(campaign.offers.count)"])

        // First pass: the distribution of values if retained → the tiers' cut values.
        let histograms = try await everyShardPass(what: "values", progress: campaignProgress) { actor in
            try ValueHistogram(encodedBytes: try await actor.campaignValues(CLVWire(clv)).elements)
        }
        var merged = ValueHistogram()
        for h in histograms { merged.merge(h.1) }
        let tiers = ValueTiers(histogram: merged, quantiles: campaign.valueTierCuts)

        // Every worker holds the schema features its eligibility reads before any shard decides,
        // and one that joins while it runs too (its assignments name them).
        runFeatures = extras
        defer { runFeatures = [] }
        if !extras.isEmpty { try await holdEverywhere(extras, for: campaign.name) }

        // Second pass: every shard's candidates.
        let request = CampaignDecisionRequest(campaign: request.config.elements, source: request.source, clv: CLVWire(clv), cuts: tiers.cuts)
        let shardCount = shardCount, version = model.version
        let parts = try await everyShardPass(what: "candidates", progress: campaignProgress) { actor in try await actor.campaignCandidates(request) }
        var scanned = 0, inCell = 0
        for (shard, part) in parts {
            guard part.shard == shard, part.modelVersion == version,
                  part.ids.elements.allSatisfy({ ShardKey.shard(of: $0, shardCount: shardCount) == shard }),
                  part.offers.elements.allSatisfy({ $0 < campaign.offers.count }) else {
                throw ClusterError("shard \(shard) answered with candidates of another shard, model or campaign")
            }
            scanned += part.scanned
            inCell += part.inCell
        }
        let decided = ContinuousClock.now

        // The contact policy, the control group and the fill.
        campaignProgress.begin(.fill(candidates: parts.reduce(0) { $0 + $1.1.count }))
        let policy = ContactPolicy(campaign: campaign)
        let now = Int64(started.timeIntervalSince1970)
        let rows = try await database.contactPolicyRows(contactsSince: now - Int64(policy.historyDays) * 86_400,
                                                        refusalsSince: now - Int64(max(1, campaign.contactPolicy.cooldownAfterRefusalDays)) * 86_400)
        let control = ControlGroup(campaign: campaign.name, fraction: campaign.controlFraction)
        let k = ShardCandidates.offersPerSubscriber
        var candidates = FillCandidates()
        candidates.reserve(parts.reduce(0) { $0 + $1.1.count })
        var located: [(part: Int, row: Int)] = []
        located.reserveCapacity(candidates.subscriberIDs.capacity)
        let allowed = ChannelVerdicts(all: .allowed)
        var options: [FillOption] = []
        for (p, (_, part)) in parts.enumerated() {
            for i in 0..<part.count {
                let id = part.ids.elements[i]
                var verdicts = allowed
                if rows.contacts[id] != nil || rows.refusals[id] != nil || rows.withheld[id] != nil || rows.doNotContact.contains(id) {
                    var history = ContactHistory()
                    for c in rows.contacts[id] ?? [] { if let channel = Channel(rawValue: c.channel) { history.record(channel, at: c.at) } }
                    if let refused = rows.refusals[id] { history.recordRefusal(at: refused) }
                    let withheld = ChannelSet((rows.withheld[id] ?? []).compactMap { Channel(rawValue: $0) })
                    verdicts = policy.verdicts(history: history, permissions: ContactPermissions(doNotContact: rows.doNotContact.contains(id), withheld: withheld), now: now)
                }
                options.removeAll(keepingCapacity: true)
                for j in 0..<k {
                    let offer = Int(part.offers.elements[k * i + j])
                    guard offer >= 0 else { continue }
                    options.append(FillOption(offer: offer, expectedValue: Double(part.expectedValues.elements[k * i + j]),
                                              verdict: verdicts[campaign.offers[offer].channel]))
                }
                let band = Retention.RiskBand(rawValue: part.bands.elements[i]) ?? .low
                candidates.append(subscriberID: id, tier: Int(part.tiers.elements[i]), band: band, isControl: control.contains(id), options: options)
                located.append((p, i))
            }
        }
        let fill = CampaignFill.fill(candidates, campaign: campaign)

        // The actions: both arms, with the offer each had (or would have had).
        var actions: [CampaignActionRow] = []
        actions.reserveCapacity(fill.summary.treatment + fill.summary.control)
        for (c, decision) in fill.decisions.enumerated() {
            let offerIndex: Int, treated: Bool
            switch decision {
            case .treatment(let o): (offerIndex, treated) = (o, true)
            case .control(let o): (offerIndex, treated) = (o, false)
            default: continue
            }
            let (p, i) = located[c]
            let part = parts[p].1
            let offer = campaign.offers[offerIndex]
            var ev: Float = 0
            for j in 0..<k where Int(part.offers.elements[k * i + j]) == offerIndex { ev = part.expectedValues.elements[k * i + j] }
            let reasonColumns = (0..<3).map { Int(part.reasons.elements[3 * i + $0]) }.filter { $0 >= 0 && $0 < FeatureCatalogue.count }
            let values = (0..<3).map { part.reasonValues.elements[3 * i + $0] }
            let reasons = TopReasons(reasonColumns)
            let script = offer.channel.isCall
                ? CallScript.text(offer: offer, reasons: reasons) { f in
                    (0..<3).first { Int(part.reasons.elements[3 * i + $0]) == f }.map { Double(values[$0]) } ?? .nan
                }
                : nil
            let region = Double(part.regions.elements[i])
            let sendAfter = policy.earliestSend(offer.channel, region: region < 0 ? .nan : region, at: now)
            actions.append(CampaignActionRow(
                subscriberID: part.ids.elements[i], treated: treated, offerID: offer.id, channel: offer.channel.rawValue, cost: Float(offer.cost),
                priority: Int32(clamping: fill.priority[c] + 1), expectedValue: ev, probability: part.probabilities.elements[i],
                clv: part.clv.elements[i], tier: campaign.tierName(Int(part.tiers.elements[i])),
                band: (Retention.RiskBand(rawValue: part.bands.elements[i]) ?? .low).wireName,
                reasons: reasonColumns.map { FeatureCatalogue.names[$0] }, script: script, sendAfterMillis: sendAfter * 1000))
        }
        let summary = fill.summary
        let timings = (decide: seconds(decided - clock), total: { seconds(ContinuousClock.now - clock) })
        let name = campaign.name, modelVersion = version, jobID = published.id
        let (scannedAll, inCellAll) = (scanned, inCell)
        var record = CampaignRunRecord(
            campaign: name, config: String(decoding: request.campaign.elements, as: UTF8.self), jobID: jobID, modelVersion: modelVersion,
            startedMillis: Int64(started.timeIntervalSince1970 * 1000), createdBy: Self.callerName(caller),
            summary: { id, dropped in
                let s = summary.removing(dropped)
                return Self.runSummaryJSON(run: id, campaign: name, job: jobID, model: modelVersion, scanned: scannedAll, inCell: inCellAll, summary: s,
                                           perChannel: s.perChannel, perCell: s.perCell, seconds: nil)
            })
        if let token = callerToken { record.requestToken = token }
        let runID: Int64
        let dropped: [CampaignActionRow]
        do {
            // Written again under the same request token: a try cut off at COMMIT that committed
            // after all is found (`writeCampaignRun`), so the caller is told one run and its
            // contacts are written once.
            let liveSince = rows.readAtMillis
            campaignProgress.begin(.writing(actions: actions.count))
            (runID, dropped) = try await writingAgainWhileUnavailable(
                "the campaign run's write waits for it (an earlier try that committed is found, not written again)",
                metadata: ["campaign": "\(name)", "request": "\(record.requestToken)"],
                givingUp: { [record] e in
                    CampaignRefusal(.outcomeUnknown, "campaign \(name): PostgreSQL did not take the run within \(settings.databaseDeadline); whether a cut-off try "
                                    + "was written is known once PostgreSQL ends it — request token \(record.requestToken) (campaign_runs.request_token). "
                                    + "Ask again with that token (--request-token, or the Idempotency-Key header): never without it, or subscribers may be contacted twice: \(e)")
                }) { [record] in try await database.writeCampaignRun(record, actions: actions, liveSince: liveSince) }
        } catch let error as LeaseLost {
            lease.lost(error)
            throw ClusterError("this coordinator has lost its lease and is stepping down; nothing of the run was written")
        }
        if !dropped.isEmpty {
            logger.notice("subscribers the live campaign decided for while the run decided were left out of it",
                          metadata: ["run": "\(runID)", "actions": "\(dropped.count)"])
        }
        let written = summary.removing(dropped)
        await audit(caller, action: "campaign run", target: "\(name) run \(runID)", outcome: "ok: \(written.treatment) treatment, \(written.control) control")
        logger.info("campaign run recorded", metadata: [
            "run": "\(runID)", "campaign": "\(name)", "eligible": "\(written.eligible)", "treatment": "\(written.treatment)",
            "control": "\(written.control)", "suppressed": "\(written.suppressedByPolicy)", "decide_seconds": "\(timings.decide)",
            "seconds": "\(timings.total())",
        ])
        return Self.runSummaryJSON(run: runID, campaign: name, job: jobID, model: modelVersion, scanned: scanned, inCell: inCell, summary: written,
                                   perChannel: written.perChannel, perCell: written.perCell, seconds: timings.total())
    }

    /// One call per shard to its ready owner, `campaignCallsPerWorker` per worker at a time; a
    /// shard whose call fails is asked again (its owner may have changed) up to three times.
    func everyShardPass<T: Sendable>(what: String, of owner: String = "campaign",
                                     otherwise: String = "nothing was written — run it again once `churngrid status` shows every shard ready",
                                     progress: CampaignProgress? = nil,
                                     _ call: @escaping @Sendable (ShardActor) async throws -> T) async throws -> [(Int, T)] {
        var results: [Int: T] = [:]
        var failures: [Int: String] = [:]
        for attempt in 0..<3 {
            let (owners, missing) = readyOwners()
            if attempt == 0 { progress?.begin(.pass(what), shards: owners.count + missing.count) }
            let pending = owners.filter { results[$0.shard] == nil }
            if pending.isEmpty && missing.allSatisfy({ results[$0] != nil }) { break }
            if attempt > 0 { try await Task.sleep(for: .milliseconds(500)) }
            let system = actorSystem
            let timeout = settings.rescoreTimeout
            let byNode = Dictionary(grouping: pending, by: { $0.node })
            let answers = await withTaskGroup(of: [(Int, Result<T, any Error>)].self) { group in
                for (node, shards) in byNode {
                    let lanes = Self.campaignCallsPerWorker
                    for lane in 0..<lanes {
                        let mine = shards.enumerated().filter { $0.offset % lanes == lane }.map(\.element.shard)
                        group.addTask {
                            var out: [(Int, Result<T, any Error>)] = []
                            for shard in mine {
                                do {
                                    let actor = try ShardActor.resolve(shard: shard, on: node, using: system)
                                    out.append((shard, .success(try await ClusterActorSystem.$callTimeout.withValue(timeout) { try await call(actor) })))
                                    progress?.shardAnswered()
                                } catch {
                                    out.append((shard, .failure(error)))
                                }
                            }
                            return out
                        }
                    }
                }
                var all: [(Int, Result<T, any Error>)] = []
                for await part in group { all.append(contentsOf: part) }
                return all
            }
            for (shard, result) in answers {
                switch result {
                case .success(let value): results[shard] = value; failures[shard] = nil
                case .failure(let error):
                    // A refusal that is not about the node (a bad campaign) will not change: stop now.
                    if let e = error as? ClusterError { throw ClusterError("shard \(shard): \(e)") }
                    failures[shard] = "\(error)"
                }
            }
            if !failures.isEmpty {
                logger.warning("\(owner) pass: some shards did not answer; asking again", metadata: ["pass": "\(what)", "shards": "\(failures.count)", "attempt": "\(attempt + 1)"])
            }
        }
        let missing = (0..<shardCount).filter { results[$0] == nil }
        guard missing.isEmpty else {
            let why = missing.prefix(3).map { "shard \($0): \(failures[$0] ?? "no ready worker")" }.joined(separator: "; ")
            throw ClusterError("the \(owner)'s \(what) pass could not reach \(missing.count) shards (\(why)); \(otherwise)")
        }
        return results.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    static func callerName(_ caller: Caller?) -> String {
        caller.map { $0.publicKey.isEmpty && $0.credential == nil ? $0.node.name : $0.name } ?? "local"
    }

    static func runSummaryJSON(run: Int64, campaign: String, job: Int64, model: String, scanned: Int, inCell: Int, summary: CampaignFill.Summary,
                               perChannel: [Channel: CampaignFill.ArmCounts], perCell: [String: CampaignFill.ArmCounts], seconds: Double?) -> String {
        var object: [String: Any] = [
            "run_id": run, "campaign": campaign, "job_id": job, "model_version": model, "scanned": scanned, "in_cell": inCell,
            "eligible": summary.eligible, "treatment": summary.treatment, "control": summary.control,
            "suppressed_by_policy": summary.suppressedByPolicy, "no_capacity": summary.noCapacity,
            "per_channel": Dictionary(uniqueKeysWithValues: perChannel.map { ($0.key.rawValue, ["treatment": $0.value.treatment, "control": $0.value.control]) }),
            "per_cell": perCell.mapValues { ["treatment": $0.treatment, "control": $0.control] },
            "budget_used": summary.budgetUsed, "expected_saved_clv": summary.expectedSavedCLV,
        ]
        if let seconds { object["seconds"] = seconds }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Where the campaign run in progress is, one line (`campaign run`'s progress); "" when none
    /// is deciding.
    public distributed func campaignRunProgress() -> String {
        campaignProgress.line
    }

    /// A run's treatment actions on one channel, as CSV (header first), for the channel's system.
    public distributed func exportCampaign(run: Int64, channel: String) async throws -> String {
        guard let c = Channel(rawValue: channel) else {
            throw CampaignRefusal(.invalidArgument, "channel '\(channel)': one of \(Channel.allCases.map(\.rawValue).joined(separator: ", "))", field: "channel")
        }
        return try await database.exportCampaignActions(run: run, channel: c.rawValue)
    }

    /// Stores outcomes (all or nothing; unknown subscribers are named with their lines).
    /// - Returns: [inserted, replaced].
    public distributed func importOutcomes(_ batch: OutcomeBatchWire) async throws -> [Int] {
        guard batch.ids.elements.count <= Self.maxOutcomesPerImport else {
            throw ClusterError("\(batch.source): \(batch.ids.elements.count) outcomes in one import; at most \(Self.maxOutcomesPerImport)")
        }
        // Its rows of subscribers being erased could land after the erasure's deletes.
        guard !erasing else { throw ClusterError("subscribers are being erased; import the outcomes when the erasure has finished") }
        outcomesImporting += 1
        defer { outcomesImporting -= 1 }
        let caller = ClusterActorSystem.caller
        let (inserted, replaced) = try await database.importOutcomes(batch.batch)
        await audit(caller, action: "outcomes import", target: batch.source, outcome: "ok: \(inserted) inserted, \(replaced) replaced")
        return [inserted, replaced]
    }
}

extension CoordinatorActor {
    /// A run's measured result (docs/retention.md): the outcomes observed within `windowDays`
    /// after the run, attributed to its arms. JSON with the keys `campaign report --json` prints.
    public distributed func campaignReport(run: Int64, windowDays: Int) async throws -> String {
        guard (1...3650).contains(windowDays) else { throw CampaignRefusal(.invalidArgument, "the observation window is 1 to 3650 days, not \(windowDays)", field: "window_days") }
        let rows = try await database.campaignRunForReport(run: run, windowDays: windowDays)
        var actions = CampaignActions()
        var outcomes = Outcomes()
        for line in rows.text.split(separator: "\n", omittingEmptySubsequences: true) {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard f.count == 12, let id = Int64(f[0]) else { throw ClusterError("campaign run \(run): an action row PostgreSQL returned could not be read") }
            actions.append(subscriberID: id, arm: f[1] == "t" ? .treatment : .control, offer: String(f[2]), channel: String(f[3]),
                           reason: f[8].isEmpty ? "none" : String(f[8]), cell: String(f[7]),
                           expectedValue: Double(f[5]) ?? 0, cost: Double(f[4]) ?? 0, clv: Double(f[6]) ?? 0)
            if f[9] != "\\N", let at = Int64(f[11]) {
                outcomes.append(subscriberID: id, churned: f[9] == "t", accepted: f[10] == "\\N" ? nil : f[10] == "t", observedAt: at)
            }
        }
        do {
            let report = try CampaignOutcome.report(runID: String(run), runAt: rows.startedMillis, actions: actions, outcomes: outcomes,
                                                    options: CampaignOutcome.Options(window: .seconds(Int64(windowDays) * 86_400)))
            return try report.json()
        } catch {
            throw ClusterError("campaign run \(run): \(error)")
        }
    }
}

extension CampaignFill.Summary {
    /// The totals without `rows` (actions left out of the run when it was written): each counts
    /// as suppressed by the contact policy instead (the live campaign contacted the subscriber).
    func removing(_ rows: [CampaignActionRow]) -> CampaignFill.Summary {
        var s = self
        for a in rows {
            let channel = Channel(rawValue: a.channel)
            if a.treated {
                s.treatment -= 1
                s.budgetUsed -= Double(a.cost)
                s.expectedSavedCLV -= Double(a.expectedValue) + Double(a.cost)
                if let channel { s.perChannel[channel]?.treatment -= 1 }
                s.perCell[a.tier + "/" + a.band]?.treatment -= 1
            } else {
                s.control -= 1
                if let channel { s.perChannel[channel]?.control -= 1 }
                s.perCell[a.tier + "/" + a.band]?.control -= 1
            }
            s.suppressedByPolicy += 1
        }
        s.perChannel = s.perChannel.filter { $0.value != CampaignFill.ArmCounts() }
        s.perCell = s.perCell.filter { $0.value != CampaignFill.ArmCounts() }
        return s
    }
}

extension CoordinatorActor {
    /// A campaign file parsed against the schema in force: its offers' eligibility may name any
    /// of its features. Returns it and the features it reads that the catalogue lacks.
    func parseCampaign(_ bytes: [UInt8], source: String) async throws -> (Campaign, [String]) {
        let names = WorkerActor.readableFeatures(schema: try await database.featureSchema().schema.names)
        let campaign: Campaign
        do {
            campaign = try Campaign.parse(bytes, source: source, eligibilityFeatures: names)
        } catch {
            throw CampaignRefusal(.invalidCampaign, "\(error)", field: error.field)
        }
        let catalogue = Set(FeatureCatalogue.names)
        return (campaign, campaign.eligibilityFeatureNames(among: names).filter { !catalogue.contains($0) })
    }

    /// Asks every worker to hold `features` (loading them on every shard it holds); all or nothing.
    func holdEverywhere(_ features: [String], for campaign: String) async throws {
        let term = term
        let held = await Self.onEveryWorker(memberWorkers(), timeout: Self.prepareTimeout) { try await $0.holdFeatures(features, term: term) }
        let failed = held.compactMap { name, result -> String? in
            if case .failure(let error) = result { return "\(name) (\(error))" }
            return nil
        }
        guard failed.isEmpty else {
            throw ClusterError("campaign \(campaign) not decided: \(failed.joined(separator: ", ")) could not load the features its eligibility reads (\(features.joined(separator: ", ")))")
        }
        logger.info("workers hold the campaign's eligibility features", metadata: ["campaign": "\(campaign)", "features": "\(features.joined(separator: ","))"])
    }
}
