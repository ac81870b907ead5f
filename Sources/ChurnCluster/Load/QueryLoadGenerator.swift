import Foundation
import Synchronization
import ZeroMQ

/// An open-loop live-query load (`churngrid bench queries`): a thread of its own sends query i
/// at its scheduled time (`OpenLoopRecorder`) through one of several targets in turn (a target
/// is one client connection; its queries to one worker coalesce into pipelined batch calls), and
/// never waits for answers, so many queries are in flight at once.
public enum QueryLoadGenerator {
    /// Sends one query for a subscriber and calls the completion exactly once.
    public typealias Target = @Sendable (_ subscriberID: Int64, _ done: @escaping @Sendable (OpenLoopRecorder.Outcome) -> Void) -> Void

    public struct Options: Sendable {
        public var rate: Double
        public var seconds: Double
        /// Subscribers in the base: ids 1000000000 … 1000000000 + subscribers - 1.
        public var subscribers: Int
        public var seed: UInt64 = 1
        /// How long to wait for the last answers once the schedule is over.
        public var drain: Duration = .seconds(5)
        /// Asked between sends: true ends the schedule early (queries not yet due are not sent).
        public var stop: @Sendable () -> Bool = { false }
        /// The sending thread wakes at most once per tick and sends every query then due. A wake-up
        /// per query at tens of thousands per second cost the generator most of a core of this
        /// machine's two in context switches, taken from the cluster it measures; a query sent up to
        /// a tick late still counts its lateness (latency runs from the scheduled time). Zero: a
        /// wake-up for each query.
        public var sendTick: Duration = .microseconds(100)

        public init(rate: Double, seconds: Double, subscribers: Int) {
            self.rate = rate
            self.seconds = seconds
            self.subscribers = subscribers
        }
    }

    /// A cheap, reproducible random subscriber for query `i` (splitmix64 of the index).
    public static func subscriber(_ i: Int, seed: UInt64, subscribers: Int) -> Int64 {
        var z = UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15 &+ seed
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return 1_000_000_000 + Int64((z ^ (z >> 31)) % UInt64(max(1, subscribers)))
    }

    /// When the sending thread wakes next: at the next query's due time, but not sooner than one
    /// tick after its last wake-up (queries due meanwhile go together).
    static func nextWake(due: UInt64, lastWake: UInt64, tick: UInt64) -> UInt64 {
        max(due, lastWake &+ tick)
    }

    /// A send tick in nanoseconds, bounded (none below zero, none past ~11 days).
    static func tickNanoseconds(_ tick: Duration) -> UInt64 {
        UInt64(min(max(0, tick / .nanoseconds(1)), 1e15))
    }

    /// What the sending thread and the answers share.
    private final class Run: Sendable {
        let recorder: Mutex<OpenLoopRecorder>
        /// Queries sent so far.
        let submitted = Atomic<Int>(0)
        init(_ recorder: OpenLoopRecorder) { self.recorder = Mutex(recorder) }
    }

    /// Runs the schedule over `targets` (query i goes to target i mod count) and returns the figures.
    public static func run(_ options: Options, targets: [Target]) async -> OpenLoopResult {
        let start = monotonicNanos() + 20_000_000
        let run = Run(OpenLoopRecorder(start: start, rate: options.rate, seconds: options.seconds))
        guard !targets.isEmpty else { return run.recorder.withLock { $0.finish(submitted: 0, at: start) } }
        let (total, interval) = run.recorder.withLock { ($0.total, $0.interval) }
        @Sendable func due(_ i: Int) -> UInt64 { start &+ UInt64(Double(i) * interval) }
        let tick = tickNanoseconds(options.sendTick)
        await withCheckedContinuation { (scheduleOver: CheckedContinuation<Void, Never>) in
            // A thread of its own: it sleeps between sends (never on the cooperative pool).
            Thread.detachNewThread {
                nameCurrentThread("cg-load-send")
                // Sends are due every few microseconds: a sleep may not end 50 µs late (Linux's
                // default slack), or the generator's own lateness would count as the cluster's.
                setCurrentThreadTimerSlack(nanoseconds: 1_000)
                var next = 0
                while next < total, !options.stop() {
                    let now = monotonicNanos()
                    while next < total, due(next) <= now {
                        let i = next
                        let id = subscriber(i, seed: options.seed, subscribers: options.subscribers)
                        targets[i % targets.count](id) { outcome in
                            let at = monotonicNanos()
                            run.recorder.withLock { $0.record(i, outcome, at: at) }
                        }
                        next += 1
                        run.submitted.store(next, ordering: .releasing)
                    }
                    guard next < total else { break }
                    let now2 = monotonicNanos()
                    let wake = nextWake(due: due(next), lastWake: now, tick: tick)
                    if wake > now2 {
                        let wait = wake - now2
                        var ts = timespec(tv_sec: Int(wait / 1_000_000_000), tv_nsec: Int(wait % 1_000_000_000))
                        nanosleep(&ts, nil)
                    }
                }
                scheduleOver.resume()
            }
        }
        // The answers still on their way, up to the drain time.
        let deadline = ContinuousClock.now + options.drain
        while ContinuousClock.now < deadline {
            let sent = run.submitted.load(ordering: .acquiring)
            if run.recorder.withLock({ $0.recorded }) >= sent { break }
            try? await Task.sleep(for: .milliseconds(5))
        }
        let sent = run.submitted.load(ordering: .acquiring)
        let now = monotonicNanos()
        return run.recorder.withLock { $0.finish(submitted: sent, at: now) }
    }
}

/// Nanoseconds of the monotonic clock.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
