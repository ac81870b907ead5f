import Foundation

/// Runs `body` as part of the calling task (task-locals, `#expect` attribution and cancellation
/// intact) but on a thread of its own instead of Swift concurrency's cooperative pool.
///
/// The pool has one thread per core — two here. A test computing for seconds on one of them
/// leaves the nodes and clients of the multi-process tests, which answer heartbeats and calls
/// in real time, a single thread; two such tests leave them none. On a thread of its own the
/// computation competes for the cores under the kernel's time-slicing instead.
public func onOwnThread<T>(_ body: () async throws -> T) async rethrows -> T {
    let executor = OwnThreadExecutor()
    defer { executor.finish() }
    return try await withTaskExecutorPreference(executor) { try await body() }
}

/// A task executor backed by one dedicated thread that runs its jobs in order.
final class OwnThreadExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `jobs` and `finished` are only touched under `condition`.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var finished = false

    init() {
        let thread = Thread { [self] in run() }
        thread.name = "test-own-thread"
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread end once the jobs enqueued so far have run.
    func finish() {
        condition.lock()
        finished = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !finished { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
