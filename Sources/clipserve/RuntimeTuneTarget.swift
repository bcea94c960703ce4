import Foundation
import Histogram
import InferenceCore
import InferenceRuntime
import Logging
import ServiceLifecycle
import Synchronization
import Tuning

/// `clipserve tune`'s target: each candidate is a real `EmbeddingRuntime` (workers, contexts, the dynamic batcher,
/// the preprocessing pool) over one shared engine, run as a `Service` and driven in-process by closed-loop clients
/// that each keep one single-image request in flight.
struct RuntimeTuneTarget: TuneTarget {
    /// What each request carries.
    enum Load: Sendable {
        /// Encoded image files: every request is decoded and preprocessed, as a served request is.
        case images([[UInt8]])
        /// Preprocessed pixels as decoding leaves them (`pixelsPerImage` RGB bytes per entry, before normalisation):
        /// the engine and batcher only.
        case pixels([[UInt8]])

        /// The load in words, for reports.
        var summary: String {
            switch self {
            case let .images(files):
                "\(files.count) image files, decoded and preprocessed per request; 1 image per request"
            case .pixels: "random preprocessed pixels as RGB bytes (no decoding); 1 image per request"
            }
        }
    }

    /// One accelerator reading.
    struct DeviceReading: Sendable {
        /// Busy fraction, 0...1.
        var utilization: Double
        /// Memory in use, bytes.
        var memoryBytes: Double
    }

    /// NVML's reading of the first GPU `engine` runs on, or nil without NVML or a GPU (then points carry none).
    static func deviceReader(for engine: any EmbeddingEngine) -> (@Sendable () -> DeviceReading?)? {
        guard let telemetry = NVMLTelemetry.forEngines([engine]) else { return nil }
        return {
            guard let sample = telemetry.samples().first else { return nil }
            return DeviceReading(utilization: sample.utilization ?? 0, memoryBytes: sample.memoryUsedBytes ?? 0)
        }
    }

    /// The engine every candidate shares (built once).
    let engine: any EmbeddingEngine
    /// Decoding and preprocessing for `.images` loads.
    let preprocessor: any ImagePreprocessing
    /// What the requests carry.
    let load: Load
    /// Runtime settings other than the three tuned knobs (queue size, threads, normalisation, …) as `serve` has them.
    let base: RuntimeConfiguration
    /// On a GPU with several contexts `serve` gives one of them a high-priority stream; tune measures the same.
    let highPriorityContextWhenSeveral: Bool
    /// Reads the accelerator (NVML), nil on the CPU.
    let readDevice: (@Sendable () -> DeviceReading?)?
    /// Where the runtime logs (quiet by default, so progress output stays readable).
    var logger = Logger(label: "clipserve.tune", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The runtime configuration of `candidate`.
    func configuration(for candidate: Candidate) -> RuntimeConfiguration {
        var configuration = base
        configuration.instances = candidate.instances
        configuration.maxBatchSize = candidate.maxBatchSize
        configuration.maxQueueDelay = .microseconds(candidate.maxQueueDelayMicroseconds)
        configuration.highPriorityInstances = highPriorityContextWhenSeveral && candidate.instances > 1 ? 1 : 0
        return configuration
    }

    func withCandidate(_ candidate: Candidate, _ body: (any CandidateProbe) async throws -> Void) async throws {
        let runtime = EmbeddingRuntime(
            engine: engine, preprocessor: preprocessor, configuration: configuration(for: candidate), logger: logger)
        let group = ServiceGroup(services: [runtime], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var failure: (any Error)?
            switch await runtime.startupFinished() {
            case .ready:
                do {
                    try await body(RuntimeProbe(runtime: runtime, load: load, readDevice: readDevice))
                } catch {
                    failure = error
                }
            case let .notReady(why):
                failure = CLIError("\(candidate) did not start: \(why)")
            }
            // Drains the queue, finishes the batches in flight and releases the contexts before the next candidate.
            await group.triggerGracefulShutdown()
            do {
                try await tasks.waitForAll()
            } catch {
                failure = failure ?? error
            }
            if let failure { throw failure }
        }
    }
}

/// Closed-loop load on one running runtime.
struct RuntimeProbe: CandidateProbe {
    let runtime: EmbeddingRuntime<ContinuousClock>
    let load: RuntimeTuneTarget.Load
    let readDevice: (@Sendable () -> RuntimeTuneTarget.DeviceReading?)?

