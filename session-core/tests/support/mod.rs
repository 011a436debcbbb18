//! Test harness: an engine on a manual clock, a fake browser that keeps
//! cookies, and a store wrapper that records every call.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use session_core::cookie::Cookie;
use session_core::{
    Clock, Engine, ImmediateStore, Key, KeyRing, ManualClock, MemoryStore, Plan, Record,
    SaveOutcome, Session, SessionConfig, SessionError, SessionStore, StoreError, StoreKey,
    async_trait,
};
use time::OffsetDateTime;
use time::macros::datetime;

pub const START: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

/// "Remember me": thirty days idle, no absolute limit.
pub fn remembered() -> session_core::Lifetime {
    session_core::Lifetime::default()
        .with_idle_timeout(Some(time::Duration::days(30)))
        .with_absolute_timeout(None)
}

pub fn fixed_key() -> Key {
    Key::from_bytes(&(0..64u8).collect::<Vec<_>>()).unwrap()
}

/// One store call, as the recording store saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Load(StoreKey),
    Create(StoreKey),
    Save(StoreKey),
    Delete(StoreKey),
    Take(StoreKey),
}

/// A `MemoryStore` that records every call, in order.
#[derive(Debug)]
pub struct RecordingStore {
    pub inner: MemoryStore,
    pub calls: Mutex<Vec<Call>>,
}

impl RecordingStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: MemoryStore::with_clock(clock),
            calls: Mutex::new(Vec::new()),
        }
    }

    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    pub fn writes(&self) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| !matches!(c, Call::Load(_)))
            .count()
    }
}

#[async_trait]
impl SessionStore for RecordingStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.calls.lock().unwrap().push(Call::Load(*key));
        self.inner.load(key).await
    }
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.calls.lock().unwrap().push(Call::Create(*key));
        self.inner.create(key, record).await
    }
    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.calls.lock().unwrap().push(Call::Save(*key));
        self.inner.save(key, record, expected_version).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.calls.lock().unwrap().push(Call::Delete(*key));
        self.inner.delete(key).await
    }
    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.calls.lock().unwrap().push(Call::Take(*key));
        self.inner.take(key).await
    }
}

/// An engine with a manual clock and a recording memory store.
pub struct Harness {
    pub engine: Engine,
    pub clock: ManualClock,
    pub store: Arc<RecordingStore>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(|c| c)
    }

    /// A harness whose config is adjusted by `tweak` (store and clock are
    /// set before `tweak` runs, so it may replace them).
    pub fn with(tweak: impl FnOnce(SessionConfig) -> SessionConfig) -> Self {
        let clock = ManualClock::new(START);
        let store = Arc::new(RecordingStore::new(Arc::new(clock.clone())));
        let config = SessionConfig::new(KeyRing::new(fixed_key()))
            .with_clock(Arc::new(clock.clone()))
            .with_store(store.clone());
        let engine = Engine::new(tweak(config)).unwrap();
        Self {
            engine,
            clock,
            store,
        }
    }

    /// A second engine on the same store and clock, with other settings.
    pub fn sibling(&self, tweak: impl FnOnce(SessionConfig) -> SessionConfig) -> Engine {
        let config = SessionConfig::new(KeyRing::new(fixed_key()))
            .with_clock(Arc::new(self.clock.clone()))
            .with_store(self.store.clone());
        Engine::new(tweak(config)).unwrap()
    }

    /// Opens the session the browser's cookies carry.
    pub async fn open(&self, browser: &Browser) -> Session {
        open_with(&self.engine, browser).await
    }

    /// A whole request: open, run the handler, finish, commit; the browser
    /// keeps the Set-Cookie. Returns what the handler returned and the
    /// Set-Cookie value, if any.
    pub async fn request<R>(
        &self,
        browser: &mut Browser,
        handler: impl FnOnce(&Session) -> R,
    ) -> (R, Option<String>) {
        request_with(&self.engine, browser, handler).await.unwrap()
    }

    /// Open, run the handler, and return the plan without committing it.
    pub async fn plan(&self, browser: &Browser, handler: impl FnOnce(&Session)) -> Plan {
        let session = self.open(browser).await;
        handler(&session);
        self.engine.finish(&session, self.clock.now()).unwrap()
    }

    pub fn advance_secs(&self, secs: i64) {
        self.clock.advance(time::Duration::seconds(secs));
    }
}

/// The setups the concurrency tests run two requests of one session in:
/// "one process" (one engine: the second save starts from the record the
/// save lanes kept from the first), "two processes" (two engines on the
/// harness' store: a conflict in the store), and "immediate store" (two
/// engines on a memory store that answers at once, each configured by
/// `tweak`). The two engines and the store they share.
pub const SETUPS: [&str; 3] = ["one process", "two processes", "immediate store"];

