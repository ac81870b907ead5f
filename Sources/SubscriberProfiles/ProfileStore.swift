import Synchronization

/// A shard's subscriber profiles held in memory as `Float32` columns, with the subscriber ids
/// and an id → row index. There is no object per subscriber.
///
/// Rows live in chunks of `chunkRows`; within a chunk each feature is one contiguous column, the
/// layout the scorer reads. The first chunk starts small and doubles up to `chunkRows` (a shard of
/// a few thousand subscribers does not reserve 64K rows); after that growing adds a chunk and never
/// copies. Removing a row moves the last row into its place, so rows stay dense.
///
/// Erasing a subscriber (`erase(id:)`, a subscriber who asked to be forgotten) is safe while
/// others read the store: its values are overwritten with NaN and its id with `erasedID`, and
/// its row becomes a hole that every walk (`forEachRun`, `exported`) and `count` skip. Nothing
/// moves, so a lookup of another subscriber running meanwhile is never misled; the hole goes
/// when the shard is next exported (streamed, snapshotted) and rebuilt.
///
/// Memory per subscriber: 4 bytes per held feature + 8 for the id + 5–11 for the index
/// (36 features: about 160 bytes). A feature of the store's own that is *absent* (a built-in
/// catalogue feature the feature schema in force lacks) has no column at all: it reads as missing
/// and writes to it are dropped, so a worker on an operator's own schema pays nothing for the
/// catalogue it does not use.
///
/// Not thread-safe: a shard actor owns its store.
public final class ProfileStore {
    /// Rows per chunk (a multiple of every scoring block size).
    public static let chunkRows = 1 << 16

    /// Features per profile that the store's own columns hold (the built-in catalogue's, on a
    /// worker): events update them, and a shard travels and is snapshotted with them.
    public let featureCount: Int

    /// For each of the store's own features, its column in a chunk, or -1 when it is absent.
    private let slot: [Int]
    /// Columns a chunk allocates: the own features that are not absent.
    public let heldCount: Int
    /// The store's own features that are absent (no column: missing for every row).
    public var absent: Set<Int> { Set(slot.indices.filter { slot[$0] < 0 }) }
    /// The extra features attached (`attach`), or nil.
    public var extras: ExtraColumns? { extraBlock.withLock { $0 } }

    /// Columns a walk and a profile read: the store's own, then the attached extras'.
    public var width: Int { featureCount + (extras?.names.count ?? 0) }
    private var chunks: [Chunk] = []
    /// Rows in use, holes of erased subscribers included.
    public private(set) var rowCount = 0
    private var index = IdIndex()
    /// The rows of erased subscribers, ascending (read by walks on other threads: behind a lock).
    private let holes = Mutex<[Int]>([])
    /// Schema features held beside the catalogue's, aligned with the rows (see `attach`).
    private let extraBlock = Mutex<ExtraColumns?>(nil)

    /// The id an erased subscriber's row holds from then on (never a subscriber's: imports and
    /// loads refuse it, and a store never holds it otherwise).
    public static let erasedID = Int64.min

    /// Number of subscribers held (erased ones excluded).
    public var count: Int { rowCount - holes.withLock { $0.count } }

    /// Rows that are holes left by erased subscribers.
    public var erasedRows: Int { holes.withLock { $0.count } }

    final class Chunk {
        /// Rows the chunk has room for (the column stride).
        let capacity: Int
        let ids: UnsafeMutablePointer<Int64>
        /// Column-major: feature j of row r at `values[j * capacity + r]`.
        let values: UnsafeMutablePointer<Float>

        init(featureCount: Int, capacity: Int = ProfileStore.chunkRows) {
            self.capacity = capacity
            ids = .allocate(capacity: capacity)
            values = .allocate(capacity: capacity * featureCount)
        }

