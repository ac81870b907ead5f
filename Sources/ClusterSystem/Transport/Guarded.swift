#if canImport(Glibc)
import Glibc
#endif

/// State shared between threads behind a mutex, for state holding non-`Sendable` values such as
/// libzmq sockets and messages (which `Synchronization.Mutex` would have to *send* in and out).
///
/// `@unchecked Sendable`: `state` is only reachable inside `withLock`, which holds the mutex, so
/// every access is serialised and ordered (the memory barrier libzmq asks for when a socket is
/// used from another thread).
final class Guarded<State>: @unchecked Sendable {
    private var state: State
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init(_ state: State) {
        self.state = state
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the state while holding the mutex. `body` must not block.
    func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }
}
