import Foundation

/// A value behind a pthread mutex (`NSLock`).
///
/// Used instead of `Synchronization.Mutex` for state shared with the worker threads: on Linux `Mutex` waits with raw
/// futex calls that ThreadSanitizer cannot see, so every access under it is reported as a race in `make test-tsan`.
public final class Locked<Value: Sendable>: @unchecked Sendable {
    // `value` is read and written only while `lock` is held.
    private let lock = NSLock()
    private var value: Value

    /// Wraps `value`.
    public init(_ value: Value) {
        self.value = value
    }

    /// Runs `body` with exclusive access to the value.
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    /// Runs `body` with exclusive access to the value if no other thread holds the lock; nil (without waiting) if one
    /// does.
    public func withLockIfAvailable<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result? {
        guard lock.try() else { return nil }
        defer { lock.unlock() }
        return try body(&value)
    }
}
