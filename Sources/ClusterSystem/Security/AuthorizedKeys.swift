#if canImport(Glibc)
import Glibc
#endif
import ZeroMQ

/// The keys a node admits and what each may do: a file of lines `ROLE PUBLIC_KEY NAME`
/// (a line starting with `#` is a comment). A name may be listed with two keys while its key is rotated; a key
/// may be listed with several roles. Reloaded on SIGHUP.
public struct AuthorizedKeys: Sendable, Equatable {
    /// One line of the file.
    public struct Entry: Sendable, Equatable {
        public var role: Role
        public var publicKey: String
        public var name: String

        public init(role: Role, publicKey: String, name: String) {
            self.role = role
            self.publicKey = publicKey
            self.name = name
        }
    }

    /// What a key is authorized as.
    public struct Grant: Sendable, Equatable {
        public var name: String
        public var roles: Set<Role>
    }

    public private(set) var entries: [Entry]
    private var byKey: [String: Grant] = [:]

    public init(_ entries: [Entry]) throws(AuthorizedKeysError) {
        self.entries = entries
        for e in entries {
            if let existing = byKey[e.publicKey], existing.name != e.name {
                throw AuthorizedKeysError(source: "authorized keys", line: 0,
                                          message: "key \(e.publicKey.prefix(8))… is listed as both '\(existing.name)' and '\(e.name)': a key belongs to one name")
            }
            byKey[e.publicKey, default: Grant(name: e.name, roles: [])].roles.insert(e.role)
        }
    }

    /// Parses the text of an authorized-keys file; `source` names it in errors.
    public init(parsing text: String, source: String) throws(AuthorizedKeysError) {
        var entries: [Entry] = []
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            // '#' starts a comment only at the start of a line: Z85 keys may contain it.
            let fields = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty || fields[0].hasPrefix("#") { continue }
            guard fields.count == 3 else {
                throw AuthorizedKeysError(source: source, line: lineNumber, message: "expected 'ROLE PUBLIC_KEY NAME', found \(fields.count) fields")
            }
            guard let role = Role(rawValue: String(fields[0])) else {
                throw AuthorizedKeysError(source: source, line: lineNumber,
                                          message: "unknown role '\(fields[0].prefix(32))' (one of \(Role.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let key = String(fields[1])
            guard CurveKeyPair.isValidKey(key) else {
                throw AuthorizedKeysError(source: source, line: lineNumber, message: "'\(key.prefix(48))' is not a CURVE public key (40 Z85 characters)")
            }
            let name = String(fields[2])
            guard name.utf8.count <= 128 else {
                throw AuthorizedKeysError(source: source, line: lineNumber, message: "a name of at most 128 bytes")
            }
            entries.append(Entry(role: role, publicKey: key, name: name))
        }
        do {
            try self.init(entries)
        } catch {
            throw AuthorizedKeysError(source: source, line: 0, message: error.message)
        }
    }

    /// Reads and parses the file at `path`.
    public static func load(path: String) throws(AuthorizedKeysError) -> AuthorizedKeys {
        let text = try readTextFile(path)
        return try AuthorizedKeys(parsing: text, source: path)
    }

    /// What `key` is authorized as, or nil.
    public func grant(for key: String) -> Grant? { byKey[key] }

    /// The keys listed for `name` (two while it rotates).
    public func keys(of name: String) -> [String] { entries.filter { $0.name == name }.map(\.publicKey) }

    public static func == (a: AuthorizedKeys, b: AuthorizedKeys) -> Bool { a.entries == b.entries }
}

/// An authorized-keys file that cannot be used, with where.
public struct AuthorizedKeysError: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var line: Int
    public var message: String

    public var description: String { line > 0 ? "\(source):\(line): \(message)" : "\(source): \(message)" }
}

/// A node's CURVE key pair and name as `churngrid cluster keys --out DIR --name NAME` writes
/// them: `NAME.key` (mode 0600: name, public and secret key) and `NAME.pub` (the public key).
public struct NodeKeyFile: Sendable {
    public var name: String
    public var keys: CurveKeyPair

    public init(name: String, keys: CurveKeyPair) {
        self.name = name
        self.keys = keys
    }

    /// A new key pair for `name`.
    public static func generate(name: String) throws -> NodeKeyFile {
        NodeKeyFile(name: name, keys: try CurveKeyPair.generate())
    }

