import Foundation
import InferenceRuntime

/// One answer outside 2xx, for the status page's list of recent errors.
public struct RecordedError: Sendable, Equatable, Codable {
    /// Wall-clock time, ISO 8601 with milliseconds (UTC).
    public var time: String
    /// Seconds since the recorder started (its injected clock).
    public var uptime: Double
    /// HTTP method.
    public var method: String
    /// Request path, without the query.
    public var route: String
    /// HTTP status code.
    public var status: Int
    /// The error message the client got.
    public var message: String
}

/// Collects the status page's figures: every answered request (latency, status), every embedded image, the gauges
/// the sampler reads once a second and the last errors. Time comes from an injected clock, so tests drive it by hand.
public final class StatusRecorder: Sendable {
    /// Seconds kept in the timeline.
    public static let defaultHistorySeconds = 300
    /// Errors kept.
    public static let defaultErrorCapacity = 50

    private struct State: Sendable {
        var timeline: StatusTimeline
        var errors: RingBuffer<RecordedError>
    }

    /// Seconds the timeline keeps.
    public let historySeconds: Int
    // A pthread lock (`Locked`), not `Mutex`: `make test-tsan` cannot see Mutex's futex and reports every access.
    private let state: Locked<State>
    /// Time since the recorder was made, read from the injected clock.
    private let elapsed: @Sendable () -> Duration
    /// Sleeps on the injected clock until `elapsed()` reaches the offset.
    private let sleepUntil: @Sendable (Duration) async throws -> Void
    private let wallClock: @Sendable () -> Date

    /// A recorder timed by `clock` (seconds are counted from now), keeping `historySeconds` seconds and
    /// `errorCapacity` errors.
    public init<C: Clock>(
        clock: C, historySeconds: Int = defaultHistorySeconds, errorCapacity: Int = defaultErrorCapacity,
        wallClock: @escaping @Sendable () -> Date = { Date() }
    ) where C.Duration == Duration {
        let origin = clock.now
        elapsed = { origin.duration(to: clock.now) }
        sleepUntil = { offset in try await clock.sleep(until: origin.advanced(by: offset), tolerance: nil) }
        self.wallClock = wallClock
        self.historySeconds = max(1, historySeconds)
        state = Locked(State(timeline: StatusTimeline(capacity: historySeconds), errors: RingBuffer(capacity: errorCapacity)))
    }

    /// A recorder on the continuous clock.
    public convenience init() { self.init(clock: ContinuousClock()) }

    /// Seconds since start, as a fraction.
    public var uptime: Double { elapsed().seconds }

    private var currentSecond: Int { Int(elapsed().seconds.rounded(.down)) }

    /// One answered request; answers outside 2xx also enter the error list with `message`.
    public func recordRequest(method: String, route: String, status: Int, latency: Duration, message: String?) {
        let second = currentSecond
        let isError = !(200..<300).contains(status)
        // Both may come from the client (a path, a quoted bad input): keep them short.
        let error = isError
            ? RecordedError(
                time: Self.format(wallClock()), uptime: uptime, method: method, route: String(route.prefix(200)),
                status: status, message: String((message ?? "").prefix(500)))
            : nil
        state.withLock { state in
            state.timeline.recordRequest(at: second, latencyMilliseconds: latency.milliseconds, isError: isError)
            if let error { state.errors.append(error) }
        }
    }

    /// `count` images embedded.
    public func recordImages(_ count: Int) {
        let second = currentSecond
        state.withLock { $0.timeline.recordImages(count, at: second) }
    }

    /// The gauges as read now: they are filed under the second that ended last.
    public func recordGauges(_ gauges: StatusGauges) {
        let second = currentSecond
        state.withLock { $0.timeline.recordGauges(gauges, at: second) }
    }

    /// Closed seconds (oldest first), totals and recent errors (oldest first), as of now.
    func snapshot() -> (seconds: [StatusSecond], totals: (requests: Int, images: Int, errors: Int), errors: [RecordedError]) {
        let second = currentSecond
        return state.withLock { state in
            state.timeline.advance(to: second)
            let timeline = state.timeline
            return (
                timeline.seconds, (timeline.totalRequests, timeline.totalImages, timeline.totalErrors),
                state.errors.elements
            )
        }
    }

    /// Sleeps until the next whole second of the recorder's clock; returns that second.
    func sleepUntilNextSecond() async throws -> Int {
        let next = currentSecond + 1
        try await sleepUntil(.seconds(next))
        return next
    }

    private static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