pub fn engines_for(
    setup: &str,
    h: &Harness,
    tweak: impl Fn(SessionConfig) -> SessionConfig,
) -> (Engine, Engine, Arc<dyn SessionStore>) {
    match setup {
        "one process" => (h.engine.clone(), h.engine.clone(), h.store.clone()),
        "two processes" => (h.engine.clone(), h.sibling(|c| c), h.store.clone()),
        _ => {
            let memory = Arc::new(MemoryStore::with_clock(Arc::new(h.clock.clone())));
            let on_memory = |c: SessionConfig| tweak(c.with_store(memory.clone()));
            (h.sibling(on_memory), h.sibling(on_memory), memory)
        }
    }
}

/// Two harnesses that make the same ids at the same times: for running the
/// same requests two ways and comparing the plans.
pub fn twins() -> (Harness, Harness) {
    let twin = || {
        Harness::with(|c: SessionConfig| {
            c.with_random(Arc::new(session_core::SequenceRandom::starting_at(7)))
        })
    };
    (twin(), twin())
}

/// A named request handler.
pub type Step = (&'static str, Box<dyn Fn(&Session)>);

/// The requests of a whole session, in order: a read of nothing, create,
/// update, a read, log in (regenerate), remove, log out, start again.
pub fn whole_session() -> Vec<Step> {
    vec![
        ("read nothing", Box::new(|s| drop(s.get_value("x")))),
        (
            "create",
            Box::new(|s| s.insert("cart", &["apple"]).unwrap()),
        ),
        (
            "update",
            Box::new(|s| {
                s.update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
                    .unwrap();
            }),
        ),
        ("read only", Box::new(|s| drop(s.get_value("cart")))),
        (
            "log in",
            Box::new(|s| {
                s.regenerate();
                s.insert("user", &serde_json::json!({"name": "alice"}))
                    .unwrap();
            }),
        ),
        ("remove", Box::new(|s| drop(s.remove("cart")))),
        ("log out", Box::new(Session::destroy)),
        ("start again", Box::new(|s| s.insert("n", &1).unwrap())),
    ]
}

/// Runs a whole session ([`whole_session`], then a touch once the touch
/// interval has passed, then a read past every timeout) on [`twins`]: the
/// first finishes each request with `Engine::finish`, the second as
/// `other` does (given its harness, its browser and the handler, it
/// returns the plan). Asserts that every request gets the same plan.
pub async fn same_plans_as_finish(
    other: impl AsyncFn(&Harness, &Browser, &dyn Fn(&Session)) -> Plan,
) {
    let twins = twins();
    let (mut ba, mut bb) = (Browser::new(), Browser::new());
    for (step, handler) in whole_session() {
        let (a, b) = both_ways(&twins, (&mut ba, &mut bb), &*handler, &other).await;
        assert_eq!(a, b, "{step}");
    }
    twins.0.advance_secs(120);
    twins.1.advance_secs(120);
    let (a, b) = both_ways(&twins, (&mut ba, &mut bb), &|_| {}, &other).await;
    assert!(a.contains("Save"), "a touch: {a}");
    assert_eq!(a, b, "touch");
    // Past every timeout: the store no longer answers for the record, so
    // the cookie reads like an unknown id, and neither does anything.
    twins.0.advance_secs(400 * 24 * 3600);
    twins.1.advance_secs(400 * 24 * 3600);
    let read = |s: &Session| drop(s.get_value("n"));
    let (a, b) = both_ways(&twins, (&mut ba, &mut bb), &read, &other).await;
    assert_eq!(a, b, "expired");
}

/// One request on each twin, `finish` on the first and `other` on the
/// second: both plans, shown, and committed so the browsers move on
/// together.
async fn both_ways(
    (a, b): &(Harness, Harness),
    (ba, bb): (&mut Browser, &mut Browser),
    handler: &dyn Fn(&Session),
    other: &impl AsyncFn(&Harness, &Browser, &dyn Fn(&Session)) -> Plan,
) -> (String, String) {
    let plan_a = {
        let session = a.open(ba).await;
        handler(&session);
        a.engine.finish(&session, a.engine.now()).unwrap()
    };
    let plan_b = other(b, bb, handler).await;
    // `Debug` leaves the cookie's value out: compared whole here.
    assert_eq!(plan_a.cookie, plan_b.cookie);
    let shown = (format!("{plan_a:?}"), format!("{plan_b:?}"));
    commit_into(&a.engine, plan_a, ba).await;
    commit_into(&b.engine, plan_b, bb).await;
    shown
}

/// Commits `plan`; the browser keeps its Set-Cookie.
pub async fn commit_into(engine: &Engine, plan: Plan, browser: &mut Browser) {
    if let Some(set_cookie) = engine.commit(plan).await.unwrap() {
        browser.absorb(&set_cookie);
    }
}

pub async fn open_with(engine: &Engine, browser: &Browser) -> Session {
    let header = browser.cookie_header();
    let incoming = engine.read(header.iter());
    let loaded = engine.load(incoming).await.unwrap();
    engine.open(loaded, engine.now())
}

pub async fn request_with<R>(
    engine: &Engine,
    browser: &mut Browser,
    handler: impl FnOnce(&Session) -> R,
) -> Result<(R, Option<String>), SessionError> {
    let session = open_with(engine, browser).await;
    let out = handler(&session);
    let plan = engine.finish(&session, engine.now())?;
    let set_cookie = engine.commit(plan).await?;
    if let Some(header) = &set_cookie {
        browser.absorb(header);
    }
    Ok((out, set_cookie))
}

/// A browser's cookie jar: name to value, updated from Set-Cookie headers.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    pub cookies: BTreeMap<String, String>,
    /// Extra raw `Cookie` header values sent as they are.
    pub raw_headers: Vec<Vec<u8>>,
}

