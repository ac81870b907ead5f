import FeatureTable

/// An outcomes CSV (`churngrid outcomes import --input FILE.csv`) read and checked in full.
///
/// Format — the header names the columns, in any order:
/// - `subscriber_id` (required): an integer;
/// - `churned` (required): `0` or `1`;
/// - `accepted` (optional column): `0`, `1`, or empty for unknown;
/// - `observed_at` (required): an ISO 8601 date or timestamp with a zone (`ObservationTime`).
///
/// Cells may be quoted and padded with spaces; blank lines are skipped (`CSVTable`'s rules).
///
/// Decisions, both made so a mistake is seen at import rather than as a wrong uplift later:
/// - **Any other column is refused.** An export with a misspelt `accepted` would otherwise be read
///   as "acceptance unknown" without a word. Drop extra columns before importing.
/// - **A subscriber appears once per file.** Two lines for one subscriber are contradictory (or a
///   file concatenated twice); the error names both lines. To correct outcomes, fix the file and
///   import it again: the import replaces a subscriber's earlier outcome (that is the importer's
///   rule; `CampaignOutcome` likewise takes a subscriber's latest observation in the window).
///
/// Every error names the file, the line and the column (`OutcomesFileError`); the first one found
/// is thrown and nothing is returned.
///
/// Cost: the cells are parsed from `CSVTable`'s bytes in place — no `String` per line — and the
/// duplicate check sorts the ids once rather than hashing ten million of them.
public struct OutcomesFile: Sendable {
    /// The file's name, as given.
    public let file: String
    /// The rows, in file order.
    public let outcomes: Outcomes
    /// The 1-based line of each row (the header is line 1).
    public let lines: [Int32]

    /// Columns a file must have.
    public static let requiredColumns = ["subscriber_id", "churned", "observed_at"]
    /// Columns a file may have.
    public static let optionalColumns = ["accepted"]

    /// Reads and checks the file at `path`.
    /// - Throws: `OutcomesFileError` naming the line and column of the first problem.
    public static func read(path: String) throws(OutcomesFileError) -> OutcomesFile {
        let table: CSVTable
        do {
            table = try CSVTable.read(path: path, numericColumns: [])
        } catch {
            throw OutcomesFileError(error)
        }
        return try OutcomesFile(table: table, file: path)
    }

    /// Checks CSV `bytes`; `file` names them in errors.
    /// - Throws: `OutcomesFileError` naming the line and column of the first problem.
    /// - Parameter maxRows: the most outcomes taken (more is refused while reading).
    public init(bytes: [UInt8], file: String, maxRows: Int = .max) throws(OutcomesFileError) {
        let table: CSVTable
        do {
            table = try CSVTable(bytes: bytes, file: file, numericColumns: [], maxRows: maxRows)
        } catch {
            throw OutcomesFileError(error)
        }
        try self.init(table: table, file: file)
    }

    init(table: CSVTable, file: String) throws(OutcomesFileError) {
        let known = Self.requiredColumns + Self.optionalColumns
        for name in table.header where !known.contains(name) {
            throw OutcomesFileError(.unknownColumn, file: file, line: 1, column: name,
                                    "not a column of an outcomes file (\(known.joined(separator: ", "))); remove it")
        }
        func position(_ name: String) throws(OutcomesFileError) -> Int {
            guard let i = table.header.firstIndex(of: name) else {
                throw OutcomesFileError(.missingColumn, file: file, line: 1, column: name, "the header has no \(name) column")
            }
            return i
        }
        let idColumn = try position("subscriber_id")
        let churnedColumn = try position("churned")
        let timeColumn = try position("observed_at")
        let acceptedColumn = table.header.firstIndex(of: "accepted")

        var outcomes = Outcomes()
        outcomes.reserveCapacity(table.rowCount)
        for r in 0..<table.rowCount {
            let line = Int(table.lines[r])
            func fail(_ code: OutcomesFileError.Code, _ column: Int, _ what: String) -> OutcomesFileError {
                let text = String(decoding: Self.content(table.rawCell(column: column, row: r)), as: UTF8.self)
                return OutcomesFileError(code, file: file, line: line, column: table.header[column], "'\(text)' \(what)")
            }
            let idCell = Self.content(table.rawCell(column: idColumn, row: r))
            guard let id = Self.integer(idCell) else {
                throw fail(.malformedSubscriberID, idColumn, "is not an integer subscriber id")
            }
            guard let churned = Self.binary(Self.content(table.rawCell(column: churnedColumn, row: r))) else {
                throw fail(.notBinary, churnedColumn, "is not 0 or 1 (1 = the subscriber churned)")
            }
            var accepted: Bool? = nil
            if let acceptedColumn {
                let cell = Self.content(table.rawCell(column: acceptedColumn, row: r))
                if !cell.isEmpty {
                    guard let value = Self.binary(cell) else {
                        throw fail(.notBinary, acceptedColumn, "is not 0, 1 or empty (1 = accepted the offer, empty = unknown)")
                    }
                    accepted = value
                }
            }
            guard let at = ObservationTime.millis(Self.content(table.rawCell(column: timeColumn, row: r))) else {
                throw fail(.malformedTime, timeColumn,
                           "is not a date (2026-12-03) or a timestamp with a zone (2026-12-03T10:15:00Z), years 1970-9999")
            }
            outcomes.append(subscriberID: id, churned: churned, accepted: accepted, observedAt: at)
        }
        if let (first, again) = Self.firstRepeat(outcomes.subscriberIDs) {
            throw OutcomesFileError(.duplicateSubscriber, file: file, line: Int(table.lines[again]), column: "subscriber_id",
                                    "subscriber \(outcomes.subscriberIDs[again]) appears again (first on line \(table.lines[first])); a file holds one outcome per subscriber")
        }
        self.file = file
        self.outcomes = outcomes
        self.lines = table.lines
    }

