//! The adapter in process, no sockets: the demo's router (the real
//! `examples/demo.rs`, memory store, signed id cookie) beside a bare axum
//! router serving the same routes as constant bodies, each request driven
//! through `tower::Service::call` and polled without a runtime.
//!
//! The difference between the two is what sessions add in user space per
//! request (the layer, the extractor, the engine, the demo's handler), with
//! no kernel or network time in it. The load harness (`benches/load`)
//! measures the whole server.
//!
//! Run: `cargo bench -p session-axum --bench adapter`. Figures are in
//! `benches/README.md`.
//!
//! Both routers are prepared as `axum::serve` prepares one for each
//! connection (`Router::with_state(())`, which turns every handler into a
//! route once instead of on every request), so each request costs what it
//! costs under a real server.
//!
//! On a noisy machine, count instructions instead of time: the bench binary
//! given `--count CASE N` (CASE as in `ours/views-session`) runs that case N
//! times and exits, for `perf stat -e instructions:u`; subtract a run with
//! N = 0 (the set-up, and one request of the case as a warm-up) and divide
//! by N. (Each counted request also reads the
//! clock twice, for the wall time printed at the end; the difference
//! between the two apps is unaffected.)
//!
//! `--count CASE N --pollute KB` also writes to every cache line of a
//! KB-kilobyte buffer after each request, as the kernel and the other
//! connections do between two requests under load. Under
//! `valgrind --tool=callgrind --cache-sim=yes --LL=524288,8,64` (the last
//! level simulated as this machine's 512 KB second-level cache) and with KB
//! above that size, each request then finds its code and data out of the
//! second-level cache: read the misses from the inclusive cost of
//! `adapter::call` (the pollution loop is outside it, but it is inside any
//! whole-program count such as `perf stat`'s). The mode also prints the
//! wall time per request measured around each call alone (pollution
//! excluded), a time figure for cold requests: take the minimum of several
//! alternated runs, the machine being noisy.
#![allow(missing_docs, unreachable_pub, dead_code)]

#[path = "../examples/demo.rs"]
mod demo;

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{HeaderValue, Request, Response};
use axum::routing::get;
use criterion::{Criterion, criterion_group};
use session_axum::{Key, KeyRing, SessionConfig, SessionService, Storage};
use tower::Service as _;

/// Polls a future that never waits (the memory store never does) to
/// completion without a runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// The baseline: the two benchmarked routes as constant bodies, like
/// `benches/load/bare-axum`.
fn bare() -> App {
    App::Bare(serve_ready(
        Router::new()
            .route(
                "/views",
                get(|| async { ([(CONTENT_TYPE, "text/plain; charset=utf-8")], "Views: 1") }),
            )
            .route(
                "/get",
                get(|| async {
                    (
                        [(CONTENT_TYPE, "application/json")],
                        r#"{"user":"No user set"}"#,
                    )
                }),
            ),
    ))
}

/// What `axum::serve` does with the app for every connection.
fn serve_ready(app: Router) -> Router {
    app.with_state(())
}

/// The demo's app, as the demo serves it: its router inside the layer.
type Ours = SessionService<Router>;

fn ours() -> App {
    // The defaults, as the demo's: the memory store and the system clock.
    App::Ours(demo::app(config()).unwrap())
}

/// Our demo in cookie-store mode (`SESSION_STORE=cookie`): the whole
/// session sealed in its cookie, no store.
fn ours_cookie() -> App {
    App::Ours(demo::app(config().with_storage(Storage::Cookie)).unwrap())
}

fn config() -> SessionConfig {
    let key = Key::from_bytes(&(0..64u8).collect::<Vec<_>>()).unwrap();
    SessionConfig::new(KeyRing::new(key))
}

fn request(path: &str, cookie: Option<&HeaderValue>) -> Request<Body> {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    if let Some(cookie) = cookie {
        request.headers_mut().insert(COOKIE, cookie.clone());
    }
    request
}

/// Either app, so that one function serves a request of both (the
/// cold-cache script reads this function's inclusive cost).
enum App {
    Bare(Router),
    Ours(Ours),
}

