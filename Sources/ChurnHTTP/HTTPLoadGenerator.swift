import Histogram
import NIOCore
import NIOPosix
import Synchronization

/// An open-loop HTTP/1.1 load generator (`churngrid bench http`): request i is due at
/// start + i / rate whatever happened to the earlier ones, spread over keep-alive connections
/// that pipeline; each latency is measured from the request's scheduled time (so a stall
/// delays every request due meanwhile: no coordinated omission), failures included, into an
/// HdrHistogram.
public enum HTTPLoadGenerator {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        /// Requests per second to send.
        public var rate: Double
        public var duration: Duration
        public var connections: Int
        /// Request i's raw bytes (the caller writes the request line and headers).
        public var request: @Sendable (Int) -> [UInt8]
        /// How long to wait for the last answers after the last send.
        public var drain: Duration = .seconds(5)

        public init(host: String, port: Int, rate: Double, duration: Duration, connections: Int, request: @escaping @Sendable (Int) -> [UInt8]) {
            self.host = host
            self.port = port
            self.rate = rate
            self.duration = duration
            self.connections = connections
            self.request = request
        }
    }

    public struct Result: Sendable, Codable {
        public var requests: Int
        public var ok: Int
        public var failed: Int
        public var rate: Double
        public var achieved_per_second: Double
        public var p50_us: Double
        public var p90_us: Double
        public var p99_us: Double
        public var p999_us: Double
        public var max_us: Double
        public var connections: Int
    }

    /// Runs the load and returns its figures.
    public static func run(_ options: Options) async throws -> Result {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let result = try await run(options, on: group)
            try? await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func run(_ options: Options, on group: MultiThreadedEventLoopGroup) async throws -> Result {
        let interval = 1e9 / max(1, options.rate)
        let total = Int(options.rate * (Double(options.duration.components.seconds) + Double(options.duration.components.attoseconds) / 1e18))
        var states: [ConnectionState] = []
        var channels: [any Channel] = []
        for k in 0..<max(1, options.connections) {
            let state = ConnectionState(index: k, stride: max(1, options.connections), total: total, interval: interval, request: options.request)
            let channel = try await ClientBootstrap(group: group)
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ResponseReader(state: state)) }
                }
                .connect(host: options.host, port: options.port).get()
            states.append(state)
            channels.append(channel)
        }
        let start = NIODeadline.now().uptimeNanoseconds + 20_000_000
        for (state, channel) in zip(states, channels) {
            channel.eventLoop.execute { state.begin(channel: channel, start: start) }
        }
        let end = start + UInt64(Double(total) * interval)
        let drainNanos = UInt64(options.drain.components.seconds) * 1_000_000_000 + UInt64(options.drain.components.attoseconds / 1_000_000_000)
        // Wait for the schedule to end and the answers to come in (or the drain time to pass).
        while true {
            try await Task.sleep(for: .milliseconds(100))
            let now = NIODeadline.now().uptimeNanoseconds
            guard now > end else { continue }
            var outstanding = 0
            for (state, channel) in zip(states, channels) {
                outstanding += try await channel.eventLoop.submit { state.outstanding }.get()
            }
            if outstanding == 0 || now > end + drainNanos { break }
        }
        var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        var ok = 0, failed = 0, sent = 0
        var lastAnswer: UInt64 = start
        for (state, channel) in zip(states, channels) {
            let snapshot = try await channel.eventLoop.submit { state.finish(now: NIODeadline.now().uptimeNanoseconds) }.get()
            histogram.add(snapshot.histogram)
            ok += snapshot.ok
            failed += snapshot.failed
            sent += snapshot.sent
            lastAnswer = max(lastAnswer, snapshot.lastAnswer)
            try? await channel.close()
        }
        let seconds = Double(max(lastAnswer, end) - start) / 1e9
        func p(_ q: Double) -> Double { Double(histogram.valueAtPercentile(q)) }
        return Result(requests: sent, ok: ok, failed: failed, rate: options.rate, achieved_per_second: Double(ok) / max(seconds, 1e-9),
                      p50_us: p(50), p90_us: p(90), p99_us: p(99), p999_us: p(99.9), max_us: Double(histogram.max), connections: options.connections)
    }
}

/// One connection's schedule and answers; used only on its channel's event loop.
final class ConnectionState: @unchecked Sendable {
    let index: Int, stride: Int, total: Int
    let interval: Double
    let request: @Sendable (Int) -> [UInt8]
    var next: Int
    var start: UInt64 = 0
    /// The scheduled times of the requests sent and not answered yet, oldest first.
    var pending: [UInt64] = []
    var head = 0
    var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    var ok = 0, failed = 0, sent = 0
    var lastAnswer: UInt64 = 0
    var channel: (any Channel)?
    var closed = false

