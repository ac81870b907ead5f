import CZeroMQ

/// A libzmq call that failed: which operation, on what (endpoint, socket type), and libzmq's reason.
public struct ZMQError: Error, Sendable, CustomStringConvertible {
    /// libzmq's errno value (`EAGAIN`, `EADDRINUSE`, `ETERM`…).
    public var errno: Int32
    /// What ChurnGrid was doing ("bind tcp://127.0.0.1:5555", "send on DEALER"…).
    public var operation: String
    /// libzmq's description of `errno`.
    public var reason: String

    init(_ operation: String, errno: Int32 = czmq_errno()) {
        self.errno = errno
        self.operation = operation
        self.reason = String(cString: zmq_strerror(errno))
    }

    /// The context was terminated (the process is shutting down).
    public var isTerminated: Bool { errno == ETERM }

    public var description: String { "ZeroMQ \(operation) failed: \(reason) (errno \(errno))" }
}
