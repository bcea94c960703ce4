import Hummingbird
import InferenceRuntime
import NIOCore

/// Notices when a client goes away (end of input or a closed channel) so the request it was waiting for can be
/// cancelled, and its queued images leave the batcher's queue.
///
/// Hummingbird allows remote half-closure and never cancels a handler itself, so a client that disconnects would
/// otherwise keep its work queued until its deadline. One watcher sits in each connection's pipeline.
final class ConnectionWatcher: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = Never

    private struct State {
        var closed = false
        var nextID = 0
        var actions: [Int: @Sendable () -> Void] = [:]
    }

    // `Locked` (NSLock): touched from the event loop and from request tasks.
    private let state = Locked(State())

    /// Runs `action` once when the client goes away (at once if it already has); returns a token for `remove`.
    func onClose(_ action: @escaping @Sendable () -> Void) -> Int? {
        let id: Int? = state.withLock { state in
            guard !state.closed else { return nil }
            state.nextID += 1
            state.actions[state.nextID] = action
            return state.nextID
        }
        if id == nil { action() }
        return id
    }

    /// Forgets the action registered under `id`.
    func remove(_ id: Int) {
        _ = state.withLock { $0.actions.removeValue(forKey: id) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { clientWentAway() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        clientWentAway()
        context.fireChannelInactive()
    }

    private func clientWentAway() {
        let actions = state.withLock { state -> [@Sendable () -> Void] in
            state.closed = true
            defer { state.actions = [:] }
            return Array(state.actions.values)
        }
        for action in actions { action() }
    }
}

/// The request context of clipserve's routes: Hummingbird's core context plus the connection, so a handler can
/// tell when its client has gone away.
public struct ServeRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The client's connection.
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Runs `operation` (the wait for an embedding) and cancels it when the client disconnects first, so the
    /// request's queued images leave the queue instead of being computed for nobody.
    func cancellingOnDisconnect<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let watcher = try? await channel.pipeline.handler(type: ConnectionWatcher.self).get() else {
            return try await operation()
        }
        let task = Task { try await operation() }
        let token = watcher.onClose { task.cancel() }
        defer { if let token { watcher.remove(token) } }
        return try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
    }
}
