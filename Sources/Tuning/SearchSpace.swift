/// The values each knob may take, and how hard each candidate is pushed.
public struct SearchSpace: Sendable, Codable, Hashable {
    /// Instance counts, ascending.
    public var instances: [Int]
    /// Max batch sizes, ascending.
    public var batchSizes: [Int]
    /// Max queue delays in microseconds, ascending.
    public var delaysMicroseconds: [Int]
    /// Most closed-loop clients any point uses.
    public var concurrencyCap: Int

    /// A space over these values (sorted, deduplicated, non-positive sizes dropped).
    public init(instances: [Int], batchSizes: [Int], delaysMicroseconds: [Int], concurrencyCap: Int) {
        self.instances = Array(Set(instances.filter { $0 >= 1 })).sorted()
        self.batchSizes = Array(Set(batchSizes.filter { $0 >= 1 })).sorted()
        self.delaysMicroseconds = Array(Set(delaysMicroseconds.filter { $0 >= 0 })).sorted()
        self.concurrencyCap = max(1, concurrencyCap)
    }

    /// Delays tried by default, in microseconds.
    public static let defaultDelays = [0, 500, 1000, 2000, 8000]

    /// Powers of two from 1 to `cap` (and `cap` itself).
    public static func powersOfTwo(upTo cap: Int) -> [Int] {
        var values: [Int] = [], value = 1
        while value < cap {
            values.append(value)
            value *= 2
        }
        return values + [max(1, cap)]
    }

    /// CPU: batches up to 64, instances 1...cores (at most 8), clients up to 256.
    public static func cpu(cores: Int) -> SearchSpace {
        SearchSpace(
            instances: Array(1...max(1, min(cores, 8))), batchSizes: powersOfTwo(upTo: 64),
            delaysMicroseconds: defaultDelays, concurrencyCap: 256)
    }

    /// GPU: batches up to `maxBatch` (1024 unless memory says less), instances 1...4, clients up to 4096.
    public static func gpu(maxBatch: Int = 1024) -> SearchSpace {
        SearchSpace(
            instances: [1, 2, 3, 4], batchSizes: powersOfTwo(upTo: maxBatch), delaysMicroseconds: defaultDelays,
            concurrencyCap: 4096)
    }

    /// The space with `candidate`'s values added, so the search can start from it.
    public func including(_ candidate: Candidate) -> SearchSpace {
        SearchSpace(
            instances: instances + [candidate.instances], batchSizes: batchSizes + [candidate.maxBatchSize],
            delaysMicroseconds: delaysMicroseconds + [candidate.maxQueueDelayMicroseconds],
            concurrencyCap: concurrencyCap)
    }

    /// Every candidate of the space (for tests and reports; the search visits few of them).
    public var allCandidates: [Candidate] {
        instances.flatMap { i in
            batchSizes.flatMap { b in delaysMicroseconds.map { Candidate(instances: i, maxBatchSize: b, maxQueueDelayMicroseconds: $0) } }
        }
    }

    /// Client counts 1, 2, 4, … up to four times the images the candidate's contexts can hold in batches, capped
    /// by `concurrencyCap`. Twice would keep every context busy with a full batch queued behind it if clients came
    /// back at once; they do not (a client answered is resumed, measured and queued again by the cooperative pool),
    /// and on an H200 2 × 128 at 512 clients still formed batches of 115.
    public func concurrencies(for candidate: Candidate) -> [Int] {
        let limit = min(concurrencyCap, max(2, 4 * candidate.instances * candidate.maxBatchSize))
        return Self.powersOfTwo(upTo: limit)
    }

    /// The knobs the search moves along.
    public enum Dimension: CaseIterable, Sendable {
        case maxBatchSize
        case instances
        case maxQueueDelay
    }

    /// `candidate` with its largest batch cut to the smallest size at or above `meanBatch` (the batches its best point
    /// formed), when that is at most half of it; nil otherwise. A limit far above the batches formed only costs
    /// memory (on a GPU, a context's workspace), and it is what `tune`'s result is compared with: on the GPU, 3 or 4
    /// contexts of up to 1,024 images formed batches of 150–310 within a 50 ms budget, where engine-only at 1,024
    /// runs 6% faster than at 256.
    public func fittedBatch(_ candidate: Candidate, meanBatch: Double?) -> Candidate? {
        guard let meanBatch, meanBatch > 0,
            let size = batchSizes.first(where: { Double($0) >= meanBatch }), 2 * size <= candidate.maxBatchSize
        else { return nil }
        var fitted = candidate
        fitted.maxBatchSize = size
        return fitted
    }

    /// `candidate` moved `direction` values (±1, ±2, …) along `dimension`; nil beyond the edge of the space.
    public func step(_ candidate: Candidate, along dimension: Dimension, direction: Int) -> Candidate? {
        func move(_ values: [Int], _ value: Int) -> Int? {
            guard let index = values.firstIndex(of: value), values.indices.contains(index + direction) else { return nil }
            return values[index + direction]
        }
        var next = candidate
        switch dimension {
        case .maxBatchSize:
            guard let value = move(batchSizes, candidate.maxBatchSize) else { return nil }
            next.maxBatchSize = value
        case .instances:
            guard let value = move(instances, candidate.instances) else { return nil }
            next.instances = value
        case .maxQueueDelay:
            guard let value = move(delaysMicroseconds, candidate.maxQueueDelayMicroseconds) else { return nil }
            next.maxQueueDelayMicroseconds = value
        }
        return next
    }
}
