import Foundation
import Histogram
import SubscriberEvents
import Synchronization

/// `churngrid events replay`: streams an NDJSON file to the cluster at a rate (open loop: event k
/// is due at start + k / rate, and its acknowledgement latency counts from then, whether or not the
/// sender kept up), with up to `inFlight` sends outstanding. Lines that do not parse are counted by
/// reason and named with their line number; the stream goes on. While it runs it subscribes to the
/// workers' trigger feeds and times event → trigger from the event's due time.
public struct EventReplay {
    public struct Options: Sendable {
        /// Events per second; 0: as fast as the cluster takes them.
        public var rate: Double = 0
        /// Sends outstanding at most.
        public var inFlight = 16
        /// Events per send at most.
        public var chunk = 2_000
        /// At a rate, the sender wakes at most once per tick and sends every event then due in one
        /// send: waking for each event sent each in a call of its own (at 35,000 events/s, one
        /// call and one timer every 29 µs, which took the cores the cluster needed). An event sent
        /// late counts its lateness (latencies run from its due time). Zero: a wake-up per event.
        public var sendTick: Duration = .milliseconds(1)
        /// How long one send may keep resending its unsettled events.
        public var deadline: Duration = .seconds(120)
        /// Subscribe to the trigger feeds and time them.
        public var watchTriggers = true
        public init() {}
    }

    /// Percentiles in µs.
    public struct Percentiles: Sendable, Codable {
        public var p50: UInt64 = 0
        public var p99: UInt64 = 0
        public var p999: UInt64 = 0
        public var max: UInt64 = 0
        init(_ h: Histogram<UInt64>) {
            guard h.totalCount > 0 else { return }
            p50 = h.valueAtPercentile(50)
            p99 = h.valueAtPercentile(99)
            p999 = h.valueAtPercentile(99.9)
            max = h.max
        }
        public init() {}
    }

    /// The summary `replay --json` prints (keys as the issue names them).
    public struct Report: Sendable, Codable {
        public var events = 0
        public var accepted = 0
        public var duplicates = 0
        public var rejected = 0
        public var rejectedByReason: [String: Int] = [:]
        public var eventsPerSecond = 0.0
        public var triggers = 0
        public var ackUs = Percentiles()
        public var triggerUs = Percentiles()
        /// Sends repeated (not owner, busy, unknown outcome).
        public var resent = 0
        /// The same, by cause.
        public var resentByReason = EventResends()
        /// Events the cluster had not settled by the deadline (send them again: never applied twice).
        public var unsettled = 0
        /// Why the last send that left events unsettled failed (nil: none failed, or the cluster
        /// asked to retry until the deadline).
        public var unsettledReason: String?
        public var seconds = 0.0
        /// When the first event was due, wall clock (µs since 1970): event k was due at this plus
        /// k / rate (what a benchmark joins with times recorded elsewhere, e.g. in PostgreSQL).
        public var startedAtMicros: Int64 = 0
        /// At a rate, how often the sender woke at most (µs; nil without a rate).
        public var sendTickMicros: Int64?

        enum CodingKeys: String, CodingKey {
            case events, accepted, duplicates, rejected, triggers, resent, unsettled, seconds
            case unsettledReason = "unsettled_reason"
            case startedAtMicros = "started_at_us"
            case sendTickMicros = "send_tick_us"
            case rejectedByReason = "rejected_by_reason"
            case resentByReason = "resent_by_reason"
            case eventsPerSecond = "events_per_second"
            case ackUs = "ack_us"
            case triggerUs = "trigger_us"
        }
    }

    private struct Sent: Sendable {
        var acks: [EventAck]
        var resent: EventResends
        var due: [UInt64]
        var done: UInt64
        /// Each event's subscriber and (source, event id), to name a rejected one.
        var named: [(subscriber: Int64, source: String, eventID: String)] = []
        /// Why the send failed (nil: it did not).
        var failure: String? = nil
    }

    let client: ClusterClient
    let options: Options

    /// What a line the owning worker rejected is told: the subscriber and event it named.
    static func clusterRejection(_ reason: RejectionReason, _ event: (subscriber: Int64, source: String, eventID: String)?) -> String {
        guard let event else { return "rejected by the cluster" }
        let which = "event \(event.source)/\(event.eventID)"
        switch reason {
        case .unknownSubscriber: return "subscriber \(event.subscriber) has no profile in the cluster (\(which))"
        default: return "\(which) for subscriber \(event.subscriber) rejected by its owner"
        }
    }

