//! The memory store growing to 2 million sessions: latency percentiles of
//! `create` and `load` as it grows, and resident memory per record.
//!
//! Run: `cargo bench -p session-core --bench memory_store` (set
//! `RECORDS=...` for another size). Figures are in `benches/README.md`.
#![allow(missing_docs)]

use std::time::Instant;

use session_core::{MemoryStore, Record, SessionId, SessionStore};
use time::{Duration, OffsetDateTime};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn id(n: u64) -> SessionId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[8..].copy_from_slice(&(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes());
    SessionId::from_bytes(bytes)
}

fn main() {
    // `cargo test --benches` and nextest list benchmarks with these flags;
    // there is nothing to list or test here.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n: u64 = std::env::var("RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = MemoryStore::new();
        let now = OffsetDateTime::now_utc();
        let mut record = Record::new(now, Some(now + Duration::hours(1)));
        record.data.insert("views", 1.into());
        // Keys are computed up front so that hashing is not timed.
        let keys: Vec<_> = (0..n).map(|i| id(i).store_key()).collect();

        let rss_before = rss_bytes();
        let mut create_ns = Vec::with_capacity(n as usize);
        let started = Instant::now();
        for key in &keys {
            let t = Instant::now();
            store.create(key, &record).await.unwrap();
            create_ns.push(t.elapsed().as_nanos() as u64);
        }
        let create_total = started.elapsed();
        let rss_after = rss_bytes();

        let mut load_ns = Vec::with_capacity(n as usize);
        let mut x: u64 = 12345;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = &keys[(x % n) as usize];
            let t = Instant::now();
            let loaded = store.load(key).await.unwrap();
            load_ns.push(t.elapsed().as_nanos() as u64);
            assert!(loaded.is_some());
        }
        create_ns.sort_unstable();
        load_ns.sort_unstable();
        println!("records: {n}");
        println!(
            "create: total {:.2} s, p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.1} µs",
            create_total.as_secs_f64(),
            percentile(&create_ns, 0.50),
            percentile(&create_ns, 0.99),
            percentile(&create_ns, 0.999),
            *create_ns.last().unwrap() as f64 / 1000.0
        );
        println!(
            "load:   p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.1} µs",
            percentile(&load_ns, 0.50),
            percentile(&load_ns, 0.99),
            percentile(&load_ns, 0.999),
            *load_ns.last().unwrap() as f64 / 1000.0
        );
        println!(
            "memory: {:.0} bytes per record (RSS {} MiB -> {} MiB)",
            (rss_after - rss_before) as f64 / n as f64,
            rss_before >> 20,
            rss_after >> 20
        );
    });
}
