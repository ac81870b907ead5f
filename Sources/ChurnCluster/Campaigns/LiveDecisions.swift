import Dispatch
import Foundation
import Logging
import Metrics
import Postgres
import Retention
import SubscriberProfiles
import Synchronization

/// A fired trigger on its way to the live campaign's decision, with the profile it fired on.
struct LiveInput: Sendable {
    let trigger: FiredTrigger
    let shard: Int
    /// The subscriber's profile after the event (catalogue order).
    let profile: [Float]
    /// When it first found its lease with no room (ms since 1970; nil: not yet): it waits
    /// `LiveDecisions.leaseWait` from then, however long it queued before.
    var drySince: Int64? = nil
}

/// A worker's real-time retention decisions (docs/retention.md, "Real time"): the event thread
/// hands over the triggers its owned shards fire (after the events are logged and applied, so an
/// acknowledgement never waits for a decision); this thread decides each with the live campaign
/// (`LiveDecider`) against the contact state of the worker's owned shards, held in memory, and the
/// capacity and budget the coordinator leased to it, and records the decided ones in one
/// PostgreSQL transaction per group (`churngrid_live_decide`), which checks the lease, consent,
/// the do-not-contact list and that the subscriber has no action in the run yet.
///
/// Exactly once: a subscriber gets at most one action per live run, whichever trigger comes
/// first. Triggers that fired on a worker that died before recording them fire again when the new
/// owner replays the shard's log, and are decided there (replayed ones already recorded come back
/// 'already'). Triggers received longer ago than the campaign's `max_trigger_age_seconds`, or
/// before it went live, are not decided.
///
/// The contact state is loaded per owned shard when the campaign goes live or a shard is taken
/// over, and again whenever a batch run or an outcomes import changed it (the live campaign's
/// `contact_generation`; a write with an older generation is refused as stale and decided again
/// after the reload).
final class LiveDecisions: @unchecked Sendable {
    // @unchecked: `inbox` is a Mutex; everything else is touched only on this object's thread.
    private struct Inbox {
        var inputs: [LiveInput] = []
        /// The triggers this thread holds undecided (taken from `inputs`, waiting to be tried
        /// again or for room): set under the lock as they are taken, so a trigger is always in
        /// `inputs` or here until it is decided.
        var inFlight: [LiveInput] = []
        var owned: Set<Int> = []
        var poked = false
        var stopped = false
        /// Subscribers erased (`forget`) not yet dropped from what the thread holds; `erasedRound`
        /// counts the calls, `forgotten` the last one the thread has applied.
        var erased: Set<Int64> = []
        var erasedRound = 0
        var forgotten = 0
    }

    /// The live campaign as this worker runs it.
    private struct Live {
        let record: LiveCampaignRecord
        let decider: LiveDecider
        var room: [String: Double] = [:]
        /// The campaign has capacity or budget not leased to any worker yet: a dry lease will be
        /// topped up from it, so a trigger waits longer for that (`leaseWaitUnleased`).
        var unleased = true
    }

    /// Triggers waiting at most (beyond them, the oldest are dropped: a replay of the log would
    /// not bring them back either, but a worker that far behind has no real-time to keep).
    static let maxWaiting = 100_000
    /// How often the live campaign's row and this worker's leases are read.
    static let pollInterval: Duration = .seconds(1)

    private let inbox = Mutex(Inbox())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let postgresURL: String
    private let node: String
    private let logger: Logger
    private let shardCountBox = Atomic(0)
    /// The extra columns the worker's profiles hold after the catalogue's (a profile handed over
    /// has them in this order): what the live campaign's eligibility may name.
    private let extraLayout = Mutex<[String]>([])

