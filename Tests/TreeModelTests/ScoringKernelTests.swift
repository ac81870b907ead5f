import Testing
@testable import TreeModel

/// `CHURNGRID_SCORING_KERNEL`: the value an operator sets is read as the kernels it names, and a
/// value that names none (or one this processor lacks) is refused with the variable and the value.
@Suite("The scoring kernels an operator pins")
struct ScoringKernelTests {
    @Test("unset or empty is automatic; names are read whatever their case and spaces")
    func names() throws {
        #expect(try ScoringKernel.configured(nil) == .automatic)
        #expect(try ScoringKernel.configured("") == .automatic)
        #expect(try ScoringKernel.configured(" Portable ") == .portable)
        #expect(try ScoringKernel.configured("automatic") == .automatic)
        if ScoringKernel.avx2.isAvailable {
            #expect(try ScoringKernel.configured("AVX2") == .avx2)
        } else {
            #expect(throws: ModelError.self) { try ScoringKernel.configured("avx2") }
        }
    }

    @Test("a value that names no kernel is refused, naming the variable and the value")
    func refused() throws {
        for value in ["fast", "avx512", "portable,avx2"] {
            let error = try #require(throws: ModelError.self) { try ScoringKernel.configured(value) }
            #expect(error.message.contains("CHURNGRID_SCORING_KERNEL=\(value)"), "\(error)")
            #expect(error.message.contains("automatic, avx2 or portable"), "\(error)")
        }
    }

    @Test("a forest compiled for the portable kernels walks every tree portably and says so")
    func compiledKernel() throws {
        let model = UnbalancedWalkTests.lightGBMModel(trees: 3, categorical: false, seed: 5)
        let portable = try CompiledForest(model, kernel: .portable)
        #expect(portable.kernel == .portable && portable.exitLeafTrees == 0)
        let automatic = try CompiledForest(model, kernel: .automatic)
        #expect(automatic.kernel == .automatic)
        #expect(automatic.exitLeafTrees == (ScoringKernel.automatic.instructions == nil ? 0 : 3))
    }
}
