import Testing
import Tuning

@Suite("Pareto front")
struct ParetoFrontTests {
    @Test func keepsOnlyUndominatedPointsOrderedByLatency() {
        // (p99 ms, images/s)
        let points: [(Double, Double)] = [
            (10, 100),  // 0 front
            (20, 90),  // 1 dominated by 0
            (30, 200),  // 2 front
            (30, 150),  // 3 dominated by 2 (same latency, lower rate)
            (5, 50),  // 4 front (fastest)
            (50, 200),  // 5 dominated by 2 (same rate, slower)
            (80, 260),  // 6 front
            (10, 100),  // 7 duplicate of 0: only the first is kept
        ]
        let front = ParetoFront.indices(p99Milliseconds: points.map(\.0), imagesPerSecond: points.map(\.1))
        #expect(front == [4, 0, 2, 6])
    }

    @Test func emptyAndSingle() {
        #expect(ParetoFront.indices(p99Milliseconds: [], imagesPerSecond: []).isEmpty)
        #expect(ParetoFront.indices(p99Milliseconds: [3], imagesPerSecond: [1]) == [0])
    }
}
