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
        if isURL(chars) { return redactedURL(chars) }
        // A URL behind a prefix ("jdbc:postgresql://…", pasted from elsewhere): libpq takes it as
        // a conninfo key and quotes it in its error; redacted as the URL it is.
        let lower = Array(text.lowercased())
        if lower.count == chars.count, let start = indexOf("postgresql://", in: lower) ?? indexOf("postgres://", in: lower) {
            let (rest, secrets) = redactedURL(Array(chars[start...]))
            let (prefix, more) = redactedConninfo(Array(chars[..<start]))
            return (prefix + rest, more + secrets)
        }
        return redactedConninfo(chars)
    }

    private static func isURL(_ c: [Character]) -> Bool {
        let s = String(c.prefix(13)).lowercased()
        return s.hasPrefix("postgresql://") || s.hasPrefix("postgres://")
    }

    /// Keys whose value is a secret: `password`, and any other ending in it (`sslpassword`, the
    /// passphrase of the client's TLS key).
    private static func isSecretKey(_ key: String) -> Bool {
        key.trimmingSpaces().lowercased().hasSuffix("password")
    }

    private static func redactedURL(_ given: [Character]) -> (text: String, secrets: [String]) {
        guard let schemeEnd = indexAfter("://", in: given) else { return (String(given), []) }
        var secrets: [String] = []
        // First, whatever follows the first '?' as a query, wherever libpq would put the user info
        // ("postgresql://h?user=a@b&password=x" has an '@' only in its query): masks more, never less.
        var c = given
        if let q = given[schemeEnd...].firstIndex(of: "?") {
            let (masked, found) = maskedQuery(given, after: q)
            c = masked
            secrets += found
        }
        var out = c
        var hostStart = schemeEnd
        if let stop = c[schemeEnd...].firstIndex(where: { $0 == "@" || $0 == "/" }), c[stop] == "@" {
            // As libpq reads it: the user info runs to the first '@' unless a '/' comes first, and
            // the password is what follows its first ':' (it may hold '?' or '#').
            if let colon = c[schemeEnd..<stop].firstIndex(of: ":") {
                secrets.append(String(c[(colon + 1)..<stop]))
                out = Array(c[...colon]) + Array("***") + Array(c[stop...])
            }
            hostStart = (out[schemeEnd...].firstIndex(of: "@") ?? schemeEnd) + 1
        } else {
            // Not user info to libpq (a '/' comes first: "user:ab/cd@host", a password with an
            // unencoded '/'); libpq then fails on it and may quote it: masked all the same.
            let end = c[schemeEnd...].firstIndex(of: "?") ?? c.count
            if let at = c[schemeEnd..<end].lastIndex(of: "@"), let colon = c[schemeEnd..<at].firstIndex(of: ":") {
                let secret = c[(colon + 1)..<at]
                secrets.append(String(secret))
                // libpq reads the part before the '/' as a port, and quotes it when it is not one.
                if let slash = secret.firstIndex(of: "/"), slash > secret.startIndex { secrets.append(String(secret[..<slash])) }
                out = Array(c[...colon]) + Array("***") + Array(c[at...])
                hostStart = colon + 1 + 3 + 1
            }
        }
        // Query parameters after the host part as libpq reads them (an '@' in the query,
        // "user=name@server", is not user info).
        guard hostStart <= out.count, let q = out[hostStart...].firstIndex(of: "?") else { return (String(out), secrets) }
        let (masked, found) = maskedQuery(out, after: q)
        return (String(masked), secrets + found)
    }

    /// `c` with the value of every `key=value` pair after position `q` (a '?') whose key
    /// percent-decodes to a password masked, and those values.
    private static func maskedQuery(_ c: [Character], after q: Int) -> ([Character], [String]) {
        var secrets: [String] = []
        let query = String(c[(q + 1)...])
        let pairs = query.split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = parts.first.map(String.init) ?? ""
            guard isSecretKey(percentDecoded(key)) else { return String(pair) }
            if parts.count == 2, parts[1] != "***" { secrets.append(String(parts[1])) }
            return key + "=***"
        }
        return (Array(c[...q]) + Array(pairs.joined(separator: "&")), secrets)
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

    private static func indexOf(_ needle: String, in c: [Character]) -> Int? {
        indexAfter(needle, in: c).map { $0 - needle.count }
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
