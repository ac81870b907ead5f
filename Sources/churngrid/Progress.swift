import Foundation
import Synchronization

/// Runs `body`, a long call the coordinator answers only at its end; meanwhile, every `period`,
/// prints on standard error the line `probe` makes of the cluster's state (nothing when it makes
/// none, e.g. the probe's own call failed). The answer stays on standard output.
func withProgress<T>(every period: Duration = .seconds(5), _ probe: @escaping @Sendable () async -> String?,
                     _ body: () async throws -> T) async throws -> T {
    let start = ContinuousClock.now
    let task = Task {
        while !Task.isCancelled {
            try? await Task.sleep(for: period)
            guard !Task.isCancelled else { return }
            guard let line = await probe(), !Task.isCancelled else { continue }
            let seconds = Int((ContinuousClock.now - start) / .seconds(1))
            FileHandle.standardError.write(Data("  \(line) (\(seconds) s)\n".utf8))
        }
    }
    defer { task.cancel() }
    return try await body()
}

/// A progress probe turned off for good (e.g. the coordinator, of an earlier release, refuses its
/// call: asking every 5 s would only fill its log with refusals).
final class ProbeOff: Sendable {
    private let off: Mutex<Bool>
    init(_ off: Bool = false) { self.off = Mutex(off) }
    var isOff: Bool { off.withLock { $0 } }
    func turnOff() { off.withLock { $0 = true } }
}
