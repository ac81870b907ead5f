import Foundation

/// A reproducible random number generator for tests (SplitMix64). The seed comes from
/// `CHURNGRID_TEST_SEED` when set, otherwise from the system, and is printed with the test's name,
/// so a failure seen once can be run again with the same numbers.
public struct SeededGenerator: RandomNumberGenerator {
    public let seed: UInt64
    private var state: UInt64

    /// - Parameter label: printed with the seed (the test's name).
    public init(_ label: String) {
        let fromEnvironment = ProcessInfo.processInfo.environment["CHURNGRID_TEST_SEED"].flatMap(UInt64.init)
        seed = fromEnvironment ?? UInt64.random(in: 0...UInt64.max)
        state = seed
        print("random seed \(seed) for '\(label)' (CHURNGRID_TEST_SEED=\(seed) repeats it)")
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
