import ArgumentParser
import CLIPModel
import Foundation
import ImageProcessing
import InferenceCore
import InferenceRuntime
import Tuning

/// `clipserve tune`: finds the instances × max batch size × max queue delay that give the most images/s within a
/// p99 latency budget, by running the real runtime in-process under closed-loop load, and writes it as a serve
/// configuration file.
struct TuneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Search instances, max batch size and max queue delay for the best throughput within a p99 budget.",
        discussion: """
            Builds the engine once, then for each candidate configuration starts a real runtime (contexts, batcher, \
            preprocessing pool), drives it with 1, 2, 4, … closed-loop clients (one image per request) until p99 \
            passes the budget or throughput stops rising, and shuts it down. A candidate's score is its best images/s \
            within the budget. The search starts at serve's defaults and moves one knob at a time while the score \
            improves; it stops when nothing improves or --minutes is spent, chooses the cheapest configuration within \
            2% of the best images/s, then measures the default and the chosen configuration once more side by side. \
            Writes the chosen configuration (--output) and a chart (--chart).
            """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .customLong("p99-budget-ms"), help: "Highest acceptable p99 request latency, in milliseconds.")
    var p99BudgetMs: Double = 500

    @Option(help: "Directory of images (jpg, jpeg, png, webp) the requests carry (decode + preprocess included); without it, random preprocessed pixels as RGB bytes.")
    var images: String?

    @Option(help: "Total time budget of the search, in minutes.")
    var minutes: Double = 5

    @Option(help: "Length of each measured point, in seconds (default: minutes × 60 × 0.85 / 40, within 1…10 s).")
    var pointSeconds: Double?

    @Option(help: "Serve configuration file to write (JSON, serve's long option names as keys).")
    var output = "clipserve-tuned.json"

    @Option(help: "SVG chart to write: images/s against p99 for every measured point.")
    var chart = "clipserve-tune.svg"

    @Flag(help: "Print one JSON object with all results instead of the table.")
    var json = false

    func validate() throws {
        guard p99BudgetMs > 0 else { throw ValidationError("--p99-budget-ms must be positive, got \(p99BudgetMs)") }
        guard minutes > 0 else { throw ValidationError("--minutes must be positive, got \(minutes)") }
        if let pointSeconds, pointSeconds < 0.2 {
            throw ValidationError("--point-seconds must be at least 0.2, got \(pointSeconds)")
        }
    }

    func run() async throws {
        let startDate = Date()
        let loaded = try CLIPModelLoader.load(modelOptions.model)
        let engine = try EngineFactory.make(options: modelOptions, model: loaded)
        let backend = EngineFactory.backendName(of: engine)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let load = try makeLoad(spec: engine.spec)

        var base = RuntimeConfiguration()
        base.preprocessThreads = cores
        base.requestTimeout = .seconds(600)
        let space = backend == "cuda" ? SearchSpace.gpu() : SearchSpace.cpu(cores: cores)
        // Room for every client of the largest point, so the tuner never measures rejections.
        base.maxQueueSize = max(base.maxQueueSize, 2 * space.concurrencyCap)
        let target = RuntimeTuneTarget(
            engine: engine, preprocessor: ImagePreprocessor(config: loaded.preprocess), load: load, base: base,
            highPriorityContextWhenSeveral: backend == "cuda", readDevice: RuntimeTuneTarget.deviceReader(for: engine))

        let settings = Tuner.Settings(
            space: space, p99BudgetMilliseconds: p99BudgetMs, budgetSeconds: minutes * 60, pointSeconds: pointSeconds)
        let clock = ContinuousClock()
        let began = clock.now
        let elapsed: @Sendable () -> Double = { (clock.now - began).seconds }
        let tuner = Tuner(settings: settings, elapsed: elapsed)
        let progress = ProgressPrinter()
        let outcome = await tuner.run(target: target) { progress.show($0) }
        progress.finish()

        let date = ISO8601DateFormatter().string(from: startDate)
        var report = TuneReport(
            date: date, model: modelOptions.model, backend: backend, device: engine.deviceDescription,
            load: load.summary, outcome: outcome)
        if let chosen = outcome.chosen, let best = chosen.best {
            let comment = "written by clipserve tune on \(date) for \(modelOptions.model) on \(engine.deviceDescription): "
                + "\(String(format: "%.1f", best.imagesPerSecond)) images/s at p99 \(String(format: "%.1f", best.p99Milliseconds)) ms "
                + "(budget \(String(format: "%g", p99BudgetMs)) ms, \(best.concurrency) clients, \(load.summary))"
                + (chosen.fitsBudget ? "" : "; NO configuration met the budget, this one had the lowest p99")
            let config = ServeConfigFile(
                candidate: chosen.candidate, model: modelOptions.model, backend: backend, comment: comment,
                precision: modelOptions.precision?.rawValue, threads: modelOptions.threads)
            try config.jsonData().write(to: URL(fileURLWithPath: output))
            report.config = config
            report.configPath = output
        }
        let title = "clipserve tune: \(loaded.name) on \(engine.deviceDescription), p99 budget \(String(format: "%g", p99BudgetMs)) ms"
        try Data(TuneChart(title: title).render(outcome).utf8).write(to: URL(fileURLWithPath: chart))
        report.chartPath = chart
        if json {
            print(String(decoding: try report.jsonData(), as: UTF8.self))
        } else {
            print(report.text)
        }
        if outcome.chosen == nil { throw CLIError("no candidate could be measured (see the failures above)") }
    }

    private func makeLoad(spec: VisionTowerSpec) throws -> RuntimeTuneTarget.Load {
        if let images {
            let files = try ImageFileList.expand([images])
            guard !files.isEmpty else { throw CLIError("\(images): no jpg/jpeg/png/webp images") }
            return .images(try files.map { [UInt8](try ImageFileList.read($0)) })
        }
        var generator = SplitMix64(seed: 0x7E57)
        return .pixels((0..<8).map { _ in (0..<spec.pixelsPerImage).map { _ in UInt8(generator.nextUnit() * 255.99) } })
    }
}

/// A progress bar on stderr when it is a terminal, plain lines otherwise.
final class ProgressPrinter {
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private var drewBar = false

    func show(_ progress: Tuner.Progress) {
        let fraction = min(1, max(0, progress.elapsedSeconds / progress.budgetSeconds))
        let percent = String(format: "%3d%%", Int(fraction * 100))
        let best = progress.bestImagesPerSecond.map { String(format: "best %.1f img/s", $0) } ?? "best -"
        let clock = "\(Self.minutes(progress.elapsedSeconds))/\(Self.minutes(progress.budgetSeconds))"
        if isTerminal {
            let width = 24, filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            var line = "[\(bar)] \(percent) \(clock) #\(progress.candidatesStarted) \(best) | \(progress.message)"
            if line.count > 150 { line = String(line.prefix(149)) + "…" }
            FileHandle.standardError.write(Data("\r\u{1B}[2K\(line)".utf8))
            drewBar = true
        } else {
            FileHandle.standardError.write(Data("[\(percent) \(clock)] \(progress.message)  (\(best))\n".utf8))
        }
    }

    func finish() {
        if drewBar { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    private static func minutes(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded())
        return String(format: "%d:%02d", whole / 60, whole % 60)
    }
}
