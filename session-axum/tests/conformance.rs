//! The conformance suite's adapter cases against the demo app
//! (`examples/demo.rs`) over real HTTP: with the suite's memory store, with
//! a memory store on the wall clock (so no case leans on the store hiding
//! records the suite's manual clock has expired), on the Redis at
//! `REDIS_URL` (default `redis://127.0.0.1:6379`; `scripts/test` starts
//! one), and in cookie-store mode. Each Redis case's stores get their own
//! key prefix from the suite, so the cases run in parallel.

#[allow(dead_code)] // its `main` is the example's, unused here
#[path = "../examples/demo.rs"]
mod demo;

use axum::extract::Request;
use conformance_tests::adapter::{Harness, Running};
use conformance_tests::adapter_suite;
use session_axum::core::BoxError;
use session_axum::{MemoryStore, SessionConfig};
use session_redis::RedisStore;

/// Serves the demo app with the suite's config, on its own thread and
/// tokio runtime.
struct AxumHarness;

impl Harness for AxumHarness {
    fn serve(config: SessionConfig) -> Result<Running, BoxError> {
        let app = demo::app(config)?;
        Ok(Running::spawn(move |listener, shutdown| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                listener
                    .set_nonblocking(true)
                    .expect("a non-blocking listener");
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                axum::serve(
                    listener,
                    axum::ServiceExt::<Request>::into_make_service(app),
                )
                .with_graceful_shutdown(shutdown)
                .await
                .expect("the demo serves");
            });
        })?)
    }
}

/// The Redis the `redis_store` cases use.
fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

adapter_suite!(memory_store, AxumHarness, storage: server);
adapter_suite!(wall_clock_memory_store, AxumHarness, storage: store(|_ctx| async move {
    MemoryStore::new()
}));
adapter_suite!(redis_store, AxumHarness, storage: store(|ctx| async move {
    let url = redis_url();
    RedisStore::builder(url.clone())
        .key_prefix(ctx.prefix())
        .connect()
        .await
        .unwrap_or_else(|e| panic!("Redis is not reachable at {url} ({e}); run scripts/test or set REDIS_URL"))
}));
adapter_suite!(cookie_store, AxumHarness, storage: cookie);

/// A config with a fresh key, for the in-process tests below.
fn fresh_config() -> SessionConfig {
    SessionConfig::new(session_axum::KeyRing::new(session_axum::Key::generate()))
}

/// `GET path` on `app` in process, with `cookie` as the `Cookie` header.
async fn get(
    app: &session_axum::SessionService<axum::Router>,
    path: &str,
    cookie: Option<&str>,
) -> axum::response::Response {
    use tower::ServiceExt as _;
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    app.clone()
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap()
}

/// The body of `response`, at most 1 KB.
async fn body(response: axum::response::Response) -> axum::body::Bytes {
    axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap()
}

/// Beyond the contract (which leaves it open): a `/signed/set` value too
/// long for a cookie is refused with 400 and no `Set-Cookie`, rather than
/// answered "set" while browsers would drop it.
#[tokio::test]
async fn a_signed_value_too_long_for_a_cookie_is_refused() {
    let app = demo::app(fresh_config()).unwrap();
    let set_signed = |value: String| format!("/signed/set?value={value}");
    let refused = get(&app, &set_signed("x".repeat(3100)), None).await;
    assert_eq!(refused.status(), axum::http::StatusCode::BAD_REQUEST);
    assert!(refused.headers().get("set-cookie").is_none());
    assert_eq!(&body(refused).await[..], b"Signed cookie not set");

    let set = get(&app, &set_signed("x".repeat(2000)), None).await;
    assert_eq!(set.status(), axum::http::StatusCode::OK);
    assert!(set.headers().get("set-cookie").is_some());
}

/// The demo's own choices where the contract names none: `pref` carries
/// the attributes a re-issue under the current key gives it (`SameSite=Lax`,
/// and `Secure` when the session cookie has it), and an empty `theme`
/// cookie is no theme.
#[tokio::test]
async fn pref_has_the_reissue_attributes_and_an_empty_theme_is_the_default() {
    for secure in [false, true] {
        let app = demo::app(fresh_config().with_secure(secure)).unwrap();
        let set = get(&app, "/signed/set?value=compact", None).await;
        let cookie = set.headers()["set-cookie"].to_str().unwrap();
        assert!(cookie.starts_with("pref="), "{cookie}");
        assert!(cookie.contains("; SameSite=Lax"), "{cookie}");
        assert_eq!(cookie.contains("; Secure"), secure, "{cookie}");
    }
    let app = demo::app(fresh_config()).unwrap();
    let theme = get(&app, "/get-theme", Some("theme=")).await;
    assert_eq!(&body(theme).await[..], b"Current theme: default");
}

/// A memory store whose loads fail while `down` is set.
#[derive(Debug, Default)]
struct LoadsFailWhenDown {
    inner: MemoryStore,
    down: std::sync::atomic::AtomicBool,
}

#[session_axum::core::async_trait]
impl session_axum::SessionStore for LoadsFailWhenDown {
    async fn load(
        &self,
        key: &session_axum::core::StoreKey,
    ) -> Result<Option<session_axum::core::Record>, session_axum::StoreError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(session_axum::StoreError::backend("store down"));
        }
        self.inner.load(key).await
    }
    async fn create(
        &self,
        key: &session_axum::core::StoreKey,
        record: &session_axum::core::Record,
    ) -> Result<(), session_axum::StoreError> {
        self.inner.create(key, record).await
    }
    async fn save(
        &self,
        key: &session_axum::core::StoreKey,
        record: &session_axum::core::Record,
        expected_version: u64,
    ) -> Result<session_axum::core::SaveOutcome, session_axum::StoreError> {
        self.inner.save(key, record, expected_version).await
    }
    async fn delete(
        &self,
        key: &session_axum::core::StoreKey,
    ) -> Result<(), session_axum::StoreError> {
        self.inner.delete(key).await
    }
}

/// A bad body is the contract's 400 even when the session cannot be
/// loaded; a good one then gets the store's 500.
#[tokio::test]
async fn a_bad_body_is_a_400_even_when_the_store_is_down() {
    use tower::ServiceExt as _;
    let store = std::sync::Arc::new(LoadsFailWhenDown::default());
    let app = demo::app(fresh_config().with_store(store.clone())).unwrap();
    let first = get(&app, "/views", None).await;
    let cookie = first.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    store.down.store(true, std::sync::atomic::Ordering::Relaxed);

    for (path, body, status) in [
        ("/cart", "{\"item\": 5}", 400),
        ("/set", "not json", 400),
        ("/flash", "{}", 400),
        ("/auth/login", "[]", 400),
        ("/cart", "{\"item\": \"apple\"}", 500),
    ] {
        let request = Request::post(path)
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path} {body}");
    }
}
