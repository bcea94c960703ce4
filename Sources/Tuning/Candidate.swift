/// One runtime configuration the tuner may pick: the three knobs `clipserve serve` exposes for batching.
public struct Candidate: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Execution contexts (`--instances`).
    public var instances: Int
    /// Largest batch, in images (`--max-batch-size`).
    public var maxBatchSize: Int
    /// Longest wait for a fuller batch, in microseconds (`--max-queue-delay`).
    public var maxQueueDelayMicroseconds: Int

    /// Memberwise init.
    public init(instances: Int, maxBatchSize: Int, maxQueueDelayMicroseconds: Int) {
        self.instances = instances
        self.maxBatchSize = maxBatchSize
        self.maxQueueDelayMicroseconds = maxQueueDelayMicroseconds
    }

    /// `clipserve serve`'s defaults: one instance, batches of up to 16, 1000 µs delay.
    public static let serveDefault = Candidate(instances: 1, maxBatchSize: 16, maxQueueDelayMicroseconds: 1000)

    /// e.g. `2×32 @2000µs`.
    public var description: String { "\(instances)×\(maxBatchSize) @\(maxQueueDelayMicroseconds)µs" }

    /// Tie-break order: cheaper configurations (fewer instances, smaller batches, shorter delay) first.
    static func cheaper(_ a: Candidate, _ b: Candidate) -> Bool {
        (a.instances, a.maxBatchSize, a.maxQueueDelayMicroseconds)
            < (b.instances, b.maxBatchSize, b.maxQueueDelayMicroseconds)
    }
}

/// What one closed-loop run at one concurrency measured.
public struct Measurement: Sendable, Codable, Hashable {
    /// Closed-loop clients, each with one single-image request in flight.
    public var concurrency: Int
    /// Seconds measured.
    public var seconds: Double
    /// Images answered per second.
    public var imagesPerSecond: Double
    /// Median request latency, in milliseconds.
    public var p50Milliseconds: Double
    /// 99th-percentile request latency, in milliseconds.
    public var p99Milliseconds: Double
    /// Images per batch the runtime formed, averaged over batches.
    public var meanBatchSize: Double
    /// Requests answered.
    public var requests: Int
    /// Requests that failed.
    public var errors: Int
    /// Busy fraction of the accelerator (0...1), when one was read.
    public var deviceUtilization: Double?
    /// Accelerator memory in use, in bytes (the largest reading), when one was read.
    public var deviceMemoryBytes: Double?
    /// Process CPU seconds per wall second per core (0...1), when read.
    public var cpuUtilization: Double?
    /// Mean time a request's images waited in the batcher's queue, in milliseconds, when reported.
    public var meanQueueMilliseconds: Double?
    /// Mean time of the batches that answered a request (fill, upload, compute, download), in milliseconds, when
    /// reported. Latency less queue and batch time is what the request spent outside the batcher.
    public var meanBatchMilliseconds: Double?
    /// Mean latency, and its parts at the batcher, in milliseconds, when reported: waiting to enter the queue (the
    /// batcher's lock or intake), from entering it until the embeddings were ready, and from then until the caller's
    /// continuation was resumed. Latency less these three is the time spent before the call to the batcher and
    /// between the resumption and the caller running again.
    public var meanLatencyMilliseconds: Double?
    public var meanAdmissionMilliseconds: Double?
    public var meanAnswerMilliseconds: Double?
    public var meanResumeMilliseconds: Double?

    /// Memberwise init.
    public init(
        concurrency: Int, seconds: Double, imagesPerSecond: Double, p50Milliseconds: Double, p99Milliseconds: Double,
        meanBatchSize: Double, requests: Int, errors: Int = 0, deviceUtilization: Double? = nil,
        deviceMemoryBytes: Double? = nil, cpuUtilization: Double? = nil, meanQueueMilliseconds: Double? = nil,
        meanBatchMilliseconds: Double? = nil, meanLatencyMilliseconds: Double? = nil,
        meanAdmissionMilliseconds: Double? = nil, meanAnswerMilliseconds: Double? = nil,
        meanResumeMilliseconds: Double? = nil
    ) {
        self.concurrency = concurrency
        self.seconds = seconds
        self.imagesPerSecond = imagesPerSecond
        self.p50Milliseconds = p50Milliseconds
        self.p99Milliseconds = p99Milliseconds
        self.meanBatchSize = meanBatchSize
        self.requests = requests
        self.errors = errors
        self.deviceUtilization = deviceUtilization
        self.deviceMemoryBytes = deviceMemoryBytes
        self.cpuUtilization = cpuUtilization
        self.meanQueueMilliseconds = meanQueueMilliseconds
        self.meanBatchMilliseconds = meanBatchMilliseconds
        self.meanLatencyMilliseconds = meanLatencyMilliseconds
        self.meanAdmissionMilliseconds = meanAdmissionMilliseconds
        self.meanAnswerMilliseconds = meanAnswerMilliseconds
        self.meanResumeMilliseconds = meanResumeMilliseconds
    }

    /// Within the latency budget and without errors.
    public func fits(p99BudgetMilliseconds budget: Double) -> Bool {
        errors == 0 && requests > 0 && p99Milliseconds <= budget
    }
}

/// A candidate with every point measured on it.
public struct CandidateResult: Sendable, Codable, Hashable {
    /// The configuration.
    public var candidate: Candidate
    /// Points in the order measured (rising concurrency).
    public var measurements: [Measurement]
    /// The point that gives the score: the highest images/s within budget, else the lowest p99.
    public var best: Measurement?
    /// Whether `best` is within the budget.
    public var fitsBudget: Bool
    /// Why the candidate could not be (fully) measured, e.g. a batch too large for device memory.
    public var failure: String?

    /// Scores `measurements` against `budget` (milliseconds of p99).
    public init(candidate: Candidate, measurements: [Measurement], p99BudgetMilliseconds budget: Double) {
        self.candidate = candidate
        self.measurements = measurements
        let fitting = measurements.filter { $0.fits(p99BudgetMilliseconds: budget) }
        if let top = fitting.max(by: { $0.imagesPerSecond < $1.imagesPerSecond }) {
            best = top
            fitsBudget = true
        } else {
            best = measurements.filter { $0.requests > 0 }.min(by: { $0.p99Milliseconds < $1.p99Milliseconds })
            fitsBudget = false
        }
    }

    /// Images/s of the best point within budget; 0 when none fits.
    public var score: Double { fitsBudget ? best?.imagesPerSecond ?? 0 : 0 }

    /// Whether `self` beats `other` by more than `gain` (a fraction): a fitting candidate beats a non-fitting one;
    /// among fitting ones the higher images/s wins; among non-fitting ones the lower p99.
    public func beats(_ other: CandidateResult, by gain: Double) -> Bool {
        switch (fitsBudget, other.fitsBudget) {
        case (true, false): return true
        case (false, true): return false
        case (true, true): return score > other.score * (1 + gain)
        case (false, false):
            let mine = best?.p99Milliseconds ?? .infinity, theirs = other.best?.p99Milliseconds ?? .infinity
            return mine * (1 + gain) < theirs
        }
    }
}
