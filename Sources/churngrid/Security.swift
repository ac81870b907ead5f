import ArgumentParser
import ChurnCluster
import ClusterSystem
import Foundation
import Postgres
import ZeroMQ

/// How a listening node (coordinator, worker, probe node) authenticates: its own key, who may
/// connect, and whether it may run without CURVE.
struct ListenerSecurityOptions: ParsableArguments {
    @Option(help: "This node's CURVE key file (NAME.key from `churngrid cluster keys`). With it every connection is encrypted and authenticated.")
    var curveKeys: String?

    @Option(help: "Who may connect and what each may call: lines 'ROLE PUBLIC_KEY NAME' (roles: reader, operator, admin, worker, coordinator). Read again on SIGHUP.")
    var authorizedKeys: String?

    @Flag(help: "Allow listening on an address other than loopback without CURVE (anyone who reaches the port can do anything), a worker's --triggers-publish there without CURVE, and the coordinator's --http there without TLS.")
    var insecure = false

    @Option(help: "Largest message accepted, in MiB (the largest real one is a shard's profiles or a model).")
    var maxMessageMb: Int = ClusterActorSystem.Options.defaultMaxMessageBytes >> 20

    /// Applies the keys to `configuration`; refuses a non-loopback listener without CURVE. A
    /// SIGHUP from now on is ignored until the node watches for it (an operator's reload during
    /// start-up must not kill the process).
    func apply(to configuration: inout ClusterActorSystem.Configuration) throws {
        signal(SIGHUP, SIG_IGN)
        guard (1...4096).contains(maxMessageMb) else { throw ValidationError("--max-message-mb: 1–4096") }
        configuration.options.maxMessageBytes = maxMessageMb << 20
        if let curveKeys {
            let file = try NodeKeyFile.load(path: curveKeys)
            configuration.options.curve = file.keys
            guard let authorizedKeys else {
                throw ValidationError("--curve-keys needs --authorized-keys: the keys (with their roles) allowed to connect to this node")
            }
            configuration.options.authorizedKeys = try AuthorizedKeys.load(path: authorizedKeys)
            if configuration.name != file.name {
                throw ValidationError("the node is named '\(configuration.name)' but its key file \(curveKeys) is '\(file.name)': a node's name is bound to its key")
            }
        } else if authorizedKeys != nil {
            throw ValidationError("--authorized-keys needs --curve-keys (without CURVE nobody is authenticated)")
        } else if let listen = configuration.listen, !isLoopback(listen), !insecure {
            throw ValidationError("\(listen) is not a loopback address and no --curve-keys was given: anyone who reaches it could join, read every profile and run jobs. Give the node a key (`churngrid cluster keys`) and --authorized-keys, or --insecure to accept that.")
        } else if let listen = configuration.listen {
            // Allowed (loopback, or --insecure), but said at every start: nobody is authenticated.
            configuration.logger.warning("no --curve-keys: this node authenticates nobody, and every process that reaches its address may call every method as admin (docs/security.md)",
                                         metadata: ["listen": "\(listen)", "insecure": "\(insecure)"])
        }
    }

    /// The name in the key file, for a node whose --name was not given.
    func keyName() throws -> String? {
        guard let curveKeys else { return nil }
        return try NodeKeyFile.load(path: curveKeys).name
    }
}

/// Whether `endpoint` listens on the loopback interface only.
func isLoopback(_ endpoint: String) -> Bool {
    let rest = endpoint.hasPrefix("tcp://") ? String(endpoint.dropFirst(6)) : endpoint
    if endpoint.hasPrefix("inproc://") || endpoint.hasPrefix("ipc://") { return true }
    let host: String
    if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
        host = String(rest[rest.index(after: rest.startIndex)..<close])
    } else {
        host = String(rest.split(separator: ":", maxSplits: 1).first ?? "")
    }
    return isLoopbackHost(host)
}

/// Whether `host` is a loopback address written as one: `localhost`, an IPv4 address in
/// 127.0.0.0/8, `::1` or an IPv4-mapped 127.x address. A name (`127.example.com`) is not, even if
/// it starts like one: it resolves to whatever DNS says.
func isLoopbackHost(_ host: String) -> Bool {
    if host == "localhost" { return true }
    var v4 = in_addr()
    if inet_pton(AF_INET, host, &v4) == 1 {
        return UInt32(bigEndian: v4.s_addr) >> 24 == 127
    }
    var v6 = in6_addr()
    guard inet_pton(AF_INET6, host, &v6) == 1 else { return false }
    let bytes = withUnsafeBytes(of: &v6) { Array($0) }
    guard bytes.count == 16 else { return false }
    if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }  // ::1
    // ::ffff:127.x.y.z
    return bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127
}

