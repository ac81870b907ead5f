#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension TreeEnsemble {
    /// Loads an XGBoost JSON or LightGBM text model, telling them apart by their contents.
    /// - Parameter path: the model file.
    /// - Throws: `ModelError` when the file cannot be read or is not a model ChurnGrid can score.
    public static func load(path: String) throws(ModelError) -> TreeEnsemble {
        let bytes = try readWholeFile(path)
        return try parse(bytes, file: path)
    }

    /// A model file's bytes (for distributing a model to other nodes).
    /// - Throws: `ModelError` (`unreadable`) naming the file.
    public static func bytes(ofFile path: String) throws(ModelError) -> [UInt8] {
        try readWholeFile(path)
    }

    /// Parses model bytes (XGBoost JSON or LightGBM text); `file` names them in errors.
    public static func parse(_ bytes: [UInt8], file: String) throws(ModelError) -> TreeEnsemble {
        var i = 0
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
        guard i < bytes.count else {
            throw ModelError(.malformed, file: file, "file is empty; expected an XGBoost JSON or LightGBM text model")
        }
        if bytes[i] == UInt8(ascii: "{") {
            return try xgboost(json: bytes, file: file)
        }
        if bytes[i...].starts(with: Array("tree".utf8)) {
            return try lightgbm(text: bytes, file: file)
        }
        throw ModelError(.malformed, file: file,
                         "not an XGBoost JSON model (starts with '{') nor a LightGBM text model (starts with 'tree')")
    }
}

/// Reads a whole file, with errors that name it.
func readWholeFile(_ path: String) throws(ModelError) -> [UInt8] {
    guard let f = fopen(path, "rb") else {
        throw ModelError(.unreadable, file: path, "cannot open: \(String(cString: strerror(errno)))")
    }
    defer { fclose(f) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
        if n > 0 { out.append(contentsOf: chunk[0..<n]) }
        if n < chunk.count {
            if ferror(f) != 0 {
                throw ModelError(.unreadable, file: path, "read failed: \(String(cString: strerror(errno)))")
            }
            break
        }
    }
    return out
}
