//! The axum-specific edges of the adapter: laziness, nesting, merging,
//! state, other layers, a missing layer, and failing stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE, VARY};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use http_body_util::BodyExt as _;
use session_axum::core::{Record, SaveOutcome, StoreKey, async_trait};
use session_axum::{
    Cookie, Cookies, HandlerError, Key, KeyRing, Lifetime, MemoryStore, Session, SessionConfig,
    SessionError, SessionFailure, SessionLayer, SessionRejection, SessionStore, Storage,
    StoreError,
};
use tokio::sync::oneshot;
use tower::ServiceExt as _;

/// A store that counts every call, around a [`MemoryStore`].
#[derive(Debug, Default)]
struct CountingStore {
    inner: MemoryStore,
    loads: AtomicUsize,
    writes: AtomicUsize,
}

impl CountingStore {
    fn calls(&self) -> (usize, usize) {
        (
            self.loads.load(Ordering::SeqCst),
            self.writes.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl SessionStore for CountingStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key).await
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.create(key, record).await
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.save(key, record, expected_version).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key).await
    }
}

/// A store whose loads or writes fail.
#[derive(Debug, Default)]
struct FailingStore {
    inner: MemoryStore,
    fail_loads: bool,
}

fn backend_down() -> StoreError {
    StoreError::backend(std::io::Error::other("backend down"))
}

#[async_trait]
impl SessionStore for FailingStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        if self.fail_loads {
            return Err(backend_down());
        }
        self.inner.load(key).await
    }

    async fn create(&self, _: &StoreKey, _: &Record) -> Result<(), StoreError> {
        Err(backend_down())
    }

    async fn save(&self, _: &StoreKey, _: &Record, _: u64) -> Result<SaveOutcome, StoreError> {
        Err(backend_down())
    }

    async fn delete(&self, _: &StoreKey) -> Result<(), StoreError> {
        Err(backend_down())
    }
}

fn config() -> SessionConfig {
    SessionConfig::new(KeyRing::new(Key::generate()))
}

fn layer_with(store: Arc<dyn SessionStore>) -> SessionLayer {
    SessionLayer::new(config().with_store(store)).unwrap()
}

struct Reply {
    status: StatusCode,
    outer: Option<String>,
    set_cookies: Vec<String>,
    /// The `Vary` header values, in order.
    vary: Vec<String>,
    /// The `Cache-Control` header values, in order.
    cache_control: Vec<String>,
    body: String,
}

impl Reply {
    /// The `name=value` pair of the session cookie this reply set (the
    /// last one, should there be more: what a browser keeps).
    fn session_cookie(&self) -> String {
        self.set_cookies
            .iter()
            .rfind(|c| c.starts_with("id="))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .expect("a session cookie")
    }
}

