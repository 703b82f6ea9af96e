import DequeModule
import Foundation

/// A many-producer, one-consumer queue of events whose `next()` is deliberately blind to task
/// cancellation: the delivery engine must go on receiving completions and store results while it
/// drains after a cancellation or shutdown — an `AsyncStream` iterator would end at once when its
/// task is cancelled (and, once ended, return nil forever, which is how the old delivery loop
/// came to spin). Producers are the curl thread, store tasks, timers and the planner.
final class EventQueue<Element: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer = Deque<Element>()
    private var waiter: CheckedContinuation<Element, Never>?
    private var closed = false

    /// Adds an event; wakes the consumer if it waits. Dropped once the queue is closed.
    func push(_ element: Element) {
        lock.lock()
        if closed {
            lock.unlock()
            return
        }
        if let waiter {
            self.waiter = nil
            lock.unlock()
            waiter.resume(returning: element)
        } else {
            buffer.append(element)
            lock.unlock()
        }
    }

    /// The next event, waiting for one if there is none. One consumer at a time.
    func next() async -> Element {
        if let element = lock.withLock({ buffer.popFirst() }) { return element }
        return await withCheckedContinuation { continuation in
            lock.lock()
            if let element = buffer.popFirst() {
                lock.unlock()
                continuation.resume(returning: element)
            } else {
                waiter = continuation
                lock.unlock()
            }
        }
    }

    /// Every event buffered now, without waiting.
    func drain() -> [Element] {
        lock.withLock {
            let all = Array(buffer)
            buffer.removeAll(keepingCapacity: true)
            return all
        }
    }

    /// Drops what is buffered and every later event.
    func close() {
        lock.lock()
        closed = true
        buffer.removeAll()
        lock.unlock()
    }
}
