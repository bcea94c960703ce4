import Testing
import Tuning

@Suite("Tuner")
struct TunerTests {
    let space = SearchSpace(
        instances: [1, 2, 3, 4], batchSizes: SearchSpace.powersOfTwo(upTo: 64),
        delaysMicroseconds: SearchSpace.defaultDelays, concurrencyCap: 512)

    /// The fake has no noise, so any strict improvement is a step worth taking.
    func settings(budget: Double, seconds: Double = 10_000) -> Tuner.Settings {
        var settings = Tuner.Settings(space: space, p99BudgetMilliseconds: budget, budgetSeconds: seconds, pointSeconds: 1)
        settings.minimumGain = 0
        return settings
    }

    /// The best candidate of the whole grid, by brute force; ties go to the cheaper one.
    func bruteForce(_ target: AnalyticTarget, budget: Double) -> (Candidate, Double) {
        let scored = space.allCandidates.map { ($0, target.bestScore($0, space: space, budget: budget)) }
        return scored.min { x, y in
            x.1 != y.1 ? x.1 > y.1
                : (x.0.instances, x.0.maxBatchSize, x.0.maxQueueDelayMicroseconds)
                    < (y.0.instances, y.0.maxBatchSize, y.0.maxQueueDelayMicroseconds)
        }!
    }

    @Test(arguments: [500.0, 250.0])
    func findsTheBestConfigurationOfTheGridWithoutMeasuringAllOfIt(budget: Double) async throws {
        let target = AnalyticTarget()
        let outcome = await Tuner(settings: settings(budget: budget), elapsed: target.elapsed).run(target: target)
        let (best, score) = bruteForce(target, budget: budget)
        let chosen = try #require(outcome.chosen)
        #expect(outcome.stopReason == .converged)
        #expect(chosen.candidate == best, "brute force: \(best) at \(score) images/s; tuner: \(chosen.candidate) at \(chosen.score)")
        #expect(abs(chosen.score - score) <= 1e-9 * score)
        #expect(chosen.fitsBudget)
        // A search, not the grid: 4 × 7 × 5 = 140 candidates.
        #expect(outcome.results.count * 3 < space.allCandidates.count, "\(outcome.results.count) candidates measured")
        // Every point of the best one stays within what the tuner was told.
        #expect(chosen.best!.p99Milliseconds <= budget)
    }

    @Test func aLargestBatchFarAboveTheBatchesFormedIsCutToThem() async throws {
        let gpu = SearchSpace.gpu()
        let wide = Candidate(instances: 4, maxBatchSize: 1024, maxQueueDelayMicroseconds: 0)
        // The GPU run of stop 16: batches of 211 under a limit of 1,024 → 256.
        #expect(gpu.fittedBatch(wide, meanBatch: 211)?.maxBatchSize == 256)
        #expect(gpu.fittedBatch(wide, meanBatch: 256)?.maxBatchSize == 256)
        #expect(gpu.fittedBatch(wide, meanBatch: 512)?.maxBatchSize == 512)
        #expect(gpu.fittedBatch(wide, meanBatch: 513) == nil)  // 1,024 is what it uses
        #expect(gpu.fittedBatch(wide, meanBatch: nil) == nil)
        #expect(gpu.fittedBatch(Candidate(instances: 1, maxBatchSize: 16, maxQueueDelayMicroseconds: 1000), meanBatch: 16) == nil)
        // In a search: whatever the tuner chooses either fills at least half of its largest batch, or its cut-down
        // form was measured (and was worse).
        let target = AnalyticTarget()
        for budget in [500.0, 250.0, 120.0] {
            let outcome = await Tuner(settings: settings(budget: budget), elapsed: target.elapsed).run(target: target)
            let chosen = try #require(outcome.chosen)
            if let fitted = space.fittedBatch(chosen.candidate, meanBatch: chosen.best?.meanBatchSize) {
                let measured = try #require(outcome.results.first { $0.candidate == fitted }, "budget \(budget)")
                #expect(measured.score < chosen.score)
            }
        }
    }