        /// A bigger copy of the first `rows` rows of this chunk.
        func grown(to capacity: Int, rows: Int, featureCount: Int) -> Chunk {
            let c = Chunk(featureCount: featureCount, capacity: capacity)
            c.ids.update(from: ids, count: rows)
            for j in 0..<featureCount {
                (c.values + j * capacity).update(from: values + j * self.capacity, count: rows)
            }
            return c
        }

        deinit {
            ids.deallocate()
            values.deallocate()
        }
    }

    /// An empty store for profiles of `featureCount` features, of which those in `absent` get no
    /// column (they read as missing; writes to them are dropped).
    public init(featureCount: Int = FeatureCatalogue.count, absent: Set<Int> = []) {
        precondition(featureCount > 0)
        self.featureCount = featureCount
        var slot = [Int](repeating: -1, count: featureCount), held = 0
        for j in 0..<featureCount where !absent.contains(j) {
            slot[j] = held
            held += 1
        }
        self.slot = slot
        heldCount = held
    }

    /// Whether feature `feature` of the store's own has a column (is not absent).
    public func holds(feature: Int) -> Bool { feature >= 0 && feature < featureCount && slot[feature] >= 0 }

    /// Sets the absent features of `profile` (the store's order) to missing: what the store holds
    /// of it once written, so whoever scores the profile before reading it back (an event's
    /// rescoring and trigger rules) sees what every later read sees.
    public func maskAbsent(_ profile: inout [Float]) {
        guard heldCount < featureCount else { return }
        for j in 0..<min(featureCount, profile.count) where slot[j] < 0 { profile[j] = .nan }
    }

    /// The features of `values` (feature-major, `featureCount` columns of `rows` values, as
    /// `exported()` gives them) among `candidates` whose every value is missing: those a store
    /// rebuilt from them may leave absent without losing anything.
    public static func allMissing(_ values: [Float], rows: Int, featureCount: Int, among candidates: Set<Int>) -> Set<Int> {
        guard values.count == rows * featureCount else { return [] }
        var out = Set<Int>()
        for j in candidates where j >= 0 && j < featureCount {
            var missing = true
            for r in 0..<rows where !values[j * rows + r].isNaN {
                missing = false
                break
            }
            if missing { out.insert(j) }
        }
        return out
    }

    @inline(__always)
    private func locate(_ row: Int) -> (Chunk, Int) {
        (chunks[row >> 16], row & (Self.chunkRows - 1))
    }

    /// The subscriber id at `row`.
    public func id(at row: Int) -> Int64 {
        precondition(row >= 0 && row < rowCount, "row \(row) out of 0..<\(rowCount)")
        let (c, r) = locate(row)
        return c.ids[r]
    }

    /// The row of subscriber `id`, or nil when the shard does not hold it.
    public func row(of id: Int64) -> Int? {
        guard id != Self.erasedID else { return nil }
        return index.find(id) { self.id(at: $0) }
    }

    /// Feature `feature` of `row` (an index past `featureCount` reads the attached extras).
    public func value(row: Int, feature: Int) -> Float {
        precondition(row >= 0 && row < rowCount && feature >= 0)
        guard feature < featureCount else { return extras?.value(row: row, feature: feature - featureCount) ?? .nan }
        let s = slot[feature]
        guard s >= 0 else { return .nan }
        let (c, r) = locate(row)
        return c.values[s * c.capacity + r]
    }

    /// Features `features` of `row`, each as `value(row:feature:)` reads it (an index past
    /// `featureCount` reads the attached extras; missing where nothing holds it), the k-th into
    /// `out[k · stride]`: a model's inputs gathered column by column, with the row's chunk found
    /// once (live query batches).
    public func values(row: Int, features: [Int], into out: UnsafeMutablePointer<Float>, stride: Int) {
        precondition(row >= 0 && row < rowCount)
        let (c, r) = locate(row)
        var extras: ExtraColumns?
        var extrasRead = false
        for (k, feature) in features.enumerated() {
            var v = Float.nan
            if feature >= 0 && feature < featureCount {
                let s = slot[feature]
                if s >= 0 { v = c.values[s * c.capacity + r] }
            } else if feature >= featureCount {
                if !extrasRead { (extras, extrasRead) = (self.extras, true) }
                v = extras?.value(row: row, feature: feature - featureCount) ?? .nan
            }
            out[k * stride] = v
        }
    }

