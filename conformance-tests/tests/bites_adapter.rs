//! The adapter suite bites: a small app over `session-axum` with one
//! deliberate bug fails the cases that target that bug, while the same app
//! without it passes them.
//!
//! The app serves only the routes those cases use, with the contract's
//! bodies: `/views`, `/set`, `/get`, `/destroy`, `/cart`, `/auth/login`,
//! `/auth/profile`, `/auth/logout`, `/get-theme`, `/set-theme`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE, VARY};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use conformance_tests::Outcome;
use conformance_tests::adapter::{self, Harness, Running, StorageMode, Suite, cases};
use serde_json::{Value, json};
use session_axum::core::{BoxError, Clock, Record, SaveOutcome, StoreKey, async_trait};
use session_axum::{
    Session, SessionConfig, SessionLayer, SessionRejection, SessionStore, Storage, StoreError,
};

/// No bug.
const CORRECT: u8 = 0;
/// The store invents a session for any id it does not know: unknown ids
/// are adopted.
const ADOPTS_UNKNOWN_IDS: u8 = 1;
/// A middleware drops `Set-Cookie` headers that remove a cookie.
const FORGETS_REMOVAL_COOKIE: u8 = 2;
/// `/destroy` and logout empty the session instead of destroying it.
const CLEARS_INSTEAD_OF_DESTROYING: u8 = 3;
/// Login keeps the session id.
const KEEPS_ID_AT_LOGIN: u8 = 4;
/// A middleware drops the `Set-Cookie` headers of responses that are not
/// a success.
const DROPS_COOKIES_ON_ERRORS: u8 = 5;
/// The layer's error response hides a failed store behind a 200.
const HIDES_STORE_ERRORS: u8 = 6;
/// A middleware in front of the layer keeps only the request's first
/// `Cookie` header, as an adapter reading `headers.get(COOKIE)` would.
const SEES_ONLY_THE_FIRST_COOKIE_HEADER: u8 = 7;

/// `/set` also writes the user into the session cookie, base64-encoded
/// after the value, as a session kept in a signed (not sealed) cookie
/// would.
const SHOWS_DATA_IN_THE_COOKIE: u8 = 8;

/// A middleware drops every `Cookie` header that is not UTF-8, as Rocket
/// 0.5 does, and the harness does not say so
/// ([`Harness::DROPS_NON_UTF8_HEADERS`]).
const DROPS_NON_UTF8_HEADERS: u8 = 9;
/// The same middleware, and the harness says so: a correct adapter over
/// such a framework.
const DROPS_AND_DECLARES_NON_UTF8_HEADERS: u8 = 10;
/// No such middleware, and the harness says there is one.
const DECLARES_BUT_KEEPS_NON_UTF8_HEADERS: u8 = 11;

/// A middleware drops the `Vary` headers of every response.
const DROPS_VARY: u8 = 12;
/// A middleware drops the `Cache-Control` headers of every response.
const DROPS_CACHE_CONTROL: u8 = 13;

/// The user a [`SHOWS_DATA_IN_THE_COOKIE`] `/set` response carries to the
/// middleware that writes it into the cookie.
#[derive(Clone)]
struct ShownUser(String);

/// The small app with the bug `BUG`.
struct Buggy<const BUG: u8>;

impl<const BUG: u8> Harness for Buggy<BUG> {
    const DROPS_NON_UTF8_HEADERS: bool =
        BUG == DROPS_AND_DECLARES_NON_UTF8_HEADERS || BUG == DECLARES_BUT_KEEPS_NON_UTF8_HEADERS;

    fn serve(mut config: SessionConfig) -> Result<Running, BoxError> {
        if BUG == ADOPTS_UNKNOWN_IDS {
            if let Storage::Store(store) = config.storage().clone() {
                let clock = config.clock().clone();
                config = config.with_store(Arc::new(Adopting { store, clock }));
            }
        }
        let app = app::<BUG>(config)?;
        Ok(Running::spawn(move |listener, shutdown| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .unwrap();
            });
        })?)
    }
}

