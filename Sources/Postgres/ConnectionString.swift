/// PostgreSQL connection strings as libpq takes them — URLs (`postgresql://user:pw@host/db?…`) and
/// key=value conninfo (`host=h password='p w'`) — and what may be shown of them.
public enum ConnectionString {
    /// `text` with every password replaced by `***`: the `user:password@` of a URL (also one
    /// libpq would not take as user info, `user:ab/cd@host`), a query parameter of a URL whose
    /// key percent-decodes to `password` or ends in it (`sslpassword`), and such a pair of a
    /// conninfo string, quoted or not. Safe for logs, errors and status output.
    public static func redacted(_ text: String) -> String { redaction(text).text }

    /// Whether `text` carries a password (which must then not be given on a command line).
    public static func containsPassword(_ text: String) -> Bool { !redaction(text).secrets.isEmpty }

    /// The secrets `text` carries, as written and percent-decoded: what must not be shown of a
    /// message about it either, such as libpq's, which may quote a value it could not parse.
    public static func secrets(_ text: String) -> [String] {
        var out: [String] = []
        for s in redaction(text).secrets where !s.isEmpty {
            out.append(s)
            let decoded = percentDecoded(s)
            if decoded != s { out.append(decoded) }
        }
        return out
    }

    /// `message` (about a connection to `connection`) with each of the connection string's
    /// secrets replaced by `***`; when one is too short to replace without mangling the text (under
    /// 4 characters) and the message holds it, the whole message is withheld.
    public static func scrubbed(_ message: String, of connection: String) -> String {
        var out = message
        for secret in secrets(connection).sorted(by: { $0.count > $1.count }) where out.contains(secret) {
            guard secret.count >= 4 else { return "(the server's message is withheld: it may quote the connection's password)" }
            out = out.replacingAll(secret, with: "***")
        }
        return out
    }

    private static func redaction(_ text: String) -> (text: String, secrets: [String]) {
        let chars = Array(text)
        // A URL, also behind a prefix ("jdbc:postgresql://…", pasted from elsewhere: libpq takes
        // that for a conninfo key and quotes it whole in its error).
        guard let start = indexOfScheme(in: chars) else { return redactedConninfo(chars) }
        let (prefix, before) = redactedConninfo(Array(chars[..<start]))
        let (url, secrets) = redactedURL(Array(chars[start...]))
        return (prefix + url, before + secrets)
    }

    /// Where "postgresql://" or "postgres://" starts in `c`, in any case.
    private static func indexOfScheme(in c: [Character]) -> Int? {
        for needle in ["postgresql://", "postgres://"] {
            let n = Array(needle)
            guard c.count >= n.count else { continue }
            for i in 0...(c.count - n.count) where zip(c[i..<(i + n.count)], n).allSatisfy({ $0.lowercased() == String($1) }) { return i }
        }
        return nil
    }

    /// Keys whose value is a secret: `password`, and any other ending in it (`sslpassword`, the
    /// passphrase of the client's TLS key).
    private static func isSecretKey(_ key: String) -> Bool {
        key.trimmingSpaces().lowercased().hasSuffix("password")
    }

    /// Each reading that could put a password somewhere marks its range of `c`; the union is
    /// masked, so one reading never undoes another's (masks more, never less).
    private static func redactedURL(_ c: [Character]) -> (text: String, secrets: [String]) {
        guard let schemeEnd = indexAfter("://", in: c) else { return (String(c), []) }
        var masks: [Range<Int>] = [], fragments: [String] = []
        // libpq's reading: the user info runs to the first '@' unless a '/' comes first, and the
        // password is what follows its first ':' (it may hold '?' or '#'); the host part after.
        var hostStart = schemeEnd
        if let stop = c[schemeEnd...].firstIndex(where: { $0 == "@" || $0 == "/" }), c[stop] == "@" {
            if let colon = c[schemeEnd..<stop].firstIndex(of: ":") { masks.append((colon + 1)..<stop) }
            hostStart = stop + 1
        }
        // A password libpq would misread ("user:ab/cd@host", an unencoded '/'): it takes the part
        // before the '/' for a port and quotes it in its error.
        let firstQuery = c[schemeEnd...].firstIndex(of: "?")
        if let at = c[schemeEnd..<(firstQuery ?? c.count)].lastIndex(of: "@"), let colon = c[schemeEnd..<at].firstIndex(of: ":") {
            masks.append((colon + 1)..<at)
            if let slash = c[(colon + 1)..<at].firstIndex(of: "/"), slash > colon + 1 { fragments.append(String(c[(colon + 1)..<slash])) }
        }
        // Query values whose key percent-decodes to a password, from the first '?' and from
        // libpq's ("postgresql://h?user=a@b&password=x": libpq sees user info "h?user=a").
        for q in Set([firstQuery, c[hostStart...].firstIndex(of: "?")].compactMap { $0 }) { masks += secretValues(c, after: q) }

        var out: [Character] = [], at = 0
        for r in merged(masks) {
            out += c[at..<r.lowerBound] + Array("***")
            at = r.upperBound
        }
        out += c[at...]
        return (String(out), masks.map { String(c[$0]) } + fragments)
    }

    /// The ranges of the values of the `key=value` pairs after `q` (a '?') whose key
    /// percent-decodes to a password.
    private static func secretValues(_ c: [Character], after q: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = q + 1
        while start <= c.count {
            let end = c[start...].firstIndex(of: "&") ?? c.count
            if let eq = c[start..<end].firstIndex(of: "="), isSecretKey(percentDecoded(String(c[start..<eq]))) { out.append((eq + 1)..<end) }
            start = end + 1
        }
        return out
    }

    /// `ranges` sorted, overlapping or touching ones joined.
    private static func merged(_ ranges: [Range<Int>]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = out.last, r.lowerBound <= last.upperBound {
                out[out.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                out.append(r)
            }
        }
        return out
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

    private static func redactedConninfo(_ c: [Character]) -> (text: String, secrets: [String]) {
        // key = value pairs separated by whitespace; values may be single-quoted, and a backslash
        // escapes the next character (a quote, or a space of an unquoted value).
        var out: [Character] = [], secrets: [String] = []
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
                while i < c.count, !c[i].isWhitespace {
                    if c[i] == "\\" { i += 1 }
                    i += 1
                }
                i = min(i, c.count)
            }
            if isSecretKey(key) {
                var value = String(c[valueStart..<i])
                if value.count >= 2, value.first == "'", value.last == "'" { value = String(value.dropFirst().dropLast()) }
                secrets.append(value)
                secrets.append(value.replacingAll("\\", with: ""))  // as libpq reads it, escapes removed
                out += Array("***")
            } else {
                out += c[valueStart..<i]
            }
        }
        return (String(out), secrets)
    }

    private static func indexAfter(_ needle: String, in c: [Character]) -> Int? {
        let n = Array(needle)
        guard c.count >= n.count else { return nil }
        for i in 0...(c.count - n.count) where Array(c[i..<(i + n.count)]) == n { return i + n.count }
        return nil
    }
}

extension String {
    /// Every occurrence of `target` replaced (no Foundation in this module).
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        let t = Array(target), s = Array(self)
        var out: [Character] = [], i = 0
        while i < s.count {
            if i + t.count <= s.count, Array(s[i..<(i + t.count)]) == t {
                out += replacement
                i += t.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return String(out)
    }

    fileprivate func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