    /// Copies `row`'s features into `out` (at least `featureCount` slots): the store's own, then
    /// as many of the attached extras as `out` has room for (NaN past the extras).
    public func profile(row: Int, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(row >= 0 && row < rowCount && out.count >= featureCount)
        let (c, r) = locate(row)
        for j in 0..<featureCount {
            let s = slot[j]
            out[j] = s >= 0 ? c.values[s * c.capacity + r] : .nan
        }
        guard out.count > featureCount else { return }
        let extras = extras
        for j in featureCount..<out.count { out[j] = extras?.value(row: row, feature: j - featureCount) ?? .nan }
    }

    /// The profile of subscriber `id` (`width` values: the store's own, then the extras), or nil
    /// when unknown.
    public func profile(of id: Int64) -> [Float]? {
        guard let row = row(of: id) else { return nil }
        var out = [Float](repeating: 0, count: width)
        out.withUnsafeMutableBufferPointer { profile(row: row, into: $0) }
        return out
    }

    /// Attaches `block` (nil: none) in one step: walks and profiles read its features after the
    /// store's own from then on. A walk that started before keeps the block it took. The rows of
    /// erased subscribers are cleared in it (an erasure may have run while it was built).
    /// - Throws: `ProfileStoreError` when the block's rows are not the store's.
    public func attach(_ block: ExtraColumns?) throws(ProfileStoreError) {
        if let block, block.rows != rowCount {
            throw ProfileStoreError("extra columns of \(block.rows) rows for a store of \(rowCount)")
        }
        // Erased rows cleared before the block is shared, and again after (an erasure between the two).
        if let block { for row in holes.withLock({ $0 }) { block.clear(row: row) } }
        extraBlock.withLock { $0 = block }
        if let block { for row in holes.withLock({ $0 }) { block.clear(row: row) } }
    }

    /// Inserts subscriber `id` or replaces its profile.
    /// - Returns: true when the subscriber is new to the shard.
    @discardableResult
    public func upsert(id: Int64, profile: UnsafeBufferPointer<Float>) -> Bool {
        precondition(profile.count >= featureCount, "profile has \(profile.count) values; the store holds \(featureCount)")
        precondition(id != Self.erasedID, "subscriber id \(id) is reserved (loaders refuse it)")
        if let row = row(of: id) {
            write(row: row, profile)
            return false
        }
        let row = rowCount
        ensureRoom(forRow: row)
        let (c, r) = locate(row)
        c.ids[r] = id
        rowCount += 1
        write(row: row, profile)
        index.insert(id, row: row) { self.id(at: $0) }
        return true
    }

    /// Inserts or replaces a profile given as an array.
    @discardableResult
    public func upsert(id: Int64, profile: [Float]) -> Bool {
        profile.withUnsafeBufferPointer { upsert(id: id, profile: $0) }
    }

    /// Writes the own features of `profile` to `row` (those absent are dropped).
    private func write(row: Int, _ profile: UnsafeBufferPointer<Float>) {
        let (c, r) = locate(row)
        for j in 0..<featureCount {
            let s = slot[j]
            if s >= 0 { c.values[s * c.capacity + r] = profile[j] }
        }
    }

    /// Makes sure `row` has a slot: a new full chunk, or a bigger first chunk.
    private func ensureRoom(forRow row: Int) {
        let chunk = row >> 16
        if chunk == chunks.count {
            chunks.append(Chunk(featureCount: heldCount, capacity: chunk == 0 ? 1024 : Self.chunkRows))
        } else if chunk == 0, row >= chunks[0].capacity {
            chunks[0] = chunks[0].grown(to: min(Self.chunkRows, chunks[0].capacity * 2), rows: rowCount, featureCount: heldCount)
        }
    }