    /// What the clients measured together.
    struct Tally: Sendable {
        /// Request latencies in microseconds, as measured. Kept raw and put into one histogram at the end: a
        /// histogram per client (about 170 KB each at this range and precision) made 1024 clients allocate, zero and
        /// merge some 170 MB per point, work that competed with the runtime being measured.
        var latencies: [UInt64] = []
        var requests = 0
        /// Images answered.
        var images = 0
        /// Σ 1/batch size over those images: the number of batches they rode in.
        var batches = 0.0
        /// Images answered inside the window (after the warm-up, before its end).
        var imagesInWindow = 0
        var errors = 0
        var queueMicroseconds: Int64 = 0
        var batchMicroseconds: Int64 = 0
        var admissionMicroseconds: Int64 = 0
        var answerMicroseconds: Int64 = 0
        var resumeMicroseconds: Int64 = 0

        /// Counts one answered request.
        mutating func record(_ result: EmbeddingResult, begin: ContinuousClock.Instant, finished: ContinuousClock.Instant) {
            latencies.append(UInt64(max(1, begin.duration(to: finished).microsecondCount)))
            requests += 1
            images += result.count
            batches += Double(result.count) / Double(max(1, result.batchSize))
            queueMicroseconds += result.queueTime.microsecondCount
            batchMicroseconds += result.inferenceTime.microsecondCount
            admissionMicroseconds += result.admissionTime.microsecondCount
            answerMicroseconds += result.answerTime.microsecondCount
            resumeMicroseconds += result.resumeTime.microsecondCount
        }

        /// Adds another client's tally.
        mutating func add(_ other: Tally) {
            latencies.append(contentsOf: other.latencies)
            requests += other.requests
            images += other.images
            batches += other.batches
            imagesInWindow += other.imagesInWindow
            errors += other.errors
            queueMicroseconds += other.queueMicroseconds
            batchMicroseconds += other.batchMicroseconds
            admissionMicroseconds += other.admissionMicroseconds
            answerMicroseconds += other.answerMicroseconds
            resumeMicroseconds += other.resumeMicroseconds
        }
    }

    /// Seconds of load before a point's window opens: a quarter of the window, at most one second. Requests that
    /// begin before it are not counted, nor images answered before it (errors are, wherever they happen): a point
    /// measures the steady state, not `concurrency` clients arriving at once (nor a candidate's first batches).
    static func warmUpSeconds(window seconds: Double) -> Double { min(1, 0.25 * seconds) }

