import Testing
import Uplift

@Suite("Qini and uplift@k against scikit-uplift")
struct UpliftCurveTests {
    static let tolerance = 1e-9

    static func reference(_ d: UpliftDataset) async throws -> SciKitUplift.Answer {
        let answers = try await SciKitUplift.answers.value.get()
        return try #require(answers[d.name], "scikit-uplift gave no answer for \(d.name)")
    }

    static func same(_ ours: Double?, _ theirs: Double?) -> Bool {
        switch (ours, theirs) {
        case (nil, nil): true
        case let (a?, b?): abs(a - b) <= tolerance
        default: false
        }
    }

    @Test("qini_auc_score and uplift_at_k(strategy='overall', k=0.3) agree within 1e-9", arguments: UpliftDataset.all)
    func coefficients(_ d: UpliftDataset) async throws {
        let theirs = try await Self.reference(d)
        let curve = try UpliftCurve(scores: d.scores, treated: d.treated, retained: d.retained)
        #expect(Self.same(curve.qiniCoefficient, theirs.qini),
                "\(d.name): Qini ours \(String(describing: curve.qiniCoefficient)), scikit-uplift \(String(describing: theirs.qini))")
        #expect(Self.same(curve.upliftAtK(0.3), theirs.upliftAt30),
                "\(d.name): uplift@30% ours \(String(describing: curve.upliftAtK(0.3))), scikit-uplift \(String(describing: theirs.upliftAt30))")
    }

    @Test("the Qini curve has scikit-uplift's points: one per run of equal scores", arguments: UpliftDataset.all)
    func curvePoints(_ d: UpliftDataset) async throws {
        let theirs = try await Self.reference(d)
        let ours = try UpliftCurve(scores: d.scores, treated: d.treated, retained: d.retained).qiniCurve
        try #require(ours.count == theirs.curve.count, "\(d.name): \(ours.count) points, scikit-uplift \(theirs.curve.count)")
        for (a, b) in zip(ours, theirs.curve) {
            #expect(a.targeted == b.x && abs(a.incrementalRetained - b.y) <= Self.tolerance,
                    "\(d.name): point (\(a.targeted), \(a.incrementalRetained)) vs scikit-uplift (\(b.x), \(b.y))")
        }
    }

    @Test("the datasets cover what matters: ties, no control in the top 30%, an inverted model")
    func coverage() async throws {
        let answers = try await SciKitUplift.answers.value.get()
        #expect(answers["no-control-at-top-20"]?.upliftAt30 == nil)
        #expect((answers["inverted-model-1000"]?.qini ?? 0) < 0)
        #expect(answers["all-tied-500"]?.curve.count == 2)
    }

    @Test("ties at the uplift@k cut are taken in scikit-uplift's order: the later row first")
    func tieOrder() throws {
        // Four equal scores, k = 0.5 takes two of them: rows 3 and 2 (treated and stayed, control
        // and left: +1), not rows 0 and 1 (treated and left, control and stayed: −1).
        let curve = try UpliftCurve(scores: [1, 1, 1, 1], treated: [true, false, false, true],
                                    retained: [false, true, false, true])
        #expect(curve.upliftAtK(0.5) == 1)
    }

    @Test("undefined where scikit-uplift raises: one arm, one outcome, k outside (0, 1)")
    func undefined() throws {
        let oneArm = try UpliftCurve(scores: [0.1, 0.2], treated: [true, true], retained: [true, false])
        #expect(oneArm.qiniCoefficient == nil && oneArm.upliftAtK() == nil)
        let oneOutcome = try UpliftCurve(scores: [0.1, 0.2], treated: [true, false], retained: [true, true])
        #expect(oneOutcome.qiniCoefficient == nil && oneOutcome.upliftAtK() == nil)
        let fine = try UpliftCurve(scores: [0.1, 0.2, 0.3, 0.4], treated: [true, false, true, false], retained: [true, false, false, true])
        #expect(fine.upliftAtK(0) == nil && fine.upliftAtK(1) == nil)
        let empty = try UpliftCurve(scores: [], treated: [], retained: [])
        #expect(empty.qiniCoefficient == nil && empty.qiniCurve == [UpliftCurve.Point(targeted: 0, incrementalRetained: 0)])
    }

    @Test("bad columns are refused with the row named")
    func badInput() {
        #expect(throws: UpliftCurveError.self) { try UpliftCurve(scores: [1, 2], treated: [true], retained: [true, false]) }
        do {
            _ = try UpliftCurve(scores: [1, .nan, 3], treated: [true, false, true], retained: [true, false, true])
            Issue.record("a NaN score was accepted")
        } catch {
            #expect(error.code == .nonFiniteScore && error.row == 1)
        }
    }
}