    public init(client: ClusterClient, options: Options) {
        self.client = client
        self.options = options
    }

    /// Replays `file` (read to its end).
    /// - Parameters:
    ///   - onRejectedLine: each line that did not parse (or that the cluster rejected, with the
    ///     line number it came from).
    ///   - progress: called about once a second with the events sent so far.
    public func run(_ file: UnsafeMutablePointer<FILE>, onRejectedLine: @escaping @Sendable (EventRejection) -> Void,
                    progress: @escaping @Sendable (Int) -> Void = { _ in }) async throws -> Report {
        var report = Report()
        let triggerHistogram = Mutex(Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three))
        let triggerCount = Atomic(0)
        let dueTimes = Mutex(DueTimes())
        var feed: TriggerFeed?
        if options.watchTriggers {
            let feeds = try await client.eventStatus()
            feed = try TriggerFeed(system: client.system, feeds: feeds) { trigger, arrived in
                triggerCount.add(1, ordering: .relaxed)
                let key = EventKey(source: trigger.source, eventID: trigger.eventID, at: trigger.eventAt)
                if let due = dueTimes.withLock({ $0.times[key] }) {
                    _ = triggerHistogram.withLock { $0.record(max(1, (arrived &- min(arrived, due)) / 1000)) }
                }
            }
        }
        defer { feed?.stop() }

