import PaywatchCore
import PaywatchStore

/// The store conformance suite (issue 10): checks of the ``OrderStore`` contract written once,
/// against `any OrderStore`, and run against every backend through its ``ConformanceHarness``.
///
/// Each check gets a fresh harness (one empty database), works only through the protocol and the
/// harness (never SQL on paywatch's own tables, which differ between backends), plans with the
/// real ``Planner`` and injects every time. It throws a ``ConformanceFailure`` naming the failed
/// expectation, or the store's own error. Behaviour documented as one backend's only (the SQLite
/// run lock and `recoverLeasesOfDeadOwners` under it) is not checked here.
///
/// A test target runs them with one parameterised test per backend:
/// ```swift
/// @Test(arguments: StoreConformance.checks.map(\.name))
/// func sqlite(_ name: String) async throws {
///     try await StoreConformance.run(name, on: SQLiteHarness())
/// }
/// ```
public enum StoreConformance {
    /// One check of the contract: its name (what it proves) and its body.
    public struct Check: Sendable {
        public let name: String
        public let run: @Sendable (any ConformanceHarness) async throws -> Void

        public init(name: String, run: @escaping @Sendable (any ConformanceHarness) async throws -> Void) {
            self.name = name
            self.run = run
        }
    }

    /// Every check, in a stable order; names are unique.
    public static let checks: [Check] = planningChecks + deliveryChecks + leaseChecks + reconcileChecks + inspectionChecks

    /// The check called `name`, or nil.
    public static func check(named name: String) -> Check? {
        checks.first { $0.name == name }
    }

    /// Runs the check called `name` on `harness`, then closes the harness (also when the check
    /// fails). Throws a ``ConformanceFailure`` when there is no such check or it failed.
    public static func run(_ name: String, on harness: any ConformanceHarness) async throws {
        guard let check = check(named: name) else {
            try await harness.close()
            throw ConformanceFailure("no conformance check named \(name)")
        }
        do {
            try await check.run(harness)
        } catch {
            try? await harness.close()
            throw error
        }
        try await harness.close()
    }
}

/// A conformance expectation that did not hold: what was expected, and where in the suite.
public struct ConformanceFailure: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var file: String
    public var line: Int

    public init(_ message: String, file: String = #fileID, line: Int = #line) {
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { "\(file):\(line): \(message)" }
}

/// Throws a ``ConformanceFailure`` with `message` unless `condition` holds.
func expect(_ condition: Bool, _ message: @autoclosure () -> String, file: String = #fileID, line: Int = #line) throws {
    if !condition { throw ConformanceFailure(message(), file: file, line: line) }
}

/// Throws a ``ConformanceFailure`` showing both values unless `actual == expected`.
func expectEqual<T: Equatable>(_ actual: T, _ expected: T, _ what: @autoclosure () -> String, file: String = #fileID,
                               line: Int = #line) throws {
    if actual != expected {
        throw ConformanceFailure("\(what()): expected \(expected), got \(actual)", file: file, line: line)
    }
}

/// The value, or a ``ConformanceFailure`` saying what was missing.
func require<T>(_ value: T?, _ what: @autoclosure () -> String, file: String = #fileID, line: Int = #line) throws -> T {
    guard let value else { throw ConformanceFailure("\(what()): missing", file: file, line: line) }
    return value
}
