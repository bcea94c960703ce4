import InferenceCore
import TestSupport
import Testing

@testable import InferenceRuntime

@Suite("BatcherStateMachine")
struct BatcherStateMachineTests {
    typealias Machine = BatcherStateMachine<ManualClock.Instant>
    let t0 = ManualClock.Instant(offset: .seconds(100))

    func at(_ ms: Int) -> ManualClock.Instant { t0.advanced(by: .milliseconds(ms)) }

    func machine(
        maxBatch: Int = 4, delayMS: Int = 10, queue: Int = 64, levels: Int = 2, preferred: [Int] = [],
        workers: [ContextPriority] = [.normal]
    ) -> Machine {
        Machine(
            configuration: .init(
                maxBatchSize: maxBatch, maxQueueDelay: .milliseconds(delayMS), maxQueueSize: queue,
                priorityLevels: levels, preferredBatchSizes: preferred),
            workers: workers)
    }

    func batches(_ actions: [Machine.Action]) -> [Machine.Batch] {
        actions.compactMap { if case let .startBatch(batch) = $0 { batch } else { nil } }
    }

    func accepted(
        _ m: inout Machine, _ id: UInt64, images: Int = 1, priority: Int = 2, deadlineMS: Int = 1000, now: Int = 0
    ) -> [Machine.Action] {
        let result = m.enqueue(id, images: images, priority: priority, deadline: at(deadlineMS), now: at(now))
        guard case let .success(actions) = result else {
            Issue.record("request \(id) was rejected: \(result)")
            return []
        }
        return actions
    }

    @Test func fullBatchStartsAtOnce() {
        var m = machine(maxBatch: 4)
        #expect(batches(accepted(&m, 1, images: 3)).isEmpty)
        let started = batches(accepted(&m, 2, images: 2))
        #expect(started.count == 1)
        #expect(started[0].units.map(\.request) == [1, 1, 1, 2])
        #expect(m.queuedImages == 1)
    }

    @Test func partialBatchWaitsForTheDelay() {
        var m = machine(maxBatch: 8, delayMS: 10)
        let actions = accepted(&m, 1, images: 2, now: 0)
        #expect(batches(actions).isEmpty)
        #expect(actions.contains(.scheduleTimer(at(10))))
        #expect(batches(m.timerFired(now: at(9))).isEmpty)
        let started = batches(m.timerFired(now: at(10)))
        #expect(started.count == 1 && started[0].units.count == 2)
    }

    @Test func zeroDelayDispatchesImmediately() {
        var m = machine(maxBatch: 8, delayMS: 0)
        #expect(batches(accepted(&m, 1)).count == 1)
    }

