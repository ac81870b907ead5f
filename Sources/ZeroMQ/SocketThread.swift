import CZeroMQ
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One dedicated thread that owns ZeroMQ sockets and is the only thread that touches them, so
/// blocking libzmq calls never run on Swift's cooperative pool.
///
/// Async code hands work to it with `perform` (the closure runs on the I/O thread, its result is
/// awaited) or `enqueue` (fire and forget). Sockets registered with `Loop.watch` have their
/// handler called on the I/O thread whenever a message can be read. A pipe wakes the thread's
/// `zmq_poll` when work is queued. Handlers and closures must not block: they run between polls.
public final class SocketThread: Sendable {
    /// Everything only the I/O thread may use: the sockets and their handlers.
    public final class Loop {
        /// A socket created on this loop, named for use from other threads.
        public struct SocketID: Hashable, Sendable {
            let raw: Int
        }

        let context: ZMQContext
        private var sockets: [SocketID: ZMQSocket] = [:]
        private var handlers: [SocketID: (ZMQSocket) -> Void] = [:]
        private var paused: Set<SocketID> = []
        /// Plain file descriptors watched for input (sockets used by other threads under a lock
        /// are watched by their `ZMQSocket.fileDescriptor()`), by a key the caller chooses.
        private var descriptors: [Int: (fd: Int32, handler: () -> Void)] = [:]
        private var pausedDescriptors: Set<Int> = []
        private var nextID = 0
        private var tick: (interval: Duration, handler: () -> Void)?
        private var nextTick = ContinuousClock.now

        init(context: ZMQContext) {
            self.context = context
        }

        /// Creates a socket owned by this loop.
        public func makeSocket(_ kind: ZMQSocket.Kind) throws(ZMQError) -> (SocketID, ZMQSocket) {
            let socket = try ZMQSocket(context, kind)
            let id = SocketID(raw: nextID)
            nextID += 1
            sockets[id] = socket
            return (id, socket)
        }

        /// The socket called `id`, if it is still open.
        public func socket(_ id: SocketID) -> ZMQSocket? { sockets[id] }

        /// Calls `handler` on this thread whenever `id` has a message to read. The handler should
        /// read with `wait: false` until nothing is left.
        public func watch(_ id: SocketID, _ handler: @escaping (ZMQSocket) -> Void) {
            handlers[id] = handler
        }

        /// Calls `handler` on this thread whenever `fd` is readable; `key` names the watch for
        /// `unwatch`. For a socket used by other threads under a lock: poll its descriptor here
        /// and take the lock only to receive.
        public func watch(fd: Int32, key: Int, _ handler: @escaping () -> Void) {
            descriptors[key] = (fd, handler)
        }

        /// Stops watching the descriptor watched as `key`.
        public func unwatch(key: Int) {
            descriptors[key] = nil
            pausedDescriptors.remove(key)
        }

        /// Stops (true) or resumes (false) calling the handler of the descriptor watched as `key`.
        public func pause(key: Int, _ pause: Bool) {
            if pause { pausedDescriptors.insert(key) } else { pausedDescriptors.remove(key) }
        }

        /// Stops (true) or resumes (false) calling `id`'s handler. While paused, libzmq queues
        /// inbound messages up to the receive high-water mark and then stops reading from the
        /// peers: this is how a busy node pushes back on its callers.
        public func pause(_ id: SocketID, _ pause: Bool) {
            if pause { paused.insert(id) } else { paused.remove(id) }
        }

        /// Calls `handler` on this thread about every `interval` (timers: call deadlines, heartbeats).
        public func every(_ interval: Duration, _ handler: @escaping () -> Void) {
            tick = (interval, handler)
            nextTick = .now + interval
        }

        /// Closes socket `id` and forgets its handler.
        public func close(_ id: SocketID) {
            handlers[id] = nil
            paused.remove(id)
            sockets.removeValue(forKey: id)?.close()
        }

