/// Live queries for one worker, coalesced into batch calls: a query goes out at once when fewer
/// than `maxInFlight` calls to that worker are under way; otherwise it waits, and the next call
/// carries every query that waited (up to `maxBatch`). No query waits for a timer: at low load
/// each goes alone, and under load the batches grow by themselves, so each call's cost (two
/// thread wake-ups, a round trip, the actor hop) is shared by many queries. Pure: the driver
/// (`ScoreRouter`) makes the calls and reports them done.
struct LookupCoalescing<Item> {
    let maxBatch: Int
    let maxInFlight: Int
    /// Queries that may wait at most (a worker whose calls hang must not gather an unbounded queue).
    let maxWaiting: Int
    private(set) var waiting: [Item] = []
    private(set) var inFlight = 0

    enum Enqueued {
        /// Send this batch now.
        case send([Item])
        /// It waits for the next call.
        case queued
        /// Too many wait already: the query goes its own way.
        case full
    }

    init(maxBatch: Int = 512, maxInFlight: Int = 4, maxWaiting: Int = 8192) {
        self.maxBatch = max(1, maxBatch)
        self.maxInFlight = max(1, maxInFlight)
        self.maxWaiting = max(1, maxWaiting)
    }

    /// A query arrived.
    mutating func enqueue(_ item: Item) -> Enqueued {
        guard waiting.count < maxWaiting else { return .full }
        waiting.append(item)
        return take().map { .send($0) } ?? .queued
    }

    /// A call ended (answered or failed). - Returns: the next batch to send, if any waits.
    mutating func completed() -> [Item]? {
        inFlight = max(0, inFlight - 1)
        return take()
    }

    private mutating func take() -> [Item]? {
        guard inFlight < maxInFlight, !waiting.isEmpty else { return nil }
        inFlight += 1
        let n = min(maxBatch, waiting.count)
        let batch = Array(waiting[..<n])
        waiting.removeFirst(n)
        return batch
    }
}