async fn send(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    let mut request = axum::http::Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let outer = response
        .headers()
        .get("x-outer")
        .map(|v| v.to_str().unwrap().to_owned());
    let set_cookies = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let values = |name| {
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (vary, cache_control) = (values(VARY), values(CACHE_CONTROL));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        outer,
        set_cookies,
        vary,
        cache_control,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn views(session: Session) -> String {
    let n = session
        .update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
        .unwrap();
    format!("Views: {n}")
}

async fn plain() -> &'static str {
    "plain"
}

/// "Remember me" through the extractor: the log-in's cookie says thirty
/// days, or is a browser-session cookie, and the session keeps its
/// lifetime on later requests.
#[tokio::test]
async fn a_login_chooses_the_sessions_lifetime() {
    async fn login(
        session: Session,
        axum::extract::Query(form): axum::extract::Query<Vec<(String, String)>>,
    ) -> &'static str {
        session.regenerate();
        session.insert("user", "alice").unwrap();
        let remember = form.iter().any(|(k, v)| k == "remember" && v == "1");
        session.set_lifetime(if remember {
            Lifetime::default()
                .with_idle_timeout(Some(time::Duration::days(30)))
                .with_absolute_timeout(None)
        } else {
            Lifetime::default().with_persistent(false)
        });
        "Logged in"
    }
    async fn remembered(session: Session) -> String {
        let lifetime = session.lifetime();
        format!("{:?} {:?}", lifetime.idle_timeout(), lifetime.persistent())
    }
    let app = Router::new()
        .route("/views", get(views))
        .route("/login", get(login))
        .route("/remembered", get(remembered))
        .layer(layer_with(Arc::new(MemoryStore::new())));

    // Logged in from an existing session: a new id, and its cookie says
    // thirty days.
    let visit = send(&app, "/views", None).await;
    let reply = send(&app, "/login?remember=1", Some(&visit.session_cookie())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_ne!(reply.session_cookie(), visit.session_cookie(), "a new id");
    let set = reply
        .set_cookies
        .iter()
        .find(|c| c.starts_with("id="))
        .unwrap();
    assert!(set.ends_with("; Max-Age=2592000"), "{set}");
    let later = send(&app, "/remembered", Some(&reply.session_cookie())).await;
    let thirty_days = format!("{:?}", Some(Some(time::Duration::days(30))));
    assert_eq!(later.body, format!("{thirty_days} None"));

    let reply = send(&app, "/login", None).await;
    let set = reply
        .set_cookies
        .iter()
        .find(|c| c.starts_with("id="))
        .unwrap();
    assert!(!set.contains("Max-Age"), "a browser-session cookie: {set}");
    let later = send(&app, "/remembered", Some(&reply.session_cookie())).await;
    assert_eq!(later.body, "None Some(false)");
}

#[tokio::test]
async fn route_that_never_extracts_costs_no_store_call_and_no_cookie() {
    let store = Arc::new(CountingStore::default());
    let app = Router::new()
        .route("/views", get(views))
        .route("/plain", get(plain))
        .layer(layer_with(store.clone()));

    let first = send(&app, "/views", None).await;
    assert_eq!(first.body, "Views: 1");
    let cookie = first.session_cookie();
    assert_eq!(store.calls(), (0, 1), "a new session: no load, one create");

    let reply = send(&app, "/plain", Some(&cookie)).await;
    assert_eq!(reply.body, "plain");
    assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
    assert_eq!(store.calls(), (0, 1), "a valid cookie alone loads nothing");

    assert_eq!(send(&app, "/views", Some(&cookie)).await.body, "Views: 2");
    assert_eq!(store.calls(), (1, 2));
}

#[tokio::test]
async fn extracting_twice_loads_once_and_shares_the_handle() {
    let store = Arc::new(CountingStore::default());
    let app = Router::new()
        .route("/views", get(views))
        .route(
            "/twice",
            get(|first: Session, second: Session| async move {
                first.insert("by", "first").unwrap();
                second.get::<String>("by").unwrap().unwrap_or_default()
            }),
        )
        .layer(layer_with(store.clone()));
    let cookie = send(&app, "/views", None).await.session_cookie();

    let reply = send(&app, "/twice", Some(&cookie)).await;
    assert_eq!(reply.body, "first");
    assert_eq!(store.calls().0, 1, "one load for two extractions");
}

#[tokio::test]
async fn read_only_request_without_cookie_touches_nothing() {
    let store = Arc::new(CountingStore::default());
    let app = Router::new()
        .route(
            "/peek",
            get(
                |s: Session| async move { s.get::<u64>("views").unwrap().unwrap_or(0).to_string() },
            ),
        )
        .layer(layer_with(store.clone()));
    let reply = send(&app, "/peek", None).await;
    assert_eq!(reply.body, "0");
    assert!(reply.set_cookies.is_empty());
    assert_eq!(store.calls(), (0, 0));
}

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

#[tokio::test]
async fn works_under_nest_and_merge_with_state() {
    let api: Router<AppState> = Router::new().route(
        "/hello/{name}",
        get(
            |State(state): State<AppState>,
             axum::extract::Path(name): axum::extract::Path<String>,
             session: Session| async move {
                session.insert("name", &name).unwrap();
                format!("{} {name}", state.greeting)
            },
        ),
    );
    let other: Router<AppState> = Router::new().route(
        "/whoami",
        get(|session: Session| async move {
            session.get::<String>("name").unwrap().unwrap_or_default()
        }),
    );
    let app: Router = Router::new()
        .nest("/api", api)
        .merge(other)
        .route("/views", get(views))
        .layer(SessionLayer::new(config()).unwrap())
        .with_state(AppState { greeting: "hello" });

    let reply = send(&app, "/api/hello/ada", None).await;
    assert_eq!(reply.body, "hello ada");
    let cookie = reply.session_cookie();
    assert_eq!(send(&app, "/whoami", Some(&cookie)).await.body, "ada");
    assert_eq!(send(&app, "/views", Some(&cookie)).await.body, "Views: 1");
}

#[tokio::test]
async fn layer_on_a_nested_router_only_covers_that_router() {
    let sessions = Router::new()
        .route("/views", get(views))
        .layer(SessionLayer::new(config()).unwrap());
    let app = Router::new()
        .nest("/with", sessions)
        .route("/without", get(views));
    assert_eq!(send(&app, "/with/views", None).await.body, "Views: 1");
    let reply = send(&app, "/without", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.contains("SessionLayer is not installed"));
}

/// The same layer on a nested router and on the app around it, with a
/// middleware between them that uses the session: both layers hold one
/// slot, so the middleware and the handler share one session and one
/// cookie is sent.
#[tokio::test]
async fn one_layer_installed_twice_serves_one_session() {
    async fn mark(session: Session, request: Request, next: Next) -> Response {
        session.insert("marked", &true).unwrap();
        next.run(request).await
    }
    async fn marked_views(session: Session, cookies: Cookies) -> String {
        cookies.add(Cookie::new("theme", "dark"));
        let marked: Option<bool> = session.get("marked").unwrap();
        let n = session
            .update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
            .unwrap();
        format!("{marked:?} {n}")
    }
    let layer = SessionLayer::new(config()).unwrap();
    let api = Router::new()
        .route("/views", get(marked_views))
        .layer(layer.clone());
    let app = Router::new()
        .nest("/api", api)
        .layer(middleware::from_fn(mark))
        .layer(layer);

    let first = send(&app, "/api/views", None).await;
    assert_eq!(first.body, "Some(true) 1");
    // The session's cookie and the jar's, each once.
    assert_eq!(first.set_cookies.len(), 2, "{:?}", first.set_cookies);
    assert_eq!(first.set_cookies[1], "theme=dark; Path=/");
    let cookie = first.session_cookie();
    let second = send(&app, "/api/views", Some(&cookie)).await;
    assert_eq!(second.body, "Some(true) 2");
}

/// Clones of one layer around one request, and middleware between them
/// that opens the session only after the inner one saved it (from a copy
/// of the request it kept). In cookie-store mode, with a touch due, a
/// second plan from the request's old cookie would send that cookie after
/// the log-in's new one, undoing the log-in: the slot is planned once.
#[tokio::test]
async fn a_session_opened_after_the_inner_clone_saved_is_not_planned_again() {
    use axum::extract::FromRequestParts as _;
    async fn look_after(request: Request, next: Next) -> Response {
        let (parts, body) = request.into_parts();
        let mut kept = parts.clone();
        let response = next.run(Request::from_parts(parts, body)).await;
        // Opens the slot again, from the cookie the request brought.
        let session = Session::from_request_parts(&mut kept, &()).await.unwrap();
        let _ = session.get_value("views");
        response
    }
    async fn login(session: Session) -> &'static str {
        session.regenerate();
        session.insert("user", "alice").unwrap();
        "Logged in"
    }
    async fn whoami(session: Session) -> String {
        format!("{:?}", session.get::<String>("user").unwrap())
    }
    let clock = session_axum::core::ManualClock::new(time::macros::datetime!(2030-01-01 0:00 UTC));
    let layer = SessionLayer::new(
        config()
            .with_storage(session_axum::core::Storage::Cookie)
            .with_clock(Arc::new(clock.clone())),
    )
    .unwrap();
    let api = Router::new()
        .route("/views", get(views))
        .route("/login", get(login))
        .route("/whoami", get(whoami))
        .layer(layer.clone());
    let app = Router::new()
        .nest("/api", api)
        .layer(middleware::from_fn(look_after))
        .layer(layer);

    let first = send(&app, "/api/views", None).await;
    assert_eq!(first.body, "Views: 1");
    clock.advance(time::Duration::minutes(2));
    let login = send(&app, "/api/login", Some(&first.session_cookie())).await;
    assert_eq!(login.body, "Logged in");
    let session_cookies: Vec<_> = login
        .set_cookies
        .iter()
        .filter(|c| c.starts_with("id="))
        .collect();
    assert_eq!(session_cookies.len(), 1, "{:?}", login.set_cookies);
    let me = send(&app, "/api/whoami", Some(&login.session_cookie())).await;
    assert_eq!(me.body, "Some(\"alice\")");
}

