/// The points no other point beats on both latency and throughput.
public enum ParetoFront {
    /// Indices of the points that no other point dominates (p99 lower or equal and images/s higher or equal, one of
    /// them strictly), ordered by rising p99; of identical points the first is kept.
    public static func indices(p99Milliseconds: [Double], imagesPerSecond: [Double]) -> [Int] {
        precondition(p99Milliseconds.count == imagesPerSecond.count, "one latency per throughput")
        let order = p99Milliseconds.indices.sorted { a, b in
            if p99Milliseconds[a] != p99Milliseconds[b] { return p99Milliseconds[a] < p99Milliseconds[b] }
            if imagesPerSecond[a] != imagesPerSecond[b] { return imagesPerSecond[a] > imagesPerSecond[b] }
            return a < b
        }
        var front: [Int] = []
        var highest = -Double.infinity
        for index in order where imagesPerSecond[index] > highest {
            front.append(index)
            highest = imagesPerSecond[index]
        }
        return front
    }

    /// The front of `measurements`.
    public static func indices(of measurements: [Measurement]) -> [Int] {
        indices(
            p99Milliseconds: measurements.map(\.p99Milliseconds), imagesPerSecond: measurements.map(\.imagesPerSecond))
    }
}
