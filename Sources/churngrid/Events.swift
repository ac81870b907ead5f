import ArgumentParser
import ChurnCluster
import Foundation
import Synchronization
import SubscriberEvents
#if canImport(Glibc)
import Glibc
#endif

/// `churngrid events replay`.
struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Send subscriber events to the cluster (docs/events.md).",
        subcommands: [Replay.self])

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stream an NDJSON event file to the owning workers at a rate; print what was accepted, duplicate or rejected (by reason, with line numbers), and the acknowledgement and event → trigger latencies.")

        @Option(help: "NDJSON file of events ('-' for standard input).")
        var input: String

        @Option(help: "Events per second (0: as fast as the cluster takes them). Latency counts from each event's scheduled time.")
        var rate: Double = 0

        @Option(help: "Sends outstanding at most.")
        var inFlight: Int = 16

        @Option(help: "Events per send at most.")
        var chunk: Int = 2_000

        @Option(name: .customLong("send-tick-us"), help: "At a rate, wake at most every this many microseconds and send the events then due together (0: a send per event due); an event sent late counts its lateness.")
        var sendTickMicroseconds = 1_000

        @Option(help: "Rejected lines named on standard error at most (all are counted).")
        var showRejected: Int = 20

        @Flag(help: "Do not subscribe to the workers' trigger feeds.")
        var noTriggers = false

        @OptionGroup var target: CoordinatorOptions

        @Flag(help: "Print one JSON line at the end.")
        var json = false

        func validate() throws {
            guard rate == 0 || (rate >= 0.001 && rate.isFinite) else { throw ValidationError("--rate: events per second, 0 (as fast as possible) or at least 0.001") }
            guard inFlight >= 1, chunk >= 1, chunk <= EventBatch.maxCount else { throw ValidationError("--in-flight ≥ 1 and --chunk in 1…\(EventBatch.maxCount)") }
            guard (0...1_000_000).contains(sendTickMicroseconds) else { throw ValidationError("--send-tick-us: 0–1000000 microseconds") }
        }

        func run() async throws {
            let logger = makeLogger("churngrid.events")
            var info = stat()
            if input != "-", stat(input, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
                throw ValidationError("--input: \(input) is a directory, not an NDJSON file")
            }
            let file: UnsafeMutablePointer<FILE>? = input == "-" ? fdopen(0, "r") : fopen(input, "r")
            guard let file else { throw ValidationError("--input: cannot read \(input): \(String(cString: strerror(errno)))") }
            defer { if input != "-" { fclose(file) } }
            var options = EventReplay.Options()
            options.rate = rate
            options.inFlight = inFlight
            options.chunk = chunk
            options.sendTick = .microseconds(sendTickMicroseconds)
            options.watchTriggers = !noTriggers
            let shown = Atomic(0), limit = showRejected, path = input
            try await reportingClusterErrors {
                let report = try await withCoordinator(target, logger: logger) { client in
                    try await EventReplay(client: client, options: options).run(file, onRejectedLine: { r in
                        if shown.add(1, ordering: .relaxed).newValue <= limit {
                            FileHandle.standardError.write(Data("\(path):\(r.line): rejected: \(r.reason.code): \(r.detail)\n".utf8))
                        }
                    }, progress: { sent in
                        if !json { FileHandle.standardError.write(Data("\r\(sent) events sent".utf8)) }
                    })
                }
                if json {
                    try printJSON(report)
                } else {
                    FileHandle.standardError.write(Data("\n".utf8))
                    print(String(format: "%d events: %d accepted, %d duplicates, %d rejected, %d unsettled; %.0f events/s over %.1f s; %d triggers",
                                 report.events, report.accepted, report.duplicates, report.rejected, report.unsettled, report.eventsPerSecond, report.seconds,
                                 report.triggers))
                    if !report.rejectedByReason.isEmpty {
                        print("rejected by reason: " + report.rejectedByReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
                    }
                    print("ack µs p50 \(report.ackUs.p50) p99 \(report.ackUs.p99) p99.9 \(report.ackUs.p999); event → trigger µs p50 \(report.triggerUs.p50) p99 \(report.triggerUs.p99) p99.9 \(report.triggerUs.p999)")
                }
                if report.unsettled > 0 {
                    FileHandle.standardError.write(Data("\(report.unsettled) events unsettled (not acknowledged; sending them again never applies one twice)\(report.unsettledReason.map { ": the last failed send: \($0)" } ?? ": the cluster kept asking to retry until the deadline")\n".utf8))
                    throw ExitCode(4)
                }
                if report.rejected > 0, report.accepted + report.duplicates == 0 {
                    // Every line refused (the wrong file, a binary, a base that does not hold these
                    // subscribers): a script checking the exit code must notice.
                    let reasons = report.rejectedByReason.sorted { $0.value > $1.value }.prefix(3).map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                    FileHandle.standardError.write(Data("no event accepted: all \(report.rejected) were rejected (\(reasons))\n".utf8))
                    throw ExitCode(5)
                }
            }
        }
    }
}

/// `churngrid triggers tail`.
struct TriggersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "triggers",
        abstract: "Retention triggers fired by events (docs/triggers.md).",
        subcommands: [Tail.self])

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print triggers as the workers fire them (subscribes to every worker's --triggers-publish feed) until interrupted. The durable feed is the table retention_triggers.")

        @OptionGroup var target: CoordinatorOptions

        @Flag(help: "One JSON object per line.")
        var json = false

        @Option(help: "Stop after this many triggers (0: never).")
        var count: Int = 0

        func run() async throws {
            let logger = makeLogger("churngrid.triggers")
            try await reportingClusterErrors {
                try await withCoordinator(target, logger: logger) { client in
                    let feeds = try await client.eventStatus()
                    let publishing = feeds.filter { !$0.triggerFeed.isEmpty }
                    if publishing.isEmpty {
                        FileHandle.standardError.write(Data("no worker publishes triggers (start workers with --triggers-publish tcp://HOST:PORT)\n".utf8))
                        throw ExitCode(2)
                    }
                    FileHandle.standardError.write(Data("subscribed to \(publishing.map { "\($0.name) \($0.triggerFeed)" }.joined(separator: ", "))\n".utf8))
                    let (stream, continuation) = AsyncStream.makeStream(of: FiredTrigger.self)
                    let feed = try TriggerFeed(system: client.system, feeds: publishing) { t, _ in continuation.yield(t) }
                    defer { feed.stop() }
                    let signals = DispatchSource.makeSignalSource(signal: SIGINT)
                    signal(SIGINT, SIG_IGN)
                    signals.setEventHandler { continuation.finish() }
                    signals.resume()
                    var seen = 0
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys]
                    encoder.keyEncodingStrategy = .convertToSnakeCase
                    for await t in stream {
                        if json {
                            print(String(decoding: try encoder.encode(t), as: UTF8.self))
                        } else {
                            let reasons = t.reasons.map { String(format: "%@ (+%.2f)", $0.feature, $0.contribution) }.joined(separator: ", ")
                            print(String(format: "%@  %@  subscriber %lld  p %.3f → %.3f  %@  reasons: %@  [%@ %@/%@ on %@, model %@]",
                                         Timestamp.format(t.firedAt), t.rule, t.subscriberID, t.probabilityBefore, t.probabilityAfter, t.band,
                                         reasons.isEmpty ? "none" : reasons, t.eventType, t.source, t.eventID, t.node, t.modelVersion))
                        }
                        fflush(nil)
                        seen += 1
                        if count > 0 && seen >= count { break }
                    }
                }
            }
        }
    }
}
