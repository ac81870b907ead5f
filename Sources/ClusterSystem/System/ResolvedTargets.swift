import Distributed
import Synchronization

/// Distributed methods resolved once: `executeDistributedTarget` (the standard library's)
/// demangles the method's name three times on every call — its parameter count, its parameter
/// types and its return type. A node serves a handful of methods, so each non-generic method's
/// types are looked up on its first call and kept (by mangled name); later calls go straight to
/// the runtime's `swift_distributed_execute_target` with them. Generic methods (whose types
/// depend on the call's substitutions) take the standard path every time.
final class ResolvedTargets: Sendable {
    /// One method's name and types, kept for the life of the node (never freed: at most `limit`).
    final class Target: @unchecked Sendable {
        // @unchecked: immutable after init; the buffers are only read.
        let name: UnsafeMutablePointer<UInt8>
        let nameLength: Int
        /// The parameter types (room for at least one, so never a null pointer).
        let argumentTypes: UnsafeMutablePointer<Any.Type>
        let returnType: Any.Type

        init?(identifier: String) {
            let utf8 = Array(identifier.utf8)
            guard !utf8.isEmpty else { return nil }
            let name = UnsafeMutablePointer<UInt8>.allocate(capacity: utf8.count)
            name.initialize(from: utf8, count: utf8.count)
            let length = UInt(utf8.count)
            let count = _getGenericEnvironmentOfDistributedTarget(name, length) == nil ? __getParameterCount(name, length) : -1
            guard count >= 0, count <= 64 else {
                name.deallocate()
                return nil
            }
            let types = UnsafeMutablePointer<Any.Type>.allocate(capacity: max(1, Int(count)))
            let decoded = __getParameterTypeInfo(name, length, nil, nil, types._rawValue, Int(count))
            guard decoded == count, let returnType = __getReturnTypeInfo(name, length, nil, nil) else {
                types.deallocate()
                name.deallocate()
                return nil
            }
            self.name = name
            nameLength = utf8.count
            argumentTypes = types
            self.returnType = returnType
        }
    }

    private enum Entry {
        case resolved(Target)
        /// Generic, or not resolvable here: the standard path (which reports the problem).
        case standard
    }

    /// Bounded: identifiers are the caller's word, and only methods that passed the access check
    /// (a method of the actor's type) get here.
    static let limit = 1024
    private let entries = Mutex<[String: Entry]>([:])

    /// The resolved method `identifier`, nil when it takes the standard path.
    func target(_ identifier: String) -> Target? {
        if let known = entries.withLock({ $0[identifier] }) {
            if case .resolved(let t) = known { return t }
            return nil
        }
        let target = Target(identifier: identifier)
        return entries.withLock { table in
            if let raced = table[identifier] {
                if case .resolved(let t) = raced { return t }
                return nil
            }
            if table.count < Self.limit { table[identifier] = target.map { .resolved($0) } ?? .standard }
            return target
        }
    }
}

@_silgen_name("swift_distributed_execute_target")
private func executeResolvedDistributedTarget<D: DistributedTargetInvocationDecoder>(
    on actor: AnyObject,
    _ targetName: UnsafePointer<UInt8>, _ targetNameLength: UInt,
    argumentDecoder: inout D,
    argumentTypes: UnsafeMutableRawPointer,
    resultBuffer: UnsafeMutableRawPointer,
    substitutions: UnsafeRawPointer?,
    witnessTables: UnsafeRawPointer?,
    numWitnessTables: UInt
) async throws

extension ClusterActorSystem {
    /// What `executeDistributedTarget` does for a non-generic method, with its types resolved
    /// once (`ResolvedTargets`): decodes the arguments, runs the method and hands the result or
    /// the thrown error to `handler`.
    func execute(_ target: ResolvedTargets.Target, on actor: any DistributedActor, decoder: inout ClusterInvocationDecoder,
                 handler: ClusterResultHandler) async throws {
        func allocate<R>(_: R.Type) -> UnsafeMutableRawPointer {
            UnsafeMutableRawPointer(UnsafeMutablePointer<R>.allocate(capacity: 1))
        }
        let returnType = target.returnType
        let result = _openExistential(returnType, do: allocate)
        var filled = false
        func destroy<R>(_: R.Type) {
            let typed = result.assumingMemoryBound(to: R.self)
            if filled { typed.deinitialize(count: 1) }
            typed.deallocate()
        }
        defer { _openExistential(returnType, do: destroy) }
        do {
            try await executeResolvedDistributedTarget(on: actor, target.name, UInt(target.nameLength), argumentDecoder: &decoder,
                                                        argumentTypes: UnsafeMutableRawPointer(target.argumentTypes), resultBuffer: result,
                                                        substitutions: nil, witnessTables: nil, numWitnessTables: 0)
            filled = true
            if returnType == Void.self {
                try await handler.onReturnVoid()
            } else {
                try await invokeHandlerOnReturn(handler: handler, resultBuffer: UnsafeRawPointer(result), metatype: returnType)
            }
        } catch {
            try await handler.onThrow(error: error)
        }
    }
}
