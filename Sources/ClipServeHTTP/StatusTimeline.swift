/// A fixed-capacity FIFO: appending to a full buffer drops the oldest element.
struct RingBuffer<Element> {
    /// Most elements kept.
    let capacity: Int
    private var storage: [Element] = []
    /// Index of the oldest element once the buffer has wrapped.
    private var head = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        storage.reserveCapacity(self.capacity)
    }

    var count: Int { storage.count }

    /// Appends `element`, dropping the oldest when full.
    mutating func append(_ element: Element) {
        if storage.count < capacity {
            storage.append(element)
        } else {
            storage[head] = element
            head = (head + 1) % capacity
        }
    }

    /// The newest element, or nil when empty.
    var last: Element? {
        storage.isEmpty ? nil : storage[(head + storage.count - 1) % storage.count]
    }

    /// Replaces the newest element (no-op when empty).
    mutating func updateLast(_ change: (inout Element) -> Void) {
        guard !storage.isEmpty else { return }
        change(&storage[(head + storage.count - 1) % storage.count])
    }

    /// Elements, oldest first.
    var elements: [Element] { Array(storage[head...] + storage[..<head]) }
}

/// Readings of the machine taken once a second by the sampler.
public struct StatusGauges: Sendable, Equatable {
    /// Images waiting for a batch.
    public var queueDepth: Int
    /// Busy fraction 0...1 of the GPUs (mean over devices), or of the process's share of all CPU cores.
    public var utilization: Double?
    /// GPU memory in use over all devices, in bytes (nil on the CPU).
    public var memoryUsedBytes: Double?

    /// Memberwise init.
    public init(queueDepth: Int, utilization: Double? = nil, memoryUsedBytes: Double? = nil) {
        self.queueDepth = queueDepth
        self.utilization = utilization
        self.memoryUsedBytes = memoryUsedBytes
    }
}

/// One second of the server's life: what finished in it, and the gauges read at its end.
struct StatusSecond: Sendable, Equatable {
    /// Whole seconds since the recorder started; this sample covers `[second, second + 1)`.
    var second: Int
    /// Requests answered.
    var requests = 0
    /// Images embedded.
    var images = 0
    /// Requests answered with a status outside 2xx.
    var errors = 0
    /// Median latency of the requests answered, in milliseconds (nil when none).
    var latencyP50: Double?
    /// 99th-percentile latency of the requests answered, in milliseconds (nil when none).
    var latencyP99: Double?
    /// Gauges read when the second ended (nil when the sampler did not run for it).
    var gauges: StatusGauges?
}

/// The last minutes as one sample per second, as a pure value: the recorder feeds it events stamped with the
/// second they happened in, and the timeline closes seconds as time moves on (lazily: nothing runs between events).
struct StatusTimeline: Sendable {
    /// Most latencies kept for the percentiles of one second; beyond it, later ones overwrite earlier ones in turn.
    static let latencyReservoir = 8192

    private(set) var closed: RingBuffer<StatusSecond>
    private var open: StatusSecond
    private var latencies: [Double] = []
    private var latenciesSeen = 0
    /// Requests, images and errors since start.
    private(set) var totalRequests = 0
    private(set) var totalImages = 0
    private(set) var totalErrors = 0

    /// A timeline keeping `capacity` closed seconds, starting at second 0.
    init(capacity: Int) {
        closed = RingBuffer(capacity: capacity)
        open = StatusSecond(second: 0)
    }

    /// Closes every second before `second` (empty seconds in a gap get empty samples, at most `capacity` of them).
    mutating func advance(to second: Int) {
        guard second > open.second else { return }
        close()
        let firstEmpty = max(open.second + 1, second - closed.capacity)
        for empty in firstEmpty..<second { closed.append(StatusSecond(second: empty)) }
        open = StatusSecond(second: second)
    }

    private mutating func close() {
        if !latencies.isEmpty {
            latencies.sort()
            open.latencyP50 = Self.percentile(latencies, 0.50)
            open.latencyP99 = Self.percentile(latencies, 0.99)
        }
        closed.append(open)
        latencies.removeAll(keepingCapacity: true)
        latenciesSeen = 0
    }

    /// Nearest-rank percentile of sorted `values`.
    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    /// A request answered during `second` after `latencyMilliseconds`.
    mutating func recordRequest(at second: Int, latencyMilliseconds: Double, isError: Bool) {
        advance(to: second)
        open.requests += 1
        totalRequests += 1
        if isError {
            open.errors += 1
            totalErrors += 1
        }
        if latencies.count < Self.latencyReservoir {
            latencies.append(latencyMilliseconds)
        } else {
            latencies[latenciesSeen % Self.latencyReservoir] = latencyMilliseconds
        }
        latenciesSeen += 1
    }

    /// `count` images embedded during `second`.
    mutating func recordImages(_ count: Int, at second: Int) {
        advance(to: second)
        open.images += count
        totalImages += count
    }

    /// Gauges read at the start of `second`: they describe the end of the second before, which this closes.
    mutating func recordGauges(_ gauges: StatusGauges, at second: Int) {
        advance(to: second)
        closed.updateLast { sample in
            if sample.second == second - 1 { sample.gauges = gauges }
        }
    }

    /// The closed seconds, oldest first (the newest is the second before the one in progress).
    var seconds: [StatusSecond] { closed.elements }
}

extension RingBuffer: Sendable where Element: Sendable {}
