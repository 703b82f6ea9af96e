import Foundation
import GRDBSQLite
import Synchronization

/// Copies the write-ahead log back into the database file on a thread and connection of its own,
/// so that the writer's commits never do it.
///
/// SQLite's default is to checkpoint inside the commit that takes the WAL past 1,000 pages:
/// that commit copies every page and syncs the file while holding the write lock, which was half
/// of all commit time when planning 100,000 orders. Here each writing connection's WAL hook
/// (called after every commit with the WAL's size) asks for a `PASSIVE` checkpoint on this
/// object's connection instead: it runs beside the writer (SQLite lets a checkpoint run while
/// another connection writes), never waits for readers or writers, and is asked for again after
/// the next commit when it could not copy everything.
///
/// Safety net: when the WAL still reaches ``inlineFrames`` (the background connection is stuck
/// or cannot open the file), the committing connection checkpoints inline, as SQLite would have.
final class WALCheckpointer: Sendable {
    let path: String
    /// WAL size (pages) that asks for a background checkpoint: SQLite's own default threshold.
    let backgroundFrames: Int32
    /// WAL size (pages) at which the committing connection checkpoints itself (40 MB of 4 KiB pages).
    let inlineFrames: Int32

    private struct State {
        var scheduled = false
        var closed = false
        var checkpoints = 0
    }
    /// Flags, shared with the committing connections (held for a few instructions only).
    private let state = Mutex(State())
    /// The background connection, used on ``queue`` only (never while a commit waits).
    private let connection = Mutex<OpaquePointer?>(nil)
    private let queue = DispatchQueue(label: "paywatch.wal-checkpoint", qos: .utility)

    init(path: String, backgroundFrames: Int32 = 1000, inlineFrames: Int32 = 10_000) {
        self.path = path
        self.backgroundFrames = backgroundFrames
        self.inlineFrames = inlineFrames
    }

    /// Background checkpoints run so far (for tests).
    var checkpoints: Int { state.withLock { $0.checkpoints } }

    /// Installs the hook on a connection (replacing SQLite's automatic checkpoint there).
    func install(on db: OpaquePointer) {
        sqlite3_wal_hook(db, { context, db, _, frames in
            guard let context else { return SQLITE_OK }
            let checkpointer = Unmanaged<WALCheckpointer>.fromOpaque(context).takeUnretainedValue()
            checkpointer.committed(db: db, frames: frames)
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// After a commit on `db`: the WAL holds `frames` pages.
    private func committed(db: OpaquePointer?, frames: Int32) {
        if frames >= inlineFrames, let db {
            sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            return
        }
        guard frames >= backgroundFrames else { return }
        let schedule = state.withLock { state -> Bool in
            guard !state.scheduled, !state.closed else { return false }
            state.scheduled = true
            return true
        }
        guard schedule else { return }
        queue.async { self.checkpoint() }
    }

    private func checkpoint() {
        let open = state.withLock { state -> Bool in
            state.scheduled = false
            return !state.closed
        }
        guard open else { return }
        let done = connection.withLock { connection -> Bool in
            if connection == nil {
                var db: OpaquePointer?
                guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else {
                    sqlite3_close_v2(db)  // the inline checkpoint takes over
                    return false
                }
                connection = db
            }
            return sqlite3_wal_checkpoint_v2(connection, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil) == SQLITE_OK
        }
        if done { state.withLock { $0.checkpoints += 1 } }
    }

    /// Closes the background connection; later commits are checkpointed inline only.
    func close() {
        state.withLock { $0.closed = true }
        queue.sync {
            connection.withLock { connection in
                if let db = connection { sqlite3_close_v2(db) }
                connection = nil
            }
        }
    }
}
