//! The engine alone, no HTTP: read + load + open + finish + commit against
//! the memory store, with a signed id cookie (and cookie-store mode), the
//! session opened into a `RequestSlot` and finished from it, as the
//! adapters do.
//!
//! Run: `cargo bench -p session-core --bench engine`. Figures are in
//! `benches/README.md`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use session_core::{
    Engine, Key, KeyRing, LoadNow, MemoryStore, OsRandom, RandomSource, RequestSlot, Session,
    SessionConfig, Storage, SystemClock, ThreadRandom,
};

/// Polls a future that never waits (the memory store never does) to
/// completion without a runtime, so runtime overhead is not measured.
struct Runner;

impl Runner {
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }
}

fn runtime() -> Runner {
    Runner
}

fn engine(storage: Storage) -> Engine {
    let key = Key::from_bytes(&(0..64u8).collect::<Vec<_>>()).unwrap();
    Engine::new(
        SessionConfig::new(KeyRing::new(key))
            .with_storage(storage)
            .with_clock(Arc::new(SystemClock)),
    )
    .unwrap()
}

/// One request: the whole engine path an adapter runs.
async fn request(
    engine: &Engine,
    cookie: Option<&str>,
    handler: impl FnOnce(&Session),
) -> Option<String> {
    // As an adapter does: a slot per request, the session opened into it,
    // and the slot finished once the handler's handles are gone.
    let mut slot = RequestSlot::new();
    let now = engine.timestamp();
    let incoming = engine.read(cookie.map(str::as_bytes));
    let loaded = engine.load(incoming).await.unwrap();
    let session = engine.open_in(&slot, loaded, now);
    handler(&session);
    drop(session);
    let (plan, _) = engine.finish_slot(&mut slot)?.unwrap();
    engine.commit(plan).await.unwrap()
}

fn views(s: &Session) {
    s.update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
        .unwrap();
}

fn first_cookie(engine: &Engine, rt: &Runner) -> String {
    let set = rt.block_on(request(engine, None, views)).unwrap();
    set.split(';').next().unwrap().to_owned()
}

fn bench_engine(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("engine");

    let memory = engine(Storage::Store(Arc::new(MemoryStore::new())));
    let cookie = first_cookie(&memory, &rt);
    group.bench_function("memory/read_only", |b| {
        b.iter(|| {
            rt.block_on(request(&memory, Some(black_box(&cookie)), |s| {
                black_box(s.get_value("views"));
            }))
        });
    });
    group.bench_function("memory/read_write", |b| {
        b.iter(|| rt.block_on(request(&memory, Some(black_box(&cookie)), views)));
    });
    group.bench_function("memory/new_session", |b| {
        b.iter(|| rt.block_on(request(&memory, None, views)));
    });

    let cookie_mode = engine(Storage::Cookie);
    let inline = first_cookie(&cookie_mode, &rt);
    group.bench_function("cookie_store/read_only", |b| {
        b.iter(|| {
            rt.block_on(request(&cookie_mode, Some(black_box(&inline)), |s| {
                black_box(s.get_value("views"));
            }))
        });
    });
    group.bench_function("cookie_store/read_write", |b| {
        b.iter(|| rt.block_on(request(&cookie_mode, Some(black_box(&inline)), views)));
    });
    group.bench_function("cookie_store/new_session", |b| {
        b.iter(|| rt.block_on(request(&cookie_mode, None, views)));
    });
    group.finish();
}

/// The steps of a read-only request with the memory store, one by one:
/// where the engine's time goes.
fn bench_steps(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("steps");
    let memory = engine(Storage::Store(Arc::new(MemoryStore::new())));
    let cookie = first_cookie(&memory, &rt);
    // A browser's header: the session cookie among others.
    let header = format!("theme=dark; {cookie}; _ga=GA1.1.123456789.1700000000");
    group.bench_function("now", |b| b.iter(|| black_box(memory.timestamp())));
    group.bench_function("read", |b| {
        b.iter(|| black_box(memory.read([black_box(header.as_bytes())])));
    });
    group.bench_function("read+load_now", |b| {
        b.iter(|| black_box(memory.load_now(memory.read([black_box(header.as_bytes())]))));
    });
    let now = memory.timestamp();
    group.bench_function("read+load_now+open+finish", |b| {
        b.iter(|| {
            let LoadNow::Done(loaded) = memory.load_now(memory.read([header.as_bytes()])) else {
                unreachable!("the memory store answers at once")
            };
            let session = memory.open(loaded, now);
            black_box(memory.finish_owned(session, now).unwrap())
        });
    });
    group.finish();
}

/// The random sources, for one 16-byte session id.
fn bench_random(c: &mut Criterion) {
    let mut group = c.benchmark_group("random");
    let mut id = [0u8; 16];
    group.bench_function("os", |b| b.iter(|| OsRandom.fill(black_box(&mut id))));
    group.bench_function("thread", |b| {
        b.iter(|| ThreadRandom.fill(black_box(&mut id)))
    });
    group.finish();
}

criterion_group!(benches, bench_engine, bench_steps, bench_random);
criterion_main!(benches);