    /// Writes `DIR/NAME.key` (created mode 0600 before the secret is written) and `DIR/NAME.pub`.
    /// - Returns: the two paths.
    @discardableResult
    public func write(to directory: String, replacing: Bool = false) throws(AuthorizedKeysError) -> (secret: String, public: String) {
        let secretPath = "\(directory)/\(name).key", publicPath = "\(directory)/\(name).pub"
        func put(_ path: String, _ text: String, mode: mode_t) throws(AuthorizedKeysError) {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | (replacing ? 0 : O_EXCL), mode)
            guard fd >= 0 else { throw AuthorizedKeysError(source: path, line: 0, message: "cannot create it: \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            fchmod(fd, mode)
            let bytes = Array(text.utf8)
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard written == bytes.count else { throw AuthorizedKeysError(source: path, line: 0, message: "cannot write it") }
        }
        try put(secretPath, secretFileText, mode: 0o600)
        try put(publicPath, publicFileText, mode: 0o644)
        return (secretPath, publicPath)
    }

    /// The text of `NAME.key`.
    public var secretFileText: String {
        """
        # ChurnGrid CURVE key pair of '\(name)'. Secret: keep it mode 0600, never copy it to another node.
        name \(name)
        public \(keys.publicKey)
        secret \(keys.secretKey)

        """
    }

    /// The text of `NAME.pub`.
    public var publicFileText: String { "\(keys.publicKey)\n" }

    /// Parses the text of a `NAME.key` file. Errors name the file and line, never the secret.
    public init(parsing text: String, source: String) throws(AuthorizedKeysError) {
        var name: String?, pub: String?, sec: String?
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = raw.trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard fields.count == 2 else { throw AuthorizedKeysError(source: source, line: lineNumber, message: "expected 'name|public|secret VALUE'") }
            switch fields[0] {
            case "name": name = fields[1]
            case "public": pub = fields[1]
            case "secret": sec = fields[1]
            default: throw AuthorizedKeysError(source: source, line: lineNumber, message: "unknown field '\(fields[0].prefix(16))' (name, public, secret)")
            }
        }
        guard let name, !name.isEmpty else { throw AuthorizedKeysError(source: source, line: 0, message: "no 'name' line") }
        guard let sec, CurveKeyPair.isValidKey(sec), let derived = CurveKeyPair.publicKey(ofSecret: sec) else {
            throw AuthorizedKeysError(source: source, line: 0, message: "no valid 'secret' line (40 Z85 characters)")
        }
        if let pub, pub != derived {
            throw AuthorizedKeysError(source: source, line: 0, message: "the public key does not belong to the secret key")
        }
        self.name = name
        keys = CurveKeyPair(publicKey: derived, secretKey: sec)
    }

    /// Reads a `NAME.key` file (refused when every user may read or write it: `SecretFile`).
    public static func load(path: String) throws(AuthorizedKeysError) -> NodeKeyFile {
        let text = try readTextFile(path, secret: true)
        return try NodeKeyFile(parsing: text, source: path)
    }

    /// Reads a public key file (`NAME.pub`: the key on its first line).
    public static func loadPublicKey(path: String) throws(AuthorizedKeysError) -> String {
        let text = try readTextFile(path)
        let key = text.split(whereSeparator: { $0.isWhitespace }).first.map(String.init) ?? ""
        guard CurveKeyPair.isValidKey(key) else { throw AuthorizedKeysError(source: path, line: 1, message: "not a CURVE public key (40 Z85 characters)") }
        return key
    }
}

/// The text of a small file (keys, authorized keys), or an error naming it. A `secret` one is
/// checked on the descriptor read (`SecretFile.refusal`).
func readTextFile(_ path: String, secret: Bool = false) throws(AuthorizedKeysError) -> String {
    guard let file = fopen(path, "rb") else {
        throw AuthorizedKeysError(source: path, line: 0, message: "cannot read it: \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    if secret, let refusal = SecretFile.refusal(descriptor: fileno(file)) {
        throw AuthorizedKeysError(source: path, line: 0, message: refusal)
    }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&chunk, 1, chunk.count, file)
        if n > 0 { bytes += chunk[0..<n] }
        if n < chunk.count {
            // A short read is the end, or an error (a directory reads as one: EISDIR).
            if ferror(file) != 0 { throw AuthorizedKeysError(source: path, line: 0, message: "cannot read it: \(String(cString: strerror(errno)))") }
            break
        }
        if bytes.count > 4 << 20 { throw AuthorizedKeysError(source: path, line: 0, message: "larger than 4 MiB: not a key file") }
    }
    return String(decoding: bytes, as: UTF8.self)
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}

/// A file holding a secret (a node's CURVE key, the HTTP server's TLS key) is refused when every
/// user of the machine may read or write it, as ssh and libpq refuse theirs: whoever can read it
/// can pose as the node. Group access is allowed (Kubernetes mounts secrets 0440 for the pod's
/// group; systemd credentials and the compose secrets are 0400/0600).
public enum SecretFile {
    /// Why the open file `descriptor` may not hold a secret, or nil when it may.
    public static func refusal(descriptor: Int32) -> String? {
        var st = stat()
        guard fstat(descriptor, &st) == 0 else { return "cannot inspect it: \(String(cString: strerror(errno)))" }
        // Not a file (a directory, a device): reading it says what it is.
        guard st.st_mode & S_IFMT == S_IFREG else { return nil }
        let mode = st.st_mode & 0o777
        guard mode & 0o007 != 0 else { return nil }
        return "every user may \(mode & 0o004 != 0 ? "read" : "write") it (mode \(String(mode, radix: 8))): a secret key file must not be; chmod 600 it (or 640/440 for a group)"
    }

    /// Why the file at `path` may not hold a secret, or nil when it may.
    public static func refusal(path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "cannot read it: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        return refusal(descriptor: fd)
    }
}
