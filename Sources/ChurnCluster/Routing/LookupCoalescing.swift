/// Live queries for one worker, coalesced into batch calls: a query goes out at once when fewer
/// than `maxInFlight` calls to that worker are under way; otherwise it waits, and the next call
/// carries every query that waited (up to `maxBatch`). No query waits for a timer: at low load
/// each goes alone, and under load the batches grow by themselves, so each call's cost (two
/// thread wake-ups, a round trip, the actor hop) is shared by many queries. Pure: the driver
/// (`ScoreRouter`) makes the calls and reports them done.
struct LookupCoalescing<Item> {
    let maxBatch: Int
    let maxInFlight: Int
    private(set) var waiting: [Item] = []
    private(set) var inFlight = 0

    init(maxBatch: Int = 512, maxInFlight: Int = 4) {
        self.maxBatch = max(1, maxBatch)
        self.maxInFlight = max(1, maxInFlight)
    }

    /// A query arrived. - Returns: a batch to send now, if a call may start.
    mutating func enqueue(_ item: Item) -> [Item]? {
        waiting.append(item)
        return take()
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