/// Clones of one layer around one request, the inner one with its own
/// error response: a failure on the inner one's routes answers with it.
#[tokio::test]
async fn the_inner_of_two_clones_answers_with_its_own_error_response() {
    let layer = layer_with(Arc::new(FailingStore::default()));
    async fn views_and_theme(session: Session, cookies: Cookies) -> String {
        cookies.add(Cookie::new("theme", "dark"));
        views(session).await
    }
    let api = Router::new().route("/views", get(views_and_theme)).layer(
        layer
            .clone()
            .with_error_response(|_| (StatusCode::SERVICE_UNAVAILABLE, "api error")),
    );
    let app = Router::new()
        .nest("/api", api)
        .route("/views", get(views))
        .layer(layer);

    let inner = send(&app, "/api/views", None).await;
    assert_eq!(
        (inner.status, inner.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "api error")
    );
    // Neither layer sends the jar's cookie with the error response.
    assert!(inner.set_cookies.is_empty(), "{:?}", inner.set_cookies);
    let outer = send(&app, "/views", None).await;
    assert_eq!(outer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(outer.body, "Internal Server Error");
}

/// Two layers built apart from one configuration (each with its own
/// memory store) around one request: the inner one serves it, and the
/// mistake is logged.
#[tokio::test]
async fn two_layers_built_apart_with_one_cookie_name_are_warned_about() {
    // The warning is given once per process: no other test here may set
    // two such layers (nextest runs each test in a process of its own).
    let (logged, _guard) = capture_logs(tracing::Level::WARN);
    let shared_config = config();
    let api = Router::new()
        .route("/views", get(views))
        .layer(SessionLayer::new(shared_config.clone()).unwrap());
    let app = Router::new()
        .nest("/api", api)
        .layer(SessionLayer::new(shared_config).unwrap());

    let reply = send(&app, "/api/views", None).await;
    assert_eq!(reply.body, "Views: 1");
    assert_eq!(reply.set_cookies.len(), 1, "{:?}", reply.set_cookies);
    let text = logged.text();
    assert!(
        text.contains("two SessionLayers built separately") && text.contains("cookie=id"),
        "{text}"
    );
}

/// A layer of another engine (another cookie name) inside the app's: the
/// handlers inside see only its session, and the mistake is warned about.
#[tokio::test]
async fn a_layer_of_another_name_inside_hides_the_outer_session_and_is_warned_about() {
    // Once per process, as above: no other test sets two such layers.
    let (logged, _guard) = capture_logs(tracing::Level::WARN);
    let admin = Router::new()
        .route("/views", get(views))
        .layer(SessionLayer::new(config().with_cookie_name("admin")).unwrap());
    let app = Router::new()
        .route("/views", get(views))
        .nest("/admin", admin)
        .layer(SessionLayer::new(config()).unwrap());

    let user = send(&app, "/views", None).await.session_cookie();
    let reply = send(&app, "/admin/views", Some(&user)).await;
    assert_eq!(reply.body, "Views: 1", "the user's session is not seen");
    assert!(
        reply.set_cookies.iter().all(|c| c.starts_with("admin=")),
        "{:?}",
        reply.set_cookies
    );
    let text = logged.text();
    assert!(
        text.contains("installed inside another one's routes")
            && text.contains("outer=id")
            && text.contains("inner=admin"),
        "{text}"
    );
}

#[tokio::test]
async fn works_beside_other_layers_and_in_middleware() {
    // A middleware inside the session layer that uses the session before the
    // handler: both see one session.
    async fn count_visits(session: Session, request: Request, next: Next) -> Response {
        session
            .update("visits", |n: Option<u64>| n.unwrap_or(0) + 1)
            .unwrap();
        next.run(request).await
    }
    let app = Router::new()
        .route(
            "/visits",
            get(
                |session: Session, Extension(tag): Extension<&'static str>| async move {
                    let n: u64 = session.get("visits").unwrap().unwrap_or(0);
                    format!("{tag} {n}")
                },
            ),
        )
        .layer(middleware::from_fn(count_visits))
        .layer(SessionLayer::new(config()).unwrap())
        .layer(Extension("visits:"))
        .layer(middleware::map_response(|mut response: Response| async {
            response
                .headers_mut()
                .insert("x-outer", HeaderValue::from_static("1"));
            response
        }));

    let first = send(&app, "/visits", None).await;
    assert_eq!(first.body, "visits: 1");
    let cookie = first.session_cookie();
    let second = send(&app, "/visits", Some(&cookie)).await;
    assert_eq!(second.body, "visits: 2");
    assert_eq!(second.outer.as_deref(), Some("1"), "the outer layer ran");
}

#[tokio::test]
async fn extractors_without_the_layer_answer_500_naming_it() {
    let app = Router::new().route("/session", get(views)).route(
        "/cookies",
        get(|cookies: Cookies| async move { cookies.get("a").unwrap_or_default() }),
    );
    for path in ["/session", "/cookies"] {
        let reply = send(&app, path, None).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(
            reply.body.contains("SessionLayer is not installed"),
            "{path}: {}",
            reply.body
        );
    }
}

fn custom_error_layer(store: FailingStore) -> SessionLayer {
    layer_with(Arc::new(store)).with_error_response(|error| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("custom: {}", error.to_string().contains("backend down")),
        )
    })
}

/// Marks a response that carries a [`SessionFailure`] with `x-outer`,
/// saying which kind of error it answers: what middleware outside the
/// layer can see.
async fn mark_failures(mut response: Response) -> Response {
    let kind = response
        .extensions()
        .get::<SessionFailure>()
        .map(|failure| match failure.error() {
            SessionError::Deserialize { key, .. } => format!("deserialize {key}"),
            SessionError::Store(_) => "store".to_owned(),
            other => format!("other: {other}"),
        });
    if let Some(kind) = kind {
        response
            .headers_mut()
            .insert("x-outer", HeaderValue::from_str(&kind).unwrap());
    }
    response
}

/// Stores a number under `name`, then reads it as a string: a
/// [`HandlerError`] through `?`.
async fn wrong_type(session: Session) -> Result<String, HandlerError> {
    session.insert("name", &5)?;
    let name: Option<String> = session.get("name")?;
    Ok(format!("{name:?}"))
}

