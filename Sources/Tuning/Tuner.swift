import Foundation

/// Searches instances × max batch size × max queue delay for the highest throughput within a p99 budget.
///
/// Coordinate search from a start configuration (serve's default): along each knob in turn it steps to the
/// neighbouring value and keeps walking that way while the score improves by more than `minimumGain` (or, stepping
/// down to a cheaper value, while it stays within `minimumGain` of the best score: a plateau is walked down to
/// its cheapest end); when any knob moved, every knob is tried again; when none moves, it looks two values away
/// along each knob once more before stopping. Each candidate is measured once (results are cached) at rising
/// concurrency until p99 passes the budget (then bisecting between the last level within it and the first past it,
/// `edgeRefinements` points) or throughput stops rising (for `patience + 1` levels in a row),
/// starting from a quarter of the client count where the best candidate so far peaked (walking down from there if
/// that is already over budget). The search stops when no step improves or
/// the time budget is spent, and the best so far is reported; the start and the chosen configuration are then
/// measured once more, side by side, from a reserved slice of the budget.
public struct Tuner {
    /// How the search runs.
    public struct Settings: Sendable, Codable {
        /// The values each knob may take.
        public var space: SearchSpace
        /// Highest acceptable p99 latency, in milliseconds.
        public var p99BudgetMilliseconds: Double
        /// Wall time for the whole run, in seconds (search plus confirmation).
        public var budgetSeconds: Double
        /// Measured seconds per point.
        public var pointSeconds: Double
        /// Where the search starts, and the baseline it is compared with.
        public var start: Candidate = .serveDefault
        /// Fraction by which a step must beat the current score to be taken (and throughput must rise to go on
        /// raising concurrency).
        public var minimumGain: Double = 0.02
        /// Levels in a row whose throughput may fail to rise before the concurrency sweep stops (one noisy point
        /// does not end a candidate).
        public var patience = 1
        /// Extra points between the last client count within the p99 budget and the first over it (bisection):
        /// the ladder doubles, so the budget's edge may lie anywhere between two of its levels, and more clients
        /// mean fuller batches.
        public var edgeRefinements = 2
        /// Re-measure the start and the chosen configuration at the end, each at its best concurrency.
        public var confirm = true

        /// Settings with `pointSeconds` planned from the budget.
        public init(space: SearchSpace, p99BudgetMilliseconds: Double, budgetSeconds: Double, pointSeconds: Double? = nil) {
            self.space = space
            self.p99BudgetMilliseconds = p99BudgetMilliseconds
            self.budgetSeconds = budgetSeconds
            self.pointSeconds = pointSeconds ?? Self.plannedPointSeconds(budgetSeconds: budgetSeconds)
        }

        /// About 40 points fit the search's share of the budget (a CPU search typically visits about 10
        /// candidates of 3–5 points each, with start-up in between); never less than one second, never more than ten.
        public static func plannedPointSeconds(budgetSeconds: Double) -> Double {
            min(10, max(1, budgetSeconds * 0.85 / 40))
        }

        /// Seconds kept for the confirmation runs (two points of twice the usual length, plus start-up).
        public var confirmationReserveSeconds: Double {
            confirm ? min(budgetSeconds * 0.25, 4 * pointSeconds + 4) : 0
        }
    }

    /// A line of progress for the user.
    public struct Progress: Sendable {
        /// Seconds since the run began.
        public var elapsedSeconds: Double
        /// The whole budget, in seconds.
        public var budgetSeconds: Double
        /// Candidates started so far.
        public var candidatesStarted: Int
        /// What just happened.
        public var message: String
        /// The best score so far, in images/s within budget.
        public var bestImagesPerSecond: Double?
    }

    /// Why the search ended.
    public enum StopReason: String, Sendable, Codable {
        /// No step along any knob improved the score.
        case converged
        /// The time budget ran out first.
        case budget
    }

    /// The start and the chosen configuration measured again, side by side.
    public struct Confirmation: Sendable, Codable, Hashable {
        /// The start configuration at its best concurrency.
        public var start: Measurement?
        /// The chosen configuration at its best concurrency.
        public var chosen: Measurement?
    }

    /// Everything a run found.
    public struct Outcome: Sendable, Codable {
        /// The settings it ran with.
        public var settings: Settings
        /// Every candidate, in the order measured.
        public var results: [CandidateResult]
        /// The start configuration's result.
        public var start: CandidateResult?
        /// The best configuration (within budget if any is).
        public var chosen: CandidateResult?
        /// The side-by-side re-measurement.
        public var confirmation: Confirmation?
        /// Why the search ended.
        public var stopReason: StopReason
        /// Wall seconds used.
        public var elapsedSeconds: Double

        /// Every measured point with its candidate.
        public var points: [(candidate: Candidate, measurement: Measurement)] {
            results.flatMap { result in result.measurements.map { (result.candidate, $0) } }
        }
    }

    /// The settings in force (the space includes the start).
    public let settings: Settings
    private let elapsed: @Sendable () -> Double

