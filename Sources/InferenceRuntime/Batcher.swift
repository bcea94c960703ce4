import CPixelEncoding
import Dispatch
import Foundation
import InferenceCore
import Synchronization
/// Embeddings of one request and where its time went.
public struct BatchedEmbeddings: Sendable {
    /// `count × embedDim` floats in request order.
    public var embeddings: [Float]
    /// Longest wait of any of its images between enqueue and batch start.
    public var queueTime: Duration
    /// Engine time of the batches it rode in, summed.
    public var inferenceTime: Duration
    /// Largest batch it rode in.
    public var batchSize: Int
    /// From the call to `submit` until its images were queued: waiting for the batcher's lock, or in its intake.
    public var admissionTime: Duration = .zero
    /// From being queued until its embeddings were ready, just before its caller is resumed: queue, batch and the
    /// batcher's bookkeeping. A caller's own latency beyond admission and this is the time to resume it.
    public var answerTime: Duration = .zero
    /// From then until its caller's continuation was resumed (the answers of a batch are resumed one after another).
    public var resumeTime: Duration = .zero
}

/// The shell around ``BatcherStateMachine``: keeps the waiting callers and their pixels, runs the machine's actions
/// outside its lock (start batches on workers, resume callers, arm timers), and reads time from `clock`.
final class Batcher<C: Clock>: Sendable where C.Duration == Duration {
    typealias Machine = BatcherStateMachine<C.Instant>

    private struct Pending {
        var continuation: CheckedContinuation<BatchedEmbeddings, any Error>
        var pixels: ImagePixels
        var count: Int
        var embeddings: [Float]
        var enqueued: C.Instant
        var admission: Duration = .zero
        var timeout: Duration
        var queueTime: Duration = .zero
        var inferenceTime: Duration = .zero
        var batchSize = 0
    }

    private struct State {
        var machine: Machine
        var pending: [Machine.RequestID: Pending] = [:]
    }

    private enum Effect {
        case resume(CheckedContinuation<BatchedEmbeddings, any Error>, Result<BatchedEmbeddings, any Error>)
        case run(Machine.Batch, [(pixels: ImagePixels, index: Int)], queueWaits: [Duration])
        case arm(C.Instant)
        case drained
        case queueDepth(Int)
    }

    // Every request and batch passes through this lock: keep what runs under it short (no metrics, no copies of
    // pixels) and take it once per event. Requests never wait for it (see `intake`); take it with `withState`.
    private let state: Locked<State>
    /// A request that found `state`'s lock taken, waiting for the thread that holds it (or the next to take it) to
    /// queue it. Callers run on the cooperative pool: with a thousand clients on a 16-core GPU host, 9–12 of the pool's
    /// threads were asleep on the lock (backtraces, BENCHMARKS.md stop 16), and the answered clients then waited
    /// 10–37 ms for a thread to run them (`bench runtime`'s split of the latency), so batches shrank.
    private struct Incoming: Sendable {
        var id: Machine.RequestID
        var continuation: CheckedContinuation<BatchedEmbeddings, any Error>
        var pixels: ImagePixels
        var count: Int
        var priority: Int
        var timeout: Duration
        var arrived: C.Instant
    }
    private let intake = Locked<[Incoming]>([])
    /// False with CLIPSERVE_BATCHER_INTAKE=0: callers wait for the lock instead (for comparison).
    private let intakeEnabled = ProcessInfo.processInfo.environment["CLIPSERVE_BATCHER_INTAKE"] != "0"
    /// Requests appended to `intake` and not yet taken from it (may dip below zero for a moment).
    private let intakeCount = Atomic<Int>(0)
    private let nextID = Atomic<Machine.RequestID>(1)
    /// Set (after the machine's `failure`) by the first engine failure, so admission checks need not take the lock.
    private let failed = Atomic<Bool>(false)
    private let clock: C
    private let workers: [InferenceWorker]
    private let pixelsPerImage: Int
    private let embedDim: Int
    private let normalize: Bool
    /// Turns requests' bytes into normalised values, where the context does not do it on its device.
    private let normalization: PixelNormalization
    private let metrics: RuntimeMetrics
    private let timers: AsyncStream<C.Instant>
    private let timerInput: AsyncStream<C.Instant>.Continuation