/// A handler's `?` on a session error gives a [`HandlerError`]: answered
/// with the layer's error response, the error visible to middleware
/// outside the layer as a store's failure is; what the handler changed
/// before it failed is saved, as for any response.
#[tokio::test]
async fn a_handler_error_is_answered_with_the_layers_error_response() {
    let store = Arc::new(MemoryStore::new());
    let routes = || Router::new().route("/wrong", get(wrong_type));
    let custom = routes()
        .layer(layer_with(store.clone()).with_error_response(|error| {
            (StatusCode::SERVICE_UNAVAILABLE, format!("custom: {error}"))
        }))
        .layer(middleware::map_response(mark_failures));
    let reply = send(&custom, "/wrong", None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        reply
            .body
            .starts_with("custom: session value for key \"name\""),
        "{}",
        reply.body
    );
    assert_eq!(reply.outer.as_deref(), Some("deserialize name"));
    assert_eq!(reply.set_cookies.len(), 1, "{:?}", reply.set_cookies);
    assert_eq!(store.len(), 1, "the insert before the failure is saved");

    let plain = routes()
        .layer(layer_with(Arc::new(MemoryStore::new())))
        .layer(middleware::map_response(mark_failures));
    let reply = send(&plain, "/wrong", None).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    );
    assert_eq!(reply.outer.as_deref(), Some("deserialize name"));

    // A store's failure carries its error the same way.
    let failing = Router::new()
        .route("/views", get(views))
        .layer(custom_error_layer(FailingStore::default()))
        .layer(middleware::map_response(mark_failures));
    let reply = send(&failing, "/views", None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.outer.as_deref(), Some("store"));
}

/// A `HandlerError` is answered once, by the innermost layer: a layer
/// around it leaves that answer alone; a hook that
/// panics on it gives the default 500; with no layer at all, the
/// `HandlerError`'s own 500 goes out.
#[tokio::test]
async fn a_handler_error_is_answered_by_the_innermost_layer_once() {
    let (logged, _guard) = capture_errors();
    // One engine, two hooks: the two layers share the request's session
    // (no warning about nested engines), and each answers its own way.
    let base = layer_with(Arc::new(MemoryStore::new()));
    let inner = base
        .clone()
        .with_error_response(|_| (StatusCode::SERVICE_UNAVAILABLE, "inner"));
    let outer = base.with_error_response(|_| (StatusCode::BAD_GATEWAY, "outer"));
    let nested = Router::new()
        .nest(
            "/in",
            Router::new().route("/wrong", get(wrong_type)).layer(inner),
        )
        .layer(outer);
    let reply = send(&nested, "/in/wrong", None).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "inner")
    );

    let panicking = Router::new().route("/wrong", get(wrong_type)).layer(
        layer_with(Arc::new(MemoryStore::new()))
            .with_error_response(|_| -> StatusCode { panic!("the hook's own bug") }),
    );
    let reply = send(&panicking, "/wrong", None).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    );
    assert!(
        logged.text().contains("the hook's own bug"),
        "{}",
        logged.text()
    );

    let response = HandlerError::from(SessionError::Random {
        reason: "no entropy".to_owned(),
    })
    .into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let failure = response.extensions().get::<SessionFailure>().unwrap();
    assert!(matches!(failure.error(), SessionError::Random { .. }));
    assert!(logged.text().contains("no entropy"), "{}", logged.text());
}

/// A valid session cookie (`id=...`) signed with `key`.
async fn cookie_signed_with(key: &Key) -> String {
    let setup = Router::new()
        .route("/views", get(views))
        .layer(SessionLayer::new(SessionConfig::new(KeyRing::new(key.clone()))).unwrap());
    send(&setup, "/views", None).await.session_cookie()
}

/// A layer with `key` over a store whose loads fail.
fn failing_loads(key: Key) -> SessionLayer {
    SessionLayer::new(
        SessionConfig::new(KeyRing::new(key)).with_store(Arc::new(FailingStore {
            fail_loads: true,
            ..FailingStore::default()
        })),
    )
    .unwrap()
}

#[tokio::test]
async fn failing_load_answers_the_custom_error_response_without_running_the_handler() {
    let key = Key::generate();
    // Only a cookie that verifies reaches the store.
    let cookie = cookie_signed_with(&key).await;
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let app = Router::new()
        .route(
            "/views",
            get(move |session: Session| async move {
                flag.store(true, Ordering::SeqCst);
                views(session).await
            }),
        )
        .layer(
            failing_loads(key).with_error_response(|_| (StatusCode::SERVICE_UNAVAILABLE, "custom")),
        );

    let reply = send(&app, "/views", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body, "custom");
    assert!(reply.set_cookies.is_empty());
    assert_eq!(reply.vary, ["Cookie"], "the answer depends on the cookie");
    assert!(reply.cache_control.is_empty(), "{:?}", reply.cache_control);
    assert!(!ran.load(Ordering::SeqCst), "the handler must not run");
}

#[tokio::test]
async fn failing_save_replaces_the_response_and_sends_no_cookie() {
    let app = Router::new()
        .route(
            "/both",
            get(|session: Session, cookies: Cookies| async move {
                cookies.add(Cookie::new("theme", "dark"));
                session.insert("user", "alice").unwrap();
                "handler's body"
            }),
        )
        .layer(custom_error_layer(FailingStore::default()));
    let reply = send(&app, "/both", None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body, "custom: true");
    assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
    assert_eq!(reply.vary, ["Cookie"], "as the response it replaced");
    assert!(
        reply.cache_control.is_empty(),
        "no cookie: {:?}",
        reply.cache_control
    );
}

#[tokio::test]
async fn default_error_response_is_a_short_plain_500() {
    let app = Router::new()
        .route("/views", get(views))
        .layer(layer_with(Arc::new(FailingStore::default())));
    let reply = send(&app, "/views", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.body, "Internal Server Error");
    assert!(reply.set_cookies.is_empty());
}

/// An error hook that panics costs the client no connection: the default
/// 500 answers, and the panic is logged.
#[tokio::test]
async fn a_panicking_error_hook_answers_the_default_500() {
    let (logged, _guard) = capture_errors();
    let app = Router::new().route("/views", get(views)).layer(
        layer_with(Arc::new(FailingStore::default()))
            .with_error_response(|_| -> StatusCode { panic!("the hook's own bug") }),
    );
    let reply = send(&app, "/views", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.body, "Internal Server Error");
    assert!(reply.set_cookies.is_empty());
    assert_eq!(reply.vary, ["Cookie"]);
    let text = logged.text();
    assert!(
        text.contains("error response hook panicked") && text.contains("the hook's own bug"),
        "{text}"
    );
}

