import Foundation

/// A thread-safe counter, for gateway responders that answer differently call by call.
public final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    public init() {}

    /// Increments and returns the new value (1 on the first call).
    public func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