    init(
        configuration: Machine.Configuration, workers: [InferenceWorker], pixelsPerImage: Int, embedDim: Int,
        normalize: Bool, normalization: PixelNormalization, clock: C, metrics: RuntimeMetrics
    ) {
        state = Locked(
            State(
                machine: Machine(
                    configuration: configuration, workers: workers.map(\.priority), devices: workers.map(\.device))))
        self.clock = clock
        self.workers = workers
        self.pixelsPerImage = pixelsPerImage
        self.embedDim = embedDim
        self.normalize = normalize
        self.normalization = normalization
        self.metrics = metrics
        (timers, timerInput) = AsyncStream.makeStream(of: C.Instant.self)
    }

    /// Set once an engine failure stopped the batcher.
    var failure: String? { failed.load(ordering: .acquiring) ? withState { $0.machine.failure } : nil }
    /// Images waiting for a batch.
    var queuedImages: Int { withState { $0.machine.queuedImages } }

    /// Requests waiting in the intake.
    var requestsInIntake: Int { intake.withLock { $0.count } }

    /// Runs `body` on the calling thread while holding `state`'s lock, then queues the intake as every holder does
    /// (tests: requests that arrive meanwhile wait in the intake).
    func holdingStateLock(_ body: () -> Void) { withState { _ in body() } }

    /// Runs `body` under `state`'s lock (waiting for it), then queues what arrived in the intake meanwhile: every
    /// holder of the lock does, so a request left there is never forgotten.
    private func withState<R>(_ body: (inout State) throws -> R) rethrows -> R {
        let result = try state.withLock(body)
        drainIntake()
        return result
    }

    /// Queues the requests waiting in the intake if the lock is free; if another thread holds it, that thread will
    /// after letting go. (A request appended after a holder's last look was appended, and counted, before the
    /// appender's own attempt at the lock failed, so before that holder let go and looked again.)
    private func drainIntake() {
        while intakeCount.load(ordering: .sequentiallyConsistent) > 0 {
            guard
                let effects = state.withLockIfAvailable({ state -> [Effect] in
                    takeIntake().flatMap { admit($0, to: &state) }
                })
            else { return }
            perform(effects)
        }
    }

    /// Empties the intake and returns what waited there, oldest first (under `state`'s lock, so a cancellation that
    /// finds a request in neither place knows it was queued or answered).
    private func takeIntake() -> [Incoming] {
        let waiting = intake.withLock { list in
            defer { list = [] }
            return list
        }
        intakeCount.subtract(waiting.count, ordering: .sequentiallyConsistent)
        return waiting
    }

    /// Queues one request (under the lock): its effects, or its rejection.
    private func admit(_ request: Incoming, to state: inout State) -> [Effect] {
        let now = clock.now
        switch state.machine.enqueue(
            request.id, images: request.count, priority: request.priority,
            deadline: now.advanced(by: request.timeout), now: now)
        {
        case let .failure(rejection):
            return [
                .resume(request.continuation, .failure(Self.error(for: rejection, state: state, timeout: request.timeout)))
            ]
        case let .success(actions):
            state.pending[request.id] = Pending(
                continuation: request.continuation, pixels: request.pixels, count: request.count, embeddings: [],
                enqueued: now, admission: request.arrived.duration(to: now), timeout: request.timeout)
            return apply(actions, to: &state, now: now)
        }
    }