#[tokio::test]
async fn data_too_deep_to_load_again_is_a_500_and_the_session_keeps_its_data() {
    let app = Router::new()
        .route("/views", get(views))
        .route(
            "/deep",
            get(|session: Session| async move {
                let mut value = serde_json::Value::Null;
                for _ in 0..session_axum::core::MAX_DATA_DEPTH {
                    value = serde_json::Value::Array(vec![value]);
                }
                session.insert_value("deep", value);
                "handler's body"
            }),
        )
        .layer(layer_with(Arc::new(MemoryStore::new())));
    let cookie = send(&app, "/views", None).await.session_cookie();
    let reply = send(&app, "/deep", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.body, "Internal Server Error");
    assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
    // Nothing was written: the session goes on from where it was.
    assert_eq!(send(&app, "/views", Some(&cookie)).await.body, "Views: 2");
}

#[tokio::test]
async fn handler_can_take_the_rejection_itself() {
    let key = Key::generate();
    let cookie = cookie_signed_with(&key).await;
    let app = Router::new()
        .route(
            "/maybe",
            get(|session: Result<Session, SessionRejection>| async move {
                match session {
                    Ok(_) => "session".into_response(),
                    Err(rejection) => {
                        assert!(!rejection.is_missing_layer());
                        assert!(rejection.error().is_some());
                        "degraded".into_response()
                    }
                }
            }),
        )
        .layer(failing_loads(key));
    let reply = send(&app, "/maybe", Some(&cookie)).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "degraded")
    );
}