    private var connection: PostgresConnection?
    private var live: Live?
    private var contacts = ShardContactState()
    private var loadedShards: Set<Int> = []
    private var owned: Set<Int> = []
    private var retry: [LiveInput] = []
    private var lastPoll: ContinuousClock.Instant?
    private var pollFailed = false
    /// Triggers whose lease had no room, waiting for the coordinator's next top-up (at most `leaseWait`).
    private var waitingForRoom: [LiveInput] = []
    /// How long a trigger waits for its lease to be topped up before it is dropped as `no_capacity`
    /// once the campaign has leased out all it has (`leaseWaitUnleased` while it has not),
    /// counted from when it first found the lease dry (a lease round runs every 0.5 s: a dry lease
    /// is refilled within one while the total lasts; counted from the trigger's firing, a backlog
    /// on a loaded machine would drop triggers the budget still had room for).
    static let leaseWait: Int64 = 2_000
    /// How long a trigger waits while the campaign still has room that no worker has been leased
    /// (the coordinator's next rounds give it out; a loaded machine can delay them by seconds).
    static let leaseWaitUnleased: Int64 = 30_000
    private var roomRead: ContinuousClock.Instant?

    /// Counters for `status` (`EventStats.live…`).
    let decided = Atomic(0)
    let skipped = Atomic(0)
    let runID = Atomic<Int64>(0)

    static let arpuColumn = FeatureCatalogue.names.firstIndex(of: "arpu_30d")
    static let regionColumn = FeatureCatalogue.names.firstIndex(of: "region")
    static let featureIndex: [String: Int] = Dictionary(uniqueKeysWithValues: FeatureCatalogue.names.enumerated().map { ($1, $0) })

    /// An error that says nothing about the rows (a lock or statement timeout, a deadlock, a
    /// serialization failure, the server short of resources): the same write is tried again later.
    static func isTransient(_ error: PostgresError) -> Bool {
        guard let state = error.sqlState else { return false }
        return ["55P03", "57014", "40P01", "40001"].contains(state) || state.hasPrefix("53")
    }

    /// A value as the `real` columns take it (a profile's extreme revenue must not fail the write).
    static func real(_ v: Double) -> Double { v.isNaN ? 0 : min(max(v, -3e38), 3e38) }

    init(postgresURL: String, node: String, logger: Logger) {
        self.postgresURL = postgresURL
        self.node = node
        self.logger = logger
        let thread = Thread { [self] in loop() }
        thread.name = "cg-live"
        thread.start()
    }

    var shardCount: Int {
        get { shardCountBox.load(ordering: .relaxed) }
        set { shardCountBox.store(newValue, ordering: .relaxed) }
    }

    /// Hands over triggers fired on owned shards (`owned`: every shard the worker owns now).
    func submit(_ inputs: [LiveInput], owned: Set<Int>) {
        inbox.withLock { box in
            box.owned = owned
            box.inputs += inputs
            if box.inputs.count > Self.maxWaiting {
                let dropped = box.inputs.count - Self.maxWaiting
                box.inputs.removeFirst(dropped)
                Counter(label: "churngrid_live_decisions_total", dimensions: [("outcome", "dropped")]).increment(by: dropped)
            }
        }
        wake.signal()
    }

    /// Whether a trigger fired on `shard` still waits for its decision to be recorded (a profile
    /// snapshot taken now would let a worker that loads it skip the event that fired it, so the
    /// trigger would be lost with this worker).
    func undecided(shard: Int) -> Bool {
        inbox.withLock { box in box.inFlight.contains { $0.shard == shard } || box.inputs.contains { $0.shard == shard } }
    }

    /// The triggers fired on `shard` not decided yet: what a worker the shard streams to decides
    /// (this one may still decide them too; the second is `already`).
    func undecidedTriggers(shard: Int) -> [FiredTrigger] {
        inbox.withLock { box in (box.inFlight + box.inputs).filter { $0.shard == shard }.map(\.trigger) }
    }

