#if canImport(Glibc)
import Glibc
#endif

/// A child process started by a test, with its standard output and error in a log file.
/// Its standard input is a pipe the test holds: if the test process dies, the child sees end of
/// file (ChurnGrid's long-running commands stop then), so no node outlives a crashed test run.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: the pid and descriptors are set once in init; `kill`/`wait` are idempotent.
    public let pid: pid_t
    /// Where its output goes.
    public let logPath: String
    private let stdinWrite: Int32
    private var reaped = false
    private var status: Int32 = 0

    /// Starts `executable` with `arguments`, in this process's environment with `environment`'s
    /// variables set on top.
    public init(_ executable: String, _ arguments: [String], logPath: String, environment: [String: String] = [:]) throws {
        var fds: [Int32] = [0, 0]
        // Close-on-exec from the start: a process another test spawns meanwhile must not inherit
        // the write end (this child would then never see end of file). dup2 onto 0 clears it there.
        guard closeOnExecPipe(&fds) == 0 else { throw ChildError("pipe failed: \(errno)") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        posix_spawn_file_actions_addclose(&actions, fds[1])
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var envp: [UnsafeMutablePointer<CChar>?] = []
        var inherited = environ
        while let entry = inherited.pointee {
            let name = String(cString: entry).prefix { $0 != "=" }
            if environment[String(name)] == nil { envp.append(strdup(entry)) }
            inherited += 1
        }
        envp += environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, nil, argv, envp)
        close(fds[0])
        guard rc == 0 else {
            close(fds[1])
            throw ChildError("cannot start \(executable): error \(rc)")
        }
        pid = child
        stdinWrite = fds[1]
        self.logPath = logPath
    }

    deinit {
        kill(SIGKILL)
        if !reaped {
            var s: Int32 = 0
            _ = waitpid(pid, &s, 0)  // no zombies left behind by a test
        }
        close(stdinWrite)
    }

    /// Everything the child has written so far.
    public var log: String {
        guard let f = fopen(logPath, "r") else { return "" }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Waits until a line of the log starts with `prefix` and returns it.
    public func line(startingWith prefix: String, timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            // Looked at once more after the deadline: a busy machine may wake this task late.
            let late = ContinuousClock.now >= deadline
            if let line = log.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) { return String(line) }
            if hasExited { throw ChildError("the child exited (status \(status)) before printing '\(prefix)'; its log:\n\(log)") }
            if late { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ChildError("no line starting with '\(prefix)' within \(timeout); log:\n\(log)")
    }

    /// Sends `signal` (SIGKILL by default) unless it has been reaped.
    public func kill(_ signal: Int32 = SIGKILL) {
        if !reaped { Glibc.kill(pid, signal) }
    }

    /// Whether it has exited (reaps it if so).
    public var hasExited: Bool {
        if reaped { return true }
        var s: Int32 = 0
        if waitpid(pid, &s, WNOHANG) == pid {
            reaped = true
            status = s
        }
        return reaped
    }

    /// Waits for it to exit; returns its exit code (128 + signal when killed).
    public func wait(timeout: Duration = .seconds(30)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while !hasExited {
            guard ContinuousClock.now < deadline else { throw ChildError("pid \(pid) still running after \(timeout)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

/// A child process could not be started or did not behave.
public struct ChildError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

/// The `churngrid` executable built alongside the tests.
public func churngridExecutable() throws -> String {
    var candidates: [String] = []
    if let env = getenv("CHURNGRID_BIN") { candidates.append(String(cString: env)) }
    // The test bundle lives in the products directory (.build/<triple>/debug/…xctest).
    var dir = CommandLine.arguments.first ?? ""
    for _ in 0..<3 {
        dir = String(dir[..<(dir.lastIndex(of: "/") ?? dir.startIndex)])
        if !dir.isEmpty { candidates.append(dir + "/churngrid") }
    }
    candidates += [".build/debug/churngrid", ".build/release/churngrid"]
    for c in candidates where access(c, X_OK) == 0 { return c }
    throw ChildError("churngrid executable not found (tried \(candidates)); run `swift build` first")
}
