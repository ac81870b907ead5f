import Foundation
import Metrics

/// The job metrics the alerts read (Deploy/prometheus/alerts.yml): `churngrid_jobs_total` by
/// outcome, and `churngrid_last_completed_job_timestamp_seconds`.
enum JobMetrics {
    /// A coordinator took the lead: both outcome counters exist from now on (at 0, plus the jobs
    /// the lead failed), so a rate over a restart sees the first job of each outcome.
    static func started(failedNow: Int) {
        Counter(label: "churngrid_jobs_total", dimensions: [("outcome", "completed")]).increment(by: 0)
        Counter(label: "churngrid_jobs_total", dimensions: [("outcome", "failed")]).increment(by: failedNow)
    }

    /// A job ended (completed: published).
    static func ended(completed: Bool) {
        Counter(label: "churngrid_jobs_total", dimensions: [("outcome", completed ? "completed" : "failed")]).increment()
        if completed { self.completed(at: Date().timeIntervalSince1970) }
    }

    /// When the last job completed (seconds since 1970).
    static func completed(at seconds: Double) {
        Gauge(label: "churngrid_last_completed_job_timestamp_seconds").record(seconds)
    }
}
