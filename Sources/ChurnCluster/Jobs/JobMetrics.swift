import Foundation
import Metrics

/// The job metrics the alerts read (Deploy/prometheus/alerts.yml): `churngrid_jobs_total` by
/// outcome, `churngrid_last_completed_job_timestamp_seconds` and
/// `churngrid_last_failed_job_timestamp_seconds`.
///
/// The alerts read the two times, not the counter: a counter born at a takeover with the jobs that
/// takeover failed already in it shows no `increase()`, and a restart empties it. The times come
/// from PostgreSQL when a coordinator takes the lead (`JobTimes`), so they survive both.
enum JobMetrics {
    /// A coordinator took the lead: both outcome counters exist from now on (at 0, plus the jobs
    /// the lead failed).
    static func started(failedNow: Int) {
        Counter(label: "churngrid_jobs_total", dimensions: [("outcome", "completed")]).increment(by: 0)
        Counter(label: "churngrid_jobs_total", dimensions: [("outcome", "failed")]).increment(by: failedNow)
    }

    /// A job ended (completed: published).
    static func ended(completed: Bool) {
        Counter(label: "churngrid_jobs_total", dimensions: [("outcome", completed ? "completed" : "failed")]).increment()
        let now = Date().timeIntervalSince1970
        if completed { Gauge(label: "churngrid_last_completed_job_timestamp_seconds").record(now) }
        else { Gauge(label: "churngrid_last_failed_job_timestamp_seconds").record(now) }
    }

    /// The times read from the database at the lead.
    static func record(_ times: JobTimes) {
        if let completed = times.completedOrSince {
            Gauge(label: "churngrid_last_completed_job_timestamp_seconds").record(completed)
        }
        if let failed = times.lastFailed {
            Gauge(label: "churngrid_last_failed_job_timestamp_seconds").record(failed)
        }
    }
}

/// When jobs last ended, as the database has it (seconds since 1970).
struct JobTimes: Equatable, Sendable {
    /// The last completed job's end.
    var lastCompleted: Double?
    /// The last failed job's end (a takeover's failed jobs included).
    var lastFailed: Double?
    /// When the cluster's schema was made (its first migration).
    var created: Double?

    /// What `churngrid_last_completed_job_timestamp_seconds` shows: the last completion, or, when no
    /// job ever completed, the cluster's creation. A cluster that never published is as stale as
    /// its age: the alert then fires 26 h after it was made, instead of never.
    var completedOrSince: Double? { lastCompleted ?? created }
}
