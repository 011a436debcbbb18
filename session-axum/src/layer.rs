//! The tower layer: puts a lazy session slot into each request and carries
//! out the engine's plan after the handler.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::header::{CACHE_CONTROL, Entry, SET_COOKIE, VARY, ValueIter};
use axum::http::{HeaderName, HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use session_core::{
    CommitNow, ConfigError, CookieOp, Engine, Plan, RequestSlot, SessionConfig, SessionError,
    StoreOp,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{ErrorHook, SessionFailure, default_error_response};

/// What every request of one layer shares: the engine and the error hook.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) on_error: ErrorHook,
}

/// The extension the layer puts into each request: the layer's shared
/// parts and the request's slot, which the extractors fill on first use
/// and the layer finishes after the handler.
#[derive(Clone)]
pub(crate) struct SlotHandle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) slot: RequestSlot,
}

/// A tower [`Layer`] that gives handlers the [`Session`](crate::Session) and
/// [`Cookies`](crate::Cookies) extractors.
///
/// Per request it only puts a small slot into the request's extensions;
/// nothing is read or loaded until a handler extracts the session. After the
/// handler:
///
/// - if the handler extracted the [`Session`](crate::Session), the layer
///   asks the engine for the plan ([`Engine::finish_slot`]), runs its store
///   operation ([`Engine::commit`]) and appends the session `Set-Cookie`
///   header, if the plan has one;
/// - if the handler extracted [`Cookies`](crate::Cookies), the layer appends
///   one `Set-Cookie` header per cookie the handler set or removed;
/// - if it extracted either, the response depends on the request's cookies:
///   the layer adds `Vary: Cookie` (unless a `Vary` of the response names
///   `Cookie` or `*` already), so that a shared cache (a CDN, a reverse
///   proxy) never hands it to another visitor;
/// - a response that sets a cookie (the session's or the jar's) carries a
///   credential: the layer adds `Cache-Control: private` (unless a
///   `Cache-Control` of the response has a bare `private` or `no-store`
///   already; a qualified `private="…"` keeps only the fields it names
///   private), which a shared cache must obey over a `public` the handler
///   gave, so that no later visitor is handed that cookie. (A CDN that
///   reads a `CDN-Cache-Control` or `Surrogate-Control` the app sets reads
///   that one instead: make it private there too.)
///
/// The session's plan and the jar's changes are taken when the handler's
/// response is ready. A handle kept past
/// that point (moved into a spawned task, say) may still read; a change
/// through it is not saved or sent, and the first one is logged at warn
/// level.
///
/// A handler that extracts neither costs no store access and gets no
/// `Set-Cookie` or `Vary` header: its response stays cacheable.
///
/// # Where to install it
///
/// Build one `SessionLayer` and clone it wherever it is needed: each
/// [`SessionLayer::new`] makes an engine of its own (with the default
/// storage, its own memory store). Clones of one layer installed twice
/// around a request (on a nested router and on the app around it, perhaps
/// one of them with its own [`with_error_response`](Self::with_error_response))
/// share one session for it: middleware between the two and the handler
/// see the same data. The inner layer, nearest the handler, saves it when
/// the handler's response is ready, answering a failure with its own error
/// response (the default one, if that clone has none of its own). After
/// that, middleware between the two that changes the session has the
/// change logged, not saved, and one that first opens the session then
/// reads it as the request brought it (when the handler had opened it,
/// nothing more is planned for it: no second cookie follows the inner
/// one's). When the handler had used the [`Cookies`](crate::Cookies) jar,
/// a cookie such middleware adds to it then is refused (`false`, logged
/// at warn level): the inner layer sent the jar's cookies. Two layers built
/// apart around one request do not share sessions: the inner one serves
/// every extractor inside it, so the outer one's session (whatever its
/// cookie name) cannot be reached there, and the mistake is logged at warn
/// level (once per process for each of the two mistakes, one cookie name
/// or two). One app, one `SessionLayer`.
///
/// The session's changes are saved whatever the response's status: an
/// error page returned by the handler (through `?`, say) carries the
/// changes made before it. Layers inside this one (added to the router
/// before it) run within the request it sees: a timeout or panic-catching
/// layer there that turns an unfinished handler into a response (such as
/// `tower_http`'s `TimeoutLayer` and `CatchPanicLayer`) has the changes
/// the handler made until then saved with it. One that answers with an
/// error instead (`tower::timeout`, behind axum's `HandleErrorLayer`
/// outside this layer) leaves no response for the cookie: nothing is
/// saved, and what the handler had changed is logged at warn level.
/// Outside this layer, such a layer replaces this layer's response: if it
/// fires before the handler returns, nothing is saved; if it fires while a
/// store that waits (Redis) is saving, the save goes on to its end (as it
/// does for a client that went away) but its cookie never reaches the
/// browser. For a log-in that
/// means the browser keeps the old cookie, whose record the log-in
/// replaced: the user is logged out, and the data of the session before
/// the log-in is under the new id only. Put timeouts inside this layer, or
/// give the store a command timeout well within the outer one.
///
/// # When the store fails
///
/// If the store fails while loading the session, the
/// [`Session`](crate::Session) extractor rejects the request and the
/// handler does not run. If it fails while saving or deleting after the
/// handler, **the handler's response is dropped** and replaced by the error
/// response, with no `Set-Cookie` header at all (neither the session cookie
/// nor the application's cookies), so the browser keeps the cookies it had.
/// The same happens when the session cannot be saved at all: data too
/// large for the store ([`StoreError::TooLarge`](session_core::StoreError::TooLarge),
/// 1 MiB unless set otherwise) or for the cookie in cookie-store mode
/// ([`SessionError::CookieTooLarge`]), nested deeper than
/// [`MAX_DATA_DEPTH`](session_core::MAX_DATA_DEPTH)
/// ([`SessionError::TooDeep`]), or no random bytes for a new id. Either way
/// the error is logged with [`tracing::error!`], and the response
/// is a `500 Internal Server Error` with the plain-text body
/// `Internal Server Error`, unless you choose another one with
/// [`with_error_response`](Self::with_error_response).
///
/// One save is no failure when it fails: a touch, which a request that
/// changed nothing makes once a touch interval to move the session's idle
/// deadline. Nothing of the session is at stake, so the handler's response
/// goes out (without the session cookie), the session keeps its deadline
/// and its next request touches it again
/// ([`Executed::TouchSkipped`](session_core::Executed::TouchSkipped),
/// logged at warn level).
///
/// A session that ended while the handler ran (a log-out in another tab
/// committed first, or the session expired) is no store failure: the
/// handler's response goes out without the session cookie and with the
/// jar's cookies, and the changes are not saved (logged at warn level, see
/// [`Executed::SessionGone`](session_core::Executed::SessionGone)). A
/// log-in racing a log-out of the same session this way answers as the
/// handler did, but leaves the user logged out.
///
/// ```
/// use axum::{Router, routing::get};
/// use axum::body::Body;
/// use axum::http::{Request, header};
/// use session_axum::{Key, KeyRing, Session, SessionConfig, SessionLayer};
/// use tower::ServiceExt as _;
///
/// async fn views(session: Session) -> String {
///     let n = session
///         .update("views", |n: Option<u64>| n.unwrap_or(0).saturating_add(1))
///         .unwrap_or_default();
///     format!("Views: {n}")
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let layer = SessionLayer::new(SessionConfig::new(KeyRing::new(Key::generate())))?;
/// let app = Router::new().route("/views", get(views)).layer(layer);
///
/// let response = app.oneshot(Request::get("/views").body(Body::empty())?).await?;
/// let set_cookie = response.headers()[header::SET_COOKIE].to_str()?;
/// assert!(set_cookie.starts_with("id="));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("engine", &self.shared.engine)
            .finish_non_exhaustive()
    }
}