    /// Queues `count` preprocessed images and returns their embeddings once every one has been through a batch.
    func submit(pixels: ImagePixels, count: Int, priority: Int, timeout: Duration) async throws -> BatchedEmbeddings {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let arrived = clock.now
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<BatchedEmbeddings, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: RuntimeError.cancelled)
                    return
                }
                let request = Incoming(
                    id: id, continuation: continuation, pixels: pixels, count: count, priority: priority,
                    timeout: timeout, arrived: arrived)
                // Queued now if the lock is free, else left in the intake for the thread that holds it.
                if !intakeEnabled {
                    perform(withState { admit(request, to: &$0) })
                } else if let effects = state.withLockIfAvailable({ admit(request, to: &$0) }) {
                    perform(effects)
                } else {
                    intake.withLock { $0.append(request) }
                    intakeCount.add(1, ordering: .sequentiallyConsistent)
                }
                drainIntake()
                // A cancellation that `onCancel` found nothing to cancel for (it ran before the request was in the
                // intake or queued) is seen here.
                if Task.isCancelled { cancel(id) }
            }
        } onCancel: {
            cancel(id)
        }
    }

    /// Answers request `id` with `RuntimeError.cancelled` if it is still waiting, in the intake or in the queue (its
    /// images leave it); otherwise nothing.
    private func cancel(_ id: Machine.RequestID) {
        // Still in the intake: taken out (a drain takes the whole intake at once, so it cannot have this one then).
        let removed = intake.withLock { list -> Incoming? in
            guard let index = list.firstIndex(where: { $0.id == id }) else { return nil }
            return list.remove(at: index)
        }
        if let removed {
            intakeCount.subtract(1, ordering: .sequentiallyConsistent)
            removed.continuation.resume(throwing: RuntimeError.cancelled)
            return
        }
        // Otherwise queued (a drain that took it queues it under the lock, before this gets the lock), or answered.
        let effects = withState { state -> [Effect] in
            guard state.pending[id] != nil else { return [] }
            let now = clock.now
            return apply(state.machine.cancel(id, now: now), to: &state, now: now)
        }
        perform(effects)
    }

    /// Stops admitting requests; queued images are batched at once; `runTimers` returns once all are answered.
    func shutdown() {
        perform(withState { state in
            let now = clock.now
            return apply(state.machine.shutdown(now: now), to: &state, now: now)
        })
    }

    /// Serves the timers the machine asks for until it reports `drained` (or the task is cancelled).
    ///
    /// One sleeper at a time, always for the machine's own armed instant: each `scheduleTimer` is only a signal to
    /// look at it again (signals from different threads may arrive out of order; the machine's value is the truth).
    /// A sleeper that is no longer wanted is cancelled, so sleepers for far-away request deadlines never pile up
    /// however often the queue delay re-arms.
    func runTimers() async {
        let sleeper = Locked<(task: Task<Void, Never>, instant: C.Instant)?>(nil)
        for await _ in timers {
            let wanted = withState { $0.machine.armedTimer }
            sleeper.withLock { current in
                guard current?.instant != wanted else { return }
                current?.task.cancel()
                current = wanted.map { instant in
                    let task = Task { [self] in
                        do { try await clock.sleep(until: instant, tolerance: nil) } catch { return }
                        guard !Task.isCancelled else { return }
                        fire()
                    }
                    return (task, instant)
                }
            }
        }
        sleeper.withLock { current in
            current?.task.cancel()
            current = nil
        }
    }

    /// Answers whatever is still waiting with `error` (after `runTimers` was cancelled).
    func failAll(_ error: RuntimeError) {
        let continuations = withState { state in
            let waiting = takeIntake()
            defer { state.pending = [:] }
            return state.pending.values.map(\.continuation) + waiting.map(\.continuation)
        }
        for continuation in continuations { continuation.resume(throwing: error) }
        timerInput.finish()
    }

    private func fire() {
        perform(withState { state in
            let now = clock.now
            return apply(state.machine.timerFired(now: now), to: &state, now: now)
        })
    }

    private func finished(_ batch: Machine.Batch, result: Result<[Float], any Error>, duration: Duration) {
        metrics.inferenceTime.record(duration: duration)
        let (effects, answered) = withState { state -> ([Effect], C.Instant) in
            var error: String?
            switch result {
            case let .success(output):
                var counted = Set<Machine.RequestID>()
                for (row, unit) in batch.units.enumerated() {
                    guard var pending = state.pending[unit.request] else { continue }
                    state.pending[unit.request] = nil  // keeps `embeddings` uniquely referenced while written
                    if pending.embeddings.isEmpty {
                        pending.embeddings = .init(repeating: 0, count: pending.count * embedDim)
                    }
                    let source = output[(row * embedDim)..<((row + 1) * embedDim)]
                    pending.embeddings.replaceSubrange((unit.index * embedDim)..<((unit.index + 1) * embedDim), with: source)
                    if counted.insert(unit.request).inserted { pending.inferenceTime += duration }
                    state.pending[unit.request] = pending
                }
            case let .failure(failure):
                error = String(describing: failure)
            }
            let now = clock.now
            return (apply(state.machine.batchFinished(batch, error: error, now: now), to: &state, now: now), now)
        }
        if case .failure = result { failed.store(true, ordering: .releasing) }
        perform(effects, answered: answered)
    }

    /// Turns machine actions into effects, updating the waiting callers; runs under the lock.
    private func apply(_ actions: [Machine.Action], to state: inout State, now: C.Instant) -> [Effect] {
        var effects: [Effect] = []
        for action in actions {
            switch action {
            case let .startBatch(batch):
                var sources: [(pixels: ImagePixels, index: Int)] = []
                var waits: [Duration] = []
                sources.reserveCapacity(batch.units.count)
                waits.reserveCapacity(batch.units.count)
                for unit in batch.units {
                    guard let index = state.pending.index(forKey: unit.request) else {
                        sources.append((.bytes([]), -1))  // a request that is gone: its row is written as zeros
                        continue
                    }
                    let waited = state.pending.values[index].enqueued.duration(to: now)
                    waits.append(waited)
                    state.pending.values[index].queueTime = max(state.pending.values[index].queueTime, waited)
                    state.pending.values[index].batchSize = max(state.pending.values[index].batchSize, batch.units.count)
                    sources.append((state.pending.values[index].pixels, unit.index))
                }
                effects.append(.run(batch, sources, queueWaits: waits))
            case let .succeed(id):
                guard let pending = state.pending.removeValue(forKey: id) else { continue }
                let result = BatchedEmbeddings(
                    embeddings: pending.embeddings, queueTime: pending.queueTime,
                    inferenceTime: pending.inferenceTime, batchSize: pending.batchSize,
                    admissionTime: pending.admission, answerTime: pending.enqueued.duration(to: now))
                effects.append(.resume(pending.continuation, .success(result)))
            case let .fail(id, failure):
                guard let pending = state.pending.removeValue(forKey: id) else { continue }
                let continuation = pending.continuation
                let error: RuntimeError =
                    switch failure {
                    case .timedOut: .timedOut(after: pending.timeout)
                    case .cancelled: .cancelled
                    case let .engineFailed(message): .engineFailed(message)
                    }
                effects.append(.resume(continuation, .failure(error)))
            case let .scheduleTimer(instant):
                effects.append(.arm(instant))
            case .drained:
                effects.append(.drained)
            }
        }
        effects.append(.queueDepth(state.machine.queuedImages))
        return effects
    }

    /// Runs `effects` in order; `answered` is the instant the answers among them were ready (see
    /// BatchedEmbeddings.resumeTime).
    private func perform(_ effects: [Effect], answered: C.Instant? = nil) {
        for effect in effects {
            switch effect {
            case let .resume(continuation, result):
                if let answered, case var .success(answer) = result {
                    answer.resumeTime = answered.duration(to: clock.now)
                    continuation.resume(returning: answer)
                } else {
                    continuation.resume(with: result)
                }
            case let .run(batch, sources, waits):
                for wait in waits { metrics.queueTime.record(duration: wait) }
                metrics.batches.increment()
                metrics.batchSize.record(batch.units.count)
                let pixelsPerImage = self.pixelsPerImage, normalization = self.normalization
                // A batch of bytes only may go to the device as bytes (a quarter of the copying and upload).
                let bytesOnly = sources.allSatisfy { source in
                    if case .bytes = source.pixels { true } else { source.index < 0 }
                }
                workers[batch.worker].run(
                    count: sources.count, pixelsPerImage: pixelsPerImage, embedDim: embedDim, normalize: normalize,
                    bytes: bytesOnly ? normalization : nil,
                    fill: { destination in
                        let copy = { @Sendable (slot: Int) in
                            let source = sources[slot]
                            guard source.index >= 0 else {
                                destination.zero(image: slot, pixelsPerImage: pixelsPerImage)
                                return
                            }
                            let first = source.index * pixelsPerImage
                            switch source.pixels {
                            case let .normalized(values):
                                values.withUnsafeBufferPointer { pixels in
                                    destination.write(
                                        image: slot, from: UnsafeBufferPointer(rebasing: pixels[first...]),
                                        pixelsPerImage: pixelsPerImage)
                                }
                            case let .bytes(values):
                                values.withUnsafeBufferPointer { pixels in
                                    destination.write(
                                        image: slot, bytes: UnsafeBufferPointer(rebasing: pixels[first...]),
                                        normalization: normalization, pixelsPerImage: pixelsPerImage)
                                }
                            }
                        }
                        // A big batch (tens of MB on a GPU) is copied by several threads: one thread's memcpy would
                        // otherwise be the slowest stage of the batch.
                        let bytes = sources.count * pixelsPerImage * destination.encoding.byteSize
                        if sources.count >= 4, bytes >= Self.parallelFillBytes {
                            DispatchQueue.concurrentPerform(iterations: sources.count, execute: copy)
                        } else {
                            for slot in sources.indices { copy(slot) }
                        }
                    },
                    done: { [self] result, duration in finished(batch, result: result, duration: duration) })
            case let .arm(instant):
                timerInput.yield(instant)
            case .drained:
                timerInput.finish()
            case let .queueDepth(images):
                metrics.queueDepth.record(images)
            }
        }
    }

    /// Batches of at least this many bytes (4 MiB) are written into the worker's input by several threads.
    static var parallelFillBytes: Int { 4 << 20 }

    private static func error(for rejection: BatcherRejection, state: State, timeout: Duration) -> RuntimeError {
        switch rejection {
        case .queueFull: .queueFull(capacity: state.machine.configuration.maxQueueSize)
        case .shuttingDown: .shuttingDown
        case let .failed(message): .notReady("engine failed: \(message)")
        case .expired: .timedOut(after: timeout)
        }
    }
}

