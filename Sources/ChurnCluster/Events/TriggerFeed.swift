import ClusterSystem
import Foundation
import Synchronization
import WireFormat
import ZeroMQ

/// A subscriber of the workers' trigger feeds (`worker --triggers-publish`): one SUB socket per
/// worker on a thread of its own, each fired trigger handed to `onTrigger` with the monotonic time
/// it arrived (ns). With CURVE the sockets present the client's key and check each worker's.
public final class TriggerFeed: @unchecked Sendable {
    // @unchecked: `stopped` is atomic; the sockets live and die on the feed's thread.
    private let stopped = Atomic(false)
    private let finished = DispatchSemaphore(value: 0)
    private let ready = DispatchSemaphore(value: 0)
    private let failure = Mutex<String?>(nil)
    /// Messages that were not triggers (dropped).
    public let malformed = Atomic(0)

    /// Connects to `feeds` (workers without one are skipped) and delivers triggers until `stop`.
    /// - Throws: when a socket cannot be made or connected.
    public init(system: ClusterActorSystem, feeds: [WorkerEventStatus], onTrigger: @escaping @Sendable (FiredTrigger, UInt64) -> Void) throws {
        let targets = feeds.filter { !$0.triggerFeed.isEmpty }
        let thread = Thread { [self] in
            var sockets: [ZMQSocket] = []
            do {
                for t in targets {
                    let s = try system.makeSocket(.sub, server: false, serverKey: t.publicKey)
                    try s.set(.receiveHighWaterMark, 1_000_000)
                    try s.set(.linger, 0)
                    try s.set(.subscribe, [UInt8]())
                    try s.connect(t.triggerFeed)
                    sockets.append(s)
                }
            } catch {
                failure.withLock { $0 = "subscribing to the trigger feeds: \(error)" }
            }
            // A SUB socket's subscription reaches the publisher a moment after it connects (ZeroMQ's
            // slow joiner): wait for that before saying it is ready.
            if !sockets.isEmpty { usleep(300_000) }
            ready.signal()
            while !stopped.load(ordering: .relaxed), failure.withLock({ $0 == nil }), !sockets.isEmpty {
                guard let readable = try? ZMQPoll.readable(sockets, timeoutMilliseconds: 50) else { break }
                for (s, r) in zip(sockets, readable) where r {
                    while let parts = try? s.receive(wait: false) {
                        let now = DispatchTime.now().uptimeNanoseconds
                        guard parts.count == 2, let trigger = try? FiredTrigger.decode(parts[1].bytes) else {
                            malformed.add(1, ordering: .relaxed)
                            continue
                        }
                        onTrigger(trigger, now)
                    }
                }
            }
            for s in sockets { s.close() }
            finished.signal()
        }
        thread.name = "cg-trigger-feed"
        thread.start()
        ready.wait()
        if let f = failure.withLock({ $0 }) {
            stop()
            throw ClusterError(f)
        }
    }

    /// Stops and waits for the thread (its sockets are closed when this returns).
    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        finished.wait()
    }
}