impl SessionLayer {
    /// Checks `config` and builds the layer (see [`Engine::new`]).
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] of [`Engine::new`]: an unusable cookie,
    /// timeout or cache setting, or a memory-store limit
    /// (`with_max_sessions`, `with_max_record_size`) set with another
    /// storage than [`Storage::Memory`](session_core::Storage::Memory).
    pub fn new(config: SessionConfig) -> Result<Self, ConfigError> {
        Ok(Self::from_engine(Engine::new(config)?))
    }

    /// A layer around an engine you built (and may share with other code,
    /// such as a background task that reads the store).
    #[must_use]
    pub fn from_engine(engine: Engine) -> Self {
        Self {
            shared: Arc::new(Shared {
                engine,
                on_error: Arc::new(default_error_response),
            }),
        }
    }

    /// Chooses the response sent when the session store fails (loading
    /// before the handler, or saving after it), and in place of a
    /// handler's [`HandlerError`](crate::HandlerError). The error has
    /// already been logged at error level when `f` is called. Should `f`
    /// panic, the default 500 is sent instead (and the panic logged). The
    /// response carries the error as a [`SessionFailure`] in its
    /// extensions, for middleware outside the layer. Branch on the error's
    /// kind: a store that is down ([`SessionError::Store`]) may be worth a
    /// 503 and a `Retry-After`, a handler's type mistake
    /// ([`SessionError::Deserialize`]) is not.
    ///
    /// ```
    /// use axum::Json;
    /// use axum::http::StatusCode;
    /// use session_axum::{Key, KeyRing, SessionConfig, SessionLayer};
    ///
    /// let layer = SessionLayer::new(SessionConfig::new(KeyRing::new(Key::generate())))
    ///     .unwrap()
    ///     .with_error_response(|_error| {
    ///         (
    ///             StatusCode::SERVICE_UNAVAILABLE,
    ///             Json(serde_json::json!({"error": "Sessions are unavailable, try again"})),
    ///         )
    ///     });
    /// ```
    #[must_use]
    pub fn with_error_response<F, R>(self, f: F) -> Self
    where
        F: Fn(&SessionError) -> R + Send + Sync + 'static,
        R: IntoResponse,
    {
        Self {
            shared: Arc::new(Shared {
                engine: self.shared.engine.clone(),
                on_error: Arc::new(move |error: &SessionError| {
                    // A hook that panics would take the connection down
                    // (it runs in the layer's future, outside any
                    // panic-catching layer inside it): answer the default
                    // 500 instead.
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        f(error).into_response()
                    }))
                    .unwrap_or_else(|panic| {
                        let message = panic
                            .downcast_ref::<&str>()
                            .copied()
                            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                            .unwrap_or("(not a string)");
                        tracing::error!(
                            %error,
                            panic = message,
                            "the SessionLayer's error response hook panicked; the default 500 \
                             is sent instead"
                        );
                        default_error_response(error)
                    })
                }),
            }),
        }
    }

    /// The engine the layer runs: its [`config`](Engine::config), or
    /// [`cookies`](Engine::cookies) to read the app's cookies outside a
    /// request handler (a WebSocket upgrade, a test).
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The [`Service`] made by [`SessionLayer`].
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = axum::http::Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let slot = match request.extensions().get::<SlotHandle>() {
            // A layer of this engine is installed around this one too (on
            // the app around a nested router, say): both hold one slot, so
            // that the handler and any middleware between the two share
            // one session, and this one, the innermost, finishes it with
            // its own error response. The outer one then finds it done.
            Some(outer) if outer.shared.engine.is_same(&self.shared.engine) => outer.slot.clone(),
            outer => {
                if let Some(outer) = outer {
                    another_layer(&outer.shared, &self.shared);
                }
                RequestSlot::new()
            }
        };
        request.extensions_mut().insert(SlotHandle {
            shared: self.shared.clone(),
            slot: slot.clone(),
        });
        // Called at once, not from a future: the service made ready is used
        // in place, with no clone.
        ResponseFuture {
            state: State::Handler {
                future: self.inner.call(request),
                slot: Some((self.shared.clone(), slot)),
            },
        }
    }
}

