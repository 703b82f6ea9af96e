#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive advisory lock (flock) on a file beside the SQLite database, held for the life of
/// `paywatch run` (taken by the store as it opens, `SQLiteOrderStore(path:runLock: true)`): two
/// daemons on one SQLite file would each release the other's in-flight deliveries at start
/// (``SQLiteOrderStore/recoverLeasesOfDeadOwners(now:)``). (Several replicas share PostgreSQL instead.)
public final class RunLock: Sendable {
    public let path: String
    private let descriptor: Int32

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StoreError(description: "cannot create the lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw StoreError(description: "another paywatch is already running on this database (it holds \(path))")
        }
        descriptor = fd
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}

/// A file's device and inode: the same path naming another file (replaced, or deleted and
/// created again) has another identity.
struct FileIdentity: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64

    /// nil when the path does not exist (or cannot be examined).
    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }
}
