import Foundation
import WireFormat

/// Whether the coordinator's PostgreSQL answers, from the outcome of every call it makes (the
/// lease renewal alone makes one a second): an operator reading `churngrid status` sees that the
/// server is away, since when and why, rather than only jobs and registry commands failing one by
/// one. Pure: the calls' outcomes and the time are passed in.
///
/// A call the server answered — with rows or with an SQL error — counts as an answer; a
/// connection that could not be opened or was lost (`PostgresError.isUnavailable`, a call cut by
/// the statement watchdog), and a server that cannot take writes (read-only, out of disk or
/// connections: SQLSTATE 25006, class 53, class 58), count as failures.
struct DatabaseHealth: Sendable {
    /// The longest reason kept (a libpq message can be long; the status stays one line).
    static let errorLimit = 300

    private(set) var lastAnswer: ContinuousClock.Instant?
    /// The first failure since the last answer (nil: the last call was answered, or none failed).
    private(set) var failingSince: ContinuousClock.Instant?
    /// Failed calls since the last answer.
    private(set) var failures = 0
    private(set) var lastError: String?

    /// The server answered a call that ended at `now`.
    mutating func answered(at now: ContinuousClock.Instant) {
        lastAnswer = now
        failingSince = nil
        failures = 0
        lastError = nil
    }

    /// A call could not reach the server (refused, dropped, cut by the watchdog).
    mutating func failed(at now: ContinuousClock.Instant, error: String) {
        if failingSince == nil { failingSince = now }
        failures += 1
        lastError = error.count > Self.errorLimit ? String(error.prefix(Self.errorLimit)) + "…" : error
    }

    /// What the status shows at `now`; `leaseValid` is whether this coordinator may give orders.
    func report(now: ContinuousClock.Instant, leaseValid: Bool) -> DatabaseStatus {
        func seconds(_ since: ContinuousClock.Instant?) -> Double? {
            since.map { max(0, ($0.duration(to: now)) / .seconds(1)) }
        }
        return DatabaseStatus(reachable: failingSince == nil, lastAnswerSecondsAgo: seconds(lastAnswer),
                              unreachableForSeconds: seconds(failingSince), failures: failures, lastError: lastError,
                              leaseValid: leaseValid)
    }
}

/// The coordinator's PostgreSQL as `churngrid status` shows it (`ClusterStatus.database`).
public struct DatabaseStatus: Sendable, WireCodable, Codable, Equatable {
    /// False from the first call that could not reach the server until one is answered again.
    public var reachable: Bool
    /// Seconds since the server last answered a call (nil: none yet).
    public var lastAnswerSecondsAgo: Double?
    /// Seconds since the first failed call of the current outage (nil: reachable).
    public var unreachableForSeconds: Double?
    /// Failed calls in the current outage.
    public var failures: Int
    /// Why the last call failed (the server named, never a password).
    public var lastError: String?
    /// Whether the coordinator's lease is valid: while PostgreSQL is away it lapses after a lease
    /// period, and the coordinator serves reads but gives no orders (no jobs, no moves).
    public var leaseValid: Bool

    /// Seconds without an answer after which a reachable server is shown as slow to answer (the
    /// lease is renewed every second, so a quiet minute is a server that stalls or a long call).
    public static let quietLimit: Double = 10

    public init(reachable: Bool, lastAnswerSecondsAgo: Double?, unreachableForSeconds: Double?, failures: Int, lastError: String?, leaseValid: Bool) {
        self.reachable = reachable
        self.lastAnswerSecondsAgo = lastAnswerSecondsAgo
        self.unreachableForSeconds = unreachableForSeconds
        self.failures = failures
        self.lastError = lastError
        self.leaseValid = leaseValid
    }

    public func encode(to w: inout WireWriter) {
        w.write(reachable); w.write(lastAnswerSecondsAgo); w.write(unreachableForSeconds); w.write(failures); w.write(lastError); w.write(leaseValid)
    }

    public init(from r: inout WireReader) throws(WireError) {
        reachable = try r.read(); lastAnswerSecondsAgo = try r.read(); unreachableForSeconds = try r.read()
        failures = try r.read(); lastError = try r.read(); leaseValid = try r.read()
    }

    /// One line for `churngrid status`.
    public var description: String {
        var s: String
        if reachable {
            switch lastAnswerSecondsAgo {
            case nil: s = "not asked yet"
            case let ago? where ago >= Self.quietLimit: s = String(format: "reachable, but no answer for %.0f s (a long call, or the server stalls)", ago)
            case let ago?: s = String(format: "reachable (last answer %.1f s ago)", ago)
            }
        } else {
            s = String(format: "UNREACHABLE for %.0f s, %d failed call%@", unreachableForSeconds ?? 0, failures, failures == 1 ? "" : "s")
            if let lastError { s += " (last: \(lastError))" }
        }
        if !leaseValid { s += "; the coordinator lease has run out: no jobs or shard moves until PostgreSQL answers again" }
        return s
    }
}