/// A layer of another engine inside this one's: this one serves the
/// request's extractors, and the outer one's session cannot be reached
/// from here (the extractors find one layer, the innermost). Warned about
/// once each: two engines of one cookie name are a mistake (two layers built
/// from one configuration, each with its own memory store), and two of
/// different names hide the outer session from every handler inside.
#[cold]
#[inline(never)]
fn another_layer(outer: &Shared, inner: &Shared) {
    static SAME_NAME: std::sync::Once = std::sync::Once::new();
    static OTHER_NAME: std::sync::Once = std::sync::Once::new();
    let name = inner.engine.config().cookie_name();
    let outer_name = outer.engine.config().cookie_name();
    if name == outer_name {
        SAME_NAME.call_once(|| {
            tracing::warn!(
                cookie = %name,
                "two SessionLayers built separately, with one cookie name, are installed around \
                 one request: they do not share sessions (the inner one serves this request's \
                 extractors, and each has its own memory store). Build one SessionLayer and \
                 clone it where it is needed"
            );
        });
    } else {
        OTHER_NAME.call_once(|| {
            tracing::warn!(
                outer = %outer_name,
                inner = %name,
                "a SessionLayer is installed inside another one's routes: handlers inside see \
                 only the inner one's session and cookies, never the outer one's. Use one \
                 SessionLayer (a second kind of login can live under its own keys of the same \
                 session)"
            );
        });
    }
}

type CommitFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

pin_project! {
    /// The response future of [`SessionService`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Handler {
            #[pin]
            future: F,
            slot: Option<(Arc<Shared>, RequestSlot)>,
        },
        Commit {
            future: CommitFuture,
        },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<axum::http::Response<ResBody>, E>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Handler { future, slot } => {
                    let mut response = match ready!(future.poll(cx)) {
                        Ok(response) => response.map(Body::new),
                        Err(error) => {
                            if let Some((shared, slot)) = slot.take() {
                                unanswered(&shared, slot);
                            }
                            return Poll::Ready(Err(error));
                        }
                    };
                    let (shared, slot) =
                        slot.take().expect("ResponseFuture polled after completion");
                    match after_handler(&shared, slot, &mut response) {
                        None => return Poll::Ready(Ok(response)),
                        Some((cookies, plan)) => this.state.set(State::Commit {
                            future: commit(shared, cookies, plan, response),
                        }),
                    }
                }
                StateProj::Commit { future } => return future.as_mut().poll(cx).map(Ok),
            }
        }
    }
}

/// The inner service failed (a `tower::timeout` inside this layer, say):
/// there is no response to carry a cookie, so nothing of the session is
/// saved, as when the request is dropped. The session and the jar are
/// finished all the same, so that a handle kept alive past this point
/// has its changes logged as not saved, and what the handler changed is
/// logged here, at warn level.
#[cold]
fn unanswered(shared: &Shared, mut slot: RequestSlot) {
    // Changed data or lifetime, in either storage mode; a touch or a key
    // re-issue is no change of the session's.
    let modified = slot.session().is_some_and(|session| session.is_modified());
    let planned = shared.engine.finish_slot(&mut slot);
    let cookies = slot.cookies().map(session_core::Cookies::take_delta);
    let session = modified
        || match planned {
            // A new id, or an ended session (destroyed, say).
            Some(Ok((plan, _))) => {
                matches!(plan.store, StoreOp::Replace { .. } | StoreOp::Delete { .. })
                    || matches!(plan.cookie, CookieOp::Clear(_))
            }
            Some(Err(error)) => {
                tracing::warn!(%error, "the session could not be planned either");
                true
            }
            None => false,
        };
    let cookies = cookies.is_some_and(|cookies| !cookies.is_empty());
    if session || cookies {
        tracing::warn!(
            session,
            cookies,
            "the service inside SessionLayer failed: the request's session changes and \
             cookies are not saved or sent"
        );
    }
}

