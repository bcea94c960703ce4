import Foundation
import Testing
import Tuning

#if canImport(FoundationXML)
import FoundationXML
#endif

/// Collects the elements of an SVG document with their attributes.
final class ElementCollector: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []
    var texts: [String] = []

    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        elements.append((name, attributes))
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { texts.append(string) }
}

@Suite("Tune output")
struct OutputTests {
    func outcome() async -> Tuner.Outcome {
        let target = AnalyticTarget()
        let settings = Tuner.Settings(
            space: SearchSpace(instances: [1, 2], batchSizes: [1, 4, 16, 64], delaysMicroseconds: [0, 1000], concurrencyCap: 256),
            p99BudgetMilliseconds: 300, budgetSeconds: 10_000, pointSeconds: 1)
        return await Tuner(settings: settings, elapsed: target.elapsed).run(target: target)
    }

    @Test func chartIsWellFormedXMLWithOnePointPerMeasurementAndTheFront() async throws {
        let outcome = await outcome()
        let svg = TuneChart(title: "test <&> chart").render(outcome)
        let parser = XMLParser(data: Data(svg.utf8))
        let collector = ElementCollector()
        parser.delegate = collector
        #expect(parser.parse(), "XML error: \(String(describing: parser.parserError))")
        #expect(collector.elements.first?.name == "svg")
        #expect(collector.elements.first?.attributes["xmlns"] == "http://www.w3.org/2000/svg")
        #expect(!collector.elements.contains { $0.name == "script" })
        #expect(!svg.contains("onload") && !svg.contains("javascript:"))
        let points = collector.elements.filter { $0.name == "circle" && $0.attributes["class"] == "point" }
        #expect(points.count == outcome.points.count)
        let front = ParetoFront.indices(of: outcome.points.map(\.measurement))
        let frontPoints = collector.elements.filter { $0.attributes["class"] == "front-point" }
        #expect(frontPoints.count == front.count)
        let polyline = try #require(collector.elements.first { $0.attributes["class"] == "pareto-front" })
        #expect(polyline.attributes["points"]?.split(separator: " ").count == front.count)
        #expect(collector.elements.contains { $0.attributes["class"] == "budget" })
        #expect(collector.elements.contains { $0.attributes["class"] == "chosen" })
        #expect(collector.elements.contains { $0.attributes["class"] == "legend" })
        #expect(collector.elements.filter { $0.attributes["class"] == "x-tick" }.count >= 2)
        #expect(collector.elements.filter { $0.attributes["class"] == "y-tick" }.count >= 2)
        let text = collector.texts.joined()
        #expect(text.contains("chosen: \(outcome.chosen!.candidate)"))
        #expect(text.contains("test <&> chart"))
        #expect(text.contains("p99 latency (ms"))
        #expect(text.contains("throughput (images/s)"))
    }

    @Test func configFileRoundTripsWithExactlyTheServeKeys() throws {
        let config = ServeConfigFile(
            candidate: Candidate(instances: 2, maxBatchSize: 64, maxQueueDelayMicroseconds: 2000),
            model: "/models/ViT B-32", backend: "cuda", comment: "written by clipserve tune on today")
        let data = try config.jsonData()
        #expect(try ServeConfigFile(jsonData: data) == config)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["_comment", "model", "backend", "instances", "max-batch-size", "max-queue-delay"])
        #expect(Set(object.keys).isSubset(of: ServeConfigFile.keys))
        #expect(object["instances"] as? Int == 2)
        #expect(object["max-batch-size"] as? Int == 64)
        #expect(object["max-queue-delay"] as? Int == 2000)
        #expect(object["backend"] as? String == "cuda")
        #expect(String(decoding: data, as: UTF8.self).hasPrefix("{\n  \"_comment\""))
        #expect(
            config.commandLine
                == "clipserve serve --model '/models/ViT B-32' --backend cuda --instances 2 --max-batch-size 64 --max-queue-delay 2000")
        // The engine's precision and threads travel along when the tuned run set them.
        let pinned = ServeConfigFile(
            candidate: Candidate(instances: 1, maxBatchSize: 8, maxQueueDelayMicroseconds: 0),
            model: "random:ViT-B-32", backend: "cuda", comment: "c", precision: "bf16", threads: 4)
        let pinnedData = try pinned.jsonData()
        #expect(try ServeConfigFile(jsonData: pinnedData) == pinned)
        let pinnedObject = try #require(try JSONSerialization.jsonObject(with: pinnedData) as? [String: Any])
        #expect(Set(pinnedObject.keys) == ServeConfigFile.keys)
        #expect(pinned.commandLine.hasSuffix("--max-queue-delay 0 --precision bf16 --threads 4"))
    }

    @Test func reportTableListsEveryCandidateAndJSONHoldsEveryPoint() async throws {
        let outcome = await outcome()
        let report = TuneReport(
            date: "2026-11-26T00:00:00Z", model: "random:ViT-B-32", backend: "cpu", device: "test", load: "analytic",
            outcome: outcome)
        let lines = report.text.split(separator: "\n")
        for (index, result) in outcome.results.enumerated() {
            let row = lines.first { $0.hasPrefix("\(index + 1) ") || $0.hasPrefix(" \(index + 1) ") }
            #expect(row != nil, "no row for \(result.candidate)")
        }
        #expect(report.text.contains("CHOSEN"))
        #expect(report.text.contains("default"))
        let object = try #require(try JSONSerialization.jsonObject(with: report.jsonData()) as? [String: Any])
        let results = try #require((object["outcome"] as? [String: Any])?["results"] as? [[String: Any]])
        #expect(results.count == outcome.results.count)
        let points = results.map { ($0["measurements"] as? [Any])?.count ?? 0 }.reduce(0, +)
        #expect(points == outcome.points.count)
    }
}
