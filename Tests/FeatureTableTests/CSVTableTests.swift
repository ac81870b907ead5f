import Testing
@testable import FeatureTable

@Suite("CSV tables")
struct CSVTableTests {
    private func table(_ text: String, numeric: Set<String> = ["a", "b"]) throws(TableError) -> CSVTable {
        try CSVTable(bytes: Array(text.utf8), file: "in.csv", numericColumns: numeric)
    }

    @Test("numeric columns parse; empty and NaN are missing; other columns are kept verbatim")
    func parses() throws {
        let t = try table("id,a,b,note\n7,1.5,,x\n8,NaN,-2e3,\"q, \"\"r\"\"\"\r\n9,inf, 3 ,\n")
        #expect(t.rowCount == 3)
        let a = try #require(t.column(named: "a"))
        let b = try #require(t.column(named: "b"))
        #expect(a[0] == 1.5 && a[1].isNaN && a[2] == .infinity)
        #expect(b[0].isNaN && b[1] == -2000 && b[2] == 3)
        #expect(t.passthroughColumns == [0, 3])
        #expect(String(decoding: t.rawCell(column: 3, row: 1), as: UTF8.self) == "\"q, \"\"r\"\"\"")
        #expect(t.rawCell(column: 3, row: 2).isEmpty)
    }

    @Test("a UTF-8 byte order mark (as spreadsheets write) is not part of the first column's name")
    func byteOrderMark() throws {
        let t = try CSVTable(bytes: [0xEF, 0xBB, 0xBF] + Array("a,b,id\n1,2,x\n".utf8), file: "in.csv", numericColumns: ["a", "b"])
        #expect(t.header == ["a", "b", "id"])
        #expect(try #require(t.column(named: "a")) == [1])
    }

    @Test("a non-numeric cell is reported with its line and column")
    func badCell() {
        #expect {
            _ = try table("id,a,b\n1,2,3\n2,x7,3\n")
        } throws: { e in
            let e = e as! TableError
            return e.line == 3 && e.column == "a" && e.description == "in.csv:3: column 'a': 'x7' is not a number (empty or NaN means missing)"
        }
    }

    @Test("a quoted number with text after its closing quote is not a number (not the quoted part alone)")
    func junkAfterQuote() throws {
        #expect {
            _ = try table("id,a,b\n1,\"0.5\"7,3\n")
        } throws: { e in
            let e = e as! TableError
            return e.line == 2 && e.column == "a" && e.description.contains("is not a number")
        }
        let t = try table("id,a,b\n1,\"0.5\" ,\"2\"\r\n")
        #expect(try #require(t.column(named: "a")) == [0.5] && t.column(named: "b") == [2])
    }

    @Test("a line with the wrong number of fields is reported with its line")
    func fieldCount() {
        #expect {
            _ = try table("id,a,b\n1,2,3\n2,3\n")
        } throws: { e in (e as! TableError).line == 3 && (e as! TableError).message.contains("expected 3 fields") }
    }

    @Test("line numbers count newlines inside quoted cells")
    func quotedNewlines() {
        #expect {
            _ = try table("id,a,b\n\"x\ny\",1,2\n3,oops,4\n")
        } throws: { e in (e as! TableError).line == 4 }
    }

    @Test("a duplicate column name is refused")
    func duplicateHeader() {
        #expect(throws: TableError.self) { _ = try table("a,b,a\n1,2,3\n") }
    }

    @Test("an empty file is refused")
    func empty() {
        #expect(throws: TableError.self) { _ = try table("") }
    }
}

/// CSV files written to hurt: quotes never closed, odd line endings. Each is an error naming
/// its line, or reads as documented; none traps.
@Suite("CSV tables: hostile input")
struct CSVHostileInputTests {
    private func failure(_ text: String, numeric: Set<String> = ["a", "b"]) -> TableError? {
        do {
            _ = try CSVTable(bytes: Array(text.utf8), file: "in.csv", numericColumns: numeric)
            return nil
        } catch {
            return error
        }
    }

    @Test("a quote never closed is an error naming the line it was opened on and its column")
    func unterminatedQuote() throws {
        // It used to swallow the rest of the file into one cell (then complain about a field count).
        let e = try #require(failure("id,a,b\n1,2,3\n\"oops,4,5\n6,7,8\n"))
        #expect(e.line == 3 && e.column == "id", "\(e)")
        #expect(e.description == "in.csv:3: column 'id': quoted field opened on this line is never closed (a '\"' without its closing quote)")
    }

    @Test("an unclosed quote in the last column of the last line is an error, not a cell")
    func unterminatedLastCell() throws {
        // The field count matched, so this used to load with the note "\"2\n".
        let e = try #require(failure("a,note\n1,\"2\n", numeric: ["a"]))
        #expect(e.line == 2 && e.column == "note", "\(e)")
    }

    @Test("an unclosed quote in the header is an error on line 1")
    func unterminatedHeader() throws {
        // This used to read as a header of two columns, the second "a\n1,2\n", and no rows.
        let e = try #require(failure("id,\"a\n1,2\n", numeric: []))
        #expect(e.line == 1 && e.column == nil, "\(e)")
        #expect(e.message.contains("never closed"))
    }

    @Test("the line named is where the quote opened, after newlines inside earlier quoted cells")
    func lineAfterQuotedNewlines() throws {
        let e = try #require(failure("id,a,b\n\"x\ny\",1,\"2\n"))
        #expect(e.line == 3 && e.column == "b", "\(e)")
    }

    @Test("a closed quote at the very end of the file is fine; so are a lone CR and a NUL")
    func edges() throws {
        let t = try CSVTable(bytes: Array("id,a\n\"x\"\"y\",1\n\"z\",\r".utf8) + [0x0A, 0x00, 0x2C, 0x32], file: "in.csv", numericColumns: ["a"])
        #expect(t.rowCount == 3)
        #expect(t.text(column: 0, row: 0) == "x\"y")
        #expect(t.column(named: "a")?[1].isNaN == true)
        #expect(t.rawCell(column: 0, row: 2) == [0x00])
        #expect(t.column(named: "a")?[2] == 2)
    }

    @Test("a line of millions of fields is counted, not kept: refused with the count; a header wider than the limit is refused; rows beyond maxRows are refused while reading")
    func bounds() throws {
        let wide = "id,a\n1," + String(repeating: ",", count: 2_000_000) + "\n"
        let e = try #require(failure(wide, numeric: ["a"]))
        #expect(e.line == 2 && e.message.contains("expected 2 fields as in the header, found 2000002"), "\(e)")
        let header = try #require(failure(String(repeating: "c,", count: CSVTable.maxColumns) + "c\n", numeric: []))
        #expect(header.line == 1 && header.message.contains("\(CSVTable.maxColumns + 1) columns"), "\(header)")
        let rows = Array(("id,a\n" + String(repeating: "1,2\n", count: 11) + "\n").utf8)
        #expect(try CSVTable(bytes: rows, file: "in.csv", numericColumns: ["a"], maxRows: 11).rowCount == 11)
        func refusal(_ bytes: [UInt8]) -> TableError? {
            do {
                _ = try CSVTable(bytes: bytes, file: "in.csv", numericColumns: ["a"], maxRows: 11)
                return nil
            } catch {
                return error
            }
        }
        let over = try #require(refusal(rows + Array("1,2\n".utf8)), "12 rows taken with maxRows 11")
        #expect(over.line == 14 && over.message.contains("more than 11 rows"), "\(over)")
    }
}
