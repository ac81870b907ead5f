import Foundation
import Testing
import TestSupport

/// `churngrid` with `CHURNGRID_SCORING_KERNEL` set: the model is compiled for the kernels it
/// names (`model inspect` reports them), and a value that names no kernel stops the command
/// before it does anything, with the variable named.
@Suite("CHURNGRID_SCORING_KERNEL on the command line")
struct ScoringKernelCommandTests {
    static let model = TestDatabase.packageRoot.appendingPathComponent("models/churn-default.json").path

    /// Runs `churngrid model inspect --json` with the variable set; its exit code and output.
    func inspect(_ value: String) async throws -> (status: Int32, output: String) {
        let log = NSTemporaryDirectory() + "churngrid-kernel-\(getpid())-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try ChildProcess(try churngridExecutable(), ["model", "inspect", "--json", Self.model], logPath: log,
                                     environment: ["CHURNGRID_SCORING_KERNEL": value])
        let status = try await child.wait(timeout: .seconds(60))
        return (status, child.log)
    }

    @Test("portable: the model is scored by the portable walks")
    func portable() async throws {
        let (status, output) = try await inspect("portable")
        #expect(status == 0, "\(output)")
        let json = try #require(output.split(separator: "\n").last { $0.hasPrefix("{") }, "\(output)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(summary["scoring_kernel"] as? String == "portable")
        #expect(summary["instruction_set"] as? String == "none")
        #expect(summary["exit_leaf_trees"] as? Int == 0)
    }

    @Test("a value that names no kernel: refused at start, naming the variable")
    func refused() async throws {
        let (status, output) = try await inspect("turbo")
        #expect(status == 64, "\(output)")
        #expect(output.contains("CHURNGRID_SCORING_KERNEL=turbo") && output.contains("automatic, avx2 or portable"), "\(output)")
        #expect(!output.contains("\"trees\""), "nothing ran")
    }
}
