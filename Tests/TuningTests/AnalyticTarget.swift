import Synchronization
import Tuning

/// A target whose throughput and latency follow a closed form, so the best configuration is known exactly.
///
/// Per instance a batch of n images takes (a + b·n)·(1 + c·(k − 1)) ms with k instances sharing the device. With
/// C closed-loop clients each instance forms batches of n = min(B, ⌈C/k⌉); a batch that is not full first waits the
/// whole queue delay (a full one waits 5% of it). Below saturation latency = batch time + wait and throughput =
/// C / latency; above it (C > k·B) throughput = k·B / batch time and latency follows Little's law. p99 = 1.25 × p50.
/// Time is simulated: each point advances `clock` by its length, each candidate start-up by `startupSeconds`.
final class AnalyticTarget: TuneTarget, Sendable {
    let a: Double, b: Double, c: Double
    let startupSeconds: Double
    /// Batches larger than this fail to start, as a GPU out of memory does.
    let largestBatchThatFits: Int
    let clock = Mutex(0.0)
    /// Candidates started, in order.
    let started = Mutex<[Candidate]>([])

    init(a: Double = 20, b: Double = 5, c: Double = 0.6, startupSeconds: Double = 0.5, largestBatchThatFits: Int = .max) {
        self.largestBatchThatFits = largestBatchThatFits
        self.a = a
        self.b = b
        self.c = c
        self.startupSeconds = startupSeconds
    }

    var elapsed: @Sendable () -> Double { { [self] in clock.withLock { $0 } } }

    /// The closed form at `concurrency` clients.
    func point(_ candidate: Candidate, concurrency: Int, seconds: Double = 1) -> Measurement {
        let k = Double(candidate.instances), capacity = Double(candidate.maxBatchSize), clients = Double(concurrency)
        let n = min(capacity, (clients / k).rounded(.up))
        let batchMilliseconds = (a + b * n) * (1 + c * (k - 1))
        let delayMilliseconds = Double(candidate.maxQueueDelayMicroseconds) / 1000
        let throughput: Double, latency: Double
        if clients > k * capacity {
            throughput = k * capacity / batchMilliseconds * 1000
            latency = clients / throughput * 1000
        } else {
            latency = batchMilliseconds + (n < capacity ? delayMilliseconds : 0.05 * delayMilliseconds)
            throughput = clients / latency * 1000
        }
        return Measurement(
            concurrency: concurrency, seconds: seconds, imagesPerSecond: throughput, p50Milliseconds: latency,
            p99Milliseconds: 1.25 * latency, meanBatchSize: n, requests: Int(throughput * seconds) + 1)
    }

    /// The best images/s of `candidate` within `budget` over every concurrency the tuner may use (0 if none fits).
    /// The best throughput within `budget` over every ladder level and the `refinements` bisection points between
    /// the last level within the budget and the first past it (where the tuner looks, given a sweep that goes on
    /// until the budget is passed).
    func bestScore(_ candidate: Candidate, space: SearchSpace, budget: Double, refinements: Int = 2) -> Double {
        let ladder = space.concurrencies(for: candidate)
        var levels = ladder
        if let over = ladder.firstIndex(where: { point(candidate, concurrency: $0).p99Milliseconds > budget }), over > 0 {
            var low = ladder[over - 1], high = ladder[over]
            for _ in 0..<refinements {
                let middle = (low + high) / 2
                guard middle > low, middle < high else { break }
                levels.append(middle)
                if point(candidate, concurrency: middle).p99Milliseconds <= budget { low = middle } else { high = middle }
            }
        }
        return levels.map { point(candidate, concurrency: $0) }
            .filter { $0.p99Milliseconds <= budget }.map(\.imagesPerSecond).max() ?? 0
    }

    func withCandidate(_ candidate: Candidate, _ body: (any CandidateProbe) async throws -> Void) async throws {
        started.withLock { $0.append(candidate) }
        clock.withLock { $0 += startupSeconds }
        guard candidate.maxBatchSize <= largestBatchThatFits else { throw OutOfMemory(batch: candidate.maxBatchSize) }
        try await body(Probe(target: self, candidate: candidate))
    }

    struct Probe: CandidateProbe {
        let target: AnalyticTarget
        let candidate: Candidate

        func measure(concurrency: Int, seconds: Double) async throws -> Measurement {
            target.clock.withLock { $0 += seconds }
            return target.point(candidate, concurrency: concurrency, seconds: seconds)
        }
    }
}

struct OutOfMemory: Error, CustomStringConvertible {
    let batch: Int
    var description: String { "out of memory for batch \(batch)" }
}