    @Test func aTighterBudgetChoosesASmallerBatch() async throws {
        let target = AnalyticTarget()
        let loose = await Tuner(settings: settings(budget: 500), elapsed: target.elapsed).run(target: target)
        let tight = await Tuner(settings: settings(budget: 120), elapsed: target.elapsed).run(target: target)
        let looseBatch = try #require(loose.chosen?.candidate.maxBatchSize)
        let tightChosen = try #require(tight.chosen)
        #expect(tightChosen.candidate.maxBatchSize < looseBatch)
        #expect(tightChosen.candidate == bruteForce(target, budget: 120).0)
        #expect(tightChosen.best!.p99Milliseconds <= 120)
    }

    @Test func aCandidateThatFailsToStartIsRecordedAndTheSearchStepsBack() async throws {
        let target = AnalyticTarget(largestBatchThatFits: 16)
        let outcome = await Tuner(settings: settings(budget: 500), elapsed: target.elapsed).run(target: target)
        let failed = outcome.results.filter { $0.failure != nil }
        #expect(!failed.isEmpty)
        #expect(failed.allSatisfy { $0.candidate.maxBatchSize > 16 && $0.measurements.isEmpty && !$0.fitsBudget })
        #expect(failed.allSatisfy { $0.failure == "out of memory for batch \($0.candidate.maxBatchSize)" })
        let chosen = try #require(outcome.chosen)
        #expect(chosen.candidate.maxBatchSize <= 16)
        let fitting = space.allCandidates.filter { $0.maxBatchSize <= 16 }
        let best = fitting.map { target.bestScore($0, space: space, budget: 500) }.max()!
        #expect(abs(chosen.score - best) <= 1e-9 * best)
    }

    @Test func neverMeasuresACandidateTwiceAndConfirmsStartAndChosenAtTheEnd() async throws {
        let target = AnalyticTarget()
        let outcome = await Tuner(settings: settings(budget: 500), elapsed: target.elapsed).run(target: target)
        let started = target.started.withLock { $0 }
        let search = Array(started.dropLast(2))
        #expect(Set(search).count == search.count, "re-measured: \(search)")
        #expect(search == outcome.results.map(\.candidate))
        #expect(search.first == .serveDefault)
        #expect(started.suffix(2) == [.serveDefault, outcome.chosen!.candidate])
        let confirmation = try #require(outcome.confirmation)
        #expect(confirmation.start == target.point(.serveDefault, concurrency: outcome.start!.best!.concurrency, seconds: 2))
        #expect(confirmation.chosen?.concurrency == outcome.chosen?.best?.concurrency)
    }

    @Test(arguments: [0, 1])
    func concurrencyRisesUntilTheBudgetIsPassedOrThroughputStopsRising(patience: Int) async throws {
        let target = AnalyticTarget()
        var settings = settings(budget: 500)
        settings.minimumGain = 0.02
        settings.patience = patience
        let outcome = await Tuner(settings: settings, elapsed: target.elapsed).run(target: target)
        var warmStarts = 0
        var refined = 0
        for result in outcome.results {
            let ladder = space.concurrencies(for: result.candidate)
            let all = result.measurements.map(\.concurrency)
            #expect(all == all.sorted(), "points in rising order of clients")
            // Points off the ladder bisect the budget's edge: between the last ladder level within it and the
            // first past it, at most `edgeRefinements` of them.
            let edge = result.measurements.filter { !ladder.contains($0.concurrency) }
            if !edge.isEmpty {
                refined += 1
                #expect(edge.count <= settings.edgeRefinements)
                let within = try #require(result.measurements.last { ladder.contains($0.concurrency) && $0.p99Milliseconds <= 500 })
                let over = try #require(result.measurements.first { ladder.contains($0.concurrency) && $0.p99Milliseconds > 500 })
                #expect(edge.allSatisfy { $0.concurrency > within.concurrency && $0.concurrency < over.concurrency })
            }
            let levels = all.filter { ladder.contains($0) }
            // The ladder's levels are a contiguous run: from one client, or (warm start) from a quarter of the best
            // candidate's client count so far, walking down from there only while over budget.
            let from = try #require(ladder.firstIndex(of: levels[0]))
            #expect(levels == Array(ladder[from..<min(ladder.count, from + levels.count)]))
            if from > 0 { warmStarts += 1 }
            guard from + levels.count < ladder.count else { continue }
            // Stopped early: the last point passed the budget, or the last patience + 1 points did not rise 2%.
            let rates = result.measurements.map(\.imagesPerSecond)
            let flat = (rates.count - patience - 1..<rates.count).allSatisfy { i in
                i > 0 && rates[i] <= (rates[..<i].max() ?? 0) * 1.02
            }
            #expect(result.measurements.last!.p99Milliseconds > 500 || flat, "\(result.candidate): \(rates)")
        }
        #expect(warmStarts > 0, "every candidate's sweep began at one client")
        #expect(refined > 0, "no sweep bisected the budget's edge")
    }

