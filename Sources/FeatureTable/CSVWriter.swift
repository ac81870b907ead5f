#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a CSV file through a large buffer; cells are appended as bytes or numbers.
public final class CSVWriter {
    private let file: UnsafeMutablePointer<FILE>
    private let path: String
    private var buffer: [UInt8] = []
    private var atLineStart = true

    /// Creates or truncates `path`.
    /// - Throws: `TableError` if the file cannot be created.
    public init(path: String) throws(TableError) {
        guard let f = fopen(path, "wb") else {
            throw TableError(file: path, "cannot create: \(String(cString: strerror(errno)))")
        }
        self.file = f
        self.path = path
        buffer.reserveCapacity(1 << 20)
    }

    deinit { fclose(file) }

    private func separator() {
        if !atLineStart { buffer.append(UInt8(ascii: ",")) }
        atLineStart = false
    }

    /// Appends a cell copied verbatim (already CSV-encoded).
    public func raw<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        separator()
        buffer.append(contentsOf: bytes)
    }

    /// Appends a text cell, quoting it when it needs quotes.
    public func text(_ s: String) {
        separator()
        if s.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }) {
            buffer.append(UInt8(ascii: "\""))
            for b in s.utf8 {
                if b == UInt8(ascii: "\"") { buffer.append(b) }
                buffer.append(b)
            }
            buffer.append(UInt8(ascii: "\""))
        } else {
            buffer.append(contentsOf: s.utf8)
        }
    }

    /// Appends a number in its shortest round-trip form.
    public func number(_ v: Double) {
        separator()
        buffer.append(contentsOf: v.description.utf8)
    }

    /// Appends a single-precision number in its shortest round-trip form.
    public func number(_ v: Float) {
        separator()
        buffer.append(contentsOf: v.description.utf8)
    }

    /// Appends an empty cell.
    public func empty() {
        separator()
    }

    /// Ends the current line, flushing the buffer when it is large.
    public func endLine() throws(TableError) {
        buffer.append(0x0A)
        atLineStart = true
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// Writes everything buffered to the file.
    public func flush() throws(TableError) {
        let written = buffer.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        guard written == buffer.count, fflush(file) == 0 else {
            throw TableError(file: path, "write failed: \(String(cString: strerror(errno)))")
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