fn app<const BUG: u8>(config: SessionConfig) -> Result<Router, BoxError> {
    let router = Router::new()
        .route("/views", get(views))
        .route("/set", post(set_user::<BUG>))
        .route("/get", get(get_user))
        .route("/destroy", get(destroy::<BUG>))
        .route("/cart", get(cart).post(add_to_cart))
        .route("/auth/login", post(login::<BUG>))
        .route("/auth/profile", get(profile))
        .route("/auth/logout", get(logout::<BUG>))
        .route("/get-theme", get(get_theme))
        .route("/set-theme", get(set_theme))
        .layer(if BUG == HIDES_STORE_ERRORS {
            SessionLayer::new(config)?.with_error_response(|_| StatusCode::OK)
        } else {
            SessionLayer::new(config)?
        });
    Ok(if BUG == DROPS_COOKIES_ON_ERRORS {
        router.layer(axum::middleware::map_response(
            |mut response: Response| async move {
                if !response.status().is_success() {
                    response.headers_mut().remove(SET_COOKIE);
                }
                response
            },
        ))
    } else if BUG == SEES_ONLY_THE_FIRST_COOKIE_HEADER {
        router.layer(axum::middleware::map_request(
            |mut request: axum::extract::Request| async move {
                let first = request.headers().get(COOKIE).cloned();
                request.headers_mut().remove(COOKIE);
                if let Some(first) = first {
                    request.headers_mut().insert(COOKIE, first);
                }
                request
            },
        ))
    } else if BUG == DROPS_NON_UTF8_HEADERS || BUG == DROPS_AND_DECLARES_NON_UTF8_HEADERS {
        router.layer(axum::middleware::map_request(
            |mut request: axum::extract::Request| async move {
                let kept: Vec<_> = request
                    .headers()
                    .get_all(COOKIE)
                    .iter()
                    .filter(|value| std::str::from_utf8(value.as_bytes()).is_ok())
                    .cloned()
                    .collect();
                request.headers_mut().remove(COOKIE);
                for value in kept {
                    request.headers_mut().append(COOKIE, value);
                }
                request
            },
        ))
    } else if BUG == DROPS_VARY || BUG == DROPS_CACHE_CONTROL {
        router.layer(axum::middleware::map_response(
            |mut response: Response| async move {
                response.headers_mut().remove(if BUG == DROPS_VARY {
                    VARY
                } else {
                    CACHE_CONTROL
                });
                response
            },
        ))
    } else if BUG == SHOWS_DATA_IN_THE_COOKIE {
        router
            .layer(axum::middleware::map_request(
                // The data comes back after the value: left out, so that the
                // session still works and only the look at the cookie fails.
                |mut request: axum::extract::Request| async move {
                    let cookies: Vec<String> = request
                        .headers()
                        .get_all(COOKIE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .map(|header| {
                            header
                                .split("; ")
                                .map(|pair| match pair.strip_prefix("id=") {
                                    Some(value) => {
                                        let kept: Vec<&str> = value.split('.').take(3).collect();
                                        format!("id={}", kept.join("."))
                                    }
                                    None => pair.to_owned(),
                                })
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                        .collect();
                    request.headers_mut().remove(COOKIE);
                    for cookie in cookies {
                        request
                            .headers_mut()
                            .append(COOKIE, cookie.parse().unwrap());
                    }
                    request
                },
            ))
            .layer(axum::middleware::map_response(
                |mut response: Response| async move {
                    use base64::Engine as _;
                    let Some(ShownUser(user)) = response.extensions_mut().remove::<ShownUser>()
                    else {
                        return response;
                    };
                    let shown = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(json!({ "user": user }).to_string());
                    let cookies: Vec<String> = response
                        .headers()
                        .get_all(SET_COOKIE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .map(|v| match v.split_once(';') {
                            Some((pair, rest)) if pair.starts_with("id=") => {
                                format!("{pair}.{shown};{rest}")
                            }
                            _ => v.to_owned(),
                        })
                        .collect();
                    response.headers_mut().remove(SET_COOKIE);
                    for cookie in cookies {
                        response
                            .headers_mut()
                            .append(SET_COOKIE, cookie.parse().unwrap());
                    }
                    response
                },
            ))
    } else if BUG == FORGETS_REMOVAL_COOKIE {
        router.layer(axum::middleware::map_response(
            |mut response: Response| async move {
                let kept: Vec<_> = response
                    .headers()
                    .get_all(SET_COOKIE)
                    .iter()
                    .filter(|v| !v.to_str().unwrap_or_default().contains("Max-Age=0"))
                    .cloned()
                    .collect();
                response.headers_mut().remove(SET_COOKIE);
                for value in kept {
                    response.headers_mut().append(SET_COOKIE, value);
                }
                response
            },
        ))
    } else {
        router
    })
}

fn json_reply(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn views(session: Session) -> String {
    let n = session.update("views", |n: Option<u64>| n.unwrap_or(0) + 1);
    format!("Views: {}", n.unwrap_or_default())
}

/// The string field `field` of a JSON object body.
fn field(body: &[u8], field: &str) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v[field].as_str().map(str::to_owned))
}

fn malformed() -> Response {
    json_reply(
        StatusCode::BAD_REQUEST,
        &json!({"error": "Malformed JSON body"}),
    )
}

async fn set_user<const BUG: u8>(session: Session, body: Bytes) -> Response {
    let Some(user) = field(&body, "user") else {
        return malformed();
    };
    let _ = session.insert("user", &user);
    let mut response = "Session set".into_response();
    if BUG == SHOWS_DATA_IN_THE_COOKIE {
        response.extensions_mut().insert(ShownUser(user));
    }
    response
}

async fn set_theme(cookies: session_axum::Cookies) -> &'static str {
    cookies.add(
        session_axum::Cookie::build(("theme", "dark"))
            .path("/")
            .build(),
    );
    "Theme cookie set"
}

async fn get_theme(cookies: session_axum::Cookies) -> String {
    let theme = cookies.get("theme").filter(|theme| !theme.is_empty());
    format!("Current theme: {}", theme.as_deref().unwrap_or("default"))
}

async fn get_user(session: Session) -> Response {
    let user = session.get_value("user").unwrap_or(json!("No user set"));
    json_reply(StatusCode::OK, &json!({ "user": user }))
}

fn end<const BUG: u8>(session: &Session) {
    if BUG == CLEARS_INSTEAD_OF_DESTROYING {
        session.clear();
    } else {
        session.destroy();
    }
}

async fn destroy<const BUG: u8>(session: Session) -> &'static str {
    end::<BUG>(&session);
    "Session destroyed"
}

async fn cart(session: Session) -> Response {
    let cart: Vec<String> = session.get("cart").ok().flatten().unwrap_or_default();
    json_reply(StatusCode::OK, &json!(cart))
}

async fn add_to_cart(session: Session, body: Bytes) -> Response {
    let Some(item) = field(&body, "item") else {
        return malformed();
    };
    let cart = session.update("cart", move |cart: Option<Vec<String>>| {
        let mut cart = cart.unwrap_or_default();
        cart.push(item.clone());
        cart
    });
    json_reply(StatusCode::OK, &json!(cart.unwrap_or_default()))
}

async fn login<const BUG: u8>(session: Result<Session, SessionRejection>, body: Bytes) -> Response {
    let (Some(username), Some(password)) = (field(&body, "username"), field(&body, "password"))
    else {
        return malformed();
    };
    if (username.as_str(), password.as_str()) != ("alice", "password123") {
        return json_reply(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "Invalid credentials"}),
        );
    }
    let session = match session {
        Ok(session) => session,
        Err(rejection) => return rejection.into_response(),
    };
    if BUG != KEEPS_ID_AT_LOGIN {
        session.regenerate();
    }
    let _ = session.insert("auth", &json!({"username": "alice"}));
    json_reply(StatusCode::OK, &json!({"message": "Logged in"}))
}

