import DequeModule
import Foundation

/// A fixed set of dedicated threads running blocking jobs (image decoding, BLAS, device synchronisation) off the
/// cooperative pool, with a bounded backlog; async callers await a continuation.
public final class BlockingThreadPool: @unchecked Sendable {
    // Every mutable field below is guarded by `condition`'s lock.
    private let condition = NSCondition()
    private var jobs: Deque<@Sendable () -> Void> = []
    private var stopping = false
    private var running = 0
    private var exitWaiters: [CheckedContinuation<Void, Never>] = []
    private let maxBacklog: Int
    /// Number of threads.
    public let threadCount: Int
    /// Name given to the threads (visible in debuggers and `top -H`).
    public let name: String

    /// Starts `threads` threads; at most `maxBacklog` jobs may wait for a free thread.
    public init(name: String, threads: Int, maxBacklog: Int = .max) {
        self.name = name
        threadCount = max(1, threads)
        self.maxBacklog = max(1, maxBacklog)
        running = threadCount
        for index in 0..<threadCount {
            let thread = Thread { [self] in loop() }
            thread.name = "\(name)-\(index)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Queues `job`; false when the backlog is full or the pool is stopping.
    @discardableResult
    public func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping, jobs.count < maxBacklog else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Runs `body` on a pool thread and returns its result; throws `RuntimeError.queueFull` when the backlog is full.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = submit { continuation.resume(with: Result { try body() }) }
            if !accepted { continuation.resume(throwing: RuntimeError.queueFull(capacity: maxBacklog)) }
        }
    }

    /// Lets queued jobs finish, then ends the threads; returns when all have exited.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            stopping = true
            if running == 0 {
                condition.unlock()
                continuation.resume()
                return
            }
            exitWaiters.append(continuation)
            condition.broadcast()
            condition.unlock()
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty, !stopping { condition.wait() }
            guard let job = jobs.popFirst() else {
                running -= 1
                let waiters = running == 0 ? exitWaiters : []
                if running == 0 { exitWaiters = [] }
                condition.unlock()
                for waiter in waiters { waiter.resume() }
                return
            }
            condition.unlock()
            job()
        }
    }
}
