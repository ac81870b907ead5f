import Foundation

/// Which block kernels a `CompiledForest` may use.
public enum ScoringKernel: String, Sendable, CaseIterable {
    /// The fastest this processor runs: the leaf-bitvector walk for trees of at most 64 leaves on
    /// AVX-512, else on AVX2; the portable walks for the rest, and on a processor with neither.
    case automatic
    /// The leaf-bitvector walk on AVX2 even where AVX-512 is there (for comparisons and tests); the
    /// portable walks on a processor without AVX2 (`isAvailable` says which).
    case avx2
    /// The portable walks only (`CompiledForest+Kernels.swift`): for comparisons and benchmarks.
    case portable

    /// Whether this processor runs the kernels asked for (the portable walks run everywhere).
    public var isAvailable: Bool { self != .avx2 || ExitLeafTables.hasAVX2 }

    /// The instruction set the leaf-bitvector walk runs on with this choice on this processor:
    /// "avx512", "avx2" or "none" (the portable walks).
    public var instructionSet: String { instructions?.name ?? "none" }

    /// The vector instructions the leaf-bitvector walk runs on with this choice (nil: none).
    var instructions: ExitLeafTables.Instructions? {
        switch self {
        case .automatic: ExitLeafTables.best
        case .avx2: ExitLeafTables.hasAVX2 ? .avx2 : nil
        case .portable: nil
        }
    }
}

extension ScoringKernel {
    /// The environment variable that pins the kernels of every model a process compiles
    /// (`automatic`, `avx2` or `portable`; unset: automatic). An operator's switch: a worker can be
    /// held to the portable walks without a new build, e.g. to rule the vector kernels out.
    public static let environmentVariable = "CHURNGRID_SCORING_KERNEL"

    /// The kernels a value of `CHURNGRID_SCORING_KERNEL` names (nil or empty: automatic).
    /// - Throws: `ModelError` naming the variable and the value when it names no kernel, or one
    ///   this processor does not run.
    public static func configured(_ value: String?) throws(ModelError) -> ScoringKernel {
        let trimmed = (value ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        guard !trimmed.isEmpty else { return .automatic }
        guard let kernel = ScoringKernel(rawValue: trimmed) else {
            throw ModelError(.invalidInput, file: "<environment>",
                             "\(environmentVariable)=\(value ?? "") names no scoring kernel: use automatic, avx2 or portable")
        }
        guard kernel.isAvailable else {
            throw ModelError(.invalidInput, file: "<environment>",
                             "\(environmentVariable)=\(kernel.rawValue): this processor does not run \(kernel.rawValue.uppercased())")
        }
        return kernel
    }

    /// This process's kernels: `CHURNGRID_SCORING_KERNEL`, read once. A value `configured` refuses
    /// counts as unset here; `churngrid` refuses to start with one (`ChurnGrid.main`).
    public static let processDefault: ScoringKernel =
        (try? configured(ProcessInfo.processInfo.environment[environmentVariable])) ?? .automatic
}