async fn profile(session: Session) -> Response {
    match session.get_value("auth") {
        Some(user) => json_reply(StatusCode::OK, &json!({ "user": user })),
        None => json_reply(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "Not authenticated"}),
        ),
    }
}

async fn logout<const BUG: u8>(session: Session) -> Response {
    end::<BUG>(&session);
    json_reply(StatusCode::OK, &json!({"message": "Logged out"}))
}

/// A store that, asked for a key it does not know, creates a session under
/// it: the classic fixation bug.
#[derive(Debug)]
struct Adopting {
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
}

#[async_trait]
impl SessionStore for Adopting {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        if let Some(record) = self.store.load(key).await? {
            return Ok(Some(record));
        }
        let now = self.clock.now();
        let record = Record::new(now, Some(now + time::Duration::hours(1)));
        self.store.create(key, &record).await?;
        Ok(Some(record))
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.store.create(key, record).await
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.store.save(key, record, expected).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.store.delete(key).await
    }
}

/// An adapter case, as a function.
type CaseFn = fn(&Suite) -> Outcome;

/// Every case a bug below is meant to fail.
const TARGETED: [(&str, CaseFn); 15] = [
    (
        "responses_that_set_cookies_are_private",
        cases::responses_that_set_cookies_are_private,
    ),
    (
        "responses_that_use_the_session_vary_on_cookie",
        cases::responses_that_use_the_session_vary_on_cookie,
    ),
    (
        "truncated_oversized_and_garbage_cookies_start_a_fresh_session",
        cases::truncated_oversized_and_garbage_cookies_start_a_fresh_session,
    ),
    (
        "session_data_is_never_readable_in_the_cookie",
        cases::session_data_is_never_readable_in_the_cookie,
    ),
    (
        "duplicated_session_cookies_never_fail",
        cases::duplicated_session_cookies_never_fail,
    ),
    (
        "error_responses_count_as_activity",
        cases::error_responses_count_as_activity,
    ),
    (
        "store_failure_is_a_500_never_a_lost_session",
        cases::store_failure_is_a_500_never_a_lost_session,
    ),
    (
        "a_failed_save_delete_or_login_is_a_500_that_loses_nothing",
        cases::a_failed_save_delete_or_login_is_a_500_that_loses_nothing,
    ),
    (
        "unknown_id_is_never_adopted",
        cases::unknown_id_is_never_adopted,
    ),
    (
        "destroy_ends_the_session_and_clears_the_cookie",
        cases::destroy_ends_the_session_and_clears_the_cookie,
    ),
    (
        "logout_ends_the_session_and_clears_the_cookie",
        cases::logout_ends_the_session_and_clears_the_cookie,
    ),
    (
        "destroy_deletes_the_record_and_the_old_cookie_is_dead",
        cases::destroy_deletes_the_record_and_the_old_cookie_is_dead,
    ),
    (
        "old_cookie_is_dead_after_logout",
        cases::old_cookie_is_dead_after_logout,
    ),
    (
        "login_regenerates_the_id_and_keeps_the_data",
        cases::login_regenerates_the_id_and_keeps_the_data,
    ),
    (
        "old_id_is_dead_after_login",
        cases::old_id_is_dead_after_login,
    ),
];