    /// A tuner timed by `elapsed` (seconds since the run began; tests pass a clock the fake target advances).
    public init(settings: Settings, elapsed: @escaping @Sendable () -> Double) {
        var settings = settings
        settings.space = settings.space.including(settings.start)
        self.settings = settings
        self.elapsed = elapsed
    }

    /// Runs the search against `target`, reporting progress as it goes.
    public func run(target: some TuneTarget, progress: @escaping (Progress) -> Void = { _ in }) async -> Outcome {
        var search = Search(settings: settings, elapsed: elapsed, progress: progress)
        let stopReason = await search.run(target: target)
        let start = search.results[settings.start]
        let chosen = Self.choose(search.order.compactMap { search.results[$0] }, within: settings.minimumGain)
        var confirmation: Confirmation?
        if settings.confirm, let start, let chosen, chosen.candidate != start.candidate {
            confirmation = Confirmation(
                start: await search.remeasure(start, target: target),
                chosen: await search.remeasure(chosen, target: target))
        }
        return Outcome(
            settings: settings, results: search.order.compactMap { search.results[$0] }, start: start, chosen: chosen,
            confirmation: confirmation, stopReason: stopReason, elapsedSeconds: elapsed())
    }

    /// The cheapest configuration within budget whose score is within `tolerance` of the highest (0: the highest,
    /// ties to the cheaper); when nothing fits, the lowest p99. The search itself treats scores within its
    /// `minimumGain` as equal, and so does its final choice: fewer contexts, smaller batches and shorter delays
    /// cost memory and latency and, on a GPU, gave steadier throughput when re-measured.
    public static func choose(_ results: [CandidateResult], within tolerance: Double = 0) -> CandidateResult? {
        let measured = results.filter { $0.best != nil }
        let fitting = measured.filter(\.fitsBudget)
        if let best = fitting.map(\.score).max() {
            return fitting.filter { $0.score * (1 + tolerance) >= best }.min { a, b in
                tolerance == 0 && a.score != b.score ? a.score > b.score : Candidate.cheaper(a.candidate, b.candidate)
            }
        }
        return measured.min { a, b in
            let pa = a.best!.p99Milliseconds, pb = b.best!.p99Milliseconds
            return pa != pb ? pa < pb : Candidate.cheaper(a.candidate, b.candidate)
        }
    }
}

/// The mutable state of one search.
private struct Search {
    let settings: Tuner.Settings
    let elapsed: @Sendable () -> Double
    let progress: (Tuner.Progress) -> Void
    var results: [Candidate: CandidateResult] = [:]
    var order: [Candidate] = []

    init(settings: Tuner.Settings, elapsed: @escaping @Sendable () -> Double, progress: @escaping (Tuner.Progress) -> Void) {
        self.settings = settings
        self.elapsed = elapsed
        self.progress = progress
    }

    private var searchDeadline: Double { settings.budgetSeconds - settings.confirmationReserveSeconds }

    private var bestScore: Double? {
        Tuner.choose(order.compactMap { results[$0] }).flatMap { $0.fitsBudget ? $0.score : nil }
    }

    private func report(_ message: String) {
        progress(.init(
            elapsedSeconds: elapsed(), budgetSeconds: settings.budgetSeconds, candidatesStarted: order.count,
            message: message, bestImagesPerSecond: bestScore))
    }

    /// Coordinate search; returns why it stopped.
    mutating func run(target: some TuneTarget) async -> Tuner.StopReason {
        var current = settings.start
        guard await evaluate(current, target: target) != nil else { return .budget }
        // Every move either beats the current score or keeps the best score while getting cheaper, so the walk
        // cannot cycle; the cap is a second guard.
        var movesLeft = settings.space.allCandidates.count
        // Steps of one value; when they no longer help, one look two values away (a noisy neighbour can hide a
        // better one behind it) before stopping.
        var stride = 1
        while true {
            var moved = false
            // The largest batch cut down to what the current candidate's batches hold, in one jump (a walk down one
            // size at a time stops at the first noisy step).
            if movesLeft > 0, let fitted = settings.space.fittedBatch(current, meanBatch: results[current]?.best?.meanBatchSize) {
                guard let result = await evaluate(fitted, target: target) else { return .budget }
                if result.beats(results[current]!, by: settings.minimumGain) || isAsGoodAsTheBest(result) {
                    current = fitted
                    moved = true
                    movesLeft -= 1
                }
            }
            for dimension in SearchSpace.Dimension.allCases {
                for direction in [stride, -stride] {
                    var stepped = false
                    while movesLeft > 0, let next = settings.space.step(current, along: dimension, direction: direction) {
                        guard let result = await evaluate(next, target: target) else { return .budget }
                        guard result.beats(results[current]!, by: settings.minimumGain)
                            || (direction < 0 && isAsGoodAsTheBest(result))
                        else { break }
                        current = next
                        stepped = true
                        moved = true
                        movesLeft -= 1
                    }
                    if stepped { break }
                }
            }
            if moved {
                stride = 1
            } else if stride == 1 {
                stride = 2
            } else {
                break
            }
        }
        return .converged
    }

