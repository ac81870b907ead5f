/// How the coordinator leases the live campaign's capacity and budget to the workers
/// (docs/retention.md, "Real time"): each worker spends only what it was granted (the write that
/// records an action checks it), and the coordinator tops grants up in chunks so that a worker
/// never waits for it on the decision path. Pure: the rows and the members are passed in.
///
/// Rules, per limited resource (`budget`, and each channel with a `capacity`):
/// 1. A worker that is not a member any more (lost, drained) gives back what it has not spent:
///    its grant becomes what it used. A lost worker that still writes finds no room. Workers the
///    coordinator still waits for (after a takeover, those of the saved map) keep their leases.
/// 2. Each member whose room (granted − used) is below half a chunk (and below one unit: the
///    dearest offer must stay affordable) gets one more chunk, or what
///    is left of the total, members in name order. A chunk is the total over 4 × members, at least
///    one contact (capacity) or the dearest offer's cost (budget), so most of the total stays with
///    the coordinator until a worker needs it.
/// 3. Σ granted never exceeds the total.
public struct LiveQuotas: Sendable, Equatable {
    /// One worker's lease of one resource.
    public struct Lease: Sendable, Equatable, Hashable {
        public var node: String
        public var resource: String
        public var granted: Double
        public var used: Double

        public init(node: String, resource: String, granted: Double, used: Double) {
            self.node = node
            self.resource = resource
            self.granted = granted
            self.used = used
        }
    }

    /// The totals: resource → limit (`budget`, or a channel's capacity).
    public var totals: [String: Double]
    /// The smallest useful chunk per resource (1 for a channel; the dearest offer for the budget).
    public var units: [String: Double]

    public init(totals: [String: Double], units: [String: Double]) {
        self.totals = totals
        self.units = units
    }

    /// The leases after one round, given the current ones and the members: only the changed or new
    /// leases are returned.
    public func round(_ leases: [Lease], members: [String], keeping: Set<String> = []) -> [Lease] {
        var changed: [Lease] = []
        let memberSet = Set(members).union(keeping)
        for (resource, total) in totals.sorted(by: { $0.key < $1.key }) {
            var mine = leases.filter { $0.resource == resource }
            // 1. What departed workers did not spend comes back.
            for i in mine.indices where !memberSet.contains(mine[i].node) && mine[i].granted > mine[i].used {
                mine[i].granted = mine[i].used
                changed.append(mine[i])
            }
            var left = total - mine.reduce(0) { $0 + $1.granted }
            guard !members.isEmpty else { continue }
            let unit = max(units[resource] ?? 1, resource == "budget" ? 0 : 1)
            var chunk = total / Double(4 * members.count)
            if resource != "budget" { chunk = chunk.rounded(.down) }
            chunk = max(chunk, unit)
            // 2. Members low on room get a chunk.
            for node in members.sorted() {
                var lease = mine.first { $0.node == node } ?? Lease(node: node, resource: resource, granted: 0, used: 0)
                guard lease.granted - lease.used < max(chunk / 2, unit), left > 0 else { continue }
                var add = min(chunk, left)
                if resource != "budget" { add = add.rounded(.down) }
                guard add > 0 else { continue }
                lease.granted += add
                left -= add
                changed.append(lease)
            }
        }
        return changed
    }

    /// The campaign's limited resources: `budget` when it has one, and each capped channel.
    public static func totals(capacity: [String: Int], budget: Double?) -> [String: Double] {
        var out = capacity.mapValues { Double(max(0, $0)) }
        if let budget { out["budget"] = max(0, budget) }
        return out
    }
}