    /// Removes subscriber `id`; the last row moves into its place. Not to be called while others
    /// read the store (rows move); `erase(id:)` is.
    /// - Returns: false when the shard did not hold it.
    @discardableResult
    public func remove(id: Int64) -> Bool {
        guard let row = row(of: id) else { return false }
        index.remove(id) { self.id(at: $0) }
        let last = rowCount - 1
        if row != last {
            let (dst, d) = locate(row)
            let (src, s) = locate(last)
            let moved = src.ids[s]
            dst.ids[d] = moved
            for j in 0..<heldCount { dst.values[j * dst.capacity + d] = src.values[j * src.capacity + s] }
            if moved == Self.erasedID {
                // The last row is a hole: it moves, and so does its (dead) index slot.
                index.repoint(row: last, to: row)
                holes.withLock { h in
                    if let k = h.firstIndex(of: last) { h.remove(at: k) }
                    h.insert(row, at: h.firstIndex { $0 > row } ?? h.count)
                }
            } else {
                index.update(moved, row: row) { self.id(at: $0) }
            }
        }
        rowCount -= 1
        if chunks.count > (rowCount + Self.chunkRows - 1) >> 16 + 1 { chunks.removeLast() }
        return true
    }

    /// Erases subscriber `id`: its values become NaN and its id `erasedID`, and its row a hole
    /// that walks skip. Safe while lookups of other subscribers and walks run on other threads
    /// (nothing moves), but a walk that started before it may still meet the row, with its old
    /// values or with `erasedID` and NaN. On a worker, exports run on the same event thread and
    /// jobs and campaign passes are refused during an erasure; a drift pass that overlaps one
    /// counts the row as missing. The store's one writer calls it (on a worker: the event thread).
    /// - Returns: false when the shard did not hold it.
    @discardableResult
    public func erase(id: Int64) -> Bool {
        guard let row = row(of: id) else { return false }
        let (c, r) = locate(row)
        // The hole first: a walk that starts from now on skips the row before its id changes.
        holes.withLock { h in h.insert(row, at: h.firstIndex { $0 > row } ?? h.count) }
        c.ids[r] = Self.erasedID
        for j in 0..<heldCount { c.values[j * c.capacity + r] = .nan }
        extras?.clear(row: row)
        return true
    }

    /// Prepares room for `additional` more subscribers (one index resize instead of several).
    public func reserve(_ additional: Int) {
        index.reserve(rowCount + additional) { self.id(at: $0) }
        let rows = min(Self.chunkRows, rowCount + additional)
        if chunks.isEmpty {
            chunks.append(Chunk(featureCount: heldCount, capacity: max(rows, 1)))
        } else if chunks.count == 1, chunks[0].capacity < rows {
            chunks[0] = chunks[0].grown(to: rows, rows: rowCount, featureCount: heldCount)
        }
    }

    /// Calls `body` for consecutive runs of rows, each with one contiguous column per feature
    /// (`columns[j]` points at `rows` values; `width` columns: the store's own, then the attached
    /// extras', NaN for rows past them) and the run's subscriber ids; the pointers are valid only
    /// during the call. Holes of erased subscribers are never in a run. This is how a scorer walks
    /// the shard.
    public func forEachRun(_ body: (_ firstRow: Int, _ rows: Int, _ ids: UnsafePointer<Int64>, _ columns: [UnsafePointer<Float>]) throws -> Void) rethrows {
        try walk(skipping: holes.withLock { $0 }, body)
    }

