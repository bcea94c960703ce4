import CCUDA
import Synchronization

/// The order in which the normal-priority contexts of one GPU run their batches: each batch's GPU work waits for the
/// batch launched before it (an event, not a host wait), so batches run one after another as `bench engine` measures
/// them, and one context's host work (fill, upload, download, answering) overlaps another's GPU work. Launched
/// together, two batches share the GPU, finish together and leave it idle while both contexts do their host work.
final class LaunchTurn: @unchecked Sendable {
    // @unchecked: `last` is only read and written under `lock`; CUDA events may be used from any thread.
    private let lock = Mutex<Void>(())
    private nonisolated(unsafe) var last: CUevent?

    /// Makes `stream` wait for the last batch launched in turn, runs `launch` (which enqueues the batch on `stream`),
    /// records `done` after it and makes it the one the next batch waits for.
    func take(
        stream: CUstream, done: CUevent, libraries: CUDALibraries, _ launch: () throws -> Void
    ) throws {
        try lock.withLock { _ in
            let d = libraries.driver
            if let last {
                try libraries.check(d.cuStreamWaitEvent!(stream, last, 0), "cuStreamWaitEvent(previous batch)")
            }
            try launch()
            try libraries.check(d.cuEventRecord!(done, stream), "cuEventRecord(turn)")
            last = done
        }
    }

    /// Forgets `event` if it is the last one (its context is going away).
    func forget(_ event: CUevent) {
        lock.withLock { _ in if last == event { last = nil } }
    }
}
