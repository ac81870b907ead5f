#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The world's randomness: every random quantity is a pure function of the seed, the subscriber
/// id, the month and what it is for (a counter-based generator, three rounds of the splitmix64
/// finalizer). Nothing depends on the order subscribers are visited in or on the thread count.
///
/// Why counter-based rather than one stream: the strategies are compared on *common random
/// numbers*. A subscriber whom two strategies treat alike draws the same churn outcome, the same
/// acceptance and the same profile drift in both, so the difference between strategies is the
/// effect of their decisions and not the noise of two different draws of the world.
struct WorldDraw: Sendable {
    /// What a draw is for; part of the hash, so purposes never share a number.
    enum Purpose: UInt64, Sendable {
        case responseType = 1, realReason, noise, noisePair
        case churn, acceptance, randomPriority
        case drift, episode, episodeDonor
    }

    let seed: UInt64

    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The 64 random bits of (subscriber, month, purpose, k).
    @inline(__always)
    func bits(_ id: Int64, month: Int, _ purpose: Purpose, _ k: Int = 0) -> UInt64 {
        var h = Self.mix(seed)
        h = Self.mix(h ^ UInt64(bitPattern: id))
        let tag = UInt64(truncatingIfNeeded: month) << 32 | purpose.rawValue << 16 | UInt64(truncatingIfNeeded: k) & 0xFFFF
        return Self.mix(h ^ tag)
    }

    /// Uniform in [0, 1).
    @inline(__always)
    func uniform(_ id: Int64, month: Int, _ purpose: Purpose, _ k: Int = 0) -> Double {
        Double(bits(id, month: month, purpose, k) >> 11) * 0x1p-53
    }

    /// Standard normal (Box–Muller over two independent uniforms).
    func normal(_ id: Int64, month: Int, _ purpose: Purpose, _ k: Int = 0) -> Double {
        let u1 = max(uniform(id, month: month, purpose, 2 * k), 0x1p-53)
        let u2 = uniform(id, month: month, purpose, 2 * k + 1)
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}
