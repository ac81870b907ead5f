import ArgumentParser

/// Flags given in seconds (`--lease-seconds 10`, `--rejoin-grace 30`, `--duration 60`): a value
/// that is not a finite number within bounds is refused with the flag named, before it is turned
/// into a `Duration` (converting NaN, infinity or 1e300 to an integer would stop the process).
enum SecondsFlag {
    /// The largest number of seconds any such flag takes (about 11.5 days).
    static let most: Double = 1_000_000

    /// `value` seconds, at least `floor` (a smaller value is raised to it, as each flag documents).
    static func duration(_ value: Double, _ flag: String, floor: Double = 0) throws -> Duration {
        guard value.isFinite, value <= most else {
            throw ValidationError("\(flag): \(value) is not a number of seconds up to \(Int(most))")
        }
        return .milliseconds(Int64((max(floor, value) * 1000).rounded()))
    }
}
