#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A CSV file read once into memory: chosen columns parsed as `Float` columns (for scoring),
/// every other column kept as the raw bytes of its cells so it can be copied to an output
/// file exactly as it was written.
///
/// Rules: the first line is the header; fields follow RFC 4180 (quotes, doubled quotes,
/// quoted commas and newlines); an empty numeric cell or `NaN`/`nan` is missing (NaN);
/// `inf`/`-inf` are values. Every line must have as many fields as the header, and a quote
/// that is opened must be closed (an error names the line it was opened on).
public struct CSVTable: Sendable {
    /// Column names from the header, in file order.
    public let header: [String]
    /// Number of data rows.
    public let rowCount: Int
    /// Parsed numeric columns, by header position.
    public let numeric: [Int: [Float]]
    /// The 1-based line on which each row starts (the header is line 1).
    public let lines: [Int32]
    /// Raw cells of the other columns: `cells[column][row]` is a range of `bytes`.
    private let cells: [Int: [Range<Int>]]
    private let bytes: [UInt8]

    /// Reads `path`, parsing the columns named in `numericColumns` as numbers.
    /// - Throws: `TableError` naming the line and column of the first bad cell or line.
    public static func read(path: String, numericColumns: Set<String>) throws(TableError) -> CSVTable {
        let bytes = try readFile(path)
        return try CSVTable(bytes: bytes, file: path, numericColumns: numericColumns)
    }

    /// The most columns a header may name (a wide feature mart has a few thousand).
    public static let maxColumns = 100_000

    /// Parses CSV `bytes`; `file` names them in errors.
    /// - Parameter maxRows: the most data rows taken; more is refused while reading, before the
    ///   rows' cells take memory (a request body of millions of empty lines).
    public init(bytes: [UInt8], file: String, numericColumns: Set<String>, maxRows: Int = .max) throws(TableError) {
        var scanner = CSVScanner(bytes: bytes)
        let first: [CSVScanner.Field]?
        do throws(CSVScanner.UnterminatedQuote) {
            first = try scanner.nextRecord(maxFields: Self.maxColumns)
        } catch {
            throw error.tableError(file: file, header: nil)
        }
        guard let headerFields = first else {
            throw TableError(file: file, line: 1, "file is empty; expected a header line")
        }
        guard scanner.recordFields <= Self.maxColumns else {
            throw TableError(file: file, line: 1, "the header names \(scanner.recordFields) columns; at most \(Self.maxColumns)")
        }
        let header = headerFields.map { scanner.text($0) }
        var seen = Set<String>()
        for name in header where !seen.insert(name).inserted {
            throw TableError(file: file, line: 1, column: name, "column name appears twice in the header")
        }
        let numericIndex = header.indices.filter { numericColumns.contains(header[$0]) }
        let rawIndex = header.indices.filter { !numericColumns.contains(header[$0]) }
        var numeric: [[Float]] = numericIndex.map { _ in [] }
        var raw: [[Range<Int>]] = rawIndex.map { _ in [] }
        var isNumeric = [Int](repeating: -1, count: header.count)
        var rawSlot = [Int](repeating: -1, count: header.count)
        for (k, i) in numericIndex.enumerated() { isNumeric[i] = k }
        for (k, i) in rawIndex.enumerated() { rawSlot[i] = k }

        var rows = 0
        var lines: [Int32] = []
        var fields: [CSVScanner.Field] = []
        fields.reserveCapacity(header.count)
        while true {
            let line = scanner.line
            let more: Bool
            do throws(CSVScanner.UnterminatedQuote) {
                more = try scanner.nextRecord(into: &fields, maxFields: header.count)
            } catch {
                throw error.tableError(file: file, header: header)
            }
            guard more else { break }
            if scanner.recordFields == 1 && fields[0].range.isEmpty { continue }  // blank line
            guard scanner.recordFields == header.count else {
                throw TableError(file: file, line: line, "expected \(header.count) fields as in the header, found \(scanner.recordFields)")
            }
            guard rows < maxRows else {
                throw TableError(file: file, line: line, "more than \(maxRows) rows; at most \(maxRows) in one file")
            }
            for (i, f) in fields.enumerated() {
                let k = isNumeric[i]
                if k >= 0 {
                    guard let v = scanner.float(f) else {
                        throw TableError(file: file, line: line, column: header[i],
                                         "'\(scanner.text(f))' is not a number (empty or NaN means missing)")
                    }
                    numeric[k].append(v)
                } else {
                    raw[rawSlot[i]].append(f.raw)
                }
            }
            rows += 1
            lines.append(Int32(truncatingIfNeeded: line))
        }
        self.header = header
        self.lines = lines
        self.rowCount = rows
        var numericByColumn: [Int: [Float]] = [:]
        for (k, i) in numericIndex.enumerated() { numericByColumn[i] = numeric[k] }
        self.numeric = numericByColumn
        var cellsByColumn: [Int: [Range<Int>]] = [:]
        for (k, i) in rawIndex.enumerated() { cellsByColumn[i] = raw[k] }
        self.cells = cellsByColumn
        self.bytes = bytes
    }