    /// Drops every trigger of `ids` (erased subscribers) from what waits for a decision, and waits
    /// until the thread has done so too: a decision it was making when this was called is recorded
    /// (or failed) before this returns, so the erasure's PostgreSQL phase, which follows, deletes
    /// it; none of theirs starts afterwards.
    /// - Returns: false when the thread did not get there within `timeout` (a decision waiting for
    ///   the database): the erasure must not go on to PostgreSQL.
    func forget(_ ids: Set<Int64>, timeout: Duration = .seconds(20)) -> Bool {
        guard !ids.isEmpty else { return true }
        // The thread holds in `inFlight` every trigger it has taken and not decided: when none is
        // of these subscribers, no decision of theirs is under way and there is nothing to wait for.
        let round = inbox.withLock { box -> Int? in
            box.inputs.removeAll { ids.contains($0.trigger.subscriberID) }
            guard box.inFlight.contains(where: { ids.contains($0.trigger.subscriberID) }) else { return nil }
            box.erased.formUnion(ids)
            box.erasedRound += 1
            return box.erasedRound
        }
        guard let round else { return true }
        wake.signal()
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if inbox.withLock({ $0.forgotten >= round || $0.stopped }) { return true }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return false
    }

    /// Reads the live campaign again now (the coordinator started or stopped one).
    /// The worker holds `layout` as extra columns from now on (it only grows).
    func hold(_ layout: [String]) {
        extraLayout.withLock { $0 = layout }
        poke()
    }

    func poke() {
        inbox.withLock { $0.poked = true }
        wake.signal()
    }

    func stop() {
        let first = inbox.withLock { box in
            defer { box.stopped = true }
            return !box.stopped
        }
        guard first else { return }
        wake.signal()
        finished.wait()
    }

    /// `input`, marked as waiting for room since it first found none, while it may still wait;
    /// nil once it has waited `leaseWait`.
    static func waiting(_ input: LiveInput, now: Int64, unleased: Bool) -> LiveInput? {
        var waiting = input
        let since = input.drySince ?? now
        waiting.drySince = since
        return now - since < (unleased ? leaseWaitUnleased : leaseWait) ? waiting : nil
    }

    /// Whether `campaign` has capacity or budget left that is not leased to any worker (`leased`:
    /// granted so far per resource, spent or not): enough for one more contact.
    static func hasUnleasedRoom(_ campaign: Campaign, leased: [String: Double]) -> Bool {
        if let budget = campaign.budget {
            let cheapest = campaign.offers.map(\.cost).min() ?? 0
            if budget - (leased["budget"] ?? 0) >= max(cheapest, 1e-9) { return true }
        }
        return campaign.capacity.contains { channel, total in Double(total) - (leased[channel.rawValue] ?? 0) >= 1 }
    }

    // MARK: The thread

    private func loop() {
        while true {
            // Triggers waiting (for a lease's top-up, or for the database) are tried again soon.
            _ = wake.wait(timeout: .now() + .milliseconds(retry.isEmpty ? Int(Self.pollInterval / .milliseconds(1)) : 250))
            // Taken as one step with the held ones listed in flight, so that a trigger is always in
            // `inputs` or `inFlight` until it is decided; erased subscribers' dropped first.
            let (inputs, ownedNow, poked, stopped) = inbox.withLock { box in
                defer {
                    box.inputs.removeAll(keepingCapacity: true)
                    box.poked = false
                    box.erased = []
                    box.forgotten = box.erasedRound
                }
                if !box.erased.isEmpty {
                    let erased = box.erased
                    retry.removeAll { erased.contains($0.trigger.subscriberID) }
                    waitingForRoom.removeAll { erased.contains($0.trigger.subscriberID) }
                }
                box.inFlight = retry + waitingForRoom + box.inputs
                return (box.inputs, box.owned, box.poked, box.stopped)
            }
            if !inputs.isEmpty { owned = ownedNow }
            // A change the coordinator announced is read before deciding; the periodic reads come
            // after the decisions, off their path.
            let due = lastPoll.map({ ContinuousClock.now - $0 >= Self.pollInterval }) ?? true
            if poked || (due && live == nil) { poll() }
            let work = retry + inputs
            if !retry.isEmpty && live != nil { try? readRoom() }  // what waited for room decides with the leases as they are now
            retry = []
            if !work.isEmpty { decide(work) }
            if !poked && due && live != nil { poll() }
            if live != nil, roomRead.map({ ContinuousClock.now - $0 > .milliseconds(200) }) ?? true { try? readRoom() }
            retry += waitingForRoom
            waitingForRoom = []
            let waiting = retry
            inbox.withLock { $0.inFlight = waiting }
            if stopped {
                // What is still waiting gets one more chance (the node is stopping: no waiting for a database away).
                if !retry.isEmpty { decide(retry) }
                if !retry.isEmpty { logger.warning("live decisions not recorded at stop; the shard's next owner decides them if it replays them", metadata: ["triggers": "\(retry.count)"]) }
                break
            }
        }
        connection = nil
        finished.signal()
    }

