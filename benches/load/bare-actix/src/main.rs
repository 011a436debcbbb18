//! Baseline server for the load benchmark, on actix-web 4: the reference for
//! the actix peers (`peer-actix-redis`), as `bare-axum` is for the axum ones.
//!
//! Serves every route of the demo contract (`/work/shared/demo-contract.md`)
//! with a constant body and no sessions, cookies or body parsing at all.
//! One worker (`HttpServer::workers(1)`); actix also keeps its accept loop
//! on the main thread, as every actix server does.
//!
//! Environment: `PORT` (default 3000).

use actix_web::{App, HttpResponse, HttpServer, web};

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

fn text(body: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(TEXT).body(body)
}

fn json(body: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(JSON).body(body)
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg
        // Session routes.
        .route("/views", web::get().to(|| async { text("Views: 1") }))
        .route("/set", web::post().to(|| async { text("Session set") }))
        .route("/get", web::get().to(|| async { json(r#"{"user":"No user set"}"#) }))
        .route("/destroy", web::get().to(|| async { text("Session destroyed") }))
        .route(
            "/auth/login",
            web::post().to(|| async { json(r#"{"message":"Logged in"}"#) }),
        )
        .route(
            "/auth/profile",
            web::get().to(|| async { json(r#"{"user":{"username":"alice"}}"#) }),
        )
        .route(
            "/auth/logout",
            web::get().to(|| async { json(r#"{"message":"Logged out"}"#) }),
        )
        .route("/cart", web::get().to(|| async { json("[]") }))
        .route("/cart", web::post().to(|| async { json(r#"["apple"]"#) }))
        .route("/flash", web::get().to(|| async { json(r#"{"flash":null}"#) }))
        .route("/flash", web::post().to(|| async { text("Flash set") }))
        // Plain and signed cookie routes (no cookie handling: constants).
        .route("/set-theme", web::get().to(|| async { text("Theme cookie set") }))
        .route("/get-theme", web::get().to(|| async { text("Current theme: default") }))
        .route("/clear-theme", web::get().to(|| async { text("Theme cookie cleared") }))
        .route("/signed/set", web::get().to(|| async { text("Signed cookie set") }))
        .route("/signed/get", web::get().to(|| async { text("Signed value: none") }));
}

fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().unwrap_or_else(|_| {
            eprintln!("PORT: not a port number: {p:?}");
            std::process::exit(2)
        }),
        Err(_) => 3000,
    };
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| {
            App::new().configure(routes).default_service(web::to(|| async {
                HttpResponse::NotFound().content_type(TEXT).body("Not found")
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
