import Foundation
import GRDB
import PaywatchCore
import PaywatchStore

/// Retention under a steady load (issue 8): the database's size at every `every` delivered
/// messages, until `messages` have been delivered, with `[retention] keep = 1d` pruning hourly
/// (`prune`) or without pruning.
///
/// The load runs on the real store code paths, in-process, on a simulated clock that moves 5
/// minutes per tick: each tick the shop inserts 150 orders (43,200 a day) and pays, 15 minutes
/// after creation, two orders in three; the store sweeps (plans and applies) what is due;
/// delivery claims every due message and records it delivered (an attempt row each). So a paid
/// order gets a reminder at 10 minutes and a confirmation; an unpaid one reminders at 10 and 25
/// minutes and the cancellation at 30: about 100,000 messages a simulated day. Once an hour of
/// simulated time, with `prune`, the store prunes as the daemon's pruner does (`pruneAll`,
/// batches of 200).
///
/// Sizes: the file and its WAL, and from `dbstat` the pages of the history (pw_events,
/// pw_outbox, pw_attempts and their indexes) and of the rest (the shop's tables, pw_order_state).
func benchRetention(_ messages: Int, prune: Bool, every: Int = 100_000) async throws {
    let dir = tempDirectory("retention")
    defer { removeUnlessKept(dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let store = try SQLiteOrderStore(path: path)
    try await store.migrate()
    var shopConfig = Configuration()
    shopConfig.busyMode = .timeout(30)
    let shop = try DatabaseQueue(path: path, configuration: shopConfig)
    let planner = Planner(policy: Policy(unpaidChannels: ["sms"], paidChannels: ["sms"]))
    let tickMs: Millis = 5 * 60_000
    let perTick = 150
    let keepMs: Millis = 86_400_000
    let start: Millis = 1_767_225_600_000  // 2026-01-01
    var now = start
    var tick = 0
    var delivered = 0
    var nextReport = every
    var pruned = PruneCounts()
    var batchSeconds: [Double] = []
    let began = monotonicSeconds()
    print("retention messages=\(messages) prune=\(prune ? "keep 1d, hourly" : "off")")
    while delivered < messages {
        try await shopTick(shop, tick: tick, perTick: perTick, now: now, payAfterTicks: 3)
        while true {
            let at = now
            let result = try await store.sweep(now: at, limit: 2_000) { planner.plan($0, now: at) }
            if result.claimed < 2_000 { break }
        }
        delivered += try await deliverDue(store, now: now)
        if prune, tick % 12 == 0 {
            var last = monotonicSeconds()
            pruned += try await store.pruneAll(now: now, keepMs: keepMs, batchSize: 200) { batch in
                // From one batch's end to the next's: the transaction, and the yield between.
                let end = monotonicSeconds()
                if batch.orders > 0 { batchSeconds.append(end - last) }
                last = end
            }
        }
        while delivered >= nextReport {
            try printSizes(path: path, shop: shop, delivered: delivered, now: now, start: start, began: began)
            nextReport += every
        }
        tick += 1
        now += tickMs
    }
    print(String(format: "retention done: %d delivered in %.0f s; pruned %d orders, %d events, %d outbox rows, %d attempts",
                 delivered, monotonicSeconds() - began, pruned.orders, pruned.events, pruned.outbox, pruned.attempts))
    if !batchSeconds.isEmpty {
        let us = batchSeconds.map { Int64($0 * 1_000_000) }
        let ms = { (value: Int64) in String(format: "%.1f ms", Double(value) / 1000) }
        print("prune batches=\(us.count) p50=\(ms(percentile(us, 0.5))) p99=\(ms(percentile(us, 0.99))) max=\(ms(us.max() ?? 0))")
    }
    try shop.close()
    try await store.close()
}

/// The shop's writes of one tick: `perTick` new orders, and payment in full of two in three of
/// the orders created `payAfterTicks` ticks ago.
private func shopTick(_ shop: DatabaseQueue, tick: Int, perTick: Int, now: Millis, payAfterTicks: Int) async throws {
    try await shop.write { db in
        let order = try db.cachedStatement(sql: """
            INSERT INTO orders(id, amount_due, currency, created_at, phone, locale) VALUES (?, 12900, 'CNY', ?, ?, 'zh-CN')
            """)
        for i in 0..<perTick {
            let n = tick * perTick + i
            try order.execute(arguments: ["R\(n)", now, "+86138\(String(format: "%08d", n % 100_000_000))"])
        }
        guard tick >= payAfterTicks else { return }
        let payment = try db.cachedStatement(sql: """
            INSERT INTO payments(id, order_id, amount, status, provider_ref, created_at) VALUES (?, ?, 12900, 'succeeded', ?, ?)
            """)
        for i in 0..<perTick where i % 3 != 0 {
            let n = (tick - payAfterTicks) * perTick + i
            try payment.execute(arguments: ["P\(n)", "R\(n)", "ch_\(n)", now])
        }
    }
}

/// Claims every due message and records each delivered, as delivery does; returns how many.
private func deliverDue(_ store: SQLiteOrderStore, now: Millis) async throws -> Int {
    let request = DeliveryClaimRequest(perChannel: ["sms": 2_000], knownChannels: ["sms"], leaseMs: 60_000)
    var results: [DeliveryResult] = []
    var delivered = 0
    while true {
        let claim = try await store.exchangeDeliveries(recording: results, claiming: request, now: now)
        delivered += results.count
        results = claim.messages.map {
            DeliveryResult(outboxID: $0.id, startedAt: now, httpStatus: 200, error: nil, durationMs: 20, outcome: .delivered)
        }
        if results.isEmpty { return delivered }
    }
}

/// One line of sizes: the file, its WAL, the history's pages and the rest's (in MB).
private func printSizes(path: String, shop: DatabaseQueue, delivered: Int, now: Millis, start: Millis, began: Double) throws {
    func size(_ file: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? NSNumber)?.int64Value ?? 0
    }
    let (history, rest, free) = try shop.read { db -> (Int64, Int64, Int64) in
        let history = try Int64.fetchOne(db, sql: """
            SELECT COALESCE(SUM(d.pgsize), 0) FROM dbstat d JOIN sqlite_master m ON m.name = d.name
            WHERE m.tbl_name IN ('pw_events', 'pw_outbox', 'pw_attempts')
            """) ?? 0
        let all = try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat") ?? 0
        let free = try Int64.fetchOne(db, sql: "SELECT freelist_count * page_size FROM pragma_freelist_count, pragma_page_size") ?? 0
        return (history, all - history, free)
    }
    let mb = { (bytes: Int64) in String(format: "%.1f", Double(bytes) / 1_048_576) }
    print("  delivered=\(delivered) day=\(String(format: "%.1f", Double(now - start) / 86_400_000)) db+wal=\(mb(size(path) + size(path + "-wal"))) MB"
        + " (db \(mb(size(path))), wal \(mb(size(path + "-wal")))) history=\(mb(history)) MB rest=\(mb(rest)) MB free=\(mb(free)) MB"
        + String(format: " t=%.0fs", monotonicSeconds() - began))
}