        var ackHistogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        let parser = EventParser()
        let start = DispatchTime.now().uptimeNanoseconds
        report.startedAtMicros = Int64((Date().timeIntervalSince1970 * 1e6).rounded())
        // Nanoseconds between events (0: as fast as possible), at most a day: a rate too small for a
        // finite gap would otherwise make the schedule NaN.
        let interval = options.rate > 0 ? min(1e9 / options.rate, 86_400e9) : 0
        let tick = QueryLoadGenerator.tickNanoseconds(options.sendTick)
        if interval > 0 { report.sendTickMicros = Int64(tick / 1000) }
        var lastWake: UInt64 = 0
        var lineNumber = 0, k = 0
        var chunk: [SubscriberEvent] = [], due: [UInt64] = [], lines: [Int] = []
        var lastProgress = start
        var lineBuffer: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(lineBuffer) }
        let client = client, deadline = options.deadline

        func merge(_ sent: Sent, lines: [Int]) {
            report.resent += sent.resent.total
            report.resentByReason += sent.resent
            if let failure = sent.failure { report.unsettledReason = failure }
            for (i, ack) in sent.acks.enumerated() {
                // A failed send counts too, timed to when it failed (no failure leaves the figures).
                _ = ackHistogram.record(max(1, (sent.done &- min(sent.done, sent.due[i])) / 1000))
                switch ack.status {
                case .accepted: report.accepted += 1
                case .duplicate: report.duplicates += 1
                case .rejected:
                    report.rejected += 1
                    let reason = ack.reason ?? .malformedJSON
                    report.rejectedByReason[reason.code, default: 0] += 1
                    onRejectedLine(EventRejection(reason: reason, line: lines[i], detail: Self.clusterRejection(reason, sent.named.indices.contains(i) ? sent.named[i] : nil)))
                default: report.unsettled += 1
                }
            }
        }

        try await withThrowingTaskGroup(of: (Sent, [Int]).self) { group in
            var outstanding = 0
            func flush() {
                guard !chunk.isEmpty else { return }
                let events = chunk, dueTimes2 = due, lineNumbers = lines
                if options.watchTriggers {
                    dueTimes.withLock { m in for (e, d) in zip(events, dueTimes2) { m.add(EventKey(e), d) } }
                }
                group.addTask {
                    do {
                        let (acks, resent) = try await client.sendCounting(events: events, deadline: deadline)
                        let named = events.map { (subscriber: $0.subscriberID, source: $0.source, eventID: $0.eventID) }
                        return (Sent(acks: acks, resent: resent, due: dueTimes2, done: DispatchTime.now().uptimeNanoseconds, named: named), lineNumbers)
                    } catch {
                        let none = [EventAck](repeating: EventAck(status: .retry, seq: 0, reason: nil), count: events.count)
                        return (Sent(acks: none, resent: EventResends(), due: dueTimes2, done: DispatchTime.now().uptimeNanoseconds, failure: "\(error)"), lineNumbers)
                    }
                }
                outstanding += 1
                chunk.removeAll(keepingCapacity: true)
                due.removeAll(keepingCapacity: true)
                lines.removeAll(keepingCapacity: true)
            }
            while getline(&lineBuffer, &capacity, file) > 0 {
                lineNumber += 1
                guard let lineBuffer else { break }
                let length = strlen(lineBuffer)
                let parsed = lineBuffer.withMemoryRebound(to: UInt8.self, capacity: length) { p in
                    var n = length
                    if n > 0 && p[n - 1] == 0x0A { n -= 1 }
                    return parser.parse(buffer: UnsafeBufferPointer(start: p, count: n), lineNumber: lineNumber)
                }
                switch parsed {
                case .blank: continue
                case .rejected(let r):
                    report.events += 1
                    report.rejected += 1
                    report.rejectedByReason[r.reason.code, default: 0] += 1
                    onRejectedLine(r)
                    continue
                case .event(let event):
                    report.events += 1
                    let scheduled = interval > 0 ? start &+ UInt64(min(Double(k) * interval, 1e18)) : DispatchTime.now().uptimeNanoseconds
                    k += 1
                    if interval > 0 {
                        let now = DispatchTime.now().uptimeNanoseconds
                        if scheduled > now {
                            flush()  // what is due goes now; this one waits for its time, and
                            // for a tick after the last wake-up (what falls due meanwhile goes with it)
                            let wake = QueryLoadGenerator.nextWake(due: scheduled, lastWake: lastWake, tick: tick)
                            try await Task.sleep(nanoseconds: wake - now)
                            lastWake = wake
                        }
                    }
                    chunk.append(event)
                    due.append(scheduled)
                    lines.append(lineNumber)
                    if chunk.count >= options.chunk { flush() }
                }
                while outstanding >= options.inFlight, let (sent, nums) = try await group.next() {
                    outstanding -= 1
                    merge(sent, lines: nums)
                }
                let now = DispatchTime.now().uptimeNanoseconds
                if now - lastProgress > 1_000_000_000 {
                    lastProgress = now
                    progress(k)
                    if options.watchTriggers {
                        // Due times older than 30 s are no longer waited for.
                        let horizon = now > 30_000_000_000 ? now - 30_000_000_000 : 0
                        dueTimes.withLock { $0.drop(before: horizon) }
                    }
                }
            }
            // getline returns -1 at the end and on an error alike (a directory, an I/O error).
            if ferror(file) != 0 {
                throw ClusterError("reading the events failed after line \(lineNumber): \(String(cString: strerror(errno)))")
            }
            flush()
            while let (sent, nums) = try await group.next() { merge(sent, lines: nums) }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        report.seconds = elapsed
        report.eventsPerSecond = elapsed > 0 ? Double(report.accepted + report.duplicates + report.rejected) / elapsed : 0
        report.ackUs = Percentiles(ackHistogram)
        // Triggers still on the wire arrive within a moment.
        if options.watchTriggers { try? await Task.sleep(for: .milliseconds(300)) }
        feed?.stop()
        report.triggers = triggerCount.load(ordering: .relaxed)
        report.triggerUs = Percentiles(triggerHistogram.withLock { $0 })
        return report
    }
}

extension EventKey {
    init(source: String, eventID: String, at: Int64) {
        self.source = source
        self.eventID = eventID
        self.at = at
    }
}

/// The due times of the events sent, for timing their triggers: kept in send order, so the old
/// ones leave from the front in time proportional to what leaves (a filter over the whole map once
/// a second would stall the sender, and show up as latency).
struct DueTimes {
    var times: [EventKey: UInt64] = [:]
    private var order: [(key: EventKey, due: UInt64)] = []
    private var head = 0

    mutating func add(_ key: EventKey, _ due: UInt64) {
        times[key] = due
        order.append((key, due))
    }

    mutating func drop(before horizon: UInt64) {
        while head < order.count, order[head].due < horizon {
            if times[order[head].key] == order[head].due { times[order[head].key] = nil }
            head += 1
        }
        if head > 65_536, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}
