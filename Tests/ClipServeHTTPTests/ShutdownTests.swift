import AsyncHTTPClient
import Foundation
import NIOCore
import TestSupport
import Testing

/// Lines of a child process's standard output, as they come.
final class LineReader: @unchecked Sendable {
    // Touched only from the pipe's readability handler (one serial queue) and once by `stop`.
    private var buffer = Data()
    private let lines: AsyncStream<String>.Continuation
    let stream: AsyncStream<String>

    init(_ pipe: Pipe) {
        (stream, lines) = AsyncStream.makeStream(of: String.self)
        pipe.fileHandleForReading.readabilityHandler = { [self] handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                lines.finish()
                return
            }
            buffer.append(data)
            while let newline = buffer.firstIndex(of: 10) {
                lines.yield(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
                buffer.removeSubrange(buffer.startIndex...newline)
            }
        }
    }
}

@Suite("Graceful shutdown", .enabled(if: builtClipserve != nil, "the clipserve executable is not built"))
struct ShutdownTests {
    @Test func sigtermUnderLoadAnswersEveryAcceptedRequestAndExitsZero() async throws {
        let tiny = try TinyModel.shared.get()
        let process = Process()
        process.executableURL = try #require(builtClipserve)
        process.arguments = [
            "serve", "--model", Fixtures.root.appendingPathComponent("models/oc-tiny").path, "--backend", "cpu",
            "--host", "127.0.0.1", "--port", "0", "--max-batch-size", "4", "--preprocess-threads", "1",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let exited = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { exited.continuation.yield($0.terminationStatus) }
        let reader = LineReader(output)
        try process.run()

        var port: Int?
        for await line in reader.stream where line.hasPrefix("clipserve listening on ") {
            port = line.split(separator: ":").last.flatMap { Int($0) }
            break
        }
        let base = "http://127.0.0.1:\(try #require(port))"

        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        // Ready before the load starts.
        var ready = false
        while !ready {
            let response = try? await client.execute(HTTPClientRequest(url: base + "/v2/health/ready"), timeout: .seconds(5))
            ready = response?.status == .ok
            if !ready { try await Task.sleep(for: .milliseconds(50)) }
        }

        let clients = 48
        let first = AsyncStream.makeStream(of: Void.self)
        let results = try await withThrowingTaskGroup(of: String?.self) { group in
            for index in 0..<clients {
                group.addTask {
                    let image = tiny.images[index % tiny.images.count]
                    let api = LiveAPI.allCases[index % LiveAPI.allCases.count]
                    do {
                        let response = try await client.execute(api.request(base: base, image: image.bytes), timeout: .seconds(300))
                        first.continuation.yield()
                        guard response.status == .ok else { return "HTTP \(response.status.code)" }
                        let embedding = try await api.embedding(from: response)
                        return cosine(embedding, tiny.reference(image.name)) >= 0.99999 ? nil : "wrong embedding for \(image.name)"
                    } catch {
                        return "\(error)"
                    }
                }
            }
            // SIGTERM once the server is visibly busy with the load.
            for await _ in first.stream { break }
            process.terminate()
            var failures: [String] = []
            for try await result in group { if let result { failures.append(result) } }
            return failures
        }
        #expect(results.isEmpty, "\(results.count) requests not answered properly: \(results.prefix(3))")
        var status: Int32 = -1
        for await code in exited.stream {
            status = code
            break
        }
        #expect(status == 0)
        try await client.shutdown()
        _ = reader
    }
}