    private func db() throws -> PostgresConnection {
        if let c = connection, c.isOpen { return c }
        connection = nil
        let c = try PostgresConnection(url: postgresURL)
        // A worker that dies while its write waits must not have it land later: the server checks
        // the connection every second while a statement runs and cancels it when the worker is gone.
        try c.execute("SET client_min_messages TO warning; SET lock_timeout TO '30s'; SET statement_timeout TO '60s'; SET client_connection_check_interval TO '1s'")
        connection = c
        return c
    }

    /// Reads the live campaign (started, replaced, stopped, contact state changed) and the leases.
    private func poll() {
        lastPoll = .now
        pollFailed = true
        defer { if pollFailed { lastPoll = .now - Self.pollInterval + .milliseconds(200) } }  // failed: again soon
        do {
            let c = try db()
            guard let record = try LiveCampaignStore.current(c) else {
                if let live {
                    logger.notice("the live campaign ended", metadata: ["run": "\(live.record.runID)"])
                }
                live = nil
                runID.store(0, ordering: .relaxed)
                pollFailed = false
                return
            }
            if live?.record.runID != record.runID {
                // Eligibility on a schema feature reads the extra columns the coordinator had this
                // worker hold before the campaign went live.
                let campaign = try Campaign.parse(Array(record.config.utf8), source: "campaign_live (run \(record.runID))",
                                                  eligibilityFeatures: FeatureCatalogue.names + extraLayout.withLock { $0 })
                let clv = try CLVSettings(marginRate: record.clv.marginRate, monthlyDiscount: record.clv.monthlyDiscount, horizonMonths: record.clv.horizonMonths)
                live = Live(record: record, decider: LiveDecider(campaign: campaign, tiers: ValueTiers(cuts: record.tierCuts), clv: clv))
                loadedShards = []
                contacts = ShardContactState()
                runID.store(record.runID, ordering: .relaxed)
                logger.notice("deciding triggers with the live campaign", metadata: ["run": "\(record.runID)", "campaign": "\(record.campaign)"])
            } else if contacts.generation != record.generation {
                loadedShards = []  // reloaded before the next decisions
            }
            try readRoom()
            pollFailed = false
        } catch {
            if (error as? PostgresError)?.isUnavailable ?? false { connection = nil }
            logger.warning("could not read the live campaign", metadata: ["error": "\(error)"])
        }
    }

    /// Reads what this worker's leases have left.
    private func readRoom() throws {
        guard let run = live?.record.runID else { return }
        let (left, leased) = try LiveCampaignStore.room(try db(), run: run, node: node)
        live?.room = left
        if let campaign = live?.decider.campaign { live?.unleased = Self.hasUnleasedRoom(campaign, leased: leased) }
        roomRead = .now
    }

    /// Loads the contact state of the owned shards not loaded yet (all of them after a change).
    private func ensureContacts() throws {
        guard let live, shardCount > 0 else { return }
        let missing = owned.subtracting(loadedShards)
        guard !missing.isEmpty else { return }
        let since = Int64(Date().timeIntervalSince1970) - Int64(live.decider.policy.historyDays + 1) * 86_400
        let started = ContinuousClock.now
        var state = try LiveCampaignStore.contactState(try db(), shards: missing.sorted(), shardCount: shardCount, since: since)
        if !loadedShards.isEmpty && state.generation != contacts.generation {
            // The state changed since the shards held were read: all of them are read again.
            state = try LiveCampaignStore.contactState(try db(), shards: owned.sorted(), shardCount: shardCount, since: since)
            contacts = state
            loadedShards = owned
        } else if loadedShards.isEmpty {
            contacts = state
            loadedShards = missing
        } else {
            contacts.histories.merge(state.histories) { _, new in new }
            contacts.withheld.merge(state.withheld) { _, new in new }
            contacts.doNotContact.formUnion(state.doNotContact)
            loadedShards.formUnion(missing)
        }
        logger.info("loaded the contact state of owned shards", metadata: ["shards": "\(missing.count)", "subscribers": "\(state.histories.count)",
                                                                          "generation": "\(state.generation)", "seconds": "\(ContinuousClock.now - started)"])
    }