    /// The numeric column called `name`, if it was requested and exists.
    public func column(named name: String) -> [Float]? {
        header.firstIndex(of: name).flatMap { numeric[$0] }
    }

    /// A non-numeric cell's text, quotes removed.
    public func text(column: Int, row: Int) -> String {
        let raw = rawCell(column: column, row: row)
        if raw.first == UInt8(ascii: "\""), raw.count >= 2, raw.last == UInt8(ascii: "\"") {
            return String(decoding: raw.dropFirst().dropLast(), as: UTF8.self).replacingDoubledQuotes()
        }
        return String(decoding: raw, as: UTF8.self)
    }

    /// The raw bytes of a non-numeric cell, exactly as written (quotes included).
    public func rawCell(column: Int, row: Int) -> ArraySlice<UInt8> {
        bytes[cells[column]![row]]
    }

    /// Indices of the columns that were not parsed as numbers, in file order.
    public var passthroughColumns: [Int] { header.indices.filter { numeric[$0] == nil } }

    static func readFile(_ path: String) throws(TableError) -> [UInt8] {
        guard let f = fopen(path, "rb") else {
            throw TableError(file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
            if n > 0 { out.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count {
                if ferror(f) != 0 { throw TableError(file: path, "read failed: \(String(cString: strerror(errno)))") }
                break
            }
        }
        return out
    }
}

/// Splits CSV bytes into records and fields without copying them.
struct CSVScanner {
    struct Field {
        /// The cell's content without surrounding quotes.
        var range: Range<Int>
        /// The cell as written, quotes included.
        var raw: Range<Int>
        /// Whether it contained doubled quotes that `text` must undo.
        var quoted: Bool
    }

    let bytes: [UInt8]
    var pos = 0
    /// 1-based line number of the next record.
    var line = 1
    /// The fields of the last record read, counted past `maxFields` too (only that many are kept).
    private(set) var recordFields = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
        // A UTF-8 byte order mark (spreadsheets write one) is not part of the first column's name.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { pos = 3 }
    }

    /// A quoted field whose closing quote never comes: the rest of the file would silently become
    /// one cell.
    struct UnterminatedQuote: Error {
        /// 1-based line of the opening quote.
        var line: Int
        /// 0-based position of the field in its record.
        var field: Int

        func tableError(file: String, header: [String]?) -> TableError {
            let column = header.flatMap { field < $0.count ? $0[field] : nil }
            return TableError(file: file, line: line, column: column,
                              "quoted field opened on this line is never closed (a '\"' without its closing quote)")
        }
    }

    mutating func nextRecord() throws(UnterminatedQuote) -> [Field]? {
        var fields: [Field] = []
        return try nextRecord(into: &fields) ? fields : nil
    }

    mutating func nextRecord(maxFields: Int) throws(UnterminatedQuote) -> [Field]? {
        var fields: [Field] = []
        return try nextRecord(into: &fields, maxFields: maxFields) ? fields : nil
    }

    /// Reads the next record into `fields`; false at end of input.
    /// - Throws: `UnterminatedQuote` when a quoted field runs to the end of the input.
    /// - Parameter maxFields: the most fields kept; a record with more is read to its end and
    ///   counted (`recordFields`), so a line of millions of commas costs no memory.
    mutating func nextRecord(into fields: inout [Field], maxFields: Int = .max) throws(UnterminatedQuote) -> Bool {
        fields.removeAll(keepingCapacity: true)
        recordFields = 0
        guard pos < bytes.count else { return false }
        let n = bytes.count
        while true {
            recordFields += 1
            let start = pos
            if pos < n && bytes[pos] == UInt8(ascii: "\"") {
                let openLine = line
                pos += 1
                let contentStart = pos
                while pos < n {
                    if bytes[pos] == UInt8(ascii: "\"") {
                        if pos + 1 < n && bytes[pos + 1] == UInt8(ascii: "\"") { pos += 2; continue }
                        break
                    }
                    if bytes[pos] == 0x0A { line += 1 }
                    pos += 1
                }
                guard pos < n else { throw UnterminatedQuote(line: openLine, field: recordFields - 1) }
                let contentEnd = pos
                pos += 1  // closing quote
                // Anything between the closing quote and the separator is kept in the raw cell.
                while pos < n && bytes[pos] != UInt8(ascii: ",") && bytes[pos] != 0x0A { pos += 1 }
                var rawEnd = pos
                if rawEnd > start, bytes[rawEnd - 1] == 0x0D { rawEnd -= 1 }
                if fields.count < maxFields { fields.append(Field(range: contentStart..<contentEnd, raw: start..<rawEnd, quoted: true)) }
            } else {
                while pos < n && bytes[pos] != UInt8(ascii: ",") && bytes[pos] != 0x0A { pos += 1 }
                var end = pos
                if end > start, bytes[end - 1] == 0x0D { end -= 1 }
                if fields.count < maxFields { fields.append(Field(range: start..<end, raw: start..<end, quoted: false)) }
            }
            if pos < n && bytes[pos] == UInt8(ascii: ",") {
                pos += 1
                continue
            }
            pos += 1  // newline or end
            line += 1
            return true
        }
    }

    func text(_ f: Field) -> String {
        let s = String(decoding: bytes[f.range], as: UTF8.self)
        return f.quoted ? s.replacingDoubledQuotes() : s
    }

    /// The field as a Float; NaN for empty/NaN; nil when it is not a number (a quoted one with
    /// anything but spaces after its closing quote, `"0.5"7`, is not one either).
    func float(_ f: Field) -> Float? {
        if f.quoted, f.raw.upperBound > f.range.upperBound + 1,
           bytes[(f.range.upperBound + 1)..<f.raw.upperBound].contains(where: { $0 != 0x20 }) {
            return nil
        }
        var r = f.range
        while r.lowerBound < r.upperBound, bytes[r.lowerBound] == 0x20 { r = (r.lowerBound + 1)..<r.upperBound }
        while r.lowerBound < r.upperBound, bytes[r.upperBound - 1] == 0x20 { r = r.lowerBound..<(r.upperBound - 1) }
        if r.isEmpty { return .nan }
        let len = r.count
        guard len < 64 else { return nil }
        // Copy to a NUL-terminated buffer so strtof cannot read past the cell.
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: len + 1) { buf -> Float? in
            for i in 0..<len { buf[i] = CChar(bitPattern: bytes[r.lowerBound + i]) }
            buf[len] = 0
            guard let start = buf.baseAddress else { return nil }  // never: the buffer holds len + 1 bytes
            var end: UnsafeMutablePointer<CChar>? = nil
            let v = strtof(start, &end)
            guard end == start + len else { return nil }
            return v
        }
    }
}

extension String {
    func replacingDoubledQuotes() -> String {
        var out = ""
        var previousQuote = false
        for c in self {
            if c == "\"" && previousQuote { previousQuote = false; continue }
            previousQuote = c == "\""
            out.append(c)
        }
        return out
    }
}
