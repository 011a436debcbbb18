//! Baseline server for the load benchmark.
//!
//! Serves every route of the demo contract (`/work/shared/demo-contract.md`)
//! with a constant body and no sessions, cookies or body parsing at all, so
//! that `run.sh` can subtract the framework's own cost from a session
//! library's.
//!
//! Environment: `PORT` (default 3000), `BENCH_RUNTIME` = `current_thread`
//! (default: everything on the one main thread) or `multi_thread` (one worker
//! unless `TOKIO_WORKER_THREADS` says otherwise, like our demo).
//!
//! `BENCH_SPIN_NS` (default 0, not for the baseline itself): every response
//! first burns about that many nanoseconds of pure user-space computation
//! (no memory traffic, no system calls). A calibration server: it shows what
//! a known amount of added work per request measures as under `run.sh`, so
//! a library's Δ µs can be read against it.
//!
//! `BENCH_COOKIE` (not for the baseline itself): `GET /views` also answers
//! `Set-Cookie: id=<BENCH_COOKIE>`, so `run.sh` replays a cookie of that
//! size on every request, as it does for a session library: the calibration
//! then has the same request bytes as the library it is read against.
//!
//! `BENCH_HANDLER=demo` (not for the baseline itself): `GET /views` and
//! `GET /get` do the work of our demo's handlers, without a session:
//! `/views` formats `Views: N` with `format!` from a counter of its own, and
//! `/get` serializes its reply through `axum::Json`, as the demo does. A
//! calibration server: the part of a session server's Δ µs that its
//! handlers' own work costs, where the baseline answers constants.

use axum::{
    Router,
    http::{StatusCode, header::CONTENT_TYPE},
    response::IntoResponse,
    routing::get,
};

const TEXT: [(axum::http::HeaderName, &str); 1] = [(CONTENT_TYPE, "text/plain; charset=utf-8")];
const JSON: [(axum::http::HeaderName, &str); 1] = [(CONTENT_TYPE, "application/json")];

fn text(body: &'static str) -> impl IntoResponse {
    spin();
    (TEXT, body)
}

fn json(body: &'static str) -> impl IntoResponse {
    spin();
    (JSON, body)
}

/// `GET /views`: `Views: 1` (with `BENCH_HANDLER=demo`, `Views: N` from a
/// counter, formatted as the demo does), with the `BENCH_COOKIE` cookie when
/// one is set.
async fn views() -> axum::response::Response {
    let mut response = if demo_handlers() {
        spin();
        // One worker thread: a plain counter, no atomic instruction.
        let views = VIEWS.with(|views| {
            views.set(views.get() + 1);
            views.get()
        });
        format!("Views: {views}").into_response()
    } else {
        text("Views: 1").into_response()
    };
    if let Some(Some(cookie)) = COOKIE.get() {
        response
            .headers_mut()
            .insert(axum::http::header::SET_COOKIE, cookie.clone());
    }
    response
}