    /// Decides and records `inputs`; what could not be recorded now (PostgreSQL away, stale
    /// contact state twice) waits for the next round.
    private func decide(_ inputs: [LiveInput]) {
        guard live != nil else {
            if pollFailed {
                retry = Array(inputs.suffix(Self.maxWaiting))  // not known yet whether a campaign is live
            } else {
                skipped.add(inputs.count, ordering: .relaxed)
            }
            return
        }
        var pending = inputs
        for _ in 0..<3 {
            do {
                try ensureContacts()
                pending = try decideOnce(pending)
                if pending.isEmpty { return }
                if live == nil {
                    // The run ended under the decisions: they go to the campaign live now, if any.
                    poll()
                    if live == nil {
                        if pollFailed { retry = Array(pending.suffix(Self.maxWaiting)) } else { skipped.add(pending.count, ordering: .relaxed) }
                        return
                    }
                } else {
                    // Stale: the contact state changed under the decisions; read it again.
                    loadedShards = []
                }
            } catch let error as PostgresError where !error.isUnavailable && !Self.isTransient(error) {
                // A statement the database refuses (not a lost connection): recorded one by one, so
                // one bad row cannot hold the others back forever.
                logger.warning("recording live decisions failed; recording them one by one", metadata: ["triggers": "\(pending.count)", "error": "\(error)"])
                pending = pending.flatMap { input -> [LiveInput] in
                    do { return try decideOnce([input]) } catch {
                        logger.error("a live decision could not be recorded; dropped", metadata: ["trigger": "\(input.trigger.triggerID)", "error": "\(error)"])
                        Counter(label: "churngrid_live_decisions_total", dimensions: [("outcome", "error")]).increment()
                        skipped.add(1, ordering: .relaxed)
                        return []
                    }
                }
                if pending.isEmpty { return }
            } catch {
                if !((error as? PostgresError).map(Self.isTransient) ?? false) { connection = nil }
                logger.warning("recording live decisions failed; they are decided again", metadata: ["triggers": "\(pending.count)", "error": "\(error)"])
                break
            }
        }
        retry = Array(pending.suffix(Self.maxWaiting))
        if !retry.isEmpty { Thread.sleep(forTimeInterval: 0.05) }  // a database away is not hammered
    }