/// Finishes the session (if the handler opened it) and adds the cookie
/// headers to `response`, or replaces it with the error response. Returns
/// the plan, with the jar's cookies, when the store must be waited for
/// (see [`commit`]), with `response` untouched.
///
/// The jar's cookies are taken here, with the session's plan, whatever
/// follows: a jar kept past this point refuses changes (and logs the
/// first) on every path, the failed ones and a commit that waits included.
fn after_handler(
    shared: &Shared,
    mut slot: RequestSlot,
    response: &mut Response,
) -> Option<(Option<Vec<String>>, Plan)> {
    let engine = &shared.engine;
    if !response.extensions().is_empty() {
        handler_failed(shared, response);
    }
    if slot.uses_cookies() {
        vary_on_cookie(response);
    }
    // The handler's handles are gone by now: when the slot is ours alone,
    // the session's data moves into the plan instead of being copied.
    let finished = engine.finish_slot(&mut slot);
    let cookies = slot.cookies().map(session_core::Cookies::take_delta);
    drop(slot);
    let (plan, now) = match finished {
        // Not opened, or nothing to store and no cookie to send.
        None => {
            send_cookies(response, None, cookies);
            return None;
        }
        Some(Ok(finished)) => finished,
        Some(Err(error)) => {
            *response = failed(shared, error);
            return None;
        }
    };
    // A memory store, the cookie store or a plan without store work: done
    // here, with no future to box.
    match engine.commit_now_at(plan, now) {
        CommitNow::Done(set_cookie) => {
            send_cookies(response, set_cookie, cookies);
            None
        }
        CommitNow::Failed(error) => {
            *response = failed(shared, error);
            None
        }
        CommitNow::Wait(plan) => Some((cookies, plan)),
    }
}

/// The commit of a store that must be waited for, then the cookie headers
/// (the session's, then the jar's `cookies`).
///
/// A client that goes away drops this future; the commit does not stop
/// there (see [`Detached`]).
fn commit(
    shared: Arc<Shared>,
    cookies: Option<Vec<String>>,
    plan: Plan,
    mut response: Response,
) -> CommitFuture {
    Box::pin(async move {
        let engine = shared.engine.clone();
        let committed = Detached {
            future: Some(Box::pin(async move { engine.commit(plan).await })),
            // The request's span (a `TraceLayer`'s, say), entered while the
            // response future is polled: a task that finishes the commit
            // logs in it.
            span: tracing::Span::current(),
        }
        .await;
        match committed {
            Ok(set_cookie) => {
                send_cookies(&mut response, set_cookie, cookies);
                response
            }
            Err(error) => failed(&shared, error),
        }
    })
}

/// A store call that must not be cut short: dropped before it completes,
/// it goes on as a task of its own on the Tokio runtime it was dropped on,
/// and logs its error if it fails. A store call dropped midway would leave
/// its outcome unknown, a log-in could stop between creating the new record
/// and removing the old one, and the other requests whose saves were
/// grouped with it would get an error although their clients are still
/// there. Completing normally, it costs no task. Outside a Tokio runtime
/// it is dropped, with a warning; after it panicked it is dropped; so is a
/// task still running when the runtime shuts down. The task runs in the
/// request's span, so that what it logs is found with the request.
struct Detached {
    future: Option<Pin<Box<dyn Future<Output = Committed> + Send>>>,
    span: tracing::Span,
}

type Committed = Result<Option<String>, SessionError>;

impl Future for Detached {
    type Output = Committed;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Committed> {
        // Out while it is polled: a future that panics is not put back, so
        // a drop during the unwinding (or after a panic was caught) does
        // not hand it to a task.
        let mut future = self
            .future
            .take()
            .expect("Detached polled after completion");
        let polled = future.as_mut().poll(cx);
        if polled.is_pending() {
            self.future = Some(future);
        }
        polled
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let Some(future) = self.future.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(tracing::Instrument::instrument(
                async move {
                    if let Err(error) = future.await {
                        tracing::error!(
                            error = %error,
                            "session could not be saved (its client had gone away)"
                        );
                    }
                },
                self.span.clone(),
            ))),
            Err(_) => {
                drop(future);
                tracing::warn!(
                    "a session save was cut short with no Tokio runtime to finish it on; \
                     whether it was stored is unknown"
                );
            }
        }
    }
}