    /// The cell without surrounding quotes and spaces. A quoted cell of this format never holds a
    /// doubled quote legitimately, so one left inside makes the value malformed, as it should.
    static func content(_ raw: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var cell = raw.trimmingSpaces()
        if cell.count >= 2, cell.first == UInt8(ascii: "\""), cell.last == UInt8(ascii: "\"") {
            cell = cell.dropFirst().dropLast().trimmingSpaces()
        }
        return cell
    }

    /// A decimal Int64 with an optional sign; nil on anything else or on overflow.
    static func integer(_ b: ArraySlice<UInt8>) -> Int64? {
        var i = b.startIndex
        var negative = false
        if i < b.endIndex, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") {
            negative = b[i] == UInt8(ascii: "-")
            i += 1
        }
        guard i < b.endIndex else { return nil }
        var value: Int64 = 0
        while i < b.endIndex {
            let d = Int64(b[i]) - 48
            guard d >= 0, d <= 9 else { return nil }
            // Accumulated negatively so Int64.min parses.
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = times10.subtractingReportingOverflow(d)
            guard !o1, !o2 else { return nil }
            value = next
            i += 1
        }
        if negative { return value }
        let (positive, overflow) = Int64(0).subtractingReportingOverflow(value)
        return overflow ? nil : positive
    }

    /// `0` → false, `1` → true, anything else nil.
    static func binary(_ b: ArraySlice<UInt8>) -> Bool? {
        guard b.count == 1, let c = b.first else { return nil }
        switch c {
        case UInt8(ascii: "0"): return false
        case UInt8(ascii: "1"): return true
        default: return nil
        }
    }

    /// The earliest row (in file order) whose id an earlier row already had, with that earlier row.
    static func firstRepeat(_ ids: [Int64]) -> (first: Int, again: Int)? {
        // Exports are usually in id order: then one pass proves there is no repeat.
        if ids.indices.dropFirst().allSatisfy({ ids[$0 - 1] < ids[$0] }) { return nil }
        var keyed = ids.indices.map { (id: ids[$0], row: $0) }
        keyed.sort { $0.id < $1.id || ($0.id == $1.id && $0.row < $1.row) }
        var best: (first: Int, again: Int)? = nil
        var i = 0
        while i < keyed.count {
            var j = i + 1
            // Rows of one id are adjacent, in file order: the first repeat is the second of them.
            if j < keyed.count, keyed[j].id == keyed[i].id {
                if best.map({ keyed[j].row < $0.again }) ?? true { best = (keyed[i].row, keyed[j].row) }
                while j < keyed.count, keyed[j].id == keyed[i].id { j += 1 }
            }
            i = j
        }
        return best
    }
}

extension ArraySlice<UInt8> {
    fileprivate func trimmingSpaces() -> ArraySlice<UInt8> {
        var s = self
        while let c = s.first, c == 0x20 || c == 0x09 { s = s.dropFirst() }
        while let c = s.last, c == 0x20 || c == 0x09 { s = s.dropLast() }
        return s
    }
}