    @Test func imagesQueueWhileTheWorkerIsBusyAndFormTheNextBatch() {
        var m = machine(maxBatch: 4, delayMS: 0)
        let first = batches(accepted(&m, 1))[0]
        for id in 2...7 { #expect(batches(accepted(&m, UInt64(id), now: 1)).isEmpty) }
        let next = batches(m.batchFinished(first, error: nil, now: at(2)))
        #expect(next.count == 1)
        #expect(next[0].units.map(\.request) == [2, 3, 4, 5])
        #expect(m.queuedImages == 2)
    }

    @Test func priorityOneIsServedFirst() {
        var m = machine(maxBatch: 2, delayMS: 0)
        let first = batches(accepted(&m, 1))[0]
        _ = accepted(&m, 2, priority: 2, now: 1)
        _ = accepted(&m, 3, priority: 2, now: 2)
        _ = accepted(&m, 4, priority: 1, now: 3)
        let next = batches(m.batchFinished(first, error: nil, now: at(4)))
        #expect(next[0].units.map(\.request) == [4, 2])
    }

    @Test func priorityOneGoesToTheHighPriorityContext() {
        var m = machine(maxBatch: 1, delayMS: 0, workers: [.normal, .high])
        let normal = batches(accepted(&m, 1, priority: 2))
        #expect(normal.first?.worker == 0)
        var m2 = machine(maxBatch: 1, delayMS: 0, workers: [.normal, .high])
        let urgent = batches(accepted(&m2, 1, priority: 1))
        #expect(urgent.first?.worker == 1)
    }

    @Test func fullQueueRejects() {
        var m = machine(maxBatch: 1, delayMS: 0, queue: 3)
        _ = accepted(&m, 1)  // running
        _ = accepted(&m, 2, images: 2)
        #expect(m.enqueue(3, images: 2, priority: 2, deadline: at(100), now: at(0)) == .failure(.queueFull))
        _ = accepted(&m, 4)
        #expect(m.queuedImages == 3)
    }

    @Test func deadlineExpiringWhileItsBatchRunsAnswersAtOnce() {
        var m = machine(maxBatch: 4, delayMS: 0)
        let actions = accepted(&m, 1, deadlineMS: 50)
        let running = batches(actions)[0]
        #expect(actions.contains(.scheduleTimer(at(50))))
        _ = accepted(&m, 2, deadlineMS: 500, now: 10)
        let fired = m.timerFired(now: at(50))
        #expect(fired.contains(.fail(1, .timedOut)))
        #expect(!fired.contains(.fail(2, .timedOut)))
        // The late batch result is dropped; request 2 still runs next.
        let after = m.batchFinished(running, error: nil, now: at(60))
        #expect(!after.contains(.succeed(1)))
        #expect(batches(after).first?.units.map(\.request) == [2])
    }

    /// Deadlines live in a heap that keeps ended requests until they reach its top (or it is rebuilt): the timer
    /// must still follow the earliest live deadline, and expire exactly the live requests that are due.
    @Test func deadlinesOfEndedRequestsNeverWakeOrExpireAnything() {
        var m = machine(maxBatch: 10, delayMS: 0, queue: 10_000)
        var armed: [ManualClock.Instant] = []
        var finished = 0
        // 2,000 requests, each with its own deadline (earliest first for the even ids), run in batches of 10;
        // all but the last batch succeed, so the heap holds far more ended deadlines than live ones.
        for id in UInt64(1)...2000 {
            let deadline = id % 2 == 0 ? 5000 + Int(id) : 9000 - Int(id)
            for action in accepted(&m, id, deadlineMS: deadline) {
                if case let .scheduleTimer(at) = action { armed.append(at) }
                if case let .startBatch(batch) = action, id < 1990 {
                    for done in m.batchFinished(batch, error: nil, now: at(0)) {
                        if case .succeed = done { finished += 1 }
                        if case let .scheduleTimer(at) = done { armed.append(at) }
                    }
                }
            }
        }
        #expect(m.activeRequests == 2000 - finished)
        let live = Set((UInt64(1)...2000).filter { id in
            !(UInt64(1)...UInt64(finished)).contains(id)
        })
        // The earliest live deadline is the next wake, not an ended request's.
        let deadline = { (id: UInt64) in id % 2 == 0 ? 5000 + Int(id) : 9000 - Int(id) }
        let earliest = live.map(deadline).min()!
        let fired = m.timerFired(now: at(earliest - 1))
        #expect(!fired.contains { if case .fail = $0 { true } else { false } })
        let expired = m.timerFired(now: at(earliest)).compactMap { action -> UInt64? in
            if case let .fail(id, .timedOut) = action { id } else { nil }
        }
        #expect(expired == live.filter { deadline($0) == earliest }.sorted())
        #expect(m.activeRequests == live.count - expired.count)
        // Everything left expires at the latest deadline, in id order.
        let rest = m.timerFired(now: at(10_000)).compactMap { action -> UInt64? in
            if case let .fail(id, .timedOut) = action { id } else { nil }
        }
        #expect(rest == live.subtracting(expired).sorted())
        #expect(m.activeRequests == 0)
    }

    @Test func expiredRequestLeavesTheQueue() {
        var m = machine(maxBatch: 1, delayMS: 0)
        let running = batches(accepted(&m, 1, deadlineMS: 1000))[0]
        _ = accepted(&m, 2, images: 3, deadlineMS: 20)
        #expect(m.queuedImages == 3)
        #expect(m.timerFired(now: at(20)).contains(.fail(2, .timedOut)))
        #expect(m.queuedImages == 0)
        let after = m.batchFinished(running, error: nil, now: at(30))
        #expect(after.contains(.succeed(1)))
        #expect(batches(after).isEmpty)
    }

    @Test func cancelledRequestLeavesTheQueue() {
        var m = machine(maxBatch: 1, delayMS: 0)
        let running = batches(accepted(&m, 1))[0]
        _ = accepted(&m, 2, images: 2)
        #expect(m.cancel(2, now: at(1)).contains(.fail(2, .cancelled)))
        #expect(m.queuedImages == 0)
        #expect(m.cancel(2, now: at(1)).isEmpty)
        let after = m.batchFinished(running, error: nil, now: at(2))
        #expect(after.contains(.succeed(1)))
        #expect(batches(after).isEmpty)
    }

    @Test func requestIsSplitAcrossBatchesAndSucceedsAfterTheLast() {
        var m = machine(maxBatch: 4, delayMS: 0)
        let first = batches(accepted(&m, 1, images: 6))[0]
        #expect(first.units == (0..<4).map { Machine.Unit(request: 1, index: $0) })
        let afterFirst = m.batchFinished(first, error: nil, now: at(1))
        #expect(!afterFirst.contains(.succeed(1)))
        let second = batches(afterFirst)[0]
        #expect(second.units == [Machine.Unit(request: 1, index: 4), Machine.Unit(request: 1, index: 5)])
        #expect(m.batchFinished(second, error: nil, now: at(2)).contains(.succeed(1)))
        #expect(m.activeRequests == 0)
    }

    @Test func preferredBatchSizeCutsTheBatch() {
        var m = machine(maxBatch: 16, delayMS: 10, preferred: [4, 8])
        _ = accepted(&m, 1, images: 5)
        let started = batches(m.timerFired(now: at(10)))
        #expect(started.map(\.units.count) == [4])
        // Nine images when the delay is over: a batch of 8; the ninth waits for a fuller batch.
        var m2 = machine(maxBatch: 16, delayMS: 10, preferred: [4, 8])
        #expect(batches(accepted(&m2, 1, images: 9)).isEmpty)
        #expect(batches(m2.timerFired(now: at(10))).map(\.units.count) == [8])
        #expect(m2.queuedImages == 1)
    }

    @Test func theLargestBatchIsAlwaysPreferred() {
        // An engine that prefers powers of two up to 8 with a context of 12 images: a full queue runs 12 at once,
        // not 8 (a CUDA context has a graph profile for its largest batch).
        var m = machine(maxBatch: 12, delayMS: 10, preferred: [1, 2, 4, 8, 1024])
        #expect(m.configuration.preferredBatchSizes == [1, 2, 4, 8, 12])
        #expect(batches(accepted(&m, 1, images: 20)).map(\.units.count) == [12])
        // No preferred sizes stays no preferred sizes: any batch size is as good as another.
        #expect(machine(maxBatch: 12, preferred: []).configuration.preferredBatchSizes.isEmpty)
    }

    @Test func shutdownDrainsThenReportsDrained() {
        var m = machine(maxBatch: 4, delayMS: 1000)
        _ = accepted(&m, 1, images: 3)
        #expect(m.queuedImages == 3)
        let running = batches(m.shutdown(now: at(1)))
        #expect(running.map(\.units.count) == [3])
        #expect(m.enqueue(2, images: 1, priority: 2, deadline: at(100), now: at(1)) == .failure(.shuttingDown))
        guard let batch = running.first else { return }
        let after = m.batchFinished(batch, error: nil, now: at(2))
        #expect(after.contains(.succeed(1)))
        #expect(after.contains(.drained))
    }

    @Test func shutdownWaitsForEveryBatch() {
        var m = machine(maxBatch: 2, delayMS: 0)
        let first = batches(accepted(&m, 1, images: 3))
        #expect(first.map(\.units.count) == [2])
        #expect(!m.shutdown(now: at(1)).contains(.drained))
        guard let batch = first.first else { return }
        let next = m.batchFinished(batch, error: nil, now: at(2))
        #expect(!next.contains(.drained))
        guard let last = batches(next).first else {
            Issue.record("no second batch")
            return
        }
        #expect(m.batchFinished(last, error: nil, now: at(3)).contains(.drained))
    }

    @Test func engineFailureFailsEveryoneAndStopsAdmission() {
        var m = machine(maxBatch: 1, delayMS: 0)
        let running = batches(accepted(&m, 1))[0]
        _ = accepted(&m, 2)
        let actions = m.batchFinished(running, error: "device lost", now: at(1))
        #expect(actions.contains(.fail(1, .engineFailed("device lost"))))
        #expect(actions.contains(.fail(2, .engineFailed("device lost"))))
        #expect(batches(actions).isEmpty)
        #expect(m.enqueue(3, images: 1, priority: 2, deadline: at(100), now: at(2)) == .failure(.failed("device lost")))
    }

    @Test func expiredOnArrivalIsRejected() {
        var m = machine()
        #expect(m.enqueue(1, images: 1, priority: 2, deadline: at(0), now: at(0)) == .failure(.expired))
    }

    @Test func batchesGoToTheLeastLoadedDevice() {
        // Two GPUs with two contexts each: workers 0, 1 on device 0 and 2, 3 on device 1.
        var m = Machine(
            configuration: .init(maxBatchSize: 4, maxQueueDelay: .zero, maxQueueSize: 64),
            workers: [.normal, .normal, .normal, .normal], devices: [0, 0, 1, 1])
        let first = batches(accepted(&m, 1, images: 4))
        #expect(first.map(\.worker) == [0])
        let second = batches(accepted(&m, 2, images: 2))
        #expect(second.map(\.worker) == [2], "device 1 is idle: it takes the next batch")
        #expect(m.imagesInFlight(device: 0) == 4 && m.imagesInFlight(device: 1) == 2)
        let third = batches(accepted(&m, 3, images: 1))
        #expect(third.map(\.worker) == [3], "device 1 has 2 images in flight, device 0 has 4")
        #expect(m.imagesInFlight(device: 1) == 3)
        _ = m.batchFinished(first[0], error: nil, now: at(1))
        let fourth = batches(accepted(&m, 4, images: 1, now: 1))
        #expect(fourth.map(\.worker) == [0], "device 0 drained: least loaded again")
    }

    @Test func highPriorityContextIsPreferredOverLoadBalance() {
        var m = Machine(
            configuration: .init(maxBatchSize: 1, maxQueueDelay: .zero, maxQueueSize: 64),
            workers: [.high, .normal, .high, .normal], devices: [0, 0, 1, 1])
        let normal = batches(accepted(&m, 1, priority: 2))
        #expect(normal.map(\.worker) == [1])
        let urgent = batches(accepted(&m, 2, priority: 1))
        #expect(urgent.map(\.worker) == [2], "a high-priority context, on the idle device")
    }
}
