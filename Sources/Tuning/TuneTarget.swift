/// A configuration that is up and running, ready to be loaded at any concurrency.
public protocol CandidateProbe {
    /// Drives the running configuration with `concurrency` closed-loop clients for about `seconds`.
    func measure(concurrency: Int, seconds: Double) async throws -> Measurement
}

/// What the tuner measures: the real runtime in `clipserve tune`, an analytic model in tests.
///
/// A candidate is started once and measured at several concurrencies, so starting it (creating contexts, warming
/// up) is paid once per candidate, not once per point.
public protocol TuneTarget {
    /// Starts `candidate`, hands it to `body`, and stops it (releasing what it holds) before returning.
    func withCandidate(_ candidate: Candidate, _ body: (any CandidateProbe) async throws -> Void) async throws
}
