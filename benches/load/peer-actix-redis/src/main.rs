//! Peer server for the load benchmark: actix-web 4 + actix-session 0.11 with
//! its `RedisSessionStore` (the `redis` crate's `ConnectionManager`: one
//! multiplexed connection), as its docs set it up.
//!
//! Serves the two benchmarked routes of the demo contract
//! (`/work/shared/demo-contract.md`): `GET /views` (counter "views" in the
//! session, body `Views: N`) and `GET /get` (reads "user", body
//! `{"user":"..."}` or `{"user":"No user set"}`).
//!
//! Cookie as in the contract: name `id`, Path=/, HttpOnly, SameSite=Lax, not
//! Secure (plain http); its value (the session key) signed, not encrypted
//! (`CookieContentSecurity::Signed`), like the signed id cookie of the
//! tower-sessions peers. Sessions expire after 3600 s without a change
//! (`PersistentSession`, TTL extended on state changes, actix-session's
//! default policy: a read-only request costs one `GET`, no write).
//!
//! One worker (`HttpServer::workers(1)`). The store is built once on the
//! main thread and cloned into the worker's app, as actix-session's docs
//! do, so the connection's driver task runs on the main thread.
//!
//! Environment: `PORT` (default 3000); `REDIS_URL` (default
//! `redis://127.0.0.1:6379`); `SESSION_SECRET` (64 bytes as 128 hex chars;
//! default a fixed key, this is a benchmark).

use actix_session::{
    Session, SessionMiddleware,
    config::{CookieContentSecurity, PersistentSession},
    storage::RedisSessionStore,
};
use actix_web::{
    App, HttpResponse, HttpServer,
    cookie::{Key, SameSite, time::Duration},
    web,
};

async fn views(session: Session) -> actix_web::Result<HttpResponse> {
    let n = session.get::<u64>("views")?.unwrap_or(0) + 1;
    session.insert("views", n)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(format!("Views: {n}")))
}

async fn get_user(session: Session) -> actix_web::Result<HttpResponse> {
    let user: Option<String> = session.get("user")?;
    let user = user.as_deref().unwrap_or("No user set");
    let body = serde_json::json!({ "user": user }).to_string();
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
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

fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().unwrap_or_else(|_| {
            eprintln!("PORT: not a port number: {p:?}");
            std::process::exit(2)
        }),
        Err(_) => 3000,
    };
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let key = key();
    actix_web::rt::System::new().block_on(async move {
        let store = RedisSessionStore::new(url.as_str()).await.unwrap_or_else(|e| {
            eprintln!("REDIS_URL: cannot connect to {url}: {e}");
            std::process::exit(1)
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(
                    SessionMiddleware::builder(store.clone(), key.clone())
                        .cookie_name("id".to_owned())
                        .cookie_secure(false)
                        .cookie_same_site(SameSite::Lax)
                        .cookie_http_only(true)
                        .cookie_content_security(CookieContentSecurity::Signed)
                        .session_lifecycle(
                            PersistentSession::default().session_ttl(Duration::seconds(3600)),
                        )
                        .build(),
                )
                .route("/views", web::get().to(views))
                .route("/get", web::get().to(get_user))
                .default_service(web::to(|| async {
                    HttpResponse::NotFound()
                        .content_type("text/plain; charset=utf-8")
                        .body("Not found")
                }))
        })
        .workers(1)
        // run.sh stops servers with SIGTERM after wrk has closed its connections.
        .shutdown_timeout(1)
        .bind(("127.0.0.1", port))
        .unwrap_or_else(|e| {
            eprintln!("PORT: cannot bind 127.0.0.1:{port}: {e}");
            std::process::exit(1)
        });
        println!("listening on http://127.0.0.1:{port}");
        server.run().await
    })
}
