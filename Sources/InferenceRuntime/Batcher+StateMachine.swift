import DequeModule
import HeapModule
import InferenceCore

/// The dynamic batcher's decisions, free of threads, locks and clocks: every event takes `now` and returns the
/// actions its owner (``Batcher``) runs outside its lock.
///
/// The queue holds single images ("units"); a request with several images is split into units that may ride in
/// different batches, and succeeds once all of them are done. Units wait in one queue per priority level
/// (level 1 first). Every request has a deadline; the owner arms a timer when asked (`scheduleTimer`) and reports
/// it with `timerFired`, which fails expired requests at once, even while their batch is still running.
public struct BatcherStateMachine<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    /// Identifies a request for its whole life.
    public typealias RequestID = UInt64

    /// Batching limits.
    public struct Configuration: Sendable, Hashable {
        /// Largest batch, in images.
        public var maxBatchSize: Int
        /// Longest time the oldest queued image waits for a fuller batch while a worker is idle.
        public var maxQueueDelay: Duration
        /// Most images waiting in the queue; more are rejected.
        public var maxQueueSize: Int
        /// Number of priority levels; 1 is served first, `levels` last.
        public var priorityLevels: Int
        /// Batch sizes the engine prefers (ascending); a batch is cut to the largest one that fits. When the engine
        /// names any, `maxBatchSize` is one of them, so a full batch is never cut.
        public var preferredBatchSizes: [Int]

        /// Defaults: batch 16, no delay, 1024 queued images, 2 levels, no preferred sizes.
        public init(
            maxBatchSize: Int = 16, maxQueueDelay: Duration = .zero, maxQueueSize: Int = 1024,
            priorityLevels: Int = 2, preferredBatchSizes: [Int] = []
        ) {
            let maxBatchSize = max(1, maxBatchSize)
            self.maxBatchSize = maxBatchSize
            self.maxQueueDelay = maxQueueDelay
            self.maxQueueSize = max(1, maxQueueSize)
            self.priorityLevels = max(1, priorityLevels)
            let preferred = Set(preferredBatchSizes.filter { $0 >= 1 && $0 <= maxBatchSize })
            self.preferredBatchSizes = preferred.isEmpty ? [] : preferred.union([maxBatchSize]).sorted()
        }
    }

    /// One image of one request.
    public struct Unit: Hashable, Sendable {
        /// The request it belongs to.
        public var request: RequestID
        /// Its position in the request.
        public var index: Int

        /// Memberwise init.
        public init(request: RequestID, index: Int) {
            self.request = request
            self.index = index
        }
    }

    /// Images handed to one worker.
    public struct Batch: Equatable, Sendable {
        /// Unique per state machine.
        public var id: UInt64
        /// The worker (execution context) that runs it.
        public var worker: Int
        /// The images in batch order.
        public var units: [Unit]
    }

    /// Why a request ended without embeddings.
    public enum Failure: Equatable, Sendable {
        case timedOut
        case cancelled
        case engineFailed(String)
    }

    /// What the owner must do.
    public enum Action: Equatable, Sendable {
        /// Run `batch` on `batch.worker`, then report `batchFinished`.
        case startBatch(Batch)
        /// Every image of the request is embedded.
        case succeed(RequestID)
        /// Answer the request with an error now.
        case fail(RequestID, Failure)
        /// Call `timerFired` at (or after) this instant.
        case scheduleTimer(Instant)
        /// Shutdown was requested and nothing is queued or running any more.
        case drained
    }

    private struct Queued {
        var unit: Unit
        var enqueued: Instant
    }

    private struct Request {
        var remaining: Int
        var deadline: Instant
    }

    /// A request's deadline in the deadline heap, earliest first (ties by id).
    private struct Deadline: Comparable {
        var instant: Instant
        var request: RequestID

        static func < (a: Self, b: Self) -> Bool { (a.instant, a.request) < (b.instant, b.request) }
    }

    private enum WorkerState: Equatable {
        case idle
        case busy(batch: UInt64, images: Int)
    }

    /// The limits in force.
    public let configuration: Configuration
    private var queues: [Deque<Queued>]
    private var requests: [RequestID: Request] = [:]
    /// Deadlines of live requests, and of some that have ended (dropped when they reach the top, or all at once when
    /// they outnumber the live ones): every event finds the next deadline in O(log n), not by walking every request.
    private var deadlines = Heap<Deadline>()
    private var workers: [WorkerState]
    private let workerPriorities: [ContextPriority]
    private let workerDevices: [Int]
    private var nextBatchID: UInt64 = 1
    /// The instant the owner's timer should wake at (the last `scheduleTimer` not yet fired), nil for none.
    public private(set) var armedTimer: Instant?
    private var shuttingDown = false
    private var drainedSent = false
    /// Set by the first engine failure; nothing is admitted afterwards.
    public private(set) var failure: String?
    /// Images waiting in the queue (not yet in a batch).
    public private(set) var queuedImages = 0

    /// A batcher feeding one worker per entry of `workers` (each with its context's priority).
    ///
    /// `devices[i]` names the device (GPU) of worker `i` (all on device 0 when empty): a batch goes to an idle worker
    /// of the device with the fewest images in flight, so several GPUs share the load evenly.
    public init(configuration: Configuration, workers: [ContextPriority], devices: [Int] = []) {
        self.configuration = configuration
        queues = Array(repeating: [], count: configuration.priorityLevels)
        self.workers = Array(repeating: .idle, count: max(1, workers.count))
        workerPriorities = workers.isEmpty ? [.normal] : workers
        workerDevices = devices.count == self.workers.count ? devices : Array(repeating: 0, count: self.workers.count)
    }

    /// Requests admitted and not yet answered.
    public var activeRequests: Int { requests.count }
    /// Workers running a batch.
    public var busyWorkers: Int { workers.filter { $0 != .idle }.count }

    /// Images in batches running on `device`'s workers.
    public func imagesInFlight(device: Int) -> Int {
        workers.indices.reduce(0) { sum, index in
            guard workerDevices[index] == device, case let .busy(_, images) = workers[index] else { return sum }
            return sum + images
        }
    }
    /// Whether new requests are admitted.
    public var isAccepting: Bool { !shuttingDown && failure == nil }

    // MARK: Events

    /// Admits a request of `images` images at `priority` (1 highest; clamped to the levels) that must finish by
    /// `deadline`, or says why not.
    public mutating func enqueue(
        _ id: RequestID, images: Int, priority: Int, deadline: Instant, now: Instant
    ) -> Result<[Action], BatcherRejection> {
        if let failure { return .failure(.failed(failure)) }
        if shuttingDown { return .failure(.shuttingDown) }
        if deadline <= now { return .failure(.expired) }
        guard images >= 1, queuedImages + images <= configuration.maxQueueSize else {
            return .failure(.queueFull)
        }
        let level = min(max(priority, 1), configuration.priorityLevels) - 1
        for index in 0..<images {
            queues[level].append(Queued(unit: Unit(request: id, index: index), enqueued: now))
        }
        queuedImages += images
        requests[id] = Request(remaining: images, deadline: deadline)
        deadlines.insert(Deadline(instant: deadline, request: id))
        if deadlines.count > 2 * requests.count + 64 {
            deadlines = Heap(requests.map { Deadline(instant: $0.value.deadline, request: $0.key) })
        }
        return .success(dispatch(now: now))
    }

    /// The timer armed by `scheduleTimer` went off: fail expired requests, cut batches whose delay is over.
    public mutating func timerFired(now: Instant) -> [Action] {
        if let armed = armedTimer, armed <= now { armedTimer = nil }
        var actions: [Action] = []
        var expired: [RequestID] = []
        while let first = deadlines.min, first.instant <= now {
            deadlines.removeMin()
            if requests[first.request] != nil { expired.append(first.request) }
        }
        for id in expired.sorted() {
            remove(id)
            actions.append(.fail(id, .timedOut))
        }
        return actions + dispatch(now: now)
    }

    /// The caller of request `id` went away; its images leave the queue.
    public mutating func cancel(_ id: RequestID, now: Instant) -> [Action] {
        guard requests[id] != nil else { return [] }
        remove(id)
        return [.fail(id, .cancelled)] + dispatch(now: now)
    }

    /// Batch `id` finished on its worker; `error` is the engine's message when it failed.
    public mutating func batchFinished(_ batch: Batch, error: String?, now: Instant) -> [Action] {
        guard batch.worker < workers.count, workers[batch.worker] == .busy(batch: batch.id, images: batch.units.count)
        else { return [] }
        workers[batch.worker] = .idle
        var actions: [Action] = []
        if let error {
            if failure == nil { failure = error }
            // The context may be broken: nobody waits behind a failed engine.
            let doomed = Set(batch.units.map(\.request)).union(requests.keys).sorted()
            for id in doomed where requests[id] != nil {
                remove(id)
                actions.append(.fail(id, .engineFailed(error)))
            }
        } else {
            for unit in batch.units {
                guard var request = requests[unit.request] else { continue }
                request.remaining -= 1
                if request.remaining == 0 {
                    requests[unit.request] = nil
                    actions.append(.succeed(unit.request))
                } else {
                    requests[unit.request] = request
                }
            }
        }
        return actions + dispatch(now: now)
    }

    /// Stops admitting requests; what is queued is batched without waiting for the delay.
    public mutating func shutdown(now: Instant) -> [Action] {
        shuttingDown = true
        return dispatch(now: now)
    }

    // MARK: Decisions

    private mutating func remove(_ id: RequestID) {
        requests[id] = nil
        for level in queues.indices {
            let before = queues[level].count
            queues[level].removeAll { $0.unit.request == id }
            queuedImages -= before - queues[level].count
        }
    }

    private var oldestEnqueued: Instant? {
        queues.compactMap { $0.first?.enqueued }.min()
    }

    private var highestQueuedLevel: Int? {
        queues.firstIndex { !$0.isEmpty }
    }

    /// The idle worker that should take the next batch: a high-priority context for level-1 work, else a normal one;
    /// among those, one on the device with the fewest images in flight (the least loaded GPU), lowest index first.
    private func idleWorker() -> Int? {
        let idle = workers.indices.filter { workers[$0] == .idle }
        guard !idle.isEmpty else { return nil }
        let wanted: ContextPriority = highestQueuedLevel == 0 ? .high : .normal
        let matching = idle.filter { workerPriorities[$0] == wanted }
        let candidates = matching.isEmpty ? idle : matching
        let devices = Set(candidates.map { workerDevices[$0] })
        guard devices.count > 1 else { return candidates.first }
        let load = Dictionary(uniqueKeysWithValues: devices.map { ($0, imagesInFlight(device: $0)) })
        return candidates.min { (load[workerDevices[$0]]!, $0) < (load[workerDevices[$1]]!, $1) }
    }

    /// Images the next batch takes now, or nil to keep waiting.
    private func batchSize(now: Instant) -> Int? {
        guard queuedImages > 0, let oldest = oldestEnqueued else { return nil }
        let available = min(queuedImages, configuration.maxBatchSize)
        let preferred = configuration.preferredBatchSizes
        let delayOver = now >= oldest.advanced(by: configuration.maxQueueDelay)
        if available == configuration.maxBatchSize || delayOver || shuttingDown
            || (preferred.last.map { available >= $0 } ?? false) {
            return preferred.last { $0 <= available } ?? available
        }
        return nil
    }

    private mutating func dispatch(now: Instant) -> [Action] {
        var actions: [Action] = []
        while let worker = idleWorker(), let size = batchSize(now: now) {
            var units: [Unit] = []
            units.reserveCapacity(size)
            for level in queues.indices {
                while units.count < size, let queued = queues[level].popFirst() {
                    units.append(queued.unit)
                }
            }
            queuedImages -= units.count
            let batch = Batch(id: nextBatchID, worker: worker, units: units)
            nextBatchID += 1
            workers[worker] = .busy(batch: batch.id, images: units.count)
            actions.append(.startBatch(batch))
        }
        if let wake = nextWake(now: now), armedTimer.map({ wake < $0 }) ?? true {
            armedTimer = wake
            actions.append(.scheduleTimer(wake))
        }
        if shuttingDown, !drainedSent, queuedImages == 0, workers.allSatisfy({ $0 == .idle }) {
            drainedSent = true
            actions.append(.drained)
        }
        return actions
    }

    /// The earliest deadline of any live request (dropping ended ones from the top of the heap).
    private mutating func earliestDeadline() -> Instant? {
        while let first = deadlines.min {
            if requests[first.request] != nil { return first.instant }
            deadlines.removeMin()
        }
        return nil
    }

    /// The earliest deadline of any live request, and the end of the oldest image's delay when a worker is idle.
    private mutating func nextWake(now: Instant) -> Instant? {
        var wake = earliestDeadline()
        if queuedImages > 0, workers.contains(.idle), let oldest = oldestEnqueued {
            let cut = oldest.advanced(by: configuration.maxQueueDelay)
            if cut > now { wake = wake.map { min($0, cut) } ?? cut }
        }
        return wake
    }
}

/// Why the batcher did not admit a request.
public enum BatcherRejection: Error, Equatable, Sendable {
    /// `maxQueueSize` images are waiting already.
    case queueFull
    /// Shutdown has begun.
    case shuttingDown
    /// An engine failure stopped the batcher.
    case failed(String)
    /// The deadline had passed on arrival.
    case expired
}
