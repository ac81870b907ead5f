/// PostgreSQL connection strings as libpq takes them — URLs (`postgresql://user:pw@host/db?…`) and
/// key=value conninfo (`host=h password='p w'`) — and what may be shown of them.
public enum ConnectionString {
    /// `text` with every password replaced by `***`: the `user:password@` of a URL, a
    /// `password=` query parameter of a URL, and a `password=` pair of a conninfo string, quoted
    /// or not. Safe for logs, errors and status output.
    public static func redacted(_ text: String) -> String {
        let chars = Array(text)
        if isURL(chars) { return redactedURL(chars) }
        return redactedConninfo(chars)
    }

    /// Whether `text` carries a password (which must then not be given on a command line).
    public static func containsPassword(_ text: String) -> Bool { redacted(text) != text }

    private static func isURL(_ c: [Character]) -> Bool {
        let s = String(c.prefix(13)).lowercased()
        return s.hasPrefix("postgresql://") || s.hasPrefix("postgres://")
    }

    private static func redactedURL(_ c: [Character]) -> String {
        guard let schemeEnd = indexAfter("://", in: c) else { return String(c) }
        var out = c
        // As libpq reads it: the user info runs to the first '@' unless a '/' comes first, and the
        // password is what follows its first ':' (it may hold '?' or '#').
        if let stop = c[schemeEnd...].firstIndex(where: { $0 == "@" || $0 == "/" }), c[stop] == "@",
           let colon = c[schemeEnd..<stop].firstIndex(of: ":") {
            out = Array(c[..<(colon + 1)]) + Array("***") + Array(c[stop...])
        }
        // Query parameters after the host part: a key that percent-decodes to "password".
        let hostStart = out.firstIndex(of: "@").map { $0 + 1 } ?? schemeEnd
        guard let q = out[hostStart...].firstIndex(of: "?") else { return String(out) }
        var result = Array(out[...q])
        let query = String(out[(q + 1)...])
        let pairs = query.split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
            let key = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            if percentDecoded(key).lowercased() == "password" { return "password=***" }
            return String(pair)
        }
        result += Array(pairs.joined(separator: "&"))
        return String(result)
    }

    /// `%XX` sequences decoded (a malformed one is kept as it is).
    private static func percentDecoded(_ text: String) -> String {
        var bytes: [UInt8] = []
        let u = Array(text.utf8)
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "%"), i + 2 < u.count, let v = UInt8(String(decoding: u[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                bytes.append(v)
                i += 3
            } else {
                bytes.append(u[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func redactedConninfo(_ c: [Character]) -> String {
        // key = value pairs separated by whitespace; values may be single-quoted with \ escapes.
        var out: [Character] = []
        var i = 0
        while i < c.count {
            // Copy whitespace.
            if c[i].isWhitespace { out.append(c[i]); i += 1; continue }
            // Read a key.
            let keyStart = i
            while i < c.count, c[i] != "=", !c[i].isWhitespace { i += 1 }
            let key = String(c[keyStart..<i])
            out += c[keyStart..<i]
            // Spaces and '='.
            while i < c.count, c[i].isWhitespace { out.append(c[i]); i += 1 }
            guard i < c.count, c[i] == "=" else { continue }
            out.append("="); i += 1
            while i < c.count, c[i].isWhitespace { out.append(c[i]); i += 1 }
            // The value.
            let valueStart = i
            if i < c.count, c[i] == "'" {
                i += 1
                while i < c.count, c[i] != "'" {
                    if c[i] == "\\" { i += 1 }
                    i += 1
                }
                i = min(i + 1, c.count)
            } else {
                while i < c.count, !c[i].isWhitespace { i += 1 }
            }
            if key.lowercased() == "password" { out += Array("***") } else { out += c[valueStart..<i] }
        }
        return String(out)
    }

    private static func indexAfter(_ needle: String, in c: [Character]) -> Int? {
        let n = Array(needle)
        guard c.count >= n.count else { return nil }
        for i in 0...(c.count - n.count) where Array(c[i..<(i + n.count)]) == n { return i + n.count }
        return nil
    }
}
