import ClipServeHTTP
import Foundation
import Hummingbird
import HummingbirdTesting
import InferenceRuntime
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A bare TCP client that can hang up mid-request, which no HTTP client library lets a test do on purpose.
final class RawConnection {
    private var fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CocoaError(.fileNoSuchFile) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw CocoaError(.fileReadUnknown) }
    }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            sent += n
        }
    }

    func close() {
        if fd >= 0 { _ = Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}

@Suite("Client disconnect")
struct DisconnectTests {
    @Test func aClientThatDisconnectsHasItsQueuedWorkDropped() async throws {
        let tiny = try TinyModel.shared.get()
        let engine = GatedEngine(tiny.engine)
        let (runtime, app) = gatedServer(engine, tiny)
        let body = "{\"input\":\"\(dataURI(tiny.bytes("tiny.png"), mime: "image/png"))\"}"
        try await app.test(.live) { client in
            engine.gate.open()
            #expect(await runtime.startupFinished() == .ready)
            engine.gate.close()

            // One request holds the only worker; a second client queues behind it, then hangs up.
            let running = Task { try await client.postJSON("/v1/embeddings", body) }
            await eventually { engine.gate.waiting.load(ordering: .relaxed) == 1 }
            let port = try #require(client.port)
            let leaver = try RawConnection(port: port)
            leaver.send(
                "POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.utf8.count)\r\n\r\n" + body)
            await eventually { runtime.queuedImages == 1 }
            leaver.close()

            // Its image leaves the queue while the worker is still blocked: nothing waits for the gate.
            await eventually { runtime.queuedImages == 0 }
            #expect(engine.gate.waiting.load(ordering: .relaxed) == 1)

            engine.gate.open()
            let answer = try await running.value
            #expect(answer.status == .ok)
            // The server still serves new requests on other connections.
            #expect(try await client.postJSON("/v1/embeddings", body).status == .ok)
        }
    }
}
