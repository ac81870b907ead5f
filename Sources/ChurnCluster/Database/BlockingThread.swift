import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A thread of its own for blocking work (libpq calls, loading shards from PostgreSQL), so that
/// it never occupies Swift's cooperative pool. Work runs in order, one item at a time.
final class BlockingThread: @unchecked Sendable {
    // @unchecked: `work`/`stopped` are only touched with `lock` held; the pthread objects are
    // created in init and destroyed never (the thread lives as long as the process's node).
    private var work: [@Sendable () -> Void] = []
    private var stopped = false
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    let name: String

    init(name: String) {
        self.name = name
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