#[tokio::test]
async fn cookies_extractor_sends_exactly_what_changed() {
    let app = Router::new()
        .route(
            "/read",
            get(|cookies: Cookies| async move { cookies.get("a").unwrap_or_default() }),
        )
        .route(
            "/write",
            get(|cookies: Cookies, again: Cookies| async move {
                cookies.add(Cookie::new("a", "2"));
                again.remove(Cookie::build("b").path("/").build());
                again.get("a").unwrap_or_default()
            }),
        )
        .layer(SessionLayer::new(config()).unwrap());
    let reply = send(&app, "/read", Some("a=1; b=2")).await;
    assert_eq!(reply.body, "1");
    assert!(reply.set_cookies.is_empty());

    let reply = send(&app, "/write", Some("a=1; b=2")).await;
    assert_eq!(reply.body, "2", "extractions share one jar");
    assert_eq!(
        reply.set_cookies,
        [
            "a=2; Path=/",
            "b=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        ]
    );
}

/// What `tracing` writes, kept for a test to read.
#[derive(Clone, Default)]
struct Logged(Arc<std::sync::Mutex<Vec<u8>>>);

impl Logged {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logged {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What is logged at `level` and above on this thread from now until the
/// guard is dropped.
fn capture_logs(level: tracing::Level) -> (Logged, tracing::subscriber::DefaultGuard) {
    let logged = Logged::default();
    let writer = logged.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(level)
        .finish();
    (logged, tracing::subscriber::set_default(subscriber))
}

/// Errors logged on this thread from now until the guard is dropped.
fn capture_errors() -> (Logged, tracing::subscriber::DefaultGuard) {
    capture_logs(tracing::Level::ERROR)
}

/// The spawned task's half of [`after_the_response`].
type TaskHalf = Arc<std::sync::Mutex<Option<(oneshot::Receiver<()>, oneshot::Sender<bool>)>>>;

/// Lets a handler's spawned task run one step after the response: the
/// handler takes the task's half (once), the task waits for the test's
/// signal, runs its step and sends back what it returned.
fn after_the_response() -> (TaskHalf, oneshot::Sender<()>, oneshot::Receiver<bool>) {
    let (start, wait) = oneshot::channel();
    let (done, finished) = oneshot::channel();
    let task = Arc::new(std::sync::Mutex::new(Some((wait, done))));
    (task, start, finished)
}

/// A session handle moved into a task that outlives its request may read,
/// but what it writes after the response is saved by nobody: the first
/// such write is logged at warn level, and the next request sees only what
/// the handler wrote. A cookie jar kept the same way refuses a cookie set
/// after the response, and logs that too.
#[tokio::test]
async fn a_write_from_a_task_that_outlives_the_request_is_logged_not_saved() {
    // One thread: the spawned task logs here too.
    let (logged, _guard) = capture_logs(tracing::Level::WARN);
    let (task, start_signal, finished) = after_the_response();
    let app = Router::new()
        .route("/views", get(views))
        .route(
            "/spawn",
            get(move |session: Session, cookies: Cookies| {
                let (wait, done) = task.lock().unwrap().take().unwrap();
                async move {
                    session.insert("in_handler", &true).unwrap();
                    assert!(cookies.add(Cookie::new("early", "1")));
                    tokio::spawn(async move {
                        wait.await.unwrap();
                        session.insert("too_late", &true).unwrap();
                        let set = cookies.add(Cookie::new("late", "1"));
                        done.send(set).unwrap();
                    });
                    "spawned"
                }
            }),
        )
        .route(
            "/check",
            get(|session: Session| async move {
                format!(
                    "{:?} {:?}",
                    session.get::<bool>("in_handler").unwrap(),
                    session.get::<bool>("too_late").unwrap()
                )
            }),
        )
        .layer(layer_with(Arc::new(MemoryStore::new())));

    let cookie = send(&app, "/views", None).await.session_cookie();
    let spawned = send(&app, "/spawn", Some(&cookie)).await;
    assert_eq!(spawned.body, "spawned");
    assert!(
        spawned.set_cookies.iter().any(|c| c.starts_with("early=1")),
        "{:?}",
        spawned.set_cookies
    );
    assert!(logged.text().is_empty(), "{}", logged.text());

    start_signal.send(()).unwrap();
    assert!(!finished.await.unwrap(), "a cookie set after the response");
    let text = logged.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(
        text.contains("changed after its request finished"),
        "{text}"
    );
    assert!(text.contains("already sent"), "{text}");

    let check = send(&app, "/check", Some(&cookie)).await;
    assert_eq!(check.body, "Some(true) None");
}

/// A jar kept past a response that failed (the save did not go through)
/// is closed all the same: a cookie set through it afterwards is refused
/// and logged, as after a response that succeeded.
#[tokio::test]
async fn a_jar_kept_past_a_failed_response_refuses_changes() {
    let (logged, _guard) = capture_logs(tracing::Level::WARN);
    let (task, start_signal, finished) = after_the_response();
    let app = Router::new()
        .route(
            "/spawn",
            get(move |session: Session, cookies: Cookies| {
                let (wait, done) = task.lock().unwrap().take().unwrap();
                async move {
                    session.insert("n", &1).unwrap();
                    tokio::spawn(async move {
                        wait.await.unwrap();
                        done.send(cookies.add(Cookie::new("late", "1"))).unwrap();
                    });
                    "spawned"
                }
            }),
        )
        .layer(layer_with(Arc::new(FailingStore::default())));

    let reply = send(&app, "/spawn", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    start_signal.send(()).unwrap();
    assert!(!finished.await.unwrap(), "a cookie set after the response");
    let text = logged.text();
    assert!(text.contains("already sent"), "{text}");
}

/// A session that would grow past the memory store's record limit is a
/// 500 whose cause is logged, and keeps what it had: later requests see
/// the data of the last request that fitted.
#[tokio::test]
async fn a_session_too_large_to_store_is_a_500_and_keeps_its_data() {
    let (logged, _guard) = capture_errors();
    let app = Router::new()
        .route(
            "/grow/{n}",
            get(
                |session: Session, axum::extract::Path(n): axum::extract::Path<u32>| async move {
                    session.insert(&format!("k{n}"), &"x".repeat(300)).unwrap();
                    "grown"
                },
            ),
        )
        .route(
            "/keys",
            get(|session: Session| async move { session.keys().join(",") }),
        )
        .layer(SessionLayer::new(config().with_max_record_size(800)).unwrap());

    let first = send(&app, "/grow/1", None).await;
    assert_eq!(first.status, StatusCode::OK);
    let cookie = first.session_cookie();
    assert_eq!(
        send(&app, "/grow/2", Some(&cookie)).await.status,
        StatusCode::OK
    );
    let over = send(&app, "/grow/3", Some(&cookie)).await;
    assert_eq!(over.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(over.set_cookies.is_empty(), "{:?}", over.set_cookies);
    let text = logged.text();
    assert!(
        text.contains("over the store's limit of 800 bytes"),
        "{text}"
    );
    assert_eq!(send(&app, "/keys", Some(&cookie)).await.body, "k1,k2");
}

/// A failing store's error is logged at error level with its cause, for
/// a load and for a save: the 500 alone would not say what broke.
#[tokio::test]
async fn store_failures_are_logged_with_their_cause() {
    // The test runs on one thread, so the request's futures log here.
    let (logged, _guard) = capture_errors();

    let app = Router::new()
        .route("/views", get(views))
        .layer(layer_with(Arc::new(FailingStore::default())));
    assert_eq!(
        send(&app, "/views", None).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let text = logged.text();
    assert!(text.contains("ERROR"), "{text}");
    assert!(text.contains("could not be saved"), "{text}");
    assert!(text.contains("backend down"), "{text}");

    let key = Key::generate();
    let cookie = cookie_signed_with(&key).await;
    let app = Router::new()
        .route("/views", get(views))
        .layer(failing_loads(key));
    assert_eq!(
        send(&app, "/views", Some(&cookie)).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let text = logged.text();
    assert!(text.contains("could not be loaded"), "{text}");
}

/// A handler that takes only `Cookies` costs no store call and sends no
/// session cookie, even when the request carries a valid one.
#[tokio::test]
async fn a_route_taking_only_cookies_loads_no_session() {
    let store = Arc::new(CountingStore::default());
    let app = Router::new()
        .route("/views", get(views))
        .route(
            "/theme",
            get(|cookies: Cookies| async move {
                cookies.add(Cookie::new("theme", "dark"));
                "themed"
            }),
        )
        .layer(layer_with(store.clone()));
    let cookie = send(&app, "/views", None).await.session_cookie();
    assert_eq!(store.calls(), (0, 1));

    let reply = send(&app, "/theme", Some(&cookie)).await;
    assert_eq!(reply.body, "themed");
    assert_eq!(store.calls(), (0, 1), "no load, no write");
    assert_eq!(reply.set_cookies.len(), 1, "{:?}", reply.set_cookies);
    assert!(
        reply.set_cookies[0].starts_with("theme=dark"),
        "{:?}",
        reply.set_cookies
    );
}

/// A response that used the session or the jar varies on `Cookie`, so that
/// a shared cache never hands it (and its `Set-Cookie`) to another
/// visitor; one that used neither is left as it was. A `Vary` the handler
/// set is kept, and added to unless it covers `Cookie` already.
#[tokio::test]
async fn responses_that_use_cookies_vary_on_cookie() {
    async fn peek(session: &Session) {
        drop(session.get_value("x"));
    }
    let app = Router::new()
        .route("/views", get(views))
        .route("/plain", get(plain))
        .route(
            "/theme",
            get(|cookies: Cookies| async move {
                drop(cookies.get("theme"));
                "themed"
            }),
        )
        .route(
            "/encoded",
            get(|session: Session| async move {
                peek(&session).await;
                ([(VARY, "Accept-Encoding")], "encoded")
            }),
        )
        .route(
            "/star",
            get(|session: Session| async move {
                peek(&session).await;
                ([(VARY, "*")], "star")
            }),
        )
        .route(
            "/listed",
            get(|session: Session| async move {
                peek(&session).await;
                ([(VARY, "Origin, cookie")], "listed")
            }),
        )
        .layer(SessionLayer::new(config()).unwrap());

    let first = send(&app, "/views", None).await;
    assert_eq!(first.vary, ["Cookie"], "a new session's response");
    let cookie = first.session_cookie();
    let again = send(&app, "/views", Some(&cookie)).await;
    assert_eq!(
        (again.body.as_str(), again.vary.as_slice()),
        ("Views: 2", &["Cookie".to_owned()][..])
    );
    assert!(send(&app, "/plain", Some(&cookie)).await.vary.is_empty());
    assert!(send(&app, "/nowhere", Some(&cookie)).await.vary.is_empty());
    assert_eq!(send(&app, "/theme", None).await.vary, ["Cookie"]);
    let read_only = send(&app, "/encoded", Some(&cookie)).await;
    assert!(
        read_only.set_cookies.is_empty(),
        "{:?}",
        read_only.set_cookies
    );
    assert_eq!(read_only.vary, ["Accept-Encoding", "Cookie"]);
    assert_eq!(send(&app, "/star", None).await.vary, ["*"]);
    assert_eq!(send(&app, "/listed", None).await.vary, ["Origin, cookie"]);
}

/// A response that sets a cookie (the session's, or the jar's) is kept out
/// of shared caches with `Cache-Control: private`, which wins over a
/// `public` the handler gave; one that already says `private` or
/// `no-store` is left as it is (a qualified `private="…"` is not enough),
/// and so is one that sets no cookie.
#[tokio::test]
async fn responses_that_set_cookies_are_kept_out_of_shared_caches() {
    let app = Router::new()
        .route("/views", get(views))
        .route(
            "/public",
            get(|session: Session| async move {
                session.insert("n", &1).unwrap();
                ([(CACHE_CONTROL, "public, max-age=60")], "public")
            }),
        )
        .route(
            "/no-store",
            get(|session: Session| async move {
                session.insert("n", &1).unwrap();
                ([(CACHE_CONTROL, "no-store")], "no-store")
            }),
        )
        .route(
            "/private",
            get(|session: Session| async move {
                session.insert("n", &1).unwrap();
                ([(CACHE_CONTROL, "Private, max-age=60")], "private")
            }),
        )
        .route(
            "/qualified",
            get(|session: Session| async move {
                session.insert("n", &1).unwrap();
                (
                    [(CACHE_CONTROL, "private=\"x-user\", max-age=60")],
                    "qualified",
                )
            }),
        )
        .route(
            "/theme",
            get(|cookies: Cookies| async move {
                cookies.add(Cookie::new("theme", "dark"));
                "themed"
            }),
        )
        .layer(SessionLayer::new(config()).unwrap());

    let first = send(&app, "/views", None).await;
    assert_eq!(first.cache_control, ["private"]);
    let cookie = first.session_cookie();
    let again = send(&app, "/views", Some(&cookie)).await;
    assert!(again.set_cookies.is_empty(), "{:?}", again.set_cookies);
    assert!(
        again.cache_control.is_empty(),
        "no cookie set: {:?}",
        again.cache_control
    );
    let public = send(&app, "/public", None).await;
    assert_eq!(public.set_cookies.len(), 1, "{:?}", public.set_cookies);
    assert_eq!(public.cache_control, ["public, max-age=60", "private"]);
    assert_eq!(
        send(&app, "/no-store", None).await.cache_control,
        ["no-store"]
    );
    assert_eq!(
        send(&app, "/private", None).await.cache_control,
        ["Private, max-age=60"]
    );
    // `private="x-user"` keeps only that field out of shared caches.
    assert_eq!(
        send(&app, "/qualified", None).await.cache_control,
        ["private=\"x-user\", max-age=60", "private"]
    );
    let themed = send(&app, "/theme", None).await;
    assert_eq!(themed.set_cookies.len(), 1, "{:?}", themed.set_cookies);
    assert_eq!(themed.cache_control, ["private"]);
}

/// With a store that must be waited for, the cookie headers are appended
/// after the commit: the response still varies on `Cookie` and is kept out
/// of shared caches.
#[tokio::test]
async fn cache_headers_come_with_a_store_that_waits_too() {
    let store = Arc::new(CountingStore::default());
    let app = Router::new()
        .route("/views", get(views))
        .layer(layer_with(store.clone()));
    let first = send(&app, "/views", None).await;
    assert_eq!(store.calls(), (0, 1), "a create through the waiting path");
    assert_eq!(first.set_cookies.len(), 1, "{:?}", first.set_cookies);
    assert_eq!(first.vary, ["Cookie"]);
    assert_eq!(first.cache_control, ["private"]);
    let again = send(&app, "/views", Some(&first.session_cookie())).await;
    assert_eq!(again.body, "Views: 2");
    assert_eq!(again.vary, ["Cookie"]);
    assert!(again.cache_control.is_empty(), "{:?}", again.cache_control);
}

/// Private cookies through the layer: encrypted on the wire, read back by
/// the next request, and nothing when tampered with.
#[tokio::test]
async fn private_cookies_round_trip_through_the_layer() {
    let app = Router::new()
        .route(
            "/set",
            get(|cookies: Cookies| async move {
                cookies.add_private(Cookie::new("note", "meet-at-noon"));
            }),
        )
        .route(
            "/get",
            get(|cookies: Cookies| async move {
                cookies
                    .get_private("note")
                    .unwrap_or_else(|| "none".to_owned())
            }),
        )
        .layer(layer_with(Arc::new(MemoryStore::new())));
    let set = send(&app, "/set", None).await;
    let pair = set.set_cookies[0].split(';').next().unwrap().to_owned();
    assert!(pair.starts_with("note="), "{pair}");
    assert!(
        !pair.contains("meet-at-noon"),
        "the value is encrypted: {pair}"
    );

    assert_eq!(send(&app, "/get", Some(&pair)).await.body, "meet-at-noon");
    let mut tampered = pair.into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(send(&app, "/get", Some(&tampered)).await.body, "none");
}

/// A memory store whose saves wait: each signals `entered`, then takes a
/// permit of `go` before it saves (or fails, when `fail` is set), then
/// signals `finished`.
#[derive(Debug)]
struct GatedSaves {
    inner: MemoryStore,
    entered: tokio::sync::Notify,
    go: tokio::sync::Semaphore,
    fail: AtomicBool,
    finished: tokio::sync::Notify,
}

impl GatedSaves {
    fn new() -> Self {
        Self {
            inner: MemoryStore::new(),
            entered: tokio::sync::Notify::new(),
            go: tokio::sync::Semaphore::new(0),
            fail: AtomicBool::new(false),
            finished: tokio::sync::Notify::new(),
        }
    }
}

#[async_trait]
impl SessionStore for GatedSaves {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.inner.load(key).await
    }
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.inner.create(key, record).await
    }
    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.entered.notify_one();
        let _permit = self.go.acquire().await.unwrap();
        let saved = if self.fail.load(Ordering::Relaxed) {
            Err(backend_down())
        } else {
            self.inner.save(key, record, expected_version).await
        };
        self.finished.notify_one();
        saved
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
}

/// `/views` on `store`: one request makes a session, a second one of it
/// (in the span `request{id=7}`, as a `TraceLayer` would give it) goes
/// away while its save waits at the gate. Returns the app and the
/// session's cookie.
async fn abandon_a_save(store: &Arc<GatedSaves>) -> (Router, String) {
    let app = Router::new()
        .route("/views", get(views))
        .layer(layer_with(store.clone()));
    let cookie = send(&app, "/views", None).await.session_cookie();
    let request = axum::http::Request::get("/views")
        .header(COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let client = tokio::spawn(tracing::Instrument::instrument(
        app.clone().oneshot(request),
        tracing::error_span!("request", id = 7),
    ));
    store.entered.notified().await;
    client.abort();
    assert!(client.await.unwrap_err().is_cancelled());
    (app, cookie)
}

/// A client that goes away while its session is being saved drops the
/// response future; the save it started still completes, instead of being
/// cut off at an unknown point.
#[tokio::test]
async fn a_save_in_flight_completes_when_the_client_goes_away() {
    let store = Arc::new(GatedSaves::new());
    let (app, cookie) = abandon_a_save(&store).await;

    store.go.add_permits(3);
    // The next request's save queues behind the abandoned one in its lane
    // (and replays its change onto it); the one after reads both.
    send(&app, "/views", Some(&cookie)).await;
    let fourth = send(&app, "/views", Some(&cookie)).await;
    assert_eq!(
        fourth.body, "Views: 4",
        "the abandoned request's save landed"
    );
}

/// A save that goes on after its client went away, and fails, is logged,
/// in the request's span: there is no response left to carry the error.
#[tokio::test]
async fn a_save_whose_client_went_away_logs_its_failure() {
    // One thread: the detached save's task logs here too.
    let (logged, _guard) = capture_errors();

    let store = Arc::new(GatedSaves::new());
    let _app = abandon_a_save(&store).await;
    assert!(!logged.text().contains("ERROR"), "{}", logged.text());

    store.fail.store(true, Ordering::Relaxed);
    store.go.add_permits(1);
    store.finished.notified().await;
    for _ in 0..100 {
        if logged.text().contains("gone away") {
            break;
        }
        tokio::task::yield_now().await;
    }
    let text = logged.text();
    assert!(text.contains("ERROR"), "{text}");
    assert!(text.contains("its client had gone away"), "{text}");
    assert!(text.contains("backend down"), "{text}");
    let line = text.lines().find(|l| l.contains("gone away")).unwrap();
    assert!(line.contains("request{id=7}"), "{line}");
}

/// A save cut short where no Tokio runtime can finish it (its request
/// future dropped outside one) cannot go on: that is logged, not silent.
#[test]
fn a_save_cut_short_with_no_runtime_is_logged() {
    /// Polls `future` once, outside any runtime.
    fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        future.poll(&mut cx).is_ready()
    }
    let (logged, _guard) = capture_logs(tracing::Level::WARN);
    let store = Arc::new(GatedSaves::new());
    let app = Router::new()
        .route("/views", get(views))
        .layer(layer_with(store));
    // A new session is created, not saved: the gate does not hold it.
    let cookie = {
        let mut first = std::pin::pin!(send(&app, "/views", None));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(first) = first.as_mut().poll(&mut cx) else {
            panic!("creating a session in the memory store does not wait");
        };
        first.session_cookie()
    };
    let request = axum::http::Request::get("/views")
        .header(COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    let mut second = Box::pin(app.oneshot(request));
    assert!(!poll_once(second.as_mut()), "the save waits at the gate");
    assert!(!logged.text().contains("WARN"), "{}", logged.text());
    drop(second);
    let text = logged.text();
    assert!(text.contains("cut short with no Tokio runtime"), "{text}");
}

/// A service inside the layer that answers with an error (as
/// `tower::timeout` does) leaves no response to carry a cookie: nothing is
/// saved, what the handler changed is logged at warn level, and a handle
/// kept past that point has its changes logged as not saved.
#[tokio::test]
async fn a_service_inside_the_layer_that_fails_saves_nothing_and_says_so() {
    use axum::extract::FromRequestParts as _;
    use tower::Layer as _;

    let (logged, _guard) = capture_logs(tracing::Level::WARN);
    let store = Arc::new(CountingStore::default());
    let layer = SessionLayer::new(
        SessionConfig::new(KeyRing::new(Key::generate())).with_store(store.clone()),
    )
    .unwrap();
    let kept = Arc::new(std::sync::Mutex::new(None));
    let service = layer.layer(tower::service_fn({
        let kept = kept.clone();
        move |request: Request| {
            let kept = kept.clone();
            async move {
                let (mut parts, _) = request.into_parts();
                let session = Session::from_request_parts(&mut parts, &()).await.unwrap();
                let cookies = Cookies::from_request_parts(&mut parts, &()).await.unwrap();
                session.insert("n", &1).unwrap();
                assert!(cookies.add(Cookie::new("theme", "dark")));
                *kept.lock().unwrap() = Some(session);
                Err::<Response, axum::BoxError>("timed out".into())
            }
        }
    }));

    expect_timed_out(service).await;
    assert_eq!(store.calls(), (0, 0), "nothing was saved");
    let text = logged.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("session=true cookies=true"), "{text}");
    assert!(
        text.contains("the service inside SessionLayer failed"),
        "{text}"
    );

    let session = kept.lock().unwrap().take().unwrap();
    session.insert("late", &true).unwrap();
    assert!(
        logged.text().contains("changed after its request finished"),
        "{}",
        logged.text()
    );
}

/// The same in cookie-store mode, where a change plans no store work: the
/// handler's change is still logged as not sent.
#[tokio::test]
async fn a_failing_inner_service_in_cookie_store_mode_logs_the_lost_change() {
    use axum::extract::FromRequestParts as _;
    use tower::Layer as _;

    let (logged, _guard) = capture_logs(tracing::Level::WARN);
    let layer = SessionLayer::new(
        SessionConfig::new(KeyRing::new(Key::generate())).with_storage(Storage::Cookie),
    )
    .unwrap();
    let service = layer.layer(tower::service_fn(|request: Request| async move {
        let (mut parts, _) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, &()).await.unwrap();
        session.insert("cart", &["apple"]).unwrap();
        Err::<Response, axum::BoxError>("timed out".into())
    }));
    expect_timed_out(service).await;
    let text = logged.text();
    assert!(text.contains("session=true cookies=false"), "{text}");
}

/// Sends a `GET /` through `service`, whose inner service fails with
/// "timed out", and checks that the layer hands that error on as it is.
async fn expect_timed_out<S>(service: S)
where
    S: tower::Service<Request, Response = Response, Error = axum::BoxError>,
{
    let error = service
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "timed out");
}
