//! The engine alone, no HTTP: read + load + open + finish + commit against
//! the memory store, with a signed id cookie (and cookie-store mode).
//!
//! Run: `cargo bench -p session-core --bench engine`. Figures are in
//! `benches/README.md`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use session_core::{
    Engine, Key, KeyRing, MemoryStore, OsRandom, RandomSource, Session, SessionConfig, Storage,
    SystemClock, ThreadRandom,
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
    let now = engine.now();
    let incoming = engine.read(cookie.map(str::as_bytes));
    let loaded = engine.load(incoming).await.unwrap();
    let session = engine.open(loaded, now);
    handler(&session);
    // As an adapter does: it owns the session once the handler is done.
    let plan = engine.finish_owned(session, now).unwrap();
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

criterion_group!(benches, bench_engine, bench_random);
criterion_main!(benches);