    /// One round: decide, record, apply the statuses. Returns the inputs refused as stale.
    private func decideOnce(_ inputs: [LiveInput]) throws -> [LiveInput] {
        guard var live else { return [] }
        let waitingBefore = waitingForRoom.count
        let decider = live.decider
        let campaign = decider.campaign
        let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        let now = nowMillis / 1000
        let oldest = max(live.record.startedMillis, nowMillis - Int64(live.record.maxTriggerAgeSeconds) * 1000)
        var rows: [LiveActionRow] = []
        var sources: [LiveInput] = []
        var room = live.room
        var outcomes: [String: Int] = [:]
        for input in inputs {
            let t = input.trigger
            // Received before the campaign went live, or too long ago to act on in real time.
            guard t.firedAt >= oldest else {
                outcomes["too_old", default: 0] += 1
                continue
            }
            guard loadedShards.contains(input.shard) else {  // no longer owned here
                outcomes["not_owned", default: 0] += 1
                continue
            }
            let profile = input.profile
            func feature(_ c: Int) -> Double { c >= 0 && c < profile.count ? Double(profile[c]) : .nan }
            let reasons = TopReasons(t.reasons.filter { $0.contribution > 0 }.compactMap { Self.featureIndex[$0.feature] })
            let subject = LiveDecider.Subject(subscriberID: t.subscriberID, probability: t.probabilityAfter, reasons: reasons,
                                              arpu: Self.arpuColumn.map(feature) ?? .nan, region: Self.regionColumn.map(feature) ?? .nan)
            let id = t.subscriberID
            let permissions = ContactPermissions(doNotContact: contacts.doNotContact.contains(id), withheld: contacts.withheld[id] ?? [])
            let outcome = decider.decide(subject, feature: feature, history: contacts.histories[id] ?? ContactHistory(), permissions: permissions, now: now) { channel, cost in
                (campaign.capacity[channel] == nil || (room[channel.rawValue] ?? 0) >= 1) && (campaign.budget == nil || (room["budget"] ?? 0) >= cost)
            }
            switch outcome {
            case .action(let o, let arm, let ev, _, let sendAfter):
                let offer = campaign.offers[o]
                let facts = decider.facts(subject)
                if arm == .treatment {
                    if campaign.capacity[offer.channel] != nil { room[offer.channel.rawValue, default: 0] -= 1 }
                    if campaign.budget != nil { room["budget", default: 0] -= offer.cost }
                }
                let values = t.reasons.reduce(into: [Int: Double]()) { out, r in if let f = Self.featureIndex[r.feature] { out[f] = feature(f) } }
                rows.append(LiveActionRow(
                    subscriberID: id, treated: arm == .treatment, offerID: offer.id, channel: offer.channel.rawValue, cost: offer.cost,
                    expectedValue: Self.real(ev), probability: Self.real(t.probabilityAfter), clv: Self.real(facts.clv), tier: campaign.tierName(facts.tier), band: facts.band.wireName,
                    reasons: reasons.map { FeatureCatalogue.names[$0] },
                    script: offer.channel.isCall ? CallScript.text(offer: offer, reasons: reasons) { values[$0] ?? .nan } : nil,
                    sendAfterMillis: sendAfter * 1000, triggerID: t.triggerID))
                sources.append(input)
            case .noCell: outcomes["no_cell", default: 0] += 1
            case .noOffer: outcomes["no_offer", default: 0] += 1
            case .suppressed(let why): outcomes[why.wireName, default: 0] += 1
            case .noCapacity:
                if let waiting = Self.waiting(input, now: nowMillis, unleased: live.unleased) { waitingForRoom.append(waiting) } else { outcomes["no_capacity", default: 0] += 1 }
            }
        }
        var stale: [LiveInput] = []
        if !rows.isEmpty {
            let statuses = try LiveCampaignStore.record(try db(), run: live.record.runID, node: node, generation: contacts.generation, rows)
            for (i, status) in statuses.enumerated() {
                let row = rows[i]
                switch status {
                case .decided:
                    if row.treated, let channel = Channel(rawValue: row.channel) {
                        contacts.histories[row.subscriberID, default: ContactHistory()].record(channel, at: row.sendAfterMillis / 1000)
                        if campaign.capacity[channel] != nil { live.room[row.channel, default: 0] -= 1 }
                        if campaign.budget != nil { live.room["budget", default: 0] -= row.cost }
                    }
                    decided.add(1, ordering: .relaxed)
                case .stale:
                    stale.append(sources[i])
                    continue
                case .ended:
                    // Another run is live, or none: every input goes back (`decide` polls and retries).
                    self.live = nil
                    runID.store(0, ordering: .relaxed)
                    waitingForRoom.removeSubrange(waitingBefore...)
                    return inputs
                case .noCapacity, .noBudget:
                    if status == .noCapacity { live.room[row.channel] = 0 } else { live.room["budget"] = 0 }
                    if let waiting = Self.waiting(sources[i], now: nowMillis, unleased: live.unleased) {
                        waitingForRoom.append(waiting)
                        continue
                    }
                case .already, .doNotContact, .noConsent:
                    break
                }
                outcomes[status == .decided ? (row.treated ? "treatment" : "control") : status.rawValue, default: 0] += 1
            }
            self.live = live
        }
        for (outcome, n) in outcomes {
            if outcome != "treatment" && outcome != "control" { skipped.add(n, ordering: .relaxed) }
            Counter(label: "churngrid_live_decisions_total", dimensions: [("outcome", outcome)]).increment(by: n)
        }
        return stale
    }
}
