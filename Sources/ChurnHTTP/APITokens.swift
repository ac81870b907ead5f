import ChurnCluster
import ClusterSystem
import Crypto
import Foundation
import Synchronization

/// HTTP API bearer tokens: 256 random bits, shown once; only their SHA-256 is stored and compared.
public enum APIToken {
    /// The prefix that makes a ChurnGrid token recognisable (secret scanners, logs).
    public static let prefix = "cgt_"

    /// A new token and its SHA-256 (hex).
    public static func generate() -> (token: String, sha256: String) {
        let secret = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        let token = prefix + secret.base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return (token, sha256(of: token))
    }

    /// The SHA-256 of `token`'s UTF-8 bytes, as 64 lower-case hex digits.
    public static func sha256(of token: some StringProtocol) -> String {
        let digest = SHA256.hash(data: Data(token.utf8))
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in digest {
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Who a request acts as: a token's name and role.
public struct APIIdentity: Sendable, Equatable {
    public var name: String
    public var role: Role
    /// The token's SHA-256 (sessions end when their token is revoked).
    public var tokenHash: String
}

/// The live tokens, by hash: refreshed from PostgreSQL every few seconds (so a revocation on any
/// coordinator takes effect everywhere within that time), looked up without a database trip.
public final class TokenTable: Sendable {
    private let byHash = Mutex<[String: APIIdentity]>([:])
    private let loaded = Mutex(false)

    public init() {}

    /// Replaces the table with `records`' live tokens.
    public func replace(with records: [APITokenRecord]) {
        var table: [String: APIIdentity] = [:]
        for r in records where r.revokedAt == nil {
            guard let role = Role(rawValue: r.role), [Role.reader, .operator, .admin].contains(role) else { continue }
            table[r.sha256] = APIIdentity(name: r.name, role: role, tokenHash: r.sha256)
        }
        byHash.withLock { $0 = table }
        loaded.withLock { $0 = true }
    }

    /// Whether the table has been read from the database at least once.
    public var isLoaded: Bool { loaded.withLock { $0 } }

    /// The identity of `token`, nil for an unknown or revoked one.
    public func identity(of token: some StringProtocol) -> APIIdentity? {
        guard token.hasPrefix(APIToken.prefix), token.utf8.count < 200 else { return nil }
        let hash = APIToken.sha256(of: token)
        return byHash.withLock { $0[hash] }
    }

    /// Whether the token with `hash` is still live.
    public func isLive(hash: String) -> Bool { byHash.withLock { $0[hash] != nil } }
}

/// Browser sessions of the dashboard: a random id in an HttpOnly cookie stands for a token the
/// user posted once (so live streams work from the browser, and the token never appears in a
/// URL). Pure: the clock is passed in. Sessions live in the coordinator's memory: a restart or a
/// takeover signs everyone out.
public struct SessionTable: Sendable {
    public struct Session: Sendable, Equatable {
        public var identity: APIIdentity
        public var expires: ContinuousClock.Instant
    }

    public static let lifetime: Duration = .seconds(8 * 3600)
    /// Sessions kept at most (the oldest go first).
    public static let capacity = 10_000
    /// Sessions one token may hold at once.
    public static let perToken = 16

    /// By the SHA-256 of the session id, as tokens are kept by theirs: the cookie's value is never
    /// held, and finding a session does not compare it byte by byte with the ids held.
    private var sessions: [String: Session] = [:]

    private static func key(_ id: String) -> String { APIToken.sha256(of: id) }

    public init() {}

    public var count: Int { sessions.count }

    /// Opens a session for `identity` under `id` (a random id made by the caller).
    public mutating func open(id: String, identity: APIIdentity, now: ContinuousClock.Instant) {
        let id = Self.key(id)
        // One token may hold a few sessions (a few browsers); beyond that its oldest goes, so one
        // token cannot push everyone else's sessions out.
        let own = sessions.filter { $0.value.identity.tokenHash == identity.tokenHash }
        if own.count >= Self.perToken, let oldest = own.min(by: { $0.value.expires < $1.value.expires })?.key {
            sessions[oldest] = nil
        }
        if sessions.count >= Self.capacity, let oldest = sessions.min(by: { $0.value.expires < $1.value.expires })?.key {
            sessions[oldest] = nil
        }
        sessions[id] = Session(identity: identity, expires: now + Self.lifetime)
    }

    /// The identity of session `id`; nil (and the session gone) when unknown or expired.
    public mutating func identity(of id: String, now: ContinuousClock.Instant) -> APIIdentity? {
        let id = Self.key(id)
        guard let s = sessions[id] else { return nil }
        guard s.expires > now else {
            sessions[id] = nil
            return nil
        }
        return s.identity
    }

    public mutating func close(id: String) { sessions[Self.key(id)] = nil }

    /// Ends the sessions whose token is no longer live, and the expired ones.
    public mutating func prune(isLive: (String) -> Bool, now: ContinuousClock.Instant) {
        sessions = sessions.filter { $0.value.expires > now && isLive($0.value.identity.tokenHash) }
    }

    /// A new random session id (256 bits, URL-safe).
    public static func newID() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
