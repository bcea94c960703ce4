import Foundation

/// A tuning run with its context, as a text table or one JSON object.
public struct TuneReport: Sendable, Codable {
    /// UTC time the run began, ISO 8601.
    public var date: String
    /// `--model` as given.
    public var model: String
    /// cpu or cuda.
    public var backend: String
    /// The device in words.
    public var device: String
    /// What the requests carried.
    public var load: String
    /// The search and its measurements.
    public var outcome: Tuner.Outcome
    /// The serve configuration written, if any.
    public var config: ServeConfigFile?
    /// Where the configuration was written.
    public var configPath: String?
    /// Where the chart was written.
    public var chartPath: String?

    /// Memberwise init.
    public init(
        date: String, model: String, backend: String, device: String, load: String, outcome: Tuner.Outcome,
        config: ServeConfigFile? = nil, configPath: String? = nil, chartPath: String? = nil
    ) {
        self.date = date
        self.model = model
        self.backend = backend
        self.device = device
        self.load = load
        self.outcome = outcome
        self.config = config
        self.configPath = configPath
        self.chartPath = chartPath
    }

    /// One JSON object with every candidate and point.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(self)
    }

    /// The table of every candidate with its best point, the choice and the comparison with the default.
    public var text: String {
        let settings = outcome.settings
        let onDevice = outcome.results.contains { $0.measurements.contains { $0.deviceUtilization != nil } }
        var lines = [
            "clipserve tune  \(model) on \(device) (\(backend))",
            "load: \(load)",
            "p99 budget \(format(settings.p99BudgetMilliseconds, 0)) ms, time budget \(format(settings.budgetSeconds, 0)) s, "
                + "\(format(settings.pointSeconds, 1)) s per point; started \(date)",
            "",
        ]
        let header = [
            "#", "instances", "max batch", "delay µs", "points", "clients", "images/s", "p50 ms", "p99 ms", "mean batch",
            onDevice ? "GPU util %" : "CPU util %", onDevice ? "GPU mem MiB" : nil, "fits", "",
        ].compactMap { $0 }
        var rows: [[String]] = [header]
        for (index, result) in outcome.results.enumerated() {
            let c = result.candidate, best = result.best
            let utilization = onDevice ? best?.deviceUtilization : best?.cpuUtilization
            var row = [String(index + 1), String(c.instances), String(c.maxBatchSize), String(c.maxQueueDelayMicroseconds)]
            row.append(String(result.measurements.count))
            row.append(best.map { String($0.concurrency) } ?? "-")
            row.append(best.map { format($0.imagesPerSecond) } ?? "-")
            row.append(best.map { format($0.p50Milliseconds) } ?? "-")
            row.append(best.map { format($0.p99Milliseconds) } ?? "-")
            row.append(best.map { format($0.meanBatchSize) } ?? "-")
            row.append(utilization.map { format($0 * 100, 0) } ?? "-")
            if onDevice { row.append(best?.deviceMemoryBytes.map { format($0 / 1_048_576, 0) } ?? "-") }
            row.append(result.failure != nil ? "failed" : result.fitsBudget ? "yes" : "no")
            var notes: [String] = []
            if c == outcome.start?.candidate { notes.append("default") }
            if c == outcome.chosen?.candidate { notes.append("CHOSEN") }
            if let failure = result.failure { notes.append(String(failure.prefix(60))) }
            row.append(notes.joined(separator: ", "))
            rows.append(row)
        }
        lines += Self.table(rows)
        lines.append("")
        let space = settings.space
        lines.append(
            "search: \(outcome.stopReason == .converged ? "converged" : "time budget spent") after "
                + "\(outcome.results.count) of \(space.allCandidates.count) candidates, "
                + "\(outcome.points.count) points, \(format(outcome.elapsedSeconds, 0)) s")
        if let chosen = outcome.chosen, let best = chosen.best {
            lines.append(
                "chosen: \(chosen.candidate)  \(format(best.imagesPerSecond)) images/s, p50 \(format(best.p50Milliseconds)) ms, "
                    + "p99 \(format(best.p99Milliseconds)) ms at \(best.concurrency) clients"
                    + (chosen.fitsBudget
                        ? "  (the cheapest within \(format(outcome.settings.minimumGain * 100, 0))% of the best images/s)"
                        : "  (NOTHING met the p99 budget: this is the lowest p99 seen)"))
        }
        if let start = outcome.start, let best = start.best {
            lines.append(
                "default: \(start.candidate)  \(format(best.imagesPerSecond)) images/s, p50 \(format(best.p50Milliseconds)) ms, "
                    + "p99 \(format(best.p99Milliseconds)) ms at \(best.concurrency) clients"
                    + (start.fitsBudget ? "" : "  (over the p99 budget at every level measured)"))
        }
        if let confirmation = outcome.confirmation, let start = confirmation.start, let chosen = confirmation.chosen {
            lines.append("re-measured side by side (\(format(2 * settings.pointSeconds, 1)) s each, at each one's best clients level):")
            lines.append(
                "  default \(format(start.imagesPerSecond)) images/s, p99 \(format(start.p99Milliseconds)) ms (\(start.concurrency) clients)"
                    + "  vs  chosen \(format(chosen.imagesPerSecond)) images/s, p99 \(format(chosen.p99Milliseconds)) ms "
                    + "(\(chosen.concurrency) clients): \(format(chosen.imagesPerSecond / max(start.imagesPerSecond, 1e-9), 2))×")
        } else if outcome.chosen?.candidate == outcome.start?.candidate {
            lines.append("the default configuration is the best one found")
        }
        if let config, let configPath {
            lines.append("wrote \(configPath); the same as a command line:")
            lines.append("  " + config.commandLine)
        }
        if let chartPath { lines.append("chart: \(chartPath)") }
        return lines.joined(separator: "\n")
    }

    /// Right-aligned columns (the last one left-aligned).
    static func table(_ rows: [[String]]) -> [String] {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return column == columns - 1 ? cell : pad + cell
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
    }
}