    /// A quarter of the client count at which the best candidate so far peaked (1 before anything fits).
    private var warmStartLevel: Int {
        guard let best = Tuner.choose(order.compactMap { results[$0] }), best.fitsBudget,
              let level = best.best?.concurrency
        else { return 1 }
        return max(1, level / 4)
    }

    /// Whether `result` is within `minimumGain` of the best score so far: a step down (fewer instances, a smaller
    /// batch, a shorter delay) to it loses nothing that can be told apart, and it may open a better path.
    private func isAsGoodAsTheBest(_ result: CandidateResult) -> Bool {
        guard result.fitsBudget, let best = bestScore else { return false }
        return result.score * (1 + settings.minimumGain) >= best
    }

    /// The candidate's result, measured now unless it already was; nil when the time budget is spent.
    mutating func evaluate(_ candidate: Candidate, target: some TuneTarget) async -> CandidateResult? {
        if let known = results[candidate] { return known }
        guard elapsed() + 2 * settings.pointSeconds <= searchDeadline else { return nil }
        order.append(candidate)
        report("candidate \(order.count): \(candidate)")
        var points: [Measurement] = []
        var failure: String?
        let budget = settings.p99BudgetMilliseconds
        do {
            try await target.withCandidate(candidate) { probe in
                var best = 0.0, flat = 0
                let ladder = settings.space.concurrencies(for: candidate)
                // One point at `level`, kept and reported.
                func measure(_ level: Int) async throws -> Measurement {
                    let point = try await probe.measure(concurrency: level, seconds: settings.pointSeconds)
                    points.append(point)
                    report(
                        "\(candidate) c=\(level): \(format(point.imagesPerSecond)) img/s, "
                            + "p99 \(format(point.p99Milliseconds)) ms, batch \(format(point.meanBatchSize))")
                    return point
                }
                // Warm start: a neighbour of the best candidate so far peaks near the same client count, so the
                // sweep begins a quarter of the way there instead of at one client (most of a GPU candidate's points
                // were spent below its knee). If that first level is already over budget, it walks down instead.
                let start = warmStartLevel
                let first = ladder.lastIndex { $0 <= start } ?? 0
                if first > 0 {
                    var index = first
                    while index >= 0 {
                        let point = try await measure(ladder[index])
                        if point.fits(p99BudgetMilliseconds: budget) || elapsed() + settings.pointSeconds > searchDeadline {
                            break
                        }
                        index -= 1
                    }
                    // Walked down (or out of time): the points so far are the candidate's, in rising order.
                    guard index == first, let last = points.last, last.fits(p99BudgetMilliseconds: budget) else {
                        points.sort { $0.concurrency < $1.concurrency }
                        return
                    }
                    best = last.imagesPerSecond
                }
                // Bisects between the highest level within the budget and `over`, the first level past it.
                func refineEdge(below: Int, over: Int) async throws {
                    var low = below, high = over
                    for _ in 0..<settings.edgeRefinements {
                        let middle = (low + high) / 2
                        guard middle > low, middle < high, elapsed() + settings.pointSeconds <= searchDeadline else { return }
                        if try await measure(middle).fits(p99BudgetMilliseconds: budget) { low = middle } else { high = middle }
                    }
                }
                for level in ladder[(first > 0 ? first + 1 : 0)...] {
                    if !points.isEmpty, elapsed() + settings.pointSeconds > searchDeadline { break }
                    let point = try await measure(level)
                    guard point.fits(p99BudgetMilliseconds: budget) else {
                        if let within = points.last(where: { $0.fits(p99BudgetMilliseconds: budget) && $0.concurrency < level }) {
                            try await refineEdge(below: within.concurrency, over: level)
                            points.sort { $0.concurrency < $1.concurrency }
                        }
                        break
                    }
                    if point.imagesPerSecond > best * (1 + settings.minimumGain) {
                        flat = 0
                    } else {
                        flat += 1
                        if flat > settings.patience { break }
                    }
                    best = max(best, point.imagesPerSecond)
                }
            }
        } catch {
            failure = String(describing: error)
            report("\(candidate) failed: \(error)")
        }
        var result = CandidateResult(candidate: candidate, measurements: points, p99BudgetMilliseconds: budget)
        result.failure = failure
        results[candidate] = result
        return result
    }

    /// `result`'s best point measured again for twice the usual length.
    func remeasure(_ result: CandidateResult, target: some TuneTarget) async -> Measurement? {
        guard let level = result.best?.concurrency else { return nil }
        report("confirming \(result.candidate) at c=\(level)")
        var point: Measurement?
        try? await target.withCandidate(result.candidate) { probe in
            point = try await probe.measure(concurrency: level, seconds: 2 * settings.pointSeconds)
        }
        return point
    }
}

/// `value` with `decimals` decimals; "-" when not finite.
func format(_ value: Double, _ decimals: Int = 1) -> String {
    value.isFinite ? String(format: "%.\(decimals)f", value) : "-"
}