    func measure(concurrency: Int, seconds: Double) async throws -> Tuning.Measurement {
        let clock = ContinuousClock()
        let start = clock.now
        let windowStart = start.advanced(by: .milliseconds(Int64(Self.warmUpSeconds(window: seconds) * 1000)))
        let end = windowStart.advanced(by: .milliseconds(Int64(seconds * 1000)))
        let cpuStart = processCPUSeconds()
        let tally = Shared(Tally())
        // Requests begun during the warm-up, kept for a machine so loaded that none begins inside the window.
        let warmUpTally = Shared(Tally())
        let readings = Shared<[RuntimeTuneTarget.DeviceReading]>([])
        let runtime = self.runtime, load = self.load, readDevice = self.readDevice
        await withTaskGroup(of: Void.self) { group in
            if let readDevice {
                group.addTask {
                    while clock.now < end {
                        if let reading = readDevice() { readings.withLock { $0.append(reading) } }
                        try? await Task.sleep(for: .milliseconds(200))
                    }
                }
            }
            for client in 0..<concurrency {
                group.addTask {
                    var local = Tally(), early = Tally()
                    var next = client
                    // Every client sends at least one request, so even an overloaded machine yields a measurement.
                    repeat {
                        let begin = clock.now
                        do {
                            let result: EmbeddingResult
                            switch load {
                            case let .images(files):
                                result = try await runtime.embed(images: [files[next % files.count]])
                            case let .pixels(images):
                                result = try await runtime.embed(pixelBytes: images[next % images.count], count: 1)
                            }
                            let finished = clock.now
                            let inWindow = begin >= windowStart
                            if inWindow {
                                local.record(result, begin: begin, finished: finished)
                            } else {
                                early.record(result, begin: begin, finished: finished)
                            }
                            if finished >= windowStart, finished <= end { local.imagesInWindow += result.count }
                        } catch {
                            if begin >= windowStart { local.errors += 1 } else { early.errors += 1 }
                            // A failed engine answers at once; spinning on it measures nothing.
                            if runtime.readiness != .ready { break }
                        }
                        next += 1
                    } while clock.now < end
                    let mine = local, before = early
                    tally.withLock { $0.add(mine) }
                    warmUpTally.withLock { $0.add(before) }
                }
            }
        }
        let wall = start.duration(to: clock.now).seconds
        let cpuSeconds = processCPUSeconds() - cpuStart
        let inWindow = tally.withLock { $0 }, warmUp = warmUpTally.withLock { $0 }
        var total = inWindow
        if inWindow.requests == 0 {
            total = warmUp
            total.imagesInWindow = inWindow.imagesInWindow
        }
        // Errors count wherever they happened: a candidate that fails requests while warming up is not clean.
        total.errors = inWindow.errors + warmUp.errors
        let deviceReadings = readings.withLock { $0 }
        let ms = { (value: UInt64) in Double(value) / 1000 }
        // Per request, in milliseconds, of a sum of microseconds.
        let mean = { (sum: Int64) -> Double? in total.requests > 0 ? Double(sum) / Double(total.requests) / 1000 : nil }
        var latencies = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        for latency in total.latencies { _ = latencies.record(latency) }
        // Images answered within the window over its length; when none was (a machine so loaded that no request
        // finished in time), every image answered over the whole wall time.
        let imagesPerSecond =
            total.imagesInWindow > 0 ? Double(total.imagesInWindow) / seconds : Double(total.images) / max(wall, 1e-9)
        return Tuning.Measurement(
            concurrency: concurrency, seconds: seconds, imagesPerSecond: imagesPerSecond,
            p50Milliseconds: total.requests > 0 ? ms(latencies.valueAtPercentile(50)) : .infinity,
            p99Milliseconds: total.requests > 0 ? ms(latencies.valueAtPercentile(99)) : .infinity,
            meanBatchSize: total.batches > 0 ? Double(total.images) / total.batches : 0,
            requests: total.requests, errors: total.errors,
            deviceUtilization: deviceReadings.isEmpty
                ? nil : deviceReadings.map(\.utilization).reduce(0, +) / Double(deviceReadings.count),
            deviceMemoryBytes: deviceReadings.map(\.memoryBytes).max(),
            cpuUtilization: cpuSeconds / wall / Double(ProcessInfo.processInfo.activeProcessorCount),
            meanQueueMilliseconds: mean(total.queueMicroseconds),
            meanBatchMilliseconds: mean(total.batchMicroseconds),
            meanLatencyMilliseconds: mean(total.latencies.reduce(0) { $0 + Int64($1) }),
            meanAdmissionMilliseconds: mean(total.admissionMicroseconds),
            meanAnswerMilliseconds: mean(total.answerMicroseconds),
            meanResumeMilliseconds: mean(total.resumeMicroseconds))
    }
}

/// A value the clients of one point share: each adds to it once, at its end.
private final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>

    init(_ value: Value) { self.value = Mutex(value) }

    func withLock<R: Sendable>(_ body: (inout sending Value) -> sending R) -> R { value.withLock(body) }
}

/// CPU seconds this process has used (user + system, all threads), from getrusage.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) * 1e-6 + Double(usage.ru_stime.tv_sec)
        + Double(usage.ru_stime.tv_usec) * 1e-6
}

extension Duration {
    /// The duration in whole microseconds.
    var microsecondCount: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}
