import Foundation
import Synchronization

/// Blocks engine worker threads while closed (a real blocking wait: workers are dedicated threads), so tests can
/// hold a batch in flight and look at the queue behind it.
public final class Gate: @unchecked Sendable {
    // @unchecked: `isOpen` is read and written only while `condition` is locked.
    private var isOpen: Bool
    private let condition = NSCondition()
    /// Threads currently waiting at the gate.
    public let waiting = Atomic<Int>(0)

    /// A gate that starts open or closed.
    public init(open: Bool = true) { isOpen = open }

    /// Lets every waiting and later thread through.
    public func open() { set(true) }

    /// Makes later threads wait in `pass()`.
    public func close() { set(false) }

    private func set(_ open: Bool) {
        condition.lock()
        isOpen = open
        condition.broadcast()
        condition.unlock()
    }

    /// Returns once the gate is open.
    public func pass() {
        condition.lock()
        waiting.add(1, ordering: .relaxed)
        while !isOpen { condition.wait() }
        waiting.subtract(1, ordering: .relaxed)
        condition.unlock()
    }
}
