import Dispatch
import Postgres
import SubscriberProfiles

/// Fills `subscriber_profiles` with a synthetic base: one thread generates and encodes binary
/// COPY data in batches, the calling thread streams them to PostgreSQL (whose server process
/// takes the other core). The shard-key index is dropped during the load and rebuilt after,
/// since maintaining it row by row in random key order is several times slower.
public struct BaseLoader {
    /// Progress of a running load.
    public struct Progress: Sendable {
        public var rows: Int
        public var total: Int
        public var seconds: Double
    }

    /// What a load did.
    public struct Report: Sendable {
        public var rows: Int
        public var churned: Int
        public var copySeconds: Double
        public var indexSeconds: Double
        public var seconds: Double
    }

    let connection: PostgresConnection

    /// A loader writing through `connection`.
    public init(connection: PostgresConnection) {
        self.connection = connection
    }

    /// Replaces the table's contents with subscribers `0..<count` of `base`.
    /// - Parameter progress: called from the calling thread about twice a second.
    /// - Throws: `PostgresError`; on failure the table is left empty or as it was (one transaction).
    public func load(_ base: SyntheticBase, count: Int, progress: (Progress) -> Void = { _ in }) throws -> Report {
        precondition(count >= 1, "a generated base has at least one subscriber")
        try ProfileSchema.migrate(connection)
        let clock = ContinuousClock()
        let start = clock.now
        let batchRows = 16_384
        let batches = (count + batchRows - 1) / batchRows
        let queue = BoundedQueue<(bytes: [UInt8], churned: Int)>(capacity: 4)

        let producer = ProducerThread {
            var encoder = BinaryCopyEncoder()
            var first = encoder.take()  // the header goes with the first batch
            for b in 0..<batches {
                var churned = 0
                let range = (b * batchRows)..<min(count, (b + 1) * batchRows)
                base.generate(range) { id, profile, label in
                    encoder.beginRow(fields: profile.count + 1)
                    encoder.int64(id)
                    for v in profile { encoder.float32OrNull(v) }
                    if label { churned += 1 }
                }
                if b == batches - 1 { encoder.finish() }
                var bytes = encoder.take()
                if !first.isEmpty { bytes = first + bytes; first = [] }
                if !queue.put((bytes, churned)) { return }
            }
        }
        producer.start()
        defer { queue.close() }

        var rows = 0
        var churned = 0
        try connection.execute("BEGIN")
        do {
            try connection.execute("TRUNCATE subscriber_profiles; DROP INDEX IF EXISTS subscriber_profiles_shard_key")
            // The profiles are as of now: a shard loaded from them replays only events received later.
            try connection.execute("INSERT INTO churngrid_profile_snapshots (as_of, source, older_rows) VALUES (now(), 'generated base', 0)")
            var lastReport = clock.now
            try connection.copyIn("COPY subscriber_profiles (subscriber_id, \(ProfileSchema.featureColumns)) FROM STDIN (FORMAT binary)") { writer in
                for b in 0..<batches {
                    guard let batch = queue.take() else { break }
                    try writer.write(batch.bytes)
                    churned += batch.churned
                    rows = min(count, (b + 1) * batchRows)
                    if clock.now - lastReport > .milliseconds(500) {
                        lastReport = clock.now
                        progress(Progress(rows: rows, total: count, seconds: seconds(clock.now - start)))
                    }
                }
            }
            let copied = clock.now
            try connection.execute("CREATE INDEX subscriber_profiles_shard_key ON subscriber_profiles (shard_key)")
            try connection.execute("COMMIT")
            try connection.execute("ANALYZE subscriber_profiles")
            let end = clock.now
            progress(Progress(rows: rows, total: count, seconds: seconds(end - start)))
            return Report(rows: rows, churned: churned, copySeconds: seconds(copied - start),
                          indexSeconds: seconds(end - copied), seconds: seconds(end - start))
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

/// A fixed-capacity queue between one producer thread and one consumer thread.
final class BoundedQueue<Element>: @unchecked Sendable {
    // @unchecked: all state is guarded by `condition`.
    private var items: [Element] = []
    private var closed = false
    private let capacity: Int
    private let condition = NSConditionLite()

    init(capacity: Int) { self.capacity = capacity }

    /// Blocks while full; false once the queue is closed.
    func put(_ item: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while items.count >= capacity && !closed { condition.wait() }
        if closed { return false }
        items.append(item)
        condition.broadcast()
        return true
    }

    /// Blocks while empty; nil once closed and drained.
    func take() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !closed { condition.wait() }
        if items.isEmpty { return nil }
        let item = items.removeFirst()
        condition.broadcast()
        return item
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}

#if canImport(Glibc)
import Glibc

/// A pthread mutex and condition variable.
final class NSConditionLite: @unchecked Sendable {
    // @unchecked: pthread primitives are thread-safe by design.
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    init() { pthread_mutex_init(&mutex, nil); pthread_cond_init(&cond, nil) }
    deinit { pthread_cond_destroy(&cond); pthread_mutex_destroy(&mutex) }
    func lock() { pthread_mutex_lock(&mutex) }
    func unlock() { pthread_mutex_unlock(&mutex) }
    func wait() { pthread_cond_wait(&cond, &mutex) }
    func broadcast() { pthread_cond_broadcast(&cond) }
}

/// A detached pthread running a closure.
final class ProducerThread: @unchecked Sendable {
    // @unchecked: the closure is handed to exactly one new thread.
    private let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    func start() {
        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        pthread_create(&tid, nil, { arg in
            let me = Unmanaged<ProducerThread>.fromOpaque(arg!).takeRetainedValue()
            me.body()
            return nil
        }, box.toOpaque())
        pthread_detach(tid)
    }
}
#endif