    private func walk(skipping skipped: [Int], _ body: (_ firstRow: Int, _ rows: Int, _ ids: UnsafePointer<Int64>, _ columns: [UnsafePointer<Float>]) throws -> Void) rethrows {
        let extras = extras
        let extraCount = extras?.names.count ?? 0
        // Rows past the extras' (none on a worker: its stores never gain rows once loaded) end
        // a run there and read NaN.
        let extraRows = extras?.rows ?? Int.max
        var hole = 0
        var first = 0
        for c in chunks where first < rowCount {
            let rows = min(Self.chunkRows, rowCount - first)
            var start = first
            let end = first + rows
            while start < end {
                while hole < skipped.count && skipped[hole] < start { hole += 1 }
                var stop = hole < skipped.count ? min(end, skipped[hole]) : end
                if start < extraRows && stop > extraRows { stop = extraRows }
                if stop > start {
                    let offset = start - first
                    var columns = slot.map { $0 >= 0 ? UnsafePointer(c.values + $0 * c.capacity + offset) : Self.missingColumn }
                    if let extras {
                        for k in 0..<extraCount { columns.append(extras.column(k, from: start) ?? Self.missingColumn) }
                    }
                    try body(start, stop - start, c.ids + offset, columns)
                }
                start = stop + (stop < end && (hole < skipped.count && stop == skipped[hole]) ? 1 : 0)  // past the hole
            }
            first = end
        }
    }

    /// `chunkRows` missing values: the column of an absent feature, and of an extra feature past
    /// the extras' rows.
    nonisolated(unsafe) private static let missingColumn: UnsafePointer<Float> = {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: chunkRows)
        p.initialize(repeating: .nan, count: chunkRows)
        return UnsafePointer(p)
    }()

    /// The whole store as two flat arrays, the form a shard travels in between nodes: the ids in
    /// row order and the values feature-major (`values[j * count + r]` is feature `j` of the
    /// `r`-th subscriber); holes of erased subscribers are left out.
    public func exported() -> (ids: [Int64], values: [Float]) {
        let skipped = holes.withLock { $0 }
        let n = rowCount - skipped.count, f = featureCount
        let ids = [Int64](unsafeUninitializedCapacity: n) { out, filled in
            var at = 0
            walk(skipping: skipped) { _, rows, runIDs, _ in
                (out.baseAddress! + at).update(from: runIDs, count: rows)
                at += rows
            }
            filled = n
        }
        let values = [Float](unsafeUninitializedCapacity: n * f) { out, filled in
            var at = 0
            walk(skipping: skipped) { _, rows, _, columns in
                for j in 0..<f { (out.baseAddress! + j * n + at).update(from: columns[j], count: rows) }
                at += rows
            }
            filled = n * f
        }
        return (ids, values)
    }

    /// A store holding what `exported()` produced: each column is copied a chunk at a time, then
    /// the index is built from the ids. The features in `absent` get no column: pass only features
    /// whose values are all missing (`allMissing`), or their values are dropped.
    /// - Throws: `ProfileStoreError` when the arrays do not fit together or an id repeats.
    public convenience init(featureCount: Int, ids: [Int64], values: [Float], absent: Set<Int> = []) throws(ProfileStoreError) {
        self.init(featureCount: featureCount, absent: absent)
        let n = ids.count
        guard values.count == n * featureCount else {
            throw ProfileStoreError("\(values.count) values for \(n) subscribers of \(featureCount) features (expected \(n * featureCount))")
        }
        reserve(n)
        try ids.withUnsafeBufferPointer { idp throws(ProfileStoreError) in
            try values.withUnsafeBufferPointer { v throws(ProfileStoreError) in
                while rowCount < n {
                    let first = rowCount
                    ensureRoom(forRow: first)
                    let (c, r) = locate(first)
                    let rows = min(c.capacity - r, n - first)
                    (c.ids + r).update(from: idp.baseAddress! + first, count: rows)
                    for j in 0..<featureCount where slot[j] >= 0 {
                        (c.values + slot[j] * c.capacity + r).update(from: v.baseAddress! + j * n + first, count: rows)
                    }
                    rowCount = first + rows
                    for row in first..<rowCount {
                        guard idp[row] != Self.erasedID else { throw ProfileStoreError("subscriber id \(idp[row]) is reserved (an erased subscriber's marker)") }
                        guard index.find(idp[row], idAt: { self.id(at: $0) }) == nil else {
                            throw ProfileStoreError("subscriber \(idp[row]) appears twice")
                        }
                        index.insert(idp[row], row: row) { self.id(at: $0) }
                    }
                }
            }
        }
    }

    /// Bytes held for profiles, ids and the index (what the store itself costs; excludes allocator overhead).
    public var residentBytes: Int {
        chunks.reduce(0) { $0 + $1.capacity * (8 + 4 * heldCount) } + index.bytes + (extras?.residentBytes ?? 0)
    }
}

