import Synchronization
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// A thread of its own for blocking or long work (libpq calls, loading shards from PostgreSQL,
/// scoring a shard), so that it never occupies Swift's cooperative pool. Work runs in order, one
/// item at a time.
///
/// Bulk work runs at a lower priority (`niceness` > 0): on a node whose cores a job saturates,
/// the kernel then hands a core to the threads answering live queries and heartbeats at once
/// instead of after the bulk work's time slice.
final class BlockingThread: @unchecked Sendable {
    // @unchecked: `work`/`stopped` are only touched with `lock` held; the pthread objects are
    // created in init and destroyed never (the thread lives as long as the process's node).
    private var work: [@Sendable () -> Void] = []
    private var stopped = false
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    let name: String
    let niceness: Int32

    init(name: String, niceness: Int32 = 0) {
        self.name = name
        self.niceness = niceness
        pthread_mutex_init(lock, nil)
        pthread_cond_init(condition, nil)
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        pthread_create(&thread, nil, { arg in
            let me = Unmanaged<BlockingThread>.fromOpaque(arg!).takeRetainedValue()
            me.loop()
            return nil
        }, box.toOpaque())
        pthread_detach(thread)
    }

    /// Runs `body` on the thread and returns its result.
    /// - Throws: what `body` throws; `CancellationError` once the thread has stopped.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
            pthread_mutex_lock(lock)
            let accepted = !stopped
            if accepted {
                work.append { c.resume(with: Result { try body() }) }
                pthread_cond_signal(condition)
            }
            pthread_mutex_unlock(lock)
            if !accepted { c.resume(throwing: CancellationError()) }
        }
    }

    /// Stops after the work already queued.
    func stop() {
        pthread_mutex_lock(lock)
        stopped = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(lock)
    }

    private func loop() {
        // Named, so `top -H` and `ps -L` show what a busy thread does (a new thread inherits its
        // creator's name otherwise: a pool thread's "com.apple.root.default-qos"); 15 bytes at most.
        nameCurrentThread(name)
        if niceness != 0 {
            // Linux: `who` 0 is the calling thread, whose nice value is its own (and inherited by
            // the threads it starts).
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        }
        while true {
            pthread_mutex_lock(lock)
            while work.isEmpty && !stopped { pthread_cond_wait(condition, lock) }
            let items = work
            work.removeAll()
            let done = stopped && items.isEmpty
            pthread_mutex_unlock(lock)
            if done { return }
            for item in items { item() }
        }
    }
}

/// A worker's scoring threads (one per core it was given), below normal priority: a rescoring
/// job's shards run here, one shard per thread at a time, so the shard actors stay free to
/// answer live queries while their shard is being rescored.
final class ScoringThreads: Sendable {
    private let threads: [BlockingThread]
    private let next = Atomic<Int>(0)

    init(count: Int) {
        threads = (0..<max(1, count)).map { BlockingThread(name: "cg-score-\($0)", niceness: 5) }
    }

    var count: Int { threads.count }

    /// Runs `body` on the next thread in turn.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let i = next.add(1, ordering: .relaxed).oldValue
        return try await threads[i % threads.count].run(body)
    }
}
