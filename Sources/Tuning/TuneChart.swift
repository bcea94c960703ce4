import Foundation

/// The tuning run as a standalone SVG (no scripts): images/s against p99 latency for every measured point, the
/// Pareto front, the budget, the chosen and the start configuration, axes with ticks, a legend.
public struct TuneChart {
    /// Drawing size in pixels.
    public var width = 960.0, height = 600.0
    /// The heading.
    public var title: String

    /// A chart headed `title`.
    public init(title: String) { self.title = title }

    private let left = 80.0, right = 250.0, top = 56.0, bottom = 64.0
    private static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]

    /// The SVG document for `outcome`.
    public func render(_ outcome: Tuner.Outcome) -> String {
        let points = outcome.points
        let budget = outcome.settings.p99BudgetMilliseconds
        let latencies = points.map { max($0.measurement.p99Milliseconds, 0.001) }
        let xAxis = LogAxis(low: min(latencies.min() ?? 1, budget), high: max(latencies.max() ?? 10, budget))
        let yAxis = LinearAxis(high: (points.map(\.measurement.imagesPerSecond).max() ?? 1) * 1.08)
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        func x(_ ms: Double) -> Double { left + xAxis.fraction(max(ms, 0.001)) * plotWidth }
        func y(_ rate: Double) -> Double { top + (1 - yAxis.fraction(rate)) * plotHeight }

        var svg: [String] = [
            ##"<?xml version="1.0" encoding="UTF-8"?>"##,
            ##"<svg xmlns="http://www.w3.org/2000/svg" width="\##(n(width))" height="\##(n(height))" viewBox="0 0 \##(n(width)) \##(n(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">"##,
            ##"<rect x="0" y="0" width="\##(n(width))" height="\##(n(height))" fill="white"/>"##,
            ##"<text x="\##(n(left))" y="28" font-size="16" font-weight="bold">\##(escape(title))</text>"##,
        ]
        // Grid, ticks and tick labels.
        svg.append(##"<g class="axes" stroke="#cccccc" stroke-width="1">"##)
        for tick in xAxis.ticks {
            svg.append(##"<line x1="\##(n(x(tick)))" y1="\##(n(top))" x2="\##(n(x(tick)))" y2="\##(n(top + plotHeight))"/>"##)
        }
        for tick in yAxis.ticks {
            svg.append(##"<line x1="\##(n(left))" y1="\##(n(y(tick)))" x2="\##(n(left + plotWidth))" y2="\##(n(y(tick)))"/>"##)
        }
        svg.append("</g>")
        svg.append(##"<rect x="\##(n(left))" y="\##(n(top))" width="\##(n(plotWidth))" height="\##(n(plotHeight))" fill="none" stroke="black"/>"##)
        for tick in xAxis.ticks {
            svg.append(##"<line x1="\##(n(x(tick)))" y1="\##(n(top + plotHeight))" x2="\##(n(x(tick)))" y2="\##(n(top + plotHeight + 5))" stroke="black"/>"##)
            svg.append(##"<text class="x-tick" x="\##(n(x(tick)))" y="\##(n(top + plotHeight + 19))" text-anchor="middle">\##(label(tick))</text>"##)
        }
        for tick in yAxis.ticks {
            svg.append(##"<line x1="\##(n(left - 5))" y1="\##(n(y(tick)))" x2="\##(n(left))" y2="\##(n(y(tick)))" stroke="black"/>"##)
            svg.append(##"<text class="y-tick" x="\##(n(left - 8))" y="\##(n(y(tick) + 4))" text-anchor="end">\##(label(tick))</text>"##)
        }
        svg.append(##"<text x="\##(n(left + plotWidth / 2))" y="\##(n(height - 18))" text-anchor="middle">p99 latency (ms, log scale)</text>"##)
        svg.append(##"<text transform="translate(22 \##(n(top + plotHeight / 2))) rotate(-90)" text-anchor="middle">throughput (images/s)</text>"##)

        // The budget.
        let budgetX = x(budget)
        svg.append(##"<line class="budget" x1="\##(n(budgetX))" y1="\##(n(top))" x2="\##(n(budgetX))" y2="\##(n(top + plotHeight))" stroke="#d62728" stroke-width="2" stroke-dasharray="6 4"/>"##)
        svg.append(##"<text x="\##(n(budgetX + 4))" y="\##(n(top + 14))" fill="#d62728">p99 budget \##(label(budget)) ms</text>"##)

        // Every measured point, coloured by instance count.
        let instanceCounts = Array(Set(points.map(\.candidate.instances))).sorted()
        func colour(_ instances: Int) -> String {
            Self.palette[(instanceCounts.firstIndex(of: instances) ?? 0) % Self.palette.count]
        }
        svg.append(##"<g class="points">"##)
        for (candidate, point) in points {
            let tip = "\(candidate), \(point.concurrency) clients: \(format(point.imagesPerSecond)) images/s, "
                + "p50 \(format(point.p50Milliseconds)) ms, p99 \(format(point.p99Milliseconds)) ms, "
                + "mean batch \(format(point.meanBatchSize))"
            svg.append(##"<circle class="point" cx="\##(n(x(point.p99Milliseconds)))" cy="\##(n(y(point.imagesPerSecond)))" r="4" fill="\##(colour(candidate.instances))" fill-opacity="0.55" stroke="\##(colour(candidate.instances))"><title>\##(escape(tip))</title></circle>"##)
        }
        svg.append("</g>")

        // The Pareto front, connected.
        let front = ParetoFront.indices(of: points.map(\.measurement)).map { points[$0] }
        let path = front.map { "\(n(x($0.measurement.p99Milliseconds))),\(n(y($0.measurement.imagesPerSecond)))" }
        svg.append(##"<polyline class="pareto-front" points="\##(path.joined(separator: " "))" fill="none" stroke="black" stroke-width="2"/>"##)
        svg.append(##"<g class="front-points">"##)
        for (candidate, point) in front {
            svg.append(##"<circle class="front-point" cx="\##(n(x(point.p99Milliseconds)))" cy="\##(n(y(point.imagesPerSecond)))" r="6" fill="none" stroke="black" stroke-width="1.5"><title>\##(escape("Pareto front: \(candidate), \(point.concurrency) clients"))</title></circle>"##)
        }
        svg.append("</g>")

        // The start (serve's default) and the chosen configuration.
        if let start = outcome.start, let point = start.best {
            let cx = x(point.p99Milliseconds), cy = y(point.imagesPerSecond)
            svg.append(##"<rect class="start" x="\##(n(cx - 7))" y="\##(n(cy - 7))" width="14" height="14" fill="none" stroke="#555555" stroke-width="2"/>"##)
            svg.append(##"<text x="\##(n(cx + 10))" y="\##(n(cy + 16))" fill="#555555">default \##(escape(start.candidate.description))</text>"##)
        }
        if let chosen = outcome.chosen, let point = chosen.best {
            let cx = x(point.p99Milliseconds), cy = y(point.imagesPerSecond)
            let text = "chosen: \(chosen.candidate), \(format(point.imagesPerSecond)) images/s"
            svg.append(##"<circle class="chosen" cx="\##(n(cx))" cy="\##(n(cy))" r="10" fill="none" stroke="#d62728" stroke-width="3"/>"##)
            let anchor = cx > left + plotWidth * 0.6 ? "end" : "start"
            let labelX = anchor == "end" ? cx - 14 : cx + 14
            svg.append(##"<text class="chosen-label" x="\##(n(labelX))" y="\##(n(max(cy - 12, top + 28)))" text-anchor="\##(anchor)" font-weight="bold" fill="#d62728">\##(escape(text))</text>"##)
        }

        // Legend.
        let legendX = left + plotWidth + 20
        var legendY = top + 8
        svg.append(##"<g class="legend">"##)
        svg.append(##"<text x="\##(n(legendX))" y="\##(n(legendY))" font-weight="bold">legend</text>"##)
        for instances in instanceCounts {
            legendY += 20
            svg.append(##"<circle cx="\##(n(legendX + 6))" cy="\##(n(legendY - 4))" r="4" fill="\##(colour(instances))" fill-opacity="0.55" stroke="\##(colour(instances))"/>"##)
            svg.append(##"<text x="\##(n(legendX + 18))" y="\##(n(legendY))">\##(instances) instance\##(instances == 1 ? "" : "s")</text>"##)
        }
        legendY += 20
        svg.append(##"<line x1="\##(n(legendX))" y1="\##(n(legendY - 4))" x2="\##(n(legendX + 12))" y2="\##(n(legendY - 4))" stroke="black" stroke-width="2"/>"##)
        svg.append(##"<text x="\##(n(legendX + 18))" y="\##(n(legendY))">Pareto front</text>"##)
        legendY += 20
        svg.append(##"<line x1="\##(n(legendX + 6))" y1="\##(n(legendY - 12))" x2="\##(n(legendX + 6))" y2="\##(n(legendY + 2))" stroke="#d62728" stroke-width="2" stroke-dasharray="4 2"/>"##)
        svg.append(##"<text x="\##(n(legendX + 18))" y="\##(n(legendY))">p99 budget</text>"##)
        legendY += 20
        svg.append(##"<circle cx="\##(n(legendX + 6))" cy="\##(n(legendY - 4))" r="6" fill="none" stroke="#d62728" stroke-width="2"/>"##)
        svg.append(##"<text x="\##(n(legendX + 18))" y="\##(n(legendY))">chosen configuration</text>"##)
        legendY += 20
        svg.append(##"<rect x="\##(n(legendX))" y="\##(n(legendY - 10))" width="12" height="12" fill="none" stroke="#555555" stroke-width="2"/>"##)
        svg.append(##"<text x="\##(n(legendX + 18))" y="\##(n(legendY))">default configuration</text>"##)
        legendY += 28
        svg.append(##"<text x="\##(n(legendX))" y="\##(n(legendY))" fill="#555555">one dot per configuration</text>"##)
        svg.append(##"<text x="\##(n(legendX))" y="\##(n(legendY + 16))" fill="#555555">and clients level;</text>"##)
        svg.append(##"<text x="\##(n(legendX))" y="\##(n(legendY + 32))" fill="#555555">labels: instances×max batch</text>"##)
        svg.append(##"<text x="\##(n(legendX))" y="\##(n(legendY + 48))" fill="#555555">@max queue delay</text>"##)
        svg.append("</g>")
        svg.append("</svg>")
        return svg.joined(separator: "\n") + "\n"
    }
}

/// A base-10 logarithmic axis from the 1-2-5 value below the data to the one above, ticked at 1, 2 and 5 × 10^k.
private struct LogAxis {
    let low: Double, high: Double

    init(low: Double, high: Double) {
        let low = Self.snapDown(max(low, 1e-3) * 0.95)
        var high = Self.snapUp(max(high, 1e-3) * 1.05)
        if high <= low { high = Self.snapUp(low * 1.5) }
        self.low = low
        self.high = high
    }

    /// The largest 1, 2 or 5 × 10^k not above `value`.
    static func snapDown(_ value: Double) -> Double {
        let decade = pow(10, log10(value).rounded(.down))
        return [5.0, 2, 1].map { $0 * decade }.first { $0 <= value * (1 + 1e-9) } ?? decade
    }

    /// The smallest 1, 2 or 5 × 10^k not below `value`.
    static func snapUp(_ value: Double) -> Double {
        let decade = pow(10, log10(value).rounded(.down))
        return [1.0, 2, 5, 10].map { $0 * decade }.first { $0 >= value * (1 - 1e-9) } ?? 10 * decade
    }

    func fraction(_ value: Double) -> Double {
        (log10(value) - log10(low)) / (log10(high) - log10(low))
    }

    var ticks: [Double] {
        var ticks: [Double] = []
        var value = low
        while value <= high * (1 + 1e-9) {
            ticks.append(value)
            value = Self.snapUp(value * 1.01)
        }
        return ticks
    }
}

/// A linear axis from 0 with about six ticks at 1, 2 or 5 × 10^k steps.
private struct LinearAxis {
    let step: Double, top: Double

    init(high: Double) {
        let rough = max(high, 1e-9) / 6
        let magnitude = pow(10, log10(rough).rounded(.down))
        step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? magnitude * 10
        top = (max(high, 1e-9) / step).rounded(.up) * step
    }

    func fraction(_ value: Double) -> Double { value / top }

    var ticks: [Double] { (0...Int((top / step).rounded())).map { Double($0) * step } }
}

/// A coordinate with one decimal.
private func n(_ value: Double) -> String { String(format: "%.1f", value) }

/// A tick label: no trailing zeros, at most three significant decimals.
private func label(_ value: Double) -> String {
    if value >= 1, value == value.rounded() { return String(Int(value)) }
    var text = String(format: "%.3f", value)
    while text.hasSuffix("0") { text.removeLast() }
    if text.hasSuffix(".") { text.removeLast() }
    return text
}

/// `text` safe inside an XML element or attribute.
func escape(_ text: String) -> String {
    var out = ""
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(character)
        }
    }
    return out
}
