//! Peer server for the load benchmark: axum 0.8 + tower-sessions 0.14 with
//! tower-sessions-redis-store 0.16 (a `fred` 10 pool of ONE connection,
//! commands pipelined on it, like the single multiplexed connection of the
//! other Redis servers) and a signed id cookie, idle expiry 3600 s.
//!
//! Round trips, as the store is written: loading a session is one `GET`,
//! saving one a `SET … XX EXAT` (last writer wins, no version check),
//! creating one a `SET … NX EXAT`. tower-sessions saves only a session that
//! changed, so `/get` with a session is one round trip and `/views` two.
//!
//! Serves the two benchmarked routes of the demo contract
//! (`/work/shared/demo-contract.md`): `GET /views` (counter "views" in the
//! session, body `Views: N`) and `GET /get` (reads "user", body
//! `{"user":"..."}` or `{"user":"No user set"}`).
//!
//! Environment: `PORT` (default 3000); `REDIS_URL` (default
//! `redis://127.0.0.1:6379`); `SESSION_SECRET` (64 bytes as 128 hex chars;
//! default a fixed key, this is a benchmark); `BENCH_RUNTIME` = `current_thread` (default) or `multi_thread` (one
//! worker unless `TOKIO_WORKER_THREADS` says otherwise).

use axum::{
    Router,
    http::{StatusCode, header::CONTENT_TYPE},
    response::IntoResponse,
    routing::get,
};
use tower_sessions::{
    Expiry, Session, SessionManagerLayer,
    cookie::{Key, SameSite, time::Duration},
};
use tower_sessions_redis_store::{
    RedisStore,
    fred::prelude::{ClientLike, Config, Pool},
};

async fn views(session: Session) -> impl IntoResponse {
    let n: u64 = session
        .get("views")
        .await
        .expect("session load")
        .unwrap_or(0)
        + 1;
    session.insert("views", n).await.expect("session insert");
    format!("Views: {n}")
}

async fn get_user(session: Session) -> impl IntoResponse {
    let user: Option<String> = session.get("user").await.expect("session load");
    let user = user.as_deref().unwrap_or("No user set");
    let body = serde_json::json!({ "user": user }).to_string();
    ([(CONTENT_TYPE, "application/json")], body)
}

fn routes() -> Router {
    Router::new()
        .route("/views", get(views))
        .route("/get", get(get_user))
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not found") })
}

fn app(pool: Pool) -> Router {
    // Cookie as in the demo contract: name `id` (the default), Path=/,
    // HttpOnly (default), SameSite=Lax, no Secure (plain http).
    let layer = SessionManagerLayer::new(RedisStore::new(pool))
        .with_secure(false)
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(Duration::seconds(3600)))
        .with_signed(key());
    routes().layer(layer)
}

/// A pool of one connection to `REDIS_URL`, connected; exits when Redis
/// cannot be reached.
async fn connect() -> Pool {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("REDIS_URL: cannot connect to {url}: {e}");
        std::process::exit(1)
    };
    let config = Config::from_url(&url).unwrap_or_else(|e| fail(&e));
    let pool = Pool::new(config, None, None, None, 1).unwrap_or_else(|e| fail(&e));
    // Connects and waits for it; the connection tasks keep running on the
    // runtime after this handle is dropped.
    let _ = pool.init().await.unwrap_or_else(|e| fail(&e));
    pool
}

/// `SESSION_SECRET` as 128 hex chars, or a fixed benchmark key.
fn key() -> Key {
    let bytes: Vec<u8> = match std::env::var("SESSION_SECRET") {
        Ok(hex) => decode_hex(&hex).unwrap_or_else(|| {
            eprintln!("SESSION_SECRET: expected 128 hex chars");
            std::process::exit(2)
        }),
        Err(_) => (0u8..64).collect(),
    };
    Key::try_from(&bytes[..]).unwrap_or_else(|e| {
        eprintln!("SESSION_SECRET: {e}");
        std::process::exit(2)
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 128 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn main() {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().unwrap_or_else(|_| {
            eprintln!("PORT: not a port number: {p:?}");
            std::process::exit(2)
        }),
        Err(_) => 3000,
    };
    runtime().block_on(async move {
        let app = app(connect().await);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| {
                eprintln!("PORT: cannot bind 127.0.0.1:{port}: {e}");
                std::process::exit(1)
            });
        println!("listening on http://127.0.0.1:{port}");
        axum::serve(listener, app).await.expect("server error");
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
