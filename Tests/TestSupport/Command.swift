import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a shell command line and returns its exit status and combined output.
///
/// The command is waited for on a thread of its own: Swift concurrency's cooperative pool has one
/// thread per core (two here), and a test holding one of them for the seconds a fixture script
/// or `initdb` takes stalls every other test's tasks — the cluster tests' calls time out then.
/// Uses `popen`/`pclose` rather than Foundation's `Process`, whose `waitUntilExit` can hang on
/// Linux when the cooperative threads are busy.
public func runCommand(_ commandLine: String, timeout: Duration = .seconds(600)) async -> (status: Int32, output: String) {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: runCommandWaiting(commandLine, timeout: timeout)) }.start()
    }
}

/// `sh -c commandLine` in a process group of its own, standard input /dev/null, its output read
/// until the shell has exited and the pipe is drained (at most 2 s more: a daemon it started may
/// hold the pipe) or the deadline passes; then the whole group is killed, so a command that hangs
/// fails its test (status 124, saying so in the output) instead of hanging the test run.
private func runCommandWaiting(_ commandLine: String, timeout: Duration) -> (status: Int32, output: String) {
    var fds: [Int32] = [0, 0]
    // Close-on-exec: a process another test spawns meanwhile must not inherit the write end (it
    // would hold the pipe open for as long as it lives). dup2 onto 1 and 2 clears the flag there.
    guard closeOnExecPipe(&fds) == 0 else { return (-1, "pipe failed: \(errno)") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
    posix_spawnattr_setpgroup(&attributes, 0)
    let words: [String] = ["/bin/sh", "-c", commandLine]
    let argv = words.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var child: pid_t = 0
    let rc = posix_spawn(&child, "/bin/sh", &actions, &attributes, argv, environ)
    close(fds[1])
    guard rc == 0 else {
        close(fds[0])
        return (-1, "cannot start /bin/sh: error \(rc)")
    }
    defer { close(fds[0]) }
    let deadline = ContinuousClock.now + timeout
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    var status: Int32 = 0
    var exited = false, drainUntil: ContinuousClock.Instant?
    var pipeOpen = true
    while true {
        if !exited {
            let r = waitpid(child, &status, WNOHANG)
            if r == child || (r < 0 && errno == ECHILD) {
                exited = true
                drainUntil = ContinuousClock.now + .seconds(2)
            }
        }
        if exited && !pipeOpen { break }
        let now = ContinuousClock.now
        if let drainUntil, now >= drainUntil { break }
        guard now < deadline else { break }
        guard pipeOpen else {
            usleep(20_000)
            continue
        }
        var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, 100)
        if ready < 0 {
            if errno == EINTR { continue }
            pipeOpen = false
            continue
        }
        if ready == 0 { continue }
        let n = read(fds[0], &buffer, buffer.count)
        if n < 0, errno == EINTR || errno == EAGAIN { continue }
        if n <= 0 {
            pipeOpen = false
            continue
        }
        output.append(contentsOf: buffer[0..<n])
    }
    let text = String(decoding: output, as: UTF8.self)
    guard exited else {
        kill(-child, SIGKILL)
        while waitpid(child, &status, 0) < 0, errno == EINTR {}
        return (124, text + "\n[runCommand: killed after \(timeout): `\(commandLine)` did not finish]")
    }
    // WIFEXITED: the exit code; otherwise 128 + the signal that ended it.
    let exit = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    return (exit, text)
}

/// Quotes a word for the shell.
public func shellQuoted(_ s: String) -> String {
    "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound] + replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

/// pipe2(2) (glibc declares it only under _GNU_SOURCE, which Swift's Glibc module does not set).
@_silgen_name("pipe2")
private func systemPipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

/// A pipe whose two ends are close-on-exec from the start: a process another thread spawns at the
/// same moment cannot inherit them (dup2 onto a child's 0, 1 or 2 clears the flag there).
func closeOnExecPipe(_ fds: inout [Int32]) -> Int32 {
    precondition(fds.count >= 2)
    return fds.withUnsafeMutableBufferPointer { systemPipe2($0.baseAddress!, O_CLOEXEC) }
}