fn fails<const BUG: u8>(names: &[&str]) {
    for name in names {
        let (_, case) = TARGETED
            .iter()
            .find(|(n, _)| n == name)
            .expect("a targeted case");
        match adapter::run::<Buggy<BUG>>(StorageMode::Server, *case) {
            Err(failure) => eprintln!("bug {BUG} fails {name}, as it must:\n{failure}\n"),
            Ok(()) => panic!("an app with bug {BUG} passed {name}"),
        }
    }
}

#[test]
fn the_correct_app_passes_every_targeted_case() {
    for (name, case) in TARGETED {
        if let Err(failure) = adapter::run::<Buggy<CORRECT>>(StorageMode::Server, case) {
            panic!("the correct app fails {name}: {failure}");
        }
    }
}

#[test]
fn adopting_unknown_ids_fails() {
    fails::<ADOPTS_UNKNOWN_IDS>(&["unknown_id_is_never_adopted"]);
}

#[test]
fn forgetting_the_removal_cookie_fails() {
    fails::<FORGETS_REMOVAL_COOKIE>(&[
        "destroy_ends_the_session_and_clears_the_cookie",
        "logout_ends_the_session_and_clears_the_cookie",
    ]);
}

#[test]
fn clearing_instead_of_destroying_fails() {
    fails::<CLEARS_INSTEAD_OF_DESTROYING>(&[
        "destroy_ends_the_session_and_clears_the_cookie",
        "destroy_deletes_the_record_and_the_old_cookie_is_dead",
        "logout_ends_the_session_and_clears_the_cookie",
        "old_cookie_is_dead_after_logout",
    ]);
}