/// The error response for a session that could not be saved, the error
/// logged ([`error_response`]).
fn failed(shared: &Shared, error: SessionError) -> Response {
    tracing::error!(
        error = %error,
        "session could not be saved; the handler's response is replaced by the error response"
    );
    error_response(shared, error)
}

/// The error hook's response to `error`, carrying it as a
/// [`SessionFailure`] in its extensions. It varies on `Cookie`, like any
/// response that used the session (an error hook may answer with a
/// cacheable status); it sets no cookie.
pub(crate) fn error_response(shared: &Shared, error: SessionError) -> Response {
    let mut response = (shared.on_error)(&error);
    vary_on_cookie(&mut response);
    response
        .extensions_mut()
        .insert(SessionFailure::answered(Arc::new(error)));
    response
}

/// A handler answered a [`HandlerError`](crate::HandlerError): its
/// response becomes the error hook's, as a store's failure would.
#[cold]
#[inline(never)]
fn handler_failed(shared: &Shared, response: &mut Response) {
    let Some(failure) = response
        .extensions()
        .get::<SessionFailure>()
        .filter(|failure| !failure.is_answered())
    else {
        return;
    };
    let error = failure.shared_error();
    let mut answered = (shared.on_error)(&error);
    answered
        .extensions_mut()
        .insert(SessionFailure::answered(error));
    *response = answered;
}

/// Adds `Vary: Cookie` to a response that used the request's cookies,
/// unless its `Vary` already covers it (see
/// [`RequestSlot::uses_cookies`]): a shared cache must not hand it to
/// another visitor.
fn vary_on_cookie(response: &mut Response) {
    const COOKIE: HeaderValue = HeaderValue::from_static("Cookie");
    add_unless(response, VARY, COOKIE, |values| {
        session_core::vary_names_cookie(values.map(HeaderValue::as_bytes))
    });
}

/// Adds the header `name: value` to `response`, unless the values it has
/// already say as much (`covered`): one lookup of the name.
fn add_unless(
    response: &mut Response,
    name: HeaderName,
    value: HeaderValue,
    covered: impl for<'a> FnOnce(ValueIter<'a, HeaderValue>) -> bool,
) {
    match response.headers_mut().entry(name) {
        Entry::Vacant(vacant) => {
            vacant.insert(value);
        }
        Entry::Occupied(mut occupied) => {
            if !covered(occupied.iter()) {
                occupied.append(value);
            }
        }
    }
}

/// Appends the session's `Set-Cookie`, then the jar's, and keeps a
/// response that sets any cookie out of shared caches (see
/// [`session_core::cache_control_is_private`]). Inlined: on most requests
/// there is nothing to send, and that check is all it costs.
#[inline(always)]
fn send_cookies(response: &mut Response, session: Option<String>, jar: Option<Vec<String>>) {
    if session.is_some() || jar.as_ref().is_some_and(|jar| !jar.is_empty()) {
        send_some_cookies(response, session, jar.unwrap_or_default());
    }
}

fn send_some_cookies(response: &mut Response, session: Option<String>, jar: Vec<String>) {
    const PRIVATE: HeaderValue = HeaderValue::from_static("private");
    for set_cookie in session.into_iter().chain(jar) {
        append(response, set_cookie);
    }
    add_unless(response, CACHE_CONTROL, PRIVATE, |values| {
        session_core::cache_control_is_private(values.map(HeaderValue::as_bytes))
    });
}

fn append(response: &mut Response, set_cookie: String) {
    match HeaderValue::try_from(set_cookie) {
        Ok(value) => {
            response.headers_mut().append(SET_COOKIE, value);
        }
        Err(error) => tracing::error!(
            %error,
            "a Set-Cookie value is not a valid header value (a cookie value with control \
             characters?); the cookie is not sent"
        ),
    }
}
