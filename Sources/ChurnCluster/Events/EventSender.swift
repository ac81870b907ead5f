import ClusterSystem
import SubscriberEvents

/// What became of one event a producer sent (`ClusterClient.send(events:)`).
public struct EventAck: Sendable, Equatable {
    /// `accepted`, `duplicate` or `rejected`; `retry` when the deadline passed before the cluster
    /// settled it (the producer sends it again later: a resend is never applied twice).
    public var status: EventAckStatus
    /// The shard's sequence number of an accepted event.
    public var seq: Int64
    public var reason: RejectionReason?
}

/// Why events were sent again, by cause (`events replay --json`'s `resent_by_reason`): a producer
/// resending for a long time is diagnosed by what it was answered.
public struct EventResends: Sendable, Equatable, Codable {
    /// The worker no longer owned the shard (a move, a failover): resent with a fresh map.
    public var notOwner = 0
    /// The worker's queue was full: resent after the delay it asked for.
    public var busy = 0
    /// The outcome was unknown (the database went away mid-write, the shard replays its log).
    public var retry = 0
    /// The call failed: the worker could not be reached or died mid-call.
    public var unreachable = 0
    /// The map named no ready owner for the shard (a move in progress).
    public var noOwner = 0
    /// A worker answered for other events than it was sent.
    public var misanswered = 0

    public init() {}

    /// Every resend.
    public var total: Int { notOwner + busy + retry + unreachable + noOwner + misanswered }

    public static func += (a: inout EventResends, b: EventResends) {
        a.notOwner += b.notOwner; a.busy += b.busy; a.retry += b.retry
        a.unreachable += b.unreachable; a.noOwner += b.noOwner; a.misanswered += b.misanswered
    }

    enum CodingKeys: String, CodingKey {
        case busy, retry, unreachable, misanswered
        case notOwner = "not_owner"
        case noOwner = "no_owner"
    }
}

/// Sends events straight to the workers owning their shards, with the cached shard map (as
/// queries go): one `ingest` call per worker per batch of up to `EventBatch.maxCount`, all
/// workers at once. Events a worker does not own (the map moved) go again with a fresh map; a busy
/// worker's events wait the delay it asks for; events whose outcome is unknown (a worker died, the
/// database went away mid-write) are resent, and come back `duplicate` if they had been logged.
struct EventSender {
    let system: ClusterActorSystem
    var router: ScoreRouter
    /// A router over the coordinator that leads now, when the one known stopped answering.
    let reconnect: @Sendable () async throws -> ScoreRouter

    mutating func send(_ events: [SubscriberEvent], deadline: Duration) async throws -> (acks: [EventAck], resends: EventResends) {
        var acks = [EventAck](repeating: EventAck(status: .retry, seq: 0, reason: nil), count: events.count)
        var pending = Array(events.indices)
        var resent = EventResends()
        let end = ContinuousClock.now + deadline
        var refresh = false
        var pause: Duration = .zero
        while !pending.isEmpty {
            if pause > .zero {
                guard ContinuousClock.now + pause < end else { break }
                try await Task.sleep(for: pause)
            }
            guard ContinuousClock.now < end else { break }
            let table: Routing
            do {
                table = try await router.routing(refresh: refresh)
            } catch {
                // The coordinator is away (restarting, or another took over): workers keep taking
                // events meanwhile; the map comes from whichever coordinator leads next.
                if let fresh = try? await reconnect() { router = fresh }
                refresh = true
                pause = .milliseconds(250)
                continue
            }
            refresh = false
            pause = .zero
            var byNode: [NodeID: [Int]] = [:]
            var homeless: [Int] = []
            for i in pending {
                let shard = table.map.shard(of: events[i].subscriberID)
                if let node = table.node(serving: shard) { byNode[node, default: []].append(i) } else { homeless.append(i) }
            }
            let system = system
            let answers = await withTaskGroup(of: ([Int], Result<EventAcks, Error>).self) { group in
                for (node, indices) in byNode {
                    for start in stride(from: 0, to: indices.count, by: EventBatch.maxCount) {
                        let part = Array(indices[start..<min(start + EventBatch.maxCount, indices.count)])
                        let batch = EventBatch(part.map { events[$0] }, shards: part.map { Int32(table.map.shard(of: events[$0].subscriberID)) })
                        group.addTask {
                            do {
                                let worker = try WorkerActor.resolve(id: ActorID(node: node, name: WorkerActor.name), using: system)
                                // A slow acknowledgement (a loaded worker or database) is waited for
                                // up to the send's deadline rather than the default call timeout:
                                // resending it would only come back a duplicate. A dead worker still
                                // fails the call as soon as the transport finds it unreachable.
                                let wait = max(end - ContinuousClock.now, .seconds(1))
                                return (part, .success(try await ClusterActorSystem.$callTimeout.withValue(wait) { try await worker.ingest(batch) }))
                            } catch {
                                return (part, .failure(error))
                            }
                        }
                    }
                }
                var all: [([Int], Result<EventAcks, Error>)] = []
                for await answer in group { all.append(answer) }
                return all
            }
            var next: [Int] = homeless
            resent.noOwner += homeless.count
            if !homeless.isEmpty {
                refresh = true
                pause = max(pause, .milliseconds(50))
            }
            for (part, result) in answers {
                switch result {
                case .failure:
                    // The worker could not be reached or died mid-call: the outcome is unknown.
                    next += part
                    resent.unreachable += part.count
                    refresh = true
                    pause = max(pause, .milliseconds(100))
                case .success(let a) where a.count == part.count:
                    for (k, i) in part.enumerated() {
                        let status = a.status(k)
                        switch status {
                        case .accepted, .duplicate, .rejected:
                            acks[i] = EventAck(status: status, seq: a.seqs.elements[k], reason: a.reason(k))
                        case .notOwner:
                            next.append(i)
                            resent.notOwner += 1
                            refresh = true
                            pause = max(pause, .milliseconds(5))
                        case .busy:
                            next.append(i)
                            resent.busy += 1
                            pause = max(pause, .milliseconds(Int64(min(max(a.retryAfterMillis, 1), 5_000))))
                        case .retry:
                            next.append(i)
                            resent.retry += 1
                            pause = max(pause, .milliseconds(20))
                        }
                    }
                case .success:
                    next += part  // a worker that answers for other events than it was sent
                    resent.misanswered += part.count
                    refresh = true
                }
            }
            pending = next
        }
        return (acks, resent)
    }
}

extension ScoreRouter {
    /// Sends events to the workers owning their subscribers (see `EventSender`): what the
    /// coordinator's HTTP API uses (`POST /v1/events`).
    public func send(events: [SubscriberEvent], deadline: Duration) async throws -> (acks: [EventAck], resent: Int) {
        var sender = EventSender(system: system, router: self, reconnect: { self })
        let (acks, resent) = try await sender.send(events, deadline: deadline)
        return (acks, resent.total)
    }
}