        fileprivate func pollOnce(wakeFD: Int32, block: Bool) -> Bool {
            let watched = handlers.keys.compactMap { id in paused.contains(id) ? nil : sockets[id].map { (id, $0) } }
            var items = [zmq_pollitem_t(socket: nil, fd: wakeFD, events: Int16(ZMQ_POLLIN), revents: 0)]
            items += watched.map { zmq_pollitem_t(socket: $0.1.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
            let fds = descriptors.filter { !pausedDescriptors.contains($0.key) }.map { ($0.key, $0.value.fd) }
            items += fds.map { zmq_pollitem_t(socket: nil, fd: $0.1, events: Int16(ZMQ_POLLIN), revents: 0) }
            var timeout = block ? -1 : 0
            if block, tick != nil {
                let left = nextTick - .now
                timeout = max(0, Int(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000) + 1)
            }
            let n = zmq_poll(&items, Int32(items.count), timeout)
            if n < 0 { return czmq_errno() != ETERM }
            for (k, (id, socket)) in watched.enumerated() where items[k + 1].revents & Int16(ZMQ_POLLIN) != 0 {
                handlers[id]?(socket)
            }
            for (k, (key, _)) in fds.enumerated() where items[k + 1 + watched.count].revents & Int16(ZMQ_POLLIN) != 0 {
                descriptors[key]?.handler()
            }
            if let tick, ContinuousClock.now >= nextTick {
                nextTick = .now + tick.interval
                tick.handler()
            }
            return true
        }

        fileprivate func closeAll() {
            handlers.removeAll()
            descriptors.removeAll()
            for socket in sockets.values { socket.close() }
            sockets.removeAll()
        }
    }

    private struct Queue: ~Copyable {
        var work: [@Sendable (Loop) -> Void] = []
        var stopped = false
        /// The thread is (about to be) blocked in `zmq_poll` and needs the pipe to wake up.
        /// While it is busy, queued work is picked up without a write to the pipe.
        var sleeping = false
    }

    private let queue = Mutex(Queue())
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let finished = Mutex<Bool>(false)
    /// The thread's name, for logs.
    public let name: String

    /// Starts the I/O thread.
    /// - Throws: `ZMQError` if the wake-up pipe cannot be created.
    public init(name: String, context: ZMQContext) throws(ZMQError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ZMQError("create the wake-up pipe of \(name)", errno: errno) }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        self.name = name
        let loop = Loop(context: context)
        let box = Unmanaged.passRetained(Runner(owner: self, loop: loop))
        var thread = pthread_t()
        pthread_create(&thread, nil, { arg in
            let runner = Unmanaged<Runner>.fromOpaque(arg!).takeRetainedValue()
            runner.owner.run(runner.loop)
            return nil
        }, box.toOpaque())
        pthread_detach(thread)
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    private final class Runner {
        let owner: SocketThread
        let loop: Loop
        init(owner: SocketThread, loop: Loop) {
            self.owner = owner
            self.loop = loop
        }
    }

    /// Queues `work` to run on the I/O thread. Returns false once the thread has stopped.
    @discardableResult
    public func enqueue(_ work: @escaping @Sendable (Loop) -> Void) -> Bool {
        let (accepted, mustWake) = queue.withLock { q -> (Bool, Bool) in
            guard !q.stopped else { return (false, false) }
            q.work.append(work)
            defer { q.sleeping = false }
            return (true, q.sleeping)
        }
        if mustWake { wake() }
        return accepted
    }

    /// Runs `body` on the I/O thread and returns its result.
    /// - Throws: what `body` throws, or `ZMQError` (`ETERM`) when the thread has stopped.
    public func perform<T: Sendable>(_ body: @escaping @Sendable (Loop) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let accepted = enqueue { loop in
                continuation.resume(with: Result { try body(loop) })
            }
            if !accepted { continuation.resume(throwing: ZMQError("run work on stopped thread \(name)", errno: ETERM)) }
        }
    }

    /// Stops the thread after the work already queued: sockets are closed on the I/O thread.
    /// Waits until it has finished.
    public func stop() async {
        let already = queue.withLock { q -> Bool in
            defer { q.stopped = true }
            return q.stopped
        }
        if !already { wake() }
        while !finished.withLock({ $0 }) {
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    private func wake() {
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)  // a full pipe already means "wake up": nothing is lost
    }

    private func run(_ loop: Loop) {
        nameCurrentThread(name)
        var drain = [UInt8](repeating: 0, count: 256)
        while true {
            var work: [@Sendable (Loop) -> Void] = []
            let stopped = queue.withLock { q -> Bool in
                swap(&work, &q.work)
                // Nothing queued: the thread will block in the poll, so the next enqueue must
                // write to the pipe. With work in hand it comes back here without blocking.
                q.sleeping = work.isEmpty
                return q.stopped
            }
            for item in work { item(loop) }
            if stopped { break }
            if !work.isEmpty {
                // Work ran; more may have been queued meanwhile without a wake-up. Handle sockets
                // without blocking, then look at the queue again.
                guard loop.pollOnce(wakeFD: wakeRead, block: false) else { break }
                continue
            }
            guard loop.pollOnce(wakeFD: wakeRead, block: true) else { break }
            while read(wakeRead, &drain, drain.count) > 0 {}
        }
        // Work queued after the stop was refused by `enqueue`; anything that slipped in runs now.
        let rest = queue.withLock { q -> [@Sendable (Loop) -> Void] in
            q.stopped = true
            defer { q.work.removeAll() }
            return q.work
        }
        for item in rest { item(loop) }
        loop.closeAll()
        finished.withLock { $0 = true }
    }
}

/// Names the calling thread as `top -H` and `ps -L` show it (Linux keeps the first 15 bytes). A
/// thread started without a name inherits its creator's: a Swift pool thread's is
/// "com.apple.root.default-qos", which says nothing about the work.
public func nameCurrentThread(_ name: String) {
    var bytes = Array(name.utf8.prefix(15))
    while !bytes.isEmpty && String(validating: bytes, as: UTF8.self) == nil { bytes.removeLast() }  // never half a character
    czmq_name_thread(String(decoding: bytes, as: UTF8.self))
}

/// Sets the calling thread's timer slack (how late Linux may end its sleeps; 50 µs by default):
/// a thread that must wake at scheduled times, such as an open-loop load generator's, sets it
/// low. - Returns: whether the kernel accepted it.
@discardableResult
public func setCurrentThreadTimerSlack(nanoseconds: UInt) -> Bool {
    czmq_timer_slack(nanoseconds) == 0
}
