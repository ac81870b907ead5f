import ArgumentParser
import Foundation

/// Reads a file named by a command-line option (a campaign, trigger or schema file): a missing
/// file, a directory or a read error is refused naming the option, the path and the system's
/// reason (ENOENT, EACCES, EISDIR …); at most `limit` bytes are read, so a path such as
/// /dev/zero is not read for ever.
/// - Parameter truncate: read `limit` bytes and stop (the caller's parser refuses an oversized
///   file with its own limit named); false refuses a longer file here.
func readOptionFile(_ path: String, option: String, limit: Int = 16 << 20, truncate: Bool = false) throws -> [UInt8] {
    guard let file = fopen(path, "rb") else {
        throw ValidationError("\(option) \(path): cannot open it: \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    var info = stat()
    if fstat(fileno(file), &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
        throw ValidationError("\(option) \(path): is a directory, not a file")
    }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    while bytes.count <= limit {
        let n = fread(&chunk, 1, min(chunk.count, limit + 1 - bytes.count), file)
        let failure = ferror(file) != 0 ? errno : 0  // before anything else can change errno
        if n > 0 { bytes += chunk[0..<n] }
        if failure != 0 { throw ValidationError("\(option) \(path): cannot read it: \(String(cString: strerror(failure)))") }
        if n == 0 { break }
        if bytes.count > limit { break }
    }
    if bytes.count > limit {
        if truncate { return bytes }
        throw ValidationError("\(option) \(path): larger than \(limit >> 20) MiB: not a \(option.dropFirst(2)) file")
    }
    return bytes
}
