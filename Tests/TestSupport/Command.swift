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
public func runCommand(_ commandLine: String) async -> (status: Int32, output: String) {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: runCommandWaiting(commandLine)) }.start()
    }
}

private func runCommandWaiting(_ commandLine: String) -> (status: Int32, output: String) {
    guard let pipe = popen(commandLine + " 2>&1", "r") else { return (-1, "popen failed: \(errno)") }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buffer, 1, buffer.count, pipe)
        if n <= 0 { break }
        output.append(contentsOf: buffer[0..<n])
    }
    let status = pclose(pipe)
    let exit = (status >> 8) & 0xFF
    return (status == 0 ? 0 : (exit == 0 ? status : exit), String(decoding: output, as: UTF8.self))
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