thread_local! {
    /// `GET /views`'s counter with `BENCH_HANDLER=demo`.
    static VIEWS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// `GET /get`: `{"user":"No user set"}` (with `BENCH_HANDLER=demo`,
/// serialized through `axum::Json` as the demo does).
async fn get_user() -> axum::response::Response {
    if demo_handlers() {
        spin();
        axum::Json(UserReply {
            user: std::borrow::Cow::Borrowed("No user set"),
        })
        .into_response()
    } else {
        json(r#"{"user":"No user set"}"#).into_response()
    }
}

/// The body of `GET /get`, as the demo declares it.
#[derive(serde::Serialize)]
struct UserReply {
    user: std::borrow::Cow<'static, str>,
}

/// Whether `BENCH_HANDLER=demo` is set (read at start-up).
fn demo_handlers() -> bool {
    DEMO_HANDLERS.load(std::sync::atomic::Ordering::Relaxed)
}

static DEMO_HANDLERS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Reads `BENCH_HANDLER` into `DEMO_HANDLERS`; exits with a message on an
/// unknown value.
fn read_handler() {
    match std::env::var("BENCH_HANDLER").as_deref() {
        Err(_) | Ok("constant") => {}
        Ok("demo") => DEMO_HANDLERS.store(true, std::sync::atomic::Ordering::Relaxed),
        Ok(other) => {
            eprintln!("BENCH_HANDLER: expected demo or constant, got {other:?}");
            std::process::exit(2)
        }
    }
}

/// The `Set-Cookie` of `GET /views`, from `BENCH_COOKIE` (set at start-up).
static COOKIE: std::sync::OnceLock<Option<axum::http::HeaderValue>> = std::sync::OnceLock::new();

/// Reads `BENCH_COOKIE` into `COOKIE`; exits with a message when it cannot be
/// a header value.
fn read_cookie() {
    let cookie = std::env::var("BENCH_COOKIE").ok().map(|value| {
        axum::http::HeaderValue::from_str(&format!("id={value}; Path=/; HttpOnly")).unwrap_or_else(
            |_| {
                eprintln!("BENCH_COOKIE: not a valid header value: {value:?}");
                std::process::exit(2)
            },
        )
    });
    let _ = COOKIE.set(cookie);
}

/// Loop iterations per request for `BENCH_SPIN_NS` (0: none).
static SPIN_ITERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A dependent chain of multiplications: about one iteration per few cycles,
/// the same on every call, touching no memory.
#[inline(never)]
fn burn(iterations: u64) -> u64 {
    let mut x = std::hint::black_box(0x9e37_79b9_7f4a_7c15_u64);
    for _ in 0..iterations {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    x
}

fn spin() {
    let n = SPIN_ITERATIONS.load(std::sync::atomic::Ordering::Relaxed);
    if n > 0 {
        std::hint::black_box(burn(n));
    }
}

/// Sets `SPIN_ITERATIONS` from `BENCH_SPIN_NS`, timing `burn` on this
/// (pinned) CPU in 20 slices of a million iterations (a few tens of
/// milliseconds) and keeping the fastest.
fn calibrate_spin() {
    let ns: u64 = match std::env::var("BENCH_SPIN_NS") {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("BENCH_SPIN_NS: not a number of nanoseconds: {v:?}");
            std::process::exit(2)
        }),
        Err(_) => return,
    };
    if ns == 0 {
        return;
    }
    const PROBE: u64 = 1_000_000;
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = std::time::Instant::now();
        std::hint::black_box(burn(PROBE));
        best = best.min(t.elapsed().as_nanos() as f64 / PROBE as f64);
    }
    let iterations = (ns as f64 / best).round().max(1.0) as u64;
    eprintln!("BENCH_SPIN_NS={ns}: {iterations} iterations per request ({best:.3} ns each)");
    SPIN_ITERATIONS.store(iterations, std::sync::atomic::Ordering::Relaxed);
}

fn app() -> Router {
    Router::new()
        // Session routes.
        .route("/views", get(views))
        .route(
            "/set",
            axum::routing::post(|| async { text("Session set") }),
        )
        .route("/get", get(get_user))
        .route("/destroy", get(|| async { text("Session destroyed") }))
        .route(
            "/auth/login",
            axum::routing::post(|| async { json(r#"{"message":"Logged in"}"#) }),
        )
        .route(
            "/auth/profile",
            get(|| async { json(r#"{"user":{"username":"alice"}}"#) }),
        )
        .route(
            "/auth/logout",
            get(|| async { json(r#"{"message":"Logged out"}"#) }),
        )
        .route(
            "/cart",
            get(|| async { json("[]") }).post(|| async { json(r#"["apple"]"#) }),
        )
        .route(
            "/flash",
            get(|| async { json(r#"{"flash":null}"#) }).post(|| async { text("Flash set") }),
        )
        // Plain and signed cookie routes (no cookie handling: constants).
        .route("/set-theme", get(|| async { text("Theme cookie set") }))
        .route(
            "/get-theme",
            get(|| async { text("Current theme: default") }),
        )
        .route(
            "/clear-theme",
            get(|| async { text("Theme cookie cleared") }),
        )
        .route("/signed/set", get(|| async { text("Signed cookie set") }))
        .route("/signed/get", get(|| async { text("Signed value: none") }))
        .fallback(|| async { (StatusCode::NOT_FOUND, TEXT, "Not found") })
}

fn main() {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().unwrap_or_else(|_| {
            eprintln!("PORT: not a port number: {p:?}");
            std::process::exit(2)
        }),
        Err(_) => 3000,
    };
    calibrate_spin();
    read_cookie();
    read_handler();
    runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| {
                eprintln!("PORT: cannot bind 127.0.0.1:{port}: {e}");
                std::process::exit(1)
            });
        println!("listening on http://127.0.0.1:{port}");
        axum::serve(listener, app()).await.expect("server error");
    });
}

/// One worker thread, as the benchmark requires (see the module docs).
fn runtime() -> tokio::runtime::Runtime {
    let mut b = match std::env::var("BENCH_RUNTIME").as_deref() {
        Ok("multi_thread") => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
                b.worker_threads(1);
            }
            b
        }
        Ok("current_thread") | Err(_) => tokio::runtime::Builder::new_current_thread(),
        Ok(other) => {
            eprintln!("BENCH_RUNTIME: expected current_thread or multi_thread, got {other:?}");
            std::process::exit(2)
        }
    };
    b.enable_all().build().expect("tokio runtime")
}