#[test]
fn keeping_the_id_at_login_fails() {
    fails::<KEEPS_ID_AT_LOGIN>(&[
        "login_regenerates_the_id_and_keeps_the_data",
        "old_id_is_dead_after_login",
    ]);
}

#[test]
fn dropping_cookies_on_error_responses_fails() {
    fails::<DROPS_COOKIES_ON_ERRORS>(&["error_responses_count_as_activity"]);
}

#[test]
fn seeing_only_the_first_cookie_header_fails() {
    fails::<SEES_ONLY_THE_FIRST_COOKIE_HEADER>(&["duplicated_session_cookies_never_fail"]);
}

#[test]
fn showing_session_data_in_the_cookie_fails() {
    // The session works (the app reads its cookie without the data): the
    // case fails on the data it finds, nothing else.
    let (_, case) = TARGETED
        .iter()
        .find(|(n, _)| *n == "session_data_is_never_readable_in_the_cookie")
        .expect("a targeted case");
    match adapter::run::<Buggy<SHOWS_DATA_IN_THE_COOKIE>>(StorageMode::Server, *case) {
        Err(failure) => assert!(
            failure
                .to_string()
                .contains("carries the session's data in base64"),
            "{failure}"
        ),
        Ok(()) => panic!("an app showing session data in its cookie passed"),
    }
}

/// A framework that drops a header with a byte that is not UTF-8 (Rocket
/// 0.5) loses the session cookie beside such a byte: the harness says so,
/// and the suite then expects no session there. Saying so wrongly, or not
/// saying so, fails.
#[test]
fn dropped_non_utf8_headers_are_declared_or_fail() {
    let name = "truncated_oversized_and_garbage_cookies_start_a_fresh_session";
    fails::<DROPS_NON_UTF8_HEADERS>(&[name]);
    fails::<DECLARES_BUT_KEEPS_NON_UTF8_HEADERS>(&[name]);
    let (_, case) = TARGETED
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a targeted case");
    if let Err(failure) =
        adapter::run::<Buggy<DROPS_AND_DECLARES_NON_UTF8_HEADERS>>(StorageMode::Server, *case)
    {
        panic!("a declared header-dropping app fails {name}: {failure}");
    }
}

#[test]
fn dropping_vary_fails() {
    fails::<DROPS_VARY>(&["responses_that_use_the_session_vary_on_cookie"]);
}

#[test]
fn dropping_cache_control_fails() {
    fails::<DROPS_CACHE_CONTROL>(&["responses_that_set_cookies_are_private"]);
}

#[test]
fn hiding_store_errors_fails() {
    fails::<HIDES_STORE_ERRORS>(&[
        "store_failure_is_a_500_never_a_lost_session",
        "a_failed_save_delete_or_login_is_a_500_that_loses_nothing",
    ]);
}