fn call(app: &mut App, request: Request<Body>) -> Response<Body> {
    match app {
        App::Bare(app) => block_on(app.call(request)),
        App::Ours(app) => block_on(app.call(request)),
    }
    .unwrap()
}

fn session_cookie(app: &mut App) -> HeaderValue {
    let response = call(app, request("/views", None));
    let set = response.headers()[SET_COOKIE].to_str().unwrap();
    HeaderValue::from_str(set.split(';').next().unwrap()).unwrap()
}

/// The benchmarked cases: name, path, whether the request has a session.
const CASES: [(&str, &str, bool); 3] = [
    ("get-session", "/get", true),
    ("views-session", "/views", true),
    ("views-new", "/views", false),
];

fn bench_adapter(c: &mut Criterion) {
    let mut group = c.benchmark_group("adapter");
    let mut bare = bare();
    let mut ours = ours();
    let cookie = session_cookie(&mut ours);
    let mut sealed = ours_cookie();
    let sealed_cookie = session_cookie(&mut sealed);

    for (case, path, with_cookie) in CASES {
        let cookie = with_cookie.then_some(&cookie);
        group.bench_function(format!("bare/{case}"), |b| {
            b.iter(|| black_box(call(&mut bare, request(path, cookie))));
        });
        group.bench_function(format!("ours/{case}"), |b| {
            b.iter(|| black_box(call(&mut ours, request(path, cookie))));
        });
        let cookie = with_cookie.then_some(&sealed_cookie);
        group.bench_function(format!("cookie/{case}"), |b| {
            b.iter(|| black_box(call(&mut sealed, request(path, cookie))));
        });
    }
    group.finish();
}

/// `--count CASE N [--pollute KB]`: runs one case N times, for counting
/// instructions (and, with `pollute_kb`, cache misses of cold requests).
fn count(which: &str, times: u64, pollute_kb: usize) {
    let (kind, case) = which.split_once('/').unwrap_or_else(|| {
        panic!("--count takes bare/CASE, ours/CASE or cookie/CASE, not {which:?}")
    });
    // The cookie comes from the app counted; bare axum replays our demo's.
    let (mut app, cookie) = match kind {
        "bare" => (bare(), session_cookie(&mut ours())),
        "ours" => {
            let mut app = ours();
            let cookie = session_cookie(&mut app);
            (app, cookie)
        }
        "cookie" => {
            let mut app = ours_cookie();
            let cookie = session_cookie(&mut app);
            (app, cookie)
        }
        _ => panic!("--count takes bare/CASE, ours/CASE or cookie/CASE, not {which:?}"),
    };
    let app = &mut app;
    let Some((_, path, with_cookie)) = CASES.into_iter().find(|(name, ..)| *name == case) else {
        panic!("no case named {case:?}");
    };
    let cookie = with_cookie.then_some(&cookie);
    // One request of the case before the counted ones, in every run (N = 0
    // included): one-time set-up, such as the table the verified-cookie
    // cache allocates when the first cookie verifies, is not counted.
    black_box(call(app, request(path, cookie)));
    let mut pollution = vec![0u8; pollute_kb * 1024];
    let mut spent = std::time::Duration::ZERO;
    for _ in 0..times {
        let request = request(path, cookie);
        let start = std::time::Instant::now();
        black_box(call(app, request));
        spent += start.elapsed();
        for line in pollution.chunks_mut(64) {
            line[0] = line[0].wrapping_add(1);
        }
        black_box(&mut pollution);
    }
    if times > 0 {
        // Wall time of the calls alone (the pollution loop excluded): with
        // `--pollute`, the cost of a request that finds its caches cold.
        eprintln!(
            "{which}: {:.0} ns per request (timed around each call)",
            spent.as_nanos() as f64 / times as f64
        );
    }
}

criterion_group!(benches, bench_adapter);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--count") {
        let which = args.get(at + 1).expect("--count CASE N");
        let times = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .expect("--count CASE N");
        let pollute_kb = args.iter().position(|a| a == "--pollute").map_or(0, |at| {
            args.get(at + 1)
                .and_then(|kb| kb.parse().ok())
                .expect("--pollute KB")
        });
        count(which, times, pollute_kb);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