extension StagingBuffer {
    /// Sets image `image` of the batch to zeros.
    func zero(image: Int, pixelsPerImage: Int) {
        precondition((image + 1) * pixelsPerImage <= capacity)
        let bytes = pixelsPerImage * encoding.byteSize
        (base + image * bytes).initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
    }

    /// Writes the first `pixelsPerImage` values of `source` as image `image` of the batch, in this buffer's encoding
    /// (a floating-point one: normalised values have no byte form).
    func write(image: Int, from source: UnsafeBufferPointer<Float>, pixelsPerImage: Int) {
        precondition((image + 1) * pixelsPerImage <= capacity && source.count >= pixelsPerImage)
        let offset = image * pixelsPerImage
        switch encoding {
        case .float32:
            (base.assumingMemoryBound(to: Float.self) + offset).update(from: source.baseAddress!, count: pixelsPerImage)
        case .float16:
            cpe_f32_to_f16(source.baseAddress!, base.assumingMemoryBound(to: UInt16.self) + offset, pixelsPerImage)
        case .bfloat16:
            cpe_f32_to_bf16(source.baseAddress!, base.assumingMemoryBound(to: UInt16.self) + offset, pixelsPerImage)
        case .uint8:
            preconditionFailure("normalised pixels cannot be written into a byte staging buffer")
        }
    }

