import Foundation
import PaywatchCore

/// A wake-up for one waiter: `signal()` from anywhere; `wait()` returns at once if a signal came
/// since the last wait (signals in between fold into one), else at the next signal or when its
/// task is cancelled. The planning loop sleeps on it beside the clock when the store has
/// wake-ups (``OrderStore/changes()``).
final class WakeSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var pending = false
    private var waiter: CheckedContinuation<Void, Never>?

    func signal() {
        lock.lock()
        if let waiter {
            self.waiter = nil
            lock.unlock()
            waiter.resume()
        } else {
            pending = true
            lock.unlock()
        }
    }

    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                lock.lock()
                if pending || Task.isCancelled {
                    pending = false
                    lock.unlock()
                    continuation.resume()
                } else {
                    waiter = continuation
                    lock.unlock()
                }
            }
        } onCancel: {
            lock.lock()
            let waiter = self.waiter
            self.waiter = nil
            lock.unlock()
            waiter?.resume()
        }
    }
}

extension PaywatchClock {
    /// Sleeps until `deadline`, or until `wake` is signalled (when there is one).
    func sleep(until deadline: Millis, orUntil wake: WakeSignal?) async throws {
        guard let wake else { return try await sleep(until: deadline) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.sleep(until: deadline) }
            group.addTask { await wake.wait() }
            try await group.next()
            group.cancelAll()
        }
    }
}