/// A store that cannot be built from what it was given.
public struct ProfileStoreError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Open-addressing hash index from subscriber id to row, storing only `row + 1` in 32 bits:
/// the id of a slot is read back from the store's id column. Linear probing, load ≤ 3/4,
/// backward-shift deletion (no tombstones).
struct IdIndex {
    private var slots: [UInt32] = []
    private var mask = 0
    private var used = 0

    var bytes: Int { slots.count * 4 }

    @inline(__always)
    static func hash(_ id: Int64) -> Int {
        // splitmix64 finaliser: consecutive ids spread over the table.
        var z = UInt64(bitPattern: id) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: z ^ (z >> 31))
    }

    func find(_ id: Int64, idAt: (Int) -> Int64) -> Int? {
        guard !slots.isEmpty else { return nil }
        var i = Self.hash(id) & mask
        while true {
            let s = slots[i]
            if s == 0 { return nil }
            if idAt(Int(s) - 1) == id { return Int(s) - 1 }
            i = (i + 1) & mask
        }
    }

    mutating func reserve(_ n: Int, idAt: (Int) -> Int64) {
        var capacity = max(16, slots.count)
        while n * 4 > capacity * 3 { capacity *= 2 }
        if capacity != slots.count { rehash(capacity, idAt: idAt) }
    }

    private mutating func rehash(_ capacity: Int, idAt: (Int) -> Int64) {
        let old = slots
        slots = [UInt32](repeating: 0, count: capacity)
        mask = capacity - 1
        for s in old where s != 0 {
            var i = Self.hash(idAt(Int(s) - 1)) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = s
        }
    }

    /// Adds `id` (not present) at `row`.
    mutating func insert(_ id: Int64, row: Int, idAt: (Int) -> Int64) {
        precondition(row < Int(UInt32.max), "a shard holds at most 2^32 - 1 subscribers")
        reserve(used + 1, idAt: idAt)
        var i = Self.hash(id) & mask
        while slots[i] != 0 { i = (i + 1) & mask }
        slots[i] = UInt32(row + 1)
        used += 1
    }

    /// Points `id` (present) at `row`.
    mutating func update(_ id: Int64, row: Int, idAt: (Int) -> Int64) {
        var i = Self.hash(id) & mask
        while idAt(Int(slots[i]) - 1) != id { i = (i + 1) & mask }
        slots[i] = UInt32(row + 1)
    }

    /// Points the slot of `row` at `newRow` (a hole's dead slot, whose id cannot be looked up:
    /// found by a scan; only when a hole moves).
    mutating func repoint(row: Int, to newRow: Int) {
        for i in slots.indices where slots[i] == UInt32(row + 1) {
            slots[i] = UInt32(newRow + 1)
            return
        }
    }

    /// Removes `id` (present), shifting later entries of its probe run back.
    mutating func remove(_ id: Int64, idAt: (Int) -> Int64) {
        var i = Self.hash(id) & mask
        while idAt(Int(slots[i]) - 1) != id { i = (i + 1) & mask }
        var hole = i
        var j = (i + 1) & mask
        while slots[j] != 0 {
            let home = Self.hash(idAt(Int(slots[j]) - 1)) & mask
            // Move j into the hole unless its home lies cyclically in (hole, j].
            let inRange = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j)
            if !inRange {
                slots[hole] = slots[j]
                hole = j
            }
            j = (j + 1) & mask
        }
        slots[hole] = 0
        used -= 1
    }
}