    @Test func stopsWhenTheTimeBudgetIsSpentAndReportsTheBestSoFar() async throws {
        let target = AnalyticTarget()
        let short = Tuner.Settings(space: space, p99BudgetMilliseconds: 500, budgetSeconds: 40, pointSeconds: 1)
        let outcome = await Tuner(settings: short, elapsed: target.elapsed).run(target: target)
        #expect(outcome.stopReason == .budget)
        #expect(outcome.elapsedSeconds <= 40)
        let chosen = try #require(outcome.chosen)
        #expect(chosen == Tuner.choose(outcome.results, within: short.minimumGain))
        #expect(chosen.score >= outcome.start!.score)
    }

    @Test func theChoiceIsTheCheapestOfTheScoresThatCannotBeToldApart() {
        func result(_ instances: Int, _ batch: Int, _ rate: Double, p99: Double = 10) -> CandidateResult {
            CandidateResult(
                candidate: Candidate(instances: instances, maxBatchSize: batch, maxQueueDelayMicroseconds: 1000),
                measurements: [Measurement(
                    concurrency: 64, seconds: 1, imagesPerSecond: rate, p50Milliseconds: p99 / 2,
                    p99Milliseconds: p99, meanBatchSize: Double(batch), requests: 100, errors: 0)],
                p99BudgetMilliseconds: 50)
        }
        let results = [result(3, 256, 41_648), result(2, 256, 41_000), result(2, 128, 39_000), result(1, 64, 50_000, p99: 80)]
        // Within 2% of the best that fits: 3×256 and 2×256; the cheaper wins. The faster 1×64 is over budget.
        #expect(Tuner.choose(results, within: 0.02)?.candidate == results[1].candidate)
        // No tolerance: the highest score.
        #expect(Tuner.choose(results)?.candidate == results[0].candidate)
        // Within 10%: 2×128 joins and is the cheapest.
        #expect(Tuner.choose(results, within: 0.1)?.candidate == results[2].candidate)
    }

    @Test func plansAtLeastOneSecondPerPoint() {
        #expect(Tuner.Settings.plannedPointSeconds(budgetSeconds: 10) == 1)
        #expect(Tuner.Settings.plannedPointSeconds(budgetSeconds: 180) > 3)
        #expect(Tuner.Settings.plannedPointSeconds(budgetSeconds: 36_000) == 10)
    }

    @Test func whenNothingFitsTheLowestP99IsChosenAndFlagged() async throws {
        let target = AnalyticTarget()
        let outcome = await Tuner(settings: settings(budget: 1), elapsed: target.elapsed).run(target: target)
        let chosen = try #require(outcome.chosen)
        #expect(!chosen.fitsBudget)
        let lowest = outcome.results.compactMap { $0.best?.p99Milliseconds }.min()!
        #expect(chosen.best!.p99Milliseconds == lowest)
    }
}