/// How a command reaches the coordinator: its endpoint, and on a cluster with CURVE the
/// caller's own key and the coordinator's public key.
struct CoordinatorOptions: ParsableArguments {
    @Option(help: "The coordinator's endpoint; several separated by commas (a leader and its standbys: the one that leads answers).")
    var coordinator: String = "tcp://127.0.0.1:7400"

    @Option(help: "This caller's CURVE key file (NAME.key); its name and role come from the nodes' authorized keys.")
    var curveKeys: String?

    @Option(help: "The coordinator's public key file (NAME.pub), to reach a cluster with CURVE; with several coordinators, their files separated by commas in the order of --coordinator.")
    var coordinatorKey: String?

    func validate() throws {
        for endpoint in coordinator.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !endpoint.isEmpty {
            guard Self.isEndpoint(endpoint) else {
                throw ValidationError("--coordinator: '\(endpoint)' is not tcp://HOST:PORT (e.g. tcp://127.0.0.1:7400)")
            }
        }
    }

    /// `tcp://HOST:PORT` with a port in 1…65535 (`ipc://PATH` too, for one machine).
    static func isEndpoint(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") { return endpoint.count > 6 }
        guard endpoint.hasPrefix("tcp://") else { return false }
        // The port after the last ':' of what follows the scheme (an IPv6 host has colons of its own).
        let address = endpoint.dropFirst(6)
        guard let colon = address.lastIndex(of: ":"), colon > address.startIndex,
              let port = Int(address[address.index(after: colon)...]), (1...65_535).contains(port) else { return false }
        return true
    }

    func credentials() throws -> ClusterClient.Credentials? {
        switch (curveKeys, coordinatorKey) {
        case (nil, nil): return nil
        case (let keys?, let coordinatorKey?):
            return ClusterClient.Credentials(key: try NodeKeyFile.load(path: keys), coordinatorKeys: try coordinatorKeys(coordinatorKey))
        case (nil, _): throw ValidationError("--coordinator-key needs --curve-keys (this caller's own key)")
        case (_, nil): throw ValidationError("--curve-keys needs --coordinator-key (the coordinator's public key, NAME.pub)")
        }
    }
}

/// The PostgreSQL URL of a node: `--postgres` (without a password: it would show in the
/// process list) or `CHURNGRID_POSTGRES_URL`; the password from PGPASSWORD or PGPASSFILE
/// (libpq reads them itself) or from that variable.
func postgresURL(option: String?) throws -> String {
    if let option {
        guard !ConnectionString.containsPassword(option) else {
            throw ValidationError("--postgres carries a password, which any user can read in the process list: give it in PGPASSWORD or PGPASSFILE, or the whole URL in CHURNGRID_POSTGRES_URL")
        }
        return option
    }
    if let env = ProcessInfo.processInfo.environment["CHURNGRID_POSTGRES_URL"], !env.isEmpty { return env }
    throw ValidationError("no PostgreSQL: give --postgres URL (password in PGPASSWORD or PGPASSFILE) or set CHURNGRID_POSTGRES_URL")
}

extension ClusterCommand {
    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a node's own CURVE key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub.")

        @Option(help: "Folder to write the key files to (created if missing).")
        var out: String

        @Option(help: "The node's (or the person's, the tool's) name; it is bound to the key in authorized keys.")
        var name: String

        @Flag(help: "Replace existing key files.")
        var force = false

        func run() throws {
            guard !name.isEmpty, name.utf8.count <= 128, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.@".contains($0) }) else {
                throw ValidationError("--name: 1–128 letters, digits, '-', '_', '.', '@'")
            }
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let file = try NodeKeyFile.generate(name: name)
            let (secretPath, publicPath) = try file.write(to: out, replacing: force)
            print("\(secretPath) (secret, 0600)")
            print("\(publicPath): \(file.keys.publicKey)")
        }
    }
}

/// The public keys of `--coordinator-key` files (several separated by commas).
func coordinatorKeys(_ paths: String) throws -> [String] {
    try paths.split(separator: ",").map { try NodeKeyFile.loadPublicKey(path: String($0)) }
}
