import ArgumentParser
import ChurnCluster
import ChurnHTTP
import Foundation

/// `churngrid tokens create|list|revoke`: the HTTP API's bearer tokens (role admin, through the
/// coordinator). The token is made here and shown once; only its SHA-256 crosses the wire and is
/// stored.
struct TokensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens",
        abstract: "HTTP API bearer tokens: create (shown once), list, revoke.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token; its last line of output is the token (shown only now).")

        @Option(help: "reader (scores, jobs, cluster), operator (also jobs, events, campaigns, outcomes) or admin (also nodes, models, tokens).")
        var role: String

        @Option(help: "The token's name (1–64 letters, digits, '.', '_', '@', '-'): logs and the audit log show it, never the token.")
        var name: String

        @OptionGroup var target: CoordinatorOptions

        func run() async throws {
            guard ["reader", "operator", "admin"].contains(role) else { throw ValidationError("--role: reader, operator or admin") }
            guard !name.isEmpty, name.utf8.count <= 64, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._@-".contains($0)) }) else {
                throw ValidationError("--name: 1–64 letters, digits, '.', '_', '@', '-'")
            }
            let logger = makeLogger("churngrid.tokens")
            let (token, hash) = APIToken.generate()
            try await reportingClusterErrors {
                try await withCoordinator(target, logger: logger) { try await $0.coordinator.addToken(name: name, role: role, sha256: hash) }
            }
            FileHandle.standardError.write(Data("token '\(name)' created with role \(role); it is shown only now (send it as 'Authorization: Bearer TOKEN'):\n".utf8))
            print(token)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tokens (names, roles, who made them, when; never the tokens).")

        @OptionGroup var target: CoordinatorOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let logger = makeLogger("churngrid.tokens")
            try await reportingClusterErrors {
                let records = try await withCoordinator(target, logger: logger) { try await $0.coordinator.tokens() }
                if json {
                    struct Row: Encodable {
                        var name, role, created_at, created_by: String
                        var revoked_at: String?
                        func encode(to encoder: any Encoder) throws {
                            var c = encoder.container(keyedBy: CodingKeys.self)
                            try c.encode(name, forKey: .name); try c.encode(role, forKey: .role)
                            try c.encode(created_at, forKey: .created_at); try c.encode(created_by, forKey: .created_by)
                            try c.encode(revoked_at, forKey: .revoked_at)  // null when live
                        }
                        enum CodingKeys: String, CodingKey { case name, role, created_at, created_by, revoked_at }
                    }
                    try printJSON(records.map { Row(name: $0.name, role: $0.role, created_at: $0.createdAt, created_by: $0.createdBy, revoked_at: $0.revokedAt) })
                } else {
                    print("NAME                 ROLE      CREATED               BY                   REVOKED")
                    for r in records {
                        print([r.name.padded(20), r.role.padded(9), r.createdAt.padded(21), r.createdBy.padded(20), r.revokedAt ?? "-"].joined(separator: " "))
                    }
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: refused everywhere within 2 seconds; its dashboard sessions end.")

        @Argument(help: "The token's name.")
        var name: String

        @OptionGroup var target: CoordinatorOptions

        func run() async throws {
            let logger = makeLogger("churngrid.tokens")
            try await reportingClusterErrors {
                let revoked = try await withCoordinator(target, logger: logger) { try await $0.coordinator.revokeToken(name: name) }
                guard revoked else {
                    FileHandle.standardError.write(Data("no live token named '\(name)'\n".utf8))
                    throw ExitCode(2)
                }
                print("revoked \(name)")
            }
        }
    }
}

extension String {
    fileprivate func padded(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}
