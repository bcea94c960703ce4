import Foundation
import Synchronization

/// Dedicated threads that run the in-process load generator's clients (`tune`, `bench runtime`) instead of the
/// global concurrent executor.
///
/// Every finished batch resumes up to its size of clients at once, and each must run again (record its latency,
/// send its next request) before that request can join a batch. On the 16-core GPU hosts those resumed clients
/// waited a long time for the global executor: with 1,024 clients a request spent 10–25 ms outside the batcher's
/// queue and the engine (stop 12 and 13, BENCHMARKS.md), on about two busy cores, while the same runtime over a
/// simulated device on the 2-core CI machine lost about 3.5 ms. These threads spin for `spin` after running out of
/// work before they sleep, so a burst of resumed clients is picked up at once.
final class ClientExecutor: TaskExecutor, @unchecked Sendable {
    // `queue`, `head`, `sleepers` and `stopping` are read and written only under `condition`'s lock.
    private let condition = NSCondition()
    private var queue: [UnownedJob] = []
    private var head = 0
    private var sleepers = 0
    private var stopping = false
    /// Jobs queued and not yet taken: read without the lock by spinning threads.
    private let pending = Atomic<Int>(0)
    private let spin: Duration

    /// Threads from `CLIPSERVE_CLIENT_THREADS` (0: none, the clients run on the global executor), else a quarter of
    /// the cores, at least one and at most four.
    static var configuredThreads: Int {
        if let value = ProcessInfo.processInfo.environment["CLIPSERVE_CLIENT_THREADS"].flatMap({ Int($0) }) {
            return max(0, value)
        }
        return min(4, max(1, ProcessInfo.processInfo.activeProcessorCount / 4))
    }

    /// Starts `threads` threads (at least one).
    init(threads: Int, spin: Duration = .microseconds(200)) {
        self.spin = spin
        for index in 0..<max(1, threads) {
            let thread = Thread { [self] in run() }
            thread.name = "clipserve-client-\(index)"
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        queue.append(job)
        pending.add(1, ordering: .releasing)
        if sleepers > 0 { condition.signal() }
        condition.unlock()
    }

    /// Lets the threads end once the queue is empty (call after every client task has finished).
    func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func run() {
        let executor = asUnownedTaskExecutor()
        let clock = ContinuousClock()
        while true {
            condition.lock()
            if head < queue.count {
                let job = queue[head]
                head += 1
                if head >= 1024, 2 * head >= queue.count {
                    queue.removeFirst(head)
                    head = 0
                }
                pending.subtract(1, ordering: .relaxed)
                condition.unlock()
                job.runSynchronously(on: executor)
                continue
            }
            if stopping {
                condition.unlock()
                return
            }
            condition.unlock()
            // Out of work: watch for more for a while before sleeping (a job queued meanwhile is seen either here
            // or under the lock below, which checks the queue again before waiting).
            let until = clock.now.advanced(by: spin)
            var more = false
            while clock.now < until {
                if pending.load(ordering: .acquiring) > 0 {
                    more = true
                    break
                }
            }
            if more { continue }
            condition.lock()
            if head == queue.count, !stopping {
                sleepers += 1
                condition.wait()
                sleepers -= 1
            }
            condition.unlock()
        }
    }
}