impl Browser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cookie_header(&self) -> Vec<Vec<u8>> {
        let mut headers = self.raw_headers.clone();
        if !self.cookies.is_empty() {
            let pairs: Vec<String> = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            headers.push(pairs.join("; ").into_bytes());
        }
        headers
    }

    pub fn absorb(&mut self, set_cookie: &str) {
        let cookie = Cookie::parse(set_cookie.to_owned()).expect("engine sent a parsable cookie");
        let removed = cookie.max_age() == Some(time::Duration::ZERO);
        if removed {
            self.cookies.remove(cookie.name());
        } else {
            self.cookies
                .insert(cookie.name().to_owned(), cookie.value().to_owned());
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_owned(), value.to_owned());
    }
}

/// The attribute named `attr` of a Set-Cookie value (`None` when absent;
/// `Some("")` for a flag such as HttpOnly).
pub fn attribute<'a>(set_cookie: &'a str, attr: &str) -> Option<&'a str> {
    set_cookie
        .split(';')
        .skip(1)
        .map(str::trim)
        .find_map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            name.eq_ignore_ascii_case(attr).then_some(value)
        })
}

/// What `tracing` logs on this thread while it lives (a `#[tokio::test]`
/// runs on one thread): at info level and above, or at a level of choice.
pub struct CapturedLogs {
    text: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl CapturedLogs {
    pub fn start() -> Self {
        Self::start_at(tracing::Level::INFO)
    }

    /// What is logged at `level` and above.
    pub fn start_at(level: tracing::Level) -> Self {
        let text = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let text = text.clone();
                move || LogWriter(text.clone())
            })
            .with_ansi(false)
            .with_max_level(level)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        Self {
            text,
            _guard: guard,
        }
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.text.lock().unwrap().clone()).unwrap()
    }
}

/// A `std::io::Write` into a shared buffer.
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A store written as an immediate face alone, given an async face that
/// answers with it. `immediate` says whether the engine is shown the
/// immediate face too; without it every save goes the async way (through
/// the engine's save lanes), as a network store's would.
#[derive(Debug)]
pub struct Faces<T> {
    pub store: T,
    pub immediate: bool,
}

#[async_trait]
impl<T: ImmediateStore + std::fmt::Debug> SessionStore for Faces<T> {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.store.load_now(key)
    }
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.store.create_now(key, record)
    }
    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.store.save_now(key, record, expected_version)
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.store.delete_now(key)
    }
    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.store.take_now(key)
    }
    fn immediate(&self) -> Option<&dyn ImmediateStore> {
        self.immediate.then_some(&self.store as &dyn ImmediateStore)
    }
}

/// Sends the session cookies `ended` (a session that ended) and `current`
/// (a live one holding `user` = `"alice"`) together, in both orders, to
/// `engine`: each request reads the live session and sends no cookie.
pub async fn the_live_cookie_wins(engine: &Engine, ended: &str, current: &str) {
    for header in [
        format!("id={ended}; id={current}"),
        format!("id={current}; id={ended}"),
    ] {
        let mut both = Browser::new();
        both.raw_headers.push(header.clone().into_bytes());
        let (user, set) = request_with(engine, &mut both, |s| s.get_value("user"))
            .await
            .unwrap();
        assert_eq!(user, Some(serde_json::json!("alice")), "{header}");
        assert_eq!(set, None, "{header}: nothing clears the live cookie");
    }
}
