import Foundation
import Metrics
import Synchronization

/// The job metrics the alerts read (Deploy/prometheus/alerts.yml): `churngrid_jobs_total` by
/// outcome, `churngrid_last_completed_job_timestamp_seconds` and
/// `churngrid_last_failed_job_timestamp_seconds`.
///
/// The alerts read the two times, not the counter: a counter born at a takeover with the jobs that
/// takeover failed already in it shows no `increase()`, and a restart empties it. The times come
/// from PostgreSQL when a coordinator takes the lead (`JobTimes`), so they survive both. They only
/// move forward: a read from the database that was taken before a job ended here and arrives
/// after it does not set the gauge back.
enum JobMetrics {
    private static let times = Mutex<(completed: Double?, failed: Double?, read: Bool)>((nil, nil, false))

    /// A coordinator took the lead: both outcome counters exist from now on (at 0, plus the jobs
    /// the lead failed, which also set the last failure's time to now).
    static func started(failedNow: Int) {
        Counter(label: "churngrid_jobs_total", dimensions: [("outcome", "completed")]).increment(by: 0)
        Counter(label: "churngrid_jobs_total", dimensions: [("outcome", "failed")]).increment(by: failedNow)
        if failedNow > 0 { raise(completed: nil, failed: Date().timeIntervalSince1970, read: false) }
    }

    /// A job ended (completed: published).
    static func ended(completed: Bool) {
        Counter(label: "churngrid_jobs_total", dimensions: [("outcome", completed ? "completed" : "failed")]).increment()
        let now = Date().timeIntervalSince1970
        raise(completed: completed ? now : nil, failed: completed ? nil : now, read: false)
    }

    /// The times read from the database at the lead.
    static func record(_ read: JobTimes) {
        raise(completed: read.completedOrSince, failed: read.lastFailed, read: true)
    }

    /// Whether the database's times have been read by this process.
    static var timesRead: Bool { times.withLock { $0.read } }

    private static func raise(completed: Double?, failed: Double?, read: Bool) {
        let (c, f) = times.withLock { t -> (Double?, Double?) in
            if let completed { t.completed = max(t.completed ?? completed, completed) }
            if let failed { t.failed = max(t.failed ?? failed, failed) }
            t.read = t.read || read
            return (t.completed, t.failed)
        }
        if let c { Gauge(label: "churngrid_last_completed_job_timestamp_seconds").record(c) }
        if let f { Gauge(label: "churngrid_last_failed_job_timestamp_seconds").record(f) }
    }
}

/// When jobs last ended, as the database has it (seconds since 1970).
struct JobTimes: Equatable, Sendable {
    /// The last completed job's end.
    var lastCompleted: Double?
    /// The last failed job's end (a takeover's failed jobs included).
    var lastFailed: Double?
    /// When the cluster was made (`churngrid_cluster.created_at`, its first lead; now when this
    /// is the first).
    var created: Double?

    /// What `churngrid_last_completed_job_timestamp_seconds` shows: the last completion, or, when no
    /// job ever completed, the cluster's creation. A cluster that never published is as stale as
    /// its age: the alert then fires 26 h after its first lead, instead of never.
    var completedOrSince: Double? { lastCompleted ?? created }
}