    /// Writes the first `pixelsPerImage` RGB bytes of `source` (planar `[3, S, S]`) as image `image`: as they are
    /// into a byte buffer, else normalised by `normalization` and stored in this buffer's encoding (the same values,
    /// rounded the same way, as preprocessing to floats first would give).
    func write(
        image: Int, bytes source: UnsafeBufferPointer<UInt8>, normalization: PixelNormalization, pixelsPerImage: Int
    ) {
        precondition((image + 1) * pixelsPerImage <= capacity && source.count >= pixelsPerImage)
        precondition(pixelsPerImage % 3 == 0)
        let offset = image * pixelsPerImage, plane = pixelsPerImage / 3
        let pixels = UnsafeBufferPointer(rebasing: source[..<pixelsPerImage])
        switch encoding {
        case .uint8:
            (base.assumingMemoryBound(to: UInt8.self) + offset).update(from: source.baseAddress!, count: pixelsPerImage)
        case .float32:
            normalization.expand(
                pixels, plane: plane,
                into: UnsafeMutableBufferPointer(start: base.assumingMemoryBound(to: Float.self) + offset, count: pixelsPerImage))
        case .float16, .bfloat16:
            // The table in this encoding (768 conversions), then one lookup per pixel.
            var table = [UInt16](repeating: 0, count: 3 * 256)
            normalization.table.withUnsafeBufferPointer { floats in
                table.withUnsafeMutableBufferPointer { bits in
                    if encoding == .float16 {
                        cpe_f32_to_f16(floats.baseAddress!, bits.baseAddress!, 3 * 256)
                    } else {
                        cpe_f32_to_bf16(floats.baseAddress!, bits.baseAddress!, 3 * 256)
                    }
                }
            }
            let out = base.assumingMemoryBound(to: UInt16.self) + offset
            table.withUnsafeBufferPointer { lut in
                for c in 0..<3 {
                    let channel = c * 256
                    for i in (c * plane)..<((c + 1) * plane) { out[i] = lut[channel + Int(pixels[i])] }
                }
            }
        }
    }
}
