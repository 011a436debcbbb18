//! The demo app (`examples/demo.rs`) over real HTTP on 127.0.0.1: every
//! route of the demo contract, expiry on a manual clock, key rotation, and
//! concurrent requests of one session.

#[allow(dead_code)] // its `main` is the example's, unused here
#[path = "../examples/demo.rs"]
mod demo;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use session_axum::core::ManualClock;
use session_axum::{Key, KeyRing, MemoryStore, SessionConfig, SessionStore, Storage};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const START: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

// --- harness -----------------------------------------------------------------

/// The demo served on an ephemeral port, on its own thread and runtime.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(config: SessionConfig) -> Self {
        let app = demo::app(config).expect("a valid config");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                tokio::select! {
                    result = axum::serve(listener, app) => result.unwrap(),
                    _ = stopped => {}
                }
            });
        });
        Self {
            addr: addr_rx.recv().expect("the server starts"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn browser(&self) -> Browser {
        Browser {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{}", self.addr),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A minimal browser: keeps the cookies it is sent (by name, for one host
/// and path) and sends them back.
struct Browser {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    cookies: Mutex<BTreeMap<String, String>>,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

impl Reply {
    /// The `Set-Cookie` header of the cookie `name`.
    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .map(String::as_str)
            .find(|c| c.starts_with(&format!("{name}=")))
    }
}

impl Browser {
    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, "").await
    }

    async fn post_json(&self, path: &str, body: &str) -> Reply {
        self.send(Method::POST, path, Some("application/json"), body)
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let cookie = self.cookie_header();
        if !cookie.is_empty() {
            request = request.header(COOKIE, cookie);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = self
            .client
            .request(request)
            .await
            .expect("the demo answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for header in &set_cookies {
            self.store_cookie(header);
        }
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            content_type,
            set_cookies,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    fn store_cookie(&self, header: &str) {
        let pair = header.split(';').next().unwrap();
        let (name, value) = pair.split_once('=').unwrap();
        let mut cookies = self.cookies.lock().unwrap();
        if header.contains("Max-Age=0") {
            cookies.remove(name);
        } else {
            cookies.insert(name.to_owned(), value.to_owned());
        }
    }

    fn cookie_header(&self) -> String {
        let cookies = self.cookies.lock().unwrap();
        cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    fn set(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }
}

fn config(key: &Key, clock: &ManualClock) -> SessionConfig {
    SessionConfig::new(KeyRing::new(key.clone()))
        .with_idle_timeout(Some(Duration::hours(1)))
        .with_absolute_timeout(Some(Duration::days(1)))
        .with_clock(Arc::new(clock.clone()))
}

/// The demo with the contract's defaults, a fixed clock and the memory
/// store, which the test can inspect.
struct Demo {
    server: Server,
    clock: ManualClock,
    store: Arc<MemoryStore>,
}

impl Demo {
    fn start() -> Self {
        Self::start_with(|config| config)
    }

    fn start_with(f: impl FnOnce(SessionConfig) -> SessionConfig) -> Self {
        let clock = ManualClock::new(START);
        let store = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
        let config = config(&Key::generate(), &clock).with_store(store.clone());
        Self {
            server: Server::start(f(config)),
            clock,
            store,
        }
    }

    fn browser(&self) -> Browser {
        self.server.browser()
    }
}

fn assert_text(reply: &Reply, status: u16, body: &str) {
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (status, body),
        "{reply:?}"
    );
    assert_eq!(
        reply.content_type.as_deref(),
        Some("text/plain; charset=utf-8"),
        "{reply:?}"
    );
}

fn assert_json(reply: &Reply, status: u16, body: &str) {
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (status, body),
        "{reply:?}"
    );
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/json"),
        "{reply:?}"
    );
}

/// The attributes of a `Set-Cookie` header after the value, as a set.
fn attributes(header: &str) -> Vec<String> {
    let mut attrs: Vec<String> = header.split("; ").skip(1).map(str::to_owned).collect();
    attrs.sort();
    attrs
}

// --- session routes ------------------------------------------------------------

#[tokio::test]
async fn views_count_per_session() {
    let demo = Demo::start();
    let alice = demo.browser();
    let bob = demo.browser();
    assert_text(&alice.get("/views").await, 200, "Views: 1");
    assert_text(&alice.get("/views").await, 200, "Views: 2");
    assert_text(&bob.get("/views").await, 200, "Views: 1");
    assert_text(&alice.get("/views").await, 200, "Views: 3");
}

#[tokio::test]
async fn session_cookie_has_the_contract_attributes() {
    let demo = Demo::start();
    let browser = demo.browser();
    let reply = browser.get("/views").await;
    let header = reply.set_cookie("id").expect("a session cookie");
    assert_eq!(
        attributes(header),
        ["HttpOnly", "Max-Age=3600", "Path=/", "SameSite=Lax"]
    );
    assert!(header.starts_with("id=s1."), "{header}");
}

#[tokio::test]
async fn secure_setting_adds_the_secure_attribute() {
    let demo = Demo::start_with(|config| config.with_secure(true));
    let reply = demo.browser().get("/views").await;
    let header = reply.set_cookie("id").unwrap();
    assert!(
        attributes(header).contains(&"Secure".to_owned()),
        "{header}"
    );
}

#[tokio::test]
async fn requests_that_store_nothing_get_no_session_cookie() {
    let demo = Demo::start();
    let browser = demo.browser();
    for path in [
        "/get",
        "/cart",
        "/flash",
        "/auth/profile",
        "/auth/logout",
        "/destroy",
        "/get-theme",
        "/signed/get",
    ] {
        let reply = browser.get(path).await;
        assert!(reply.set_cookies.is_empty(), "{path}: {reply:?}");
    }
    assert!(demo.store.is_empty());
}

#[tokio::test]
async fn set_then_get_user() {
    let demo = Demo::start();
    let browser = demo.browser();
    assert_json(&browser.get("/get").await, 200, r#"{"user":"No user set"}"#);
    assert_text(
        &browser.post_json("/set", r#"{"user": "Alice"}"#).await,
        200,
        "Session set",
    );
    assert_json(&browser.get("/get").await, 200, r#"{"user":"Alice"}"#);
}

#[tokio::test]
async fn destroy_deletes_the_record_and_clears_the_cookie() {
    let demo = Demo::start();
    let browser = demo.browser();
    browser.get("/views").await;
    browser.get("/views").await;
    let old = browser.cookie("id").unwrap();
    assert_eq!(demo.store.len(), 1);

    let reply = browser.get("/destroy").await;
    assert_text(&reply, 200, "Session destroyed");
    let header = reply.set_cookie("id").expect("the cookie is cleared");
    assert!(header.starts_with("id=;"), "{header}");
    assert!(header.contains("Max-Age=0"), "{header}");
    assert_eq!(demo.store.len(), 0, "the record is deleted");

    assert_text(&browser.get("/views").await, 200, "Views: 1");
    browser.set("id", &old);
    assert_text(&browser.get("/views").await, 200, "Views: 1");
}

#[tokio::test]
async fn login_regenerates_the_id_keeps_the_data_and_kills_the_old_id() {
    let demo = Demo::start();
    let browser = demo.browser();
    assert_json(
        &browser.get("/auth/profile").await,
        401,
        r#"{"error":"Not authenticated"}"#,
    );
    browser.post_json("/cart", r#"{"item":"apple"}"#).await;
    let before = browser.cookie("id").unwrap();

    let reply = browser
        .post_json(
            "/auth/login",
            r#"{"username":"alice","password":"password123"}"#,
        )
        .await;
    assert_json(&reply, 200, r#"{"message":"Logged in"}"#);
    let after = browser.cookie("id").unwrap();
    assert_ne!(before, after, "a fresh id");

    assert_json(
        &browser.get("/auth/profile").await,
        200,
        r#"{"user":{"username":"alice"}}"#,
    );
    assert_json(&browser.get("/cart").await, 200, r#"["apple"]"#);
    assert_eq!(demo.store.len(), 1, "the old record is gone");

    let attacker = demo.browser();
    attacker.set("id", &before);
    assert_json(
        &attacker.get("/auth/profile").await,
        401,
        r#"{"error":"Not authenticated"}"#,
    );
    assert_json(&attacker.get("/cart").await, 200, "[]");
}

#[tokio::test]
async fn wrong_credentials_are_refused() {
    let demo = Demo::start();
    let browser = demo.browser();
    for body in [
        r#"{"username":"alice","password":"wrong"}"#,
        r#"{"username":"bob","password":"password123"}"#,
    ] {
        let reply = browser.post_json("/auth/login", body).await;
        assert_json(&reply, 401, r#"{"error":"Invalid credentials"}"#);
        assert!(reply.set_cookies.is_empty());
    }
    assert_json(
        &browser.get("/auth/profile").await,
        401,
        r#"{"error":"Not authenticated"}"#,
    );
}

#[tokio::test]
async fn logout_destroys_the_session() {
    let demo = Demo::start();
    let browser = demo.browser();
    browser
        .post_json(
            "/auth/login",
            r#"{"username":"alice","password":"password123"}"#,
        )
        .await;
    let session = browser.cookie("id").unwrap();
    let reply = browser.get("/auth/logout").await;
    assert_json(&reply, 200, r#"{"message":"Logged out"}"#);
    assert!(reply.set_cookie("id").unwrap().contains("Max-Age=0"));
    assert_json(
        &browser.get("/auth/profile").await,
        401,
        r#"{"error":"Not authenticated"}"#,
    );
    browser.set("id", &session);
    assert_json(
        &browser.get("/auth/profile").await,
        401,
        r#"{"error":"Not authenticated"}"#,
    );
    assert!(demo.store.is_empty());
}

#[tokio::test]
async fn cart_pushes_and_lists() {
    let demo = Demo::start();
    let browser = demo.browser();
    assert_json(&browser.get("/cart").await, 200, "[]");
    assert_json(
        &browser.post_json("/cart", r#"{"item":"apple"}"#).await,
        200,
        r#"["apple"]"#,
    );
    assert_json(
        &browser.post_json("/cart", r#"{"item":"pear"}"#).await,
        200,
        r#"["apple","pear"]"#,
    );
    assert_json(&browser.get("/cart").await, 200, r#"["apple","pear"]"#);
}

#[tokio::test]
async fn twenty_concurrent_cart_pushes_of_one_session_are_all_kept() {
    let demo = Demo::start();
    let browser = Arc::new(demo.browser());
    browser.get("/views").await;
    let cookie = browser.cookie("id").unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let browser = browser.clone();
        tasks.spawn(async move {
            let reply = browser
                .post_json("/cart", &format!(r#"{{"item":"item-{i}"}}"#))
                .await;
            assert_eq!(reply.status, 200, "{reply:?}");
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(
        browser.cookie("id").unwrap(),
        cookie,
        "one session throughout"
    );

    let reply = browser.get("/cart").await;
    let mut cart: Vec<String> = serde_json::from_str(&reply.body).unwrap();
    cart.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("item-{i}")).collect();
    expected.sort();
    assert_eq!(cart, expected);
}

#[tokio::test]
async fn flash_is_read_once() {
    let demo = Demo::start();
    let browser = demo.browser();
    assert_text(
        &browser
            .post_json("/flash", r#"{"message": "Saved!"}"#)
            .await,
        200,
        "Flash set",
    );
    assert_json(&browser.get("/flash").await, 200, r#"{"flash":"Saved!"}"#);
    assert_json(&browser.get("/flash").await, 200, r#"{"flash":null}"#);
}

#[tokio::test]
async fn bad_bodies_get_400_and_leave_the_session_unchanged() {
    let demo = Demo::start();
    let browser = demo.browser();
    browser.post_json("/set", r#"{"user":"Alice"}"#).await;
    browser.post_json("/cart", r#"{"item":"apple"}"#).await;
    browser.post_json("/flash", r#"{"message":"kept"}"#).await;
    let cookie = browser.cookie("id").unwrap();

    let bad_json = [
        "",
        "{",
        r#"{"user":"Alice""#,
        r#"{"user":"Alice"} trailing"#,
        r#"{"user":"Alice"}{}"#,
        "null",
        r#""Alice""#,
        r#"["Alice"]"#,
        r#"{"user":1}"#,
        r#"{"user":null}"#,
        r#"{"user":["Alice"]}"#,
        "{}",
        r#"{"name":"Alice"}"#,
    ];
    for path in ["/set", "/cart", "/flash", "/auth/login"] {
        let field = match path {
            "/set" => "user",
            "/cart" => "item",
            "/flash" => "message",
            _ => "username",
        };
        for body in bad_json {
            let body = body.replace("user", field);
            let reply = browser.post_json(path, &body).await;
            assert_json(&reply, 400, r#"{"error":"Malformed JSON body"}"#);
            assert!(reply.set_cookies.is_empty(), "{path} {body}: {reply:?}");
        }
        // A good body sent as another content type.
        let good = format!(r#"{{"{field}":"x","password":"password123"}}"#);
        for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
            let reply = browser
                .send(Method::POST, path, Some(content_type), &good)
                .await;
            assert_json(&reply, 400, r#"{"error":"Malformed JSON body"}"#);
        }
    }
    // Login also needs the password as a string.
    let reply = browser
        .post_json("/auth/login", r#"{"username":"alice","password":123}"#)
        .await;
    assert_json(&reply, 400, r#"{"error":"Malformed JSON body"}"#);

    assert_eq!(browser.cookie("id").unwrap(), cookie);
    assert_json(&browser.get("/get").await, 200, r#"{"user":"Alice"}"#);
    assert_json(&browser.get("/cart").await, 200, r#"["apple"]"#);
    assert_json(&browser.get("/flash").await, 200, r#"{"flash":"kept"}"#);
    assert_json(
        &browser.get("/auth/profile").await,
        401,
        r#"{"error":"Not authenticated"}"#,
    );
}

#[tokio::test]
async fn json_content_type_with_parameters_is_accepted() {
    let demo = Demo::start();
    let browser = demo.browser();
    let reply = browser
        .send(
            Method::POST,
            "/set",
            Some("application/json; charset=utf-8"),
            r#"{"user":"Alice"}"#,
        )
        .await;
    assert_text(&reply, 200, "Session set");
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_never_5xx() {
    let demo = Demo::start();
    let browser = demo.browser();
    for path in ["/", "/nope", "/views/extra", "/auth", "/signed"] {
        assert_text(&browser.get(path).await, 404, "Not found");
    }
    for (method, path) in [
        (Method::POST, "/views"),
        (Method::GET, "/set"),
        (Method::GET, "/auth/login"),
        (Method::DELETE, "/cart"),
        (Method::PUT, "/flash"),
    ] {
        let reply = browser.send(method, path, None, "").await;
        assert!(matches!(reply.status, 404 | 405), "{path}: {reply:?}");
    }
}

// --- plain and signed cookies ---------------------------------------------------

#[tokio::test]
async fn theme_cookie_is_set_read_and_cleared() {
    let demo = Demo::start();
    let browser = demo.browser();
    assert_text(
        &browser.get("/get-theme").await,
        200,
        "Current theme: default",
    );

    let reply = browser.get("/set-theme").await;
    assert_text(&reply, 200, "Theme cookie set");
    assert_eq!(reply.set_cookies.len(), 1, "{reply:?}");
    let header = &reply.set_cookies[0];
    // The contract writes `theme=dark; Max-Age=900; HttpOnly; Path=/`; the
    // attribute order is the cookie crate's.
    assert_eq!(header, "theme=dark; HttpOnly; Path=/; Max-Age=900");
    assert_eq!(
        attributes(header),
        attributes("theme=dark; Max-Age=900; HttpOnly; Path=/")
    );
    assert_text(&browser.get("/get-theme").await, 200, "Current theme: dark");

    let reply = browser.get("/clear-theme").await;
    assert_text(&reply, 200, "Theme cookie cleared");
    assert_eq!(
        reply.set_cookies,
        ["theme=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"]
    );
    assert_text(
        &browser.get("/get-theme").await,
        200,
        "Current theme: default",
    );
}

#[tokio::test]
async fn signed_cookie_round_trips_and_rejects_tampering() {
    let demo = Demo::start();
    let browser = demo.browser();
    assert_text(&browser.get("/signed/get").await, 200, "Signed value: none");

    let reply = browser.get("/signed/set?value=compact%20mode").await;
    assert_text(&reply, 200, "Signed cookie set");
    let header = reply.set_cookie("pref").unwrap();
    assert_eq!(attributes(header), ["HttpOnly", "Path=/"]);
    assert_text(
        &browser.get("/signed/get").await,
        200,
        "Signed value: compact mode",
    );

    let value = browser.cookie("pref").unwrap();
    let mut tampered = value.clone().into_bytes();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    browser.set("pref", std::str::from_utf8(&tampered).unwrap());
    assert_text(&browser.get("/signed/get").await, 200, "Signed value: none");

    // A plain value where a signed one belongs.
    browser.set("pref", "compact");
    assert_text(&browser.get("/signed/get").await, 200, "Signed value: none");
}

#[tokio::test]
async fn values_signed_for_one_name_are_refused_under_the_other() {
    let demo = Demo::start();
    let browser = demo.browser();
    browser.get("/views").await;
    browser.get("/signed/set?value=x").await;
    let session = browser.cookie("id").unwrap();
    let pref = browser.cookie("pref").unwrap();

    let swapped = demo.browser();
    swapped.set("pref", &session);
    assert_text(&swapped.get("/signed/get").await, 200, "Signed value: none");
    swapped.set("id", &pref);
    assert_text(&swapped.get("/views").await, 200, "Views: 1");
}

// --- the session cookie: tampering, unknown ids, expiry, keys, cookie store ------

#[tokio::test]
async fn tampered_session_cookie_starts_a_fresh_session() {
    let demo = Demo::start();
    let browser = demo.browser();
    browser.get("/views").await;
    let value = browser.cookie("id").unwrap();
    let (head, tag) = value.rsplit_once('.').unwrap();
    let flipped = if tag.starts_with('A') { 'B' } else { 'A' };
    browser.set("id", &format!("{head}.{flipped}{}", &tag[1..]));

    let reply = browser.get("/views").await;
    assert_text(&reply, 200, "Views: 1");
    assert_ne!(browser.cookie("id").unwrap(), value);
    assert_eq!(demo.store.len(), 2, "a new record, the old one untouched");
}

#[tokio::test]
async fn id_unknown_to_the_store_is_not_adopted() {
    let key = Key::generate();
    let clock = ManualClock::new(START);
    let elsewhere = Server::start(config(&key, &clock));
    let here = Server::start(config(&key, &clock));
    let browser = elsewhere.browser();
    browser.get("/views").await;
    let foreign = browser.cookie("id").unwrap();

    let browser = here.browser();
    browser.set("id", &foreign);
    assert_text(&browser.get("/views").await, 200, "Views: 1");
    assert_ne!(browser.cookie("id").unwrap(), foreign, "a fresh id");
}

#[tokio::test]
async fn idle_session_expires_on_the_manual_clock_and_activity_keeps_it() {
    let demo = Demo::start_with(|c| c.with_idle_timeout(Some(Duration::seconds(60))));
    let browser = demo.browser();
    browser.post_json("/set", r#"{"user":"Alice"}"#).await;

    // Read-only requests are activity too.
    for _ in 0..3 {
        demo.clock.advance(Duration::seconds(45));
        assert_json(&browser.get("/get").await, 200, r#"{"user":"Alice"}"#);
    }
    demo.clock.advance(Duration::seconds(61));
    let old = browser.cookie("id").unwrap();
    assert_json(&browser.get("/get").await, 200, r#"{"user":"No user set"}"#);
    assert_text(&browser.get("/views").await, 200, "Views: 1");
    assert_ne!(browser.cookie("id").unwrap(), old, "a fresh id");
}

#[tokio::test]
async fn absolute_lifetime_ends_an_active_session() {
    let demo = Demo::start_with(|c| {
        c.with_idle_timeout(Some(Duration::hours(1)))
            .with_absolute_timeout(Some(Duration::hours(2)))
    });
    let browser = demo.browser();
    assert_text(&browser.get("/views").await, 200, "Views: 1");
    for n in 2..=4 {
        demo.clock.advance(Duration::minutes(35));
        assert_text(&browser.get("/views").await, 200, &format!("Views: {n}"));
    }
    demo.clock.advance(Duration::minutes(16)); // 2 h 1 min after creation
    assert_text(&browser.get("/views").await, 200, "Views: 1");
}

#[tokio::test]
async fn cookies_under_a_previous_key_are_accepted_and_reissued() {
    let clock = ManualClock::new(START);
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    let old_key = Key::generate();
    let new_key = Key::generate();
    let with_keys = |keys: KeyRing| {
        Server::start(
            config(&old_key, &clock)
                .with_keys(keys)
                .with_store(store.clone()),
        )
    };
    let before = with_keys(KeyRing::new(old_key.clone()));
    let rotated = with_keys(KeyRing::new(new_key.clone()).with_previous(old_key.clone()));
    let new_only = with_keys(KeyRing::new(new_key.clone()));

    let browser = before.browser();
    browser.post_json("/set", r#"{"user":"Alice"}"#).await;
    browser.get("/signed/set?value=compact").await;
    let old_id = browser.cookie("id").unwrap();
    let old_pref = browser.cookie("pref").unwrap();

    // The new-key-only server refuses the old cookies.
    let stranger = new_only.browser();
    stranger.set("id", &old_id);
    stranger.set("pref", &old_pref);
    assert_json(
        &stranger.get("/get").await,
        200,
        r#"{"user":"No user set"}"#,
    );
    assert_text(
        &stranger.get("/signed/get").await,
        200,
        "Signed value: none",
    );

    // The rotated server accepts them and re-issues them, even on reads.
    let browser = rotated.browser();
    browser.set("id", &old_id);
    browser.set("pref", &old_pref);
    let reply = browser.get("/get").await;
    assert_json(&reply, 200, r#"{"user":"Alice"}"#);
    assert!(reply.set_cookie("id").is_some(), "{reply:?}");
    let reply = browser.get("/signed/get").await;
    assert_text(&reply, 200, "Signed value: compact");
    assert!(reply.set_cookie("pref").is_some(), "{reply:?}");
    let new_id = browser.cookie("id").unwrap();
    let new_pref = browser.cookie("pref").unwrap();
    assert_ne!(new_id, old_id);

    // The re-issued cookies verify under the new key alone.
    let later = new_only.browser();
    later.set("id", &new_id);
    later.set("pref", &new_pref);
    assert_json(&later.get("/get").await, 200, r#"{"user":"Alice"}"#);
    assert_text(
        &later.get("/signed/get").await,
        200,
        "Signed value: compact",
    );

    // Once re-issued, a read sends nothing more.
    let reply = browser.get("/get").await;
    assert!(reply.set_cookies.is_empty(), "{reply:?}");
}

#[tokio::test]
async fn cookie_store_keeps_the_session_in_the_cookie() {
    let demo = Demo::start_with(|c| c.with_storage(Storage::Cookie));
    let browser = demo.browser();
    assert_text(&browser.get("/views").await, 200, "Views: 1");
    assert_text(&browser.get("/views").await, 200, "Views: 2");
    assert!(browser.cookie("id").unwrap().starts_with("p1."));
    browser.post_json("/cart", r#"{"item":"apple"}"#).await;
    browser
        .post_json(
            "/auth/login",
            r#"{"username":"alice","password":"password123"}"#,
        )
        .await;
    assert_json(&browser.get("/cart").await, 200, r#"["apple"]"#);
    assert_json(
        &browser.get("/auth/profile").await,
        200,
        r#"{"user":{"username":"alice"}}"#,
    );

    let reply = browser.get("/destroy").await;
    assert!(reply.set_cookie("id").unwrap().contains("Max-Age=0"));
    assert_text(&browser.get("/views").await, 200, "Views: 1");
    assert!(demo.store.is_empty(), "nothing on the server");
}