    init(index: Int, stride: Int, total: Int, interval: Double, request: @escaping @Sendable (Int) -> [UInt8]) {
        self.index = index
        self.stride = stride
        self.total = total
        self.interval = interval
        self.request = request
        next = index
    }

    var outstanding: Int { pending.count - head + (next < total && !closed ? 1 : 0) }

    func due(_ i: Int) -> UInt64 { start + UInt64(Double(i) * interval) }

    func begin(channel: any Channel, start: UInt64) {
        self.channel = channel
        self.start = start
        schedule()
    }

    /// Sends every request due by now, then sleeps until the next one is due.
    func schedule() {
        guard let channel, !closed else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        var wrote = false
        while next < total, due(next) <= now {
            var buffer = channel.allocator.buffer(capacity: 256)
            buffer.writeBytes(request(next))
            channel.write(buffer, promise: nil)
            pending.append(due(next))
            sent += 1
            next += stride
            wrote = true
        }
        if wrote { channel.flush() }
        guard next < total else { return }
        channel.eventLoop.scheduleTask(deadline: .uptimeNanoseconds(due(next))) { [self] in schedule() }
    }

    func answered(status: Int) {
        guard head < pending.count else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        record(now - min(now, pending[head]), failure: !(200..<300).contains(status))
        head += 1
        if head > 4096 && head * 2 > pending.count {
            pending.removeFirst(head)
            head = 0
        }
        lastAnswer = now
    }

    private func record(_ nanos: UInt64, failure: Bool) {
        _ = histogram.record(max(1, nanos / 1000))
        if failure { failed += 1 } else { ok += 1 }
    }

    /// The connection dropped, or the run is over: what is still pending failed now, and what was
    /// never sent (a closed connection) failed at its due time.
    func finish(now: UInt64) -> (histogram: Histogram<UInt64>, ok: Int, failed: Int, sent: Int, lastAnswer: UInt64) {
        for scheduled in pending[head...] { record(now - min(now, scheduled), failure: true) }
        while next < total, due(next) <= now {
            record(now - due(next), failure: true)
            sent += 1
            next += stride
        }
        pending.removeAll()
        head = 0
        closed = true
        return (histogram, ok, failed, sent, lastAnswer)
    }
}

/// Reads HTTP/1.1 responses (with Content-Length) off a connection, in order.
final class ResponseReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let state: ConnectionState
    var buffer = ByteBuffer()

    init(state: ConnectionState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        while let (status, length) = nextResponse() {
            buffer.moveReaderIndex(forwardBy: length)
            state.answered(status: status)
        }
        if buffer.readerIndex > 65536 { buffer.discardReadBytes() }
    }

    /// The status and total length of the next complete response, nil until it is all there.
    private func nextResponse() -> (Int, Int)? {
        buffer.withUnsafeReadableBytes { raw -> (Int, Int)? in
            let bytes = raw.bindMemory(to: UInt8.self)
            let n = bytes.count
            guard n >= 16 else { return nil }
            var end = -1
            var i = 3
            while i < n {
                if bytes[i] == 10, bytes[i - 1] == 13, bytes[i - 2] == 10, bytes[i - 3] == 13 { end = i + 1; break }
                i += 1
            }
            guard end > 0 else { return nil }
            let status = Int(bytes[9] &- 48) * 100 + Int(bytes[10] &- 48) * 10 + Int(bytes[11] &- 48)
            // Content-Length, case-insensitively, at the start of a header line.
            var length = 0
            let key = Array("content-length:".utf8)
            var j = 0
            while j + key.count < end {
                guard j >= 2, bytes[j - 1] == 10, bytes[j - 2] == 13 else {
                    j += 1
                    continue
                }
                var match = true
                for k in 0..<key.count where (bytes[j + k] | 0x20) != key[k] {
                    match = false
                    break
                }
                if match {
                    var v = j + key.count
                    while v < end, bytes[v] == 32 { v += 1 }
                    while v < end, bytes[v] >= 48, bytes[v] <= 57, length < 1 << 40 { length = length &* 10 &+ Int(bytes[v] - 48); v += 1 }
                    break
                }
                j += 1
            }
            guard n >= end + length else { return nil }
            return (status, end + length)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        _ = state.finish(now: NIODeadline.now().uptimeNanoseconds)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
