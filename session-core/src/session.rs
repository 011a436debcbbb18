//! The handler's view of one session, with change tracking.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::data::DataKey;
use crate::id::SessionId;
use crate::{Cookies, Data, KeyMatch, Lifetime, SessionError, StoreKey, Timestamp};

/// An [`Session::update`] closure, type-erased: given the key and its
/// current value, the new value.
type UpdateFn = dyn Fn(&str, Option<&Value>) -> Result<Value, SessionError> + Send + Sync;

/// An update closure that clones cheaply: a closure that captures nothing
/// (a counter, say) and needs no drop is kept as a `&'static` reference,
/// which costs no allocation (a zero-sized `Box` allocates nothing, so
/// leaking it frees nothing); any other in an `Arc`.
#[derive(Clone)]
pub(crate) enum SharedFn {
    Static(&'static UpdateFn),
    Shared(Arc<UpdateFn>),
}

impl SharedFn {
    fn new<F>(f: F) -> Self
    where
        F: Fn(&str, Option<&Value>) -> Result<Value, SessionError> + Send + Sync + 'static,
    {
        if size_of::<F>() == 0 && !std::mem::needs_drop::<F>() {
            Self::Static(Box::leak(Box::new(f)))
        } else {
            Self::Shared(Arc::new(f))
        }
    }

    fn call(&self, key: &str, old: Option<&Value>) -> Result<Value, SessionError> {
        match self {
            Self::Static(f) => f(key, old),
            Self::Shared(f) => f(key, old),
        }
    }
}

/// The changes of one request, in order. Most requests make one (a counter,
/// a login), which is kept inline: recording it allocates nothing.
pub(crate) type Ops = smallvec::SmallVec<[Op; 1]>;

/// One change the handler made, kept in order so that it can be replayed on
/// a record another request saved meanwhile.
#[derive(Clone)]
pub(crate) enum Op {
    Insert(DataKey, Value),
    Remove(DataKey),
    /// [`Session::take`]: removes the key only while it holds the value
    /// taken, so that a replay does not consume a value another request
    /// stored meanwhile (a newer flash message), which nobody read. Boxed:
    /// unboxed, the value would cost every request's changes (and so every
    /// plan) a word more, for a rare change.
    Take(DataKey, Box<Value>),
    Update(DataKey, SharedFn),
    Clear,
    /// [`Session::set_lifetime`]: not a change of the data.
    Lifetime(Lifetime),
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Insert(k, _) => write!(f, "Insert({k:?})"),
            Self::Remove(k) => write!(f, "Remove({k:?})"),
            Self::Take(k, _) => write!(f, "Take({k:?})"),
            Self::Update(k, _) => write!(f, "Update({k:?})"),
            Self::Clear => f.write_str("Clear"),
            Self::Lifetime(l) => write!(f, "Lifetime({l:?})"),
        }
    }
}

/// Replays `ops` onto `data`, which must then nest no deeper than
/// [`MAX_DATA_DEPTH`](crate::MAX_DATA_DEPTH).
pub(crate) fn replay(ops: &[Op], data: &mut Data) -> Result<(), SessionError> {
    for op in ops {
        match op {
            Op::Insert(k, v) => {
                data.insert(k.as_str(), v.clone());
            }
            Op::Remove(k) => {
                data.remove(k.as_str());
            }
            Op::Take(k, taken) => {
                if data.get(k.as_str()) == Some(&**taken) {
                    data.remove(k.as_str());
                }
            }
            Op::Update(k, f) => {
                let k = k.as_str();
                let found = data.find(k);
                let new = f.call(k, data.at(found))?;
                data.put(found, k, new);
            }
            Op::Clear => data.clear(),
            Op::Lifetime(_) => {}
        }
    }
    crate::record::check_depth(data)
}

/// The lifetime `ops` set, if they set one: the first op, where
/// [`Session::set_lifetime`] keeps it (one look, on every write), and
/// where [`append`] keeps it when the changes of several requests are
/// saved together.
#[inline]
pub(crate) fn set_lifetime(ops: &[Op]) -> Option<Lifetime> {
    match ops.first() {
        Some(Op::Lifetime(lifetime)) => Some(*lifetime),
        _ => None,
    }
}

/// Appends `more`, the changes of a later request, to `ops`, keeping a
/// lifetime first: `more`'s, which replaces one `ops` set, since it was set
/// later.
pub(crate) fn append(ops: &mut Ops, more: &[Op]) {
    debug_assert!(
        more.iter().skip(1).all(|op| !matches!(op, Op::Lifetime(_))),
        "a request's lifetime is its first change"
    );
    match (more.split_first(), ops.first_mut()) {
        (Some((Op::Lifetime(later), rest)), Some(Op::Lifetime(set))) => {
            *set = *later;
            ops.extend(rest.iter().cloned());
        }
        (Some((lifetime @ Op::Lifetime(_), rest)), _) => {
            ops.insert(0, lifetime.clone());
            ops.extend(rest.iter().cloned());
        }
        _ => ops.extend(more.iter().cloned()),
    }
}

/// A record's lifetime, last use and deadline, which a merge takes
/// together.
pub(crate) type Times = (Lifetime, Timestamp, Option<Timestamp>);

/// The lifetime and last use of a save replayed onto a record that another
/// request saved meanwhile (or onto the saves grouped before it): `own` is
/// the save's, the request's changes being `ops`; `base` the other's.
///
/// A lifetime the request set wins, with the deadline it computed for it.
/// Otherwise the base's lifetime stands (another request may have set it),
/// and of the two last uses the later one wins, but never one whose
/// deadline was computed under another lifetime than the one that stands.
pub(crate) fn merge_times(own: Times, ops: &[Op], base: Times) -> Times {
    let (lifetime, last_seen, _) = own;
    if let Some(set) = set_lifetime(ops) {
        (set, own.1, own.2)
    } else if lifetime == base.0 && last_seen > base.1 {
        own
    } else {
        base
    }
}

/// [`check_depth`](crate::record::check_depth) for the values `ops` wrote
/// into `data`: the others were loaded, so they load again. A session with
/// more keys than changes has only the changed ones walked; a smaller one
/// is walked whole, which is cheaper than looking its keys up. Inlined
/// into the engine's `plan`, on every request that opens its session.
#[inline]
pub(crate) fn check_changed(ops: &[Op], data: &Data) -> Result<(), SessionError> {
    if ops.is_empty() {
        Ok(())
    } else if data.len() <= ops.len() {
        crate::record::check_depth(data)
    } else {
        crate::record::check_values(ops.iter().filter_map(|op| match op {
            Op::Insert(k, _) | Op::Update(k, _) => data.get(k.as_str()),
            Op::Remove(_) | Op::Take(..) | Op::Clear | Op::Lifetime(_) => None,
        }))
    }
}

/// The session as it was when the request arrived.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) id: Option<SessionId>,
    pub(crate) key: Option<StoreKey>,
    pub(crate) created_at: crate::Timestamp,
    pub(crate) last_seen: crate::Timestamp,
    pub(crate) expires_at: Option<crate::Timestamp>,
    pub(crate) version: u64,
    pub(crate) matched: KeyMatch,
    /// The lifetime stored with the session (one set in this request is
    /// in the changes, [`set_lifetime`]).
    pub(crate) lifetime: Lifetime,
}

/// How a session is to be given a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewId {
    /// [`Session::regenerate`]: a log-in, which starts the absolute
    /// lifetime again.
    LogIn,
    /// [`Session::renew_id`]: the id alone changes.
    Renewal,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// The live session the request carried, if any.
    pub(crate) origin: Option<Origin>,
    /// An expired session the request carried: its record is deleted and its
    /// cookie cleared.
    pub(crate) expired: Option<Option<StoreKey>>,
    pub(crate) data: Data,
    pub(crate) ops: Ops,
    /// A new id asked for ([`Session::regenerate`] or
    /// [`Session::renew_id`]).
    pub(crate) regenerate: Option<NewId>,
    pub(crate) destroyed: bool,
    /// The request carried an id this engine gave up at a log-in seconds
    /// ago (and no live session): it was sent before the browser had the
    /// log-in's cookie, so a session it starts is not stored and sends no
    /// cookie (which would replace the log-in's), unless it logs in.
    pub(crate) moved: bool,
    /// When the engine opened the session ([`Engine::open`] or
    /// [`Engine::open_in`]); `None` for a detached session and for a
    /// [`RequestSlot`] no extractor opened (or one already finished).
    ///
    /// [`Engine::open`]: crate::Engine::open
    /// [`Engine::open_in`]: crate::Engine::open_in
    /// [`RequestSlot`]: crate::RequestSlot
    pub(crate) opened_at: Option<Timestamp>,
    /// Set when [`Engine::finish_slot`](crate::Engine::finish_slot) made
    /// the plan: the data may have moved into it, so a later opening starts
    /// from a fresh state, and a change made through a handle kept past
    /// that point is saved by nobody (logged once, see [`State::changing`]).
    pub(crate) finished: bool,
    /// Whether a change after `finished` was logged.
    pub(crate) late_change_logged: bool,
}

impl State {
    /// Whether this request already changed `key` with
    /// [`Session::update`]. Its value here is then what the update made of
    /// this request's view, and a conflict replays the update on another
    /// value: an insert of the value seen here, or an update that keeps it,
    /// must be recorded all the same, or the replay would end elsewhere.
    fn updated(&self, key: &str) -> bool {
        self.ops
            .iter()
            .any(|op| matches!(op, Op::Update(k, _) if k.as_str() == key))
    }

    /// Called by every change, before it is made.
    #[inline]
    fn changing(&mut self) {
        if self.finished {
            self.changed_after_finish();
        }
    }

    /// A handle kept past the request's end (moved into a spawned task,
    /// say) changes the session: nothing will save the change, so say so,
    /// once per request.
    #[cold]
    fn changed_after_finish(&mut self) {
        if !self.late_change_logged {
            self.late_change_logged = true;
            tracing::warn!(
                "a session was changed after its request finished (through a handle kept past \
                 the response, such as one moved into a spawned task): the change is not saved"
            );
        }
    }
}

/// What [`Session`] handles and a [`RequestSlot`](crate::RequestSlot)
/// point at: the session's state and, for a request slot, the request's
/// cookie jar. One allocation per request for both.
///
/// In the order written (`repr(C)`): the lock at offset 0 of `Shared` is
/// reached with no offset on every lock (letting the compiler place the
/// jar first cost `Shared::lock` 5 instructions a call, session 23).
#[derive(Default)]
#[repr(C)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Whether `state.opened_at` is set, readable without the lock: a
    /// request's first extraction asks [`RequestSlot::session`] before it
    /// loads, and a plain load costs no locked instruction (each of those
    /// waits for every store before it, which under load means cache
    /// misses). Written only with the lock held, or with exclusive access.
    ///
    /// [`RequestSlot::session`]: crate::RequestSlot::session
    pub(crate) opened: AtomicBool,
    /// Made on first use by [`Engine::cookies_in`](crate::Engine::cookies_in).
    pub(crate) jar: OnceLock<Cookies>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every method leaves the state consistent before it can panic (the
        // only user code run under the lock is serde and an `update`'s
        // closure, both before anything changes), so a poisoned lock is
        // still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, reached through exclusive access: no lock taken.
    pub(crate) fn state_mut(&mut self) -> &mut State {
        self.state.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The handler's handle on the current session.
///
/// Cheap to clone (clones share the session), `Send + Sync`. It remembers
/// every change in order, so that the engine can write only when something
/// changed and, when another request of the same session saved first, replay
/// these changes on top of that request's data instead of overwriting it.
///
/// Values are anything serde can turn into JSON.
///
/// ```
/// # use session_core::Session;
/// let session = Session::detached();
/// session.insert("user", "alice").unwrap();
/// assert_eq!(session.get::<String>("user").unwrap().as_deref(), Some("alice"));
///
/// // Read-modify-write that survives concurrent requests.
/// let views = session.update("views", |n: Option<u64>| n.unwrap_or(0).saturating_add(1)).unwrap();
/// assert_eq!(views, 1);
///
/// // Flash messages: read once.
/// session.insert("flash", "Saved!").unwrap();
/// assert_eq!(session.take::<String>("flash").unwrap().as_deref(), Some("Saved!"));
/// assert_eq!(session.take::<String>("flash").unwrap(), None);
/// ```
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Session")
            .field("keys", &state.data.keys().collect::<Vec<_>>())
            .field("ops", &state.ops)
            .field("is_new", &state.origin.is_none())
            .field("regenerate", &state.regenerate)
            .field("destroyed", &state.destroyed)
            .finish()
    }
}

impl Session {
    #[inline]
    pub(crate) fn from_state(state: State) -> Self {
        Self {
            shared: Arc::new(Shared {
                opened: AtomicBool::new(state.opened_at.is_some()),
                state: Mutex::new(state),
                jar: OnceLock::new(),
            }),
        }
    }

    /// A handle on the session of a request slot.
    #[inline]
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// A new, empty session attached to no engine: for unit tests of code
    /// that takes a `Session`.
    #[must_use]
    pub fn detached() -> Self {
        Self::from_state(State::default())
    }

    /// The state, if this is the last handle on it: reached in place, with
    /// no lock and no move out of the shared allocation.
    #[inline]
    pub(crate) fn state_mut(&mut self) -> Option<&mut State> {
        Arc::get_mut(&mut self.shared).map(Shared::state_mut)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// The value under `key`, deserialized as `T`.
    ///
    /// # Errors
    ///
    /// [`SessionError::Deserialize`] when the stored value is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let state = self.lock();
        state
            .data
            .get(key)
            .map(|v| T::deserialize(v).map_err(|source| deser(key, source)))
            .transpose()
    }

    /// The raw JSON value under `key`.
    #[must_use]
    pub fn get_value(&self, key: &str) -> Option<Value> {
        self.lock().data.get(key).cloned()
    }

    /// Whether `key` holds a value.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.lock().data.contains_key(key)
    }

    /// The keys in the session.
    #[must_use]
    pub fn keys(&self) -> Vec<String> {
        self.lock().data.keys().map(str::to_owned).collect()
    }

    /// How many keys the session holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().data.len()
    }

    /// Whether the session holds no data.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lock().data.is_empty()
    }

    /// Whether the request came without a live session (the session will be
    /// created if the handler stores anything; not when the request carried
    /// an id given up at a log-in seconds ago, see
    /// [`regenerate`](Self::regenerate)).
    #[must_use]
    pub fn is_new(&self) -> bool {
        self.lock().origin.is_none()
    }

    /// The session the request came with, unless this request destroyed it
    /// or gave it a new id.
    fn carried<T>(&self, f: impl FnOnce(&Origin) -> T) -> Option<T> {
        let state = self.lock();
        let unchanged = !state.destroyed && state.regenerate.is_none();
        state.origin.as_ref().filter(|_| unchanged).map(f)
    }

    /// The key the store keeps this session under: a digest of its id,
    /// which is no credential (no cookie can be made from it), so it is
    /// safe to log and to keep. It is the key
    /// [`SessionStore::delete`](crate::SessionStore::delete) takes, so an
    /// app that records it per user can end one device's session from
    /// another ([`Engine::store`](crate::Engine::store)).
    ///
    /// `None` for a session this request starts, after
    /// [`destroy`](Self::destroy), and in cookie-store mode (no store).
    /// `None` too after [`regenerate`](Self::regenerate) or
    /// [`renew_id`](Self::renew_id) in this request: the old key is
    /// deleted when the response is committed, and the new one is known
    /// from the next request (record it there, on the first request after
    /// a log-in).
    ///
    /// ```
    /// # use session_core::Session;
    /// let session = Session::detached();
    /// assert_eq!(session.store_key(), None); // a new session
    /// ```
    #[must_use]
    pub fn store_key(&self) -> Option<crate::StoreKey> {
        self.carried(|origin| origin.key).flatten()
    }

    /// When the session began: its first save, or its last
    /// [`regenerate`](Self::regenerate) (a log-in). `None` for a session
    /// this request starts, after [`destroy`](Self::destroy), and after a
    /// new id was asked for in this request (known from the next one).
    #[must_use]
    pub fn created_at(&self) -> Option<Timestamp> {
        self.carried(|origin| origin.created_at)
    }

    /// When the session ends unless a request comes before: the earlier of
    /// its idle and absolute deadlines, as stored when this request
    /// arrived. This request counts as activity, so the idle deadline moves
    /// later when the response is committed if its touch is due (at most
    /// once a touch interval; see
    /// [`SessionConfig::with_touch_interval`](crate::SessionConfig::with_touch_interval)).
    /// A configuration whose timeouts were shortened since the last touch
    /// ends the session by the shorter ones.
    ///
    /// `None` for a session with neither timeout, a session this request
    /// starts, after [`destroy`](Self::destroy), and after a new id was
    /// asked for in this request (known from the next one).
    ///
    /// ```
    /// use session_core::{Session, Timestamp};
    ///
    /// // "Your session ends in 4 minutes", with `now` from the engine's
    /// // clock (`Engine::timestamp`).
    /// fn minutes_left(session: &Session, now: Timestamp) -> Option<i64> {
    ///     let deadline = session.expires_at()?;
    ///     Some(deadline.since(now).whole_minutes().max(0))
    /// }
    /// assert_eq!(minutes_left(&Session::detached(), Timestamp::UNIX_EPOCH), None);
    /// ```
    #[must_use]
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.carried(|origin| origin.expires_at).flatten()
    }

    /// Stores `value` under `key`. Storing the value already there changes
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`SessionError::Serialize`] when `value` cannot become JSON: a NaN
    /// or infinite float (which JSON has no form for; `serde_json` alone
    /// would store `null`), a map whose keys are not strings, numbers,
    /// booleans or unit variants, a failing `Serialize` impl. (A value whose
    /// JSON holds a `null` is serialized twice, to tell it from a NaN: its
    /// `Serialize` must give the same output both times, as derived ones
    /// do.)
    pub fn insert<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), SessionError> {
        let value = crate::finite::to_json(value).map_err(|source| SessionError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        self.insert_value(key, value);
        Ok(())
    }

    /// Stores a raw JSON value under `key`. Storing the value already there
    /// changes nothing.
    pub fn insert_value(&self, key: &str, value: Value) {
        let mut state = self.lock();
        let found = state.data.find(key);
        if state.data.at(found) == Some(&value) && !state.updated(key) {
            return;
        }
        state.changing();
        state.data.put(found, key, value.clone());
        state.ops.push(Op::Insert(DataKey::new(key), value));
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &str) -> Option<Value> {
        let mut state = self.lock();
        let old = state.data.remove(key)?;
        state.changing();
        state.ops.push(Op::Remove(DataKey::new(key)));
        Some(old)
    }

    /// Removes `key` and returns its value as `T`: read once, as for flash
    /// messages.
    ///
    /// Unlike [`remove`](Self::remove), it consumes the value it read and
    /// no other: when another request of the session stored a new value
    /// under `key` and saved first (a newer flash message), this request's
    /// save keeps that value, for a later `take` to read. (After an
    /// [`update`](Self::update) of `key` in this request, whose value
    /// depends on what the other request stored, the key is removed
    /// whatever it holds.) Values are compared whole: a list of messages
    /// that another request added to is kept whole, the messages this
    /// request read included, which are then read again (shown twice
    /// rather than one lost); an equal value stored meanwhile is taken.
    ///
    /// # Errors
    ///
    /// [`SessionError::Deserialize`] when the value is not a `T` (it is
    /// removed all the same).
    pub fn take<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let mut state = self.lock();
        let Some(taken) = state.data.remove(key) else {
            return Ok(None);
        };
        state.changing();
        // Recorded before `T`'s `Deserialize` runs, which it does without
        // the lock (as for `remove` and then a conversion).
        let op = if state.updated(key) {
            Op::Remove(DataKey::new(key))
        } else {
            Op::Take(DataKey::new(key), Box::new(taken.clone()))
        };
        state.ops.push(op);
        drop(state);
        T::deserialize(taken)
            .map(Some)
            .map_err(|source| deser(key, source))
    }

    /// Read-modify-write of one key that loses nothing to concurrent
    /// requests: `f` gets the current value (or `None`) and returns the new
    /// one, which is returned as `f` made it and stored as its JSON (as
    /// [`insert`](Self::insert) stores a value).
    ///
    /// If another request of the same session saves first, the engine
    /// calls `f` again on that request's value before saving (a bounded
    /// number of times), so `f` must be a pure function of its input (it
    /// runs with the session locked: a call on the same session from
    /// inside `f` would wait for itself forever). The
    /// value returned here is the one computed from this request's view.
    /// When its JSON is the value already stored, nothing changes (as for
    /// [`insert`](Self::insert)): a get-or-initialize such as
    /// `update("seen", |v| v.unwrap_or(true))` saves only the first time.
    ///
    /// ```
    /// # use session_core::Session;
    /// let session = Session::detached();
    /// let item = "apple".to_owned();
    /// let cart = session
    ///     .update("cart", move |cart: Option<Vec<String>>| {
    ///         let mut cart = cart.unwrap_or_default();
    ///         cart.push(item.clone());
    ///         cart
    ///     })
    ///     .unwrap();
    /// assert_eq!(cart, ["apple"]);
    /// ```
    ///
    /// # Errors
    ///
    /// [`SessionError::Deserialize`] when the current value is not a `T`, and
    /// [`SessionError::Serialize`] when the new one cannot become JSON (see
    /// [`insert`](Self::insert)).
    pub fn update<T, F>(&self, key: &str, f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(Option<T>) -> T + Send + Sync + 'static,
    {
        let mut state = self.lock();
        let found = state.data.find(key);
        // Called here directly, so that its value is returned as it is
        // (not read back from JSON); the erased copy below replays it on a
        // conflict. The two steps are written out twice on purpose: a
        // shared helper returning both the value and its JSON costs 16–32
        // instructions more per call (session 15, `cold-cache.sh`).
        let current = state.data.at(found);
        let old = current
            .map(|v| T::deserialize(v).map_err(|source| deser(key, source)))
            .transpose()?;
        let typed = f(old);
        let new = crate::finite::to_json(&typed).map_err(|source| SessionError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        if current == Some(&new) && !state.updated(key) {
            // Nothing changed: as if this request had run before any other
            // that saves meanwhile, so there is nothing to replay either.
            return Ok(typed);
        }
        let erased = SharedFn::new(move |key: &str, old: Option<&Value>| {
            let old = old
                .map(|v| T::deserialize(v).map_err(|source| deser(key, source)))
                .transpose()?;
            crate::finite::to_json(&f(old)).map_err(|source| SessionError::Serialize {
                key: key.to_owned(),
                source,
            })
        });
        state.changing();
        state.data.put(found, key, new);
        state.ops.push(Op::Update(DataKey::new(key), erased));
        Ok(typed)
    }

    /// Removes every key. The session itself (and its id) stays.
    pub fn clear(&self) {
        let mut state = self.lock();
        if !state.data.is_empty()
            || state
                .ops
                .iter()
                .any(|op| !matches!(op, Op::Clear | Op::Lifetime(_)))
        {
            state.changing();
            state.data.clear();
            state.ops.push(Op::Clear);
        }
    }

    /// Gives the session a new id and keeps its data: call it when the
    /// user's privileges change (log in) so that an id planted before does
    /// not become a logged-in session (session fixation). The old id stops
    /// resolving once the response is committed; what another request of
    /// the old id saved meanwhile is carried over to the new one (see
    /// [`StoreOp::Replace`](crate::StoreOp::Replace)).
    ///
    /// The session under its new id counts as created now: its absolute
    /// lifetime (and [`created_at`](Self::created_at) on later requests)
    /// starts again here, so that it caps how long one log-in lasts and a
    /// log-in late in a long anonymous visit is not ended minutes later.
    /// Its data and its own [`lifetime`](Self::lifetime) are kept. For ten
    /// seconds, a request that still carries the old id (sent before the
    /// browser had the new cookie) stores nothing and sends no cookie,
    /// rather than start a session whose cookie would replace the new one
    /// (a log-in excepted; within this engine, see
    /// [`Engine::finish`](crate::Engine::finish)).
    /// Call it at a log-in (or another change of privileges the user proved), not
    /// to renew the id on a timer: a session renewed that way would never
    /// reach its absolute lifetime. [`renew_id`](Self::renew_id) is for
    /// that.
    pub fn regenerate(&self) {
        let mut state = self.lock();
        state.changing();
        state.regenerate = Some(NewId::LogIn);
    }

    /// Gives the session a new id, as [`regenerate`](Self::regenerate)
    /// does, with its times kept: its absolute lifetime still counts from
    /// its creation or last log-in. For renewing the id now and then
    /// (every fifteen minutes, say), so that a copy of an old cookie stops
    /// working (with a server-side store: in cookie-store mode a copy
    /// stays readable until its deadlines), without stretching how long a
    /// log-in lasts. Requests of the
    /// old id that run at the same time as the renewal lose their writes
    /// (logged at warn level), as around a log-in: renew on a page load,
    /// not on a request that runs beside others (a poll).
    ///
    /// ```
    /// use session_core::Session;
    ///
    /// let session = Session::detached();
    /// session.insert("user", "alice").unwrap();
    /// session.renew_id();
    /// // The data stays; the new id is made when the response is committed.
    /// assert_eq!(session.get::<String>("user").unwrap().as_deref(), Some("alice"));
    /// ```
    pub fn renew_id(&self) {
        let mut state = self.lock();
        state.changing();
        state.regenerate = Some(NewId::Renewal);
    }

    /// Ends the session: its record is deleted and its cookie cleared. Data
    /// stored after `destroy` starts a brand-new session with a new id.
    pub fn destroy(&self) {
        let mut state = self.lock();
        state.changing();
        state.destroyed = true;
        state.regenerate = None;
        state.data.clear();
        state.ops.clear();
    }

    /// Gives this session its own idle timeout, absolute lifetime and
    /// cookie persistence, in place of the configuration's: a log-in form's
    /// "remember me". Fields of `lifetime` left at their default follow the
    /// configuration; `Lifetime::default()` puts the session back on the
    /// configuration in all three.
    ///
    /// It is a change of the session, saved with its record like the data,
    /// and holds on every later request of the session (through
    /// [`regenerate`](Self::regenerate) too) until it is set again; a new
    /// session is stored only once it holds data, as always. On this
    /// response the session's last use is now, its deadline counts under
    /// the new limits, and the cookie is sent again with a `Max-Age` to
    /// match (none for a browser-session cookie). [`destroy`](Self::destroy)
    /// forgets it: a session started after that follows the
    /// configuration. When another request of the session saves meanwhile,
    /// the lifetime set last wins.
    ///
    /// ```
    /// use session_core::{Lifetime, Session};
    /// use time::Duration;
    ///
    /// # let remember_me = true;
    /// let session = Session::detached();
    /// session.regenerate();
    /// session.insert("user", "alice").unwrap();
    /// session.set_lifetime(if remember_me {
    ///     Lifetime::default()
    ///         .with_idle_timeout(Some(Duration::days(30)))
    ///         .with_absolute_timeout(None)
    ///         .with_persistent(true)
    /// } else {
    ///     Lifetime::default().with_persistent(false)
    /// });
    /// assert_eq!(session.lifetime().idle_timeout(), Some(Some(Duration::days(30))));
    /// ```
    pub fn set_lifetime(&self, lifetime: Lifetime) {
        let mut state = self.lock();
        state.changing();
        // One lifetime op is enough, the last one set, and it goes first:
        // a lifetime is replayed apart from the data, so its place among
        // the data's changes does not matter, and `set_lifetime` finds it
        // with one look.
        match state.ops.first_mut() {
            Some(Op::Lifetime(set)) => *set = lifetime,
            _ => state.ops.insert(0, Op::Lifetime(lifetime)),
        }
    }

    /// The session's lifetime: as stored with it, or as this request set
    /// it ([`set_lifetime`](Self::set_lifetime)); the default (all three
    /// following the configuration) for a session that never set one.
    #[must_use]
    pub fn lifetime(&self) -> Lifetime {
        let state = self.lock();
        set_lifetime(&state.ops)
            .or_else(|| {
                let origin = state.origin.as_ref().filter(|_| !state.destroyed);
                origin.map(|origin| origin.lifetime)
            })
            .unwrap_or_default()
    }

    /// Whether this request changed the data or the lifetime since the
    /// session was read, or since its last [`destroy`](Self::destroy): the
    /// changes there are to save. A `destroy` forgets the changes made
    /// before it, and neither it nor a [`regenerate`](Self::regenerate)
    /// counts as a change here (both are carried out all the same).
    #[must_use]
    pub fn is_modified(&self) -> bool {
        !self.lock().ops.is_empty()
    }
}

fn deser(key: &str, source: serde_json::Error) -> SessionError {
    SessionError::Deserialize {
        key: key.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DATA_KEY_INLINE;
    use serde_json::json;

    /// The changes of several requests saved together keep one lifetime,
    /// the one set last, first, where `set_lifetime` looks.
    #[test]
    fn appended_changes_keep_the_last_lifetime_first() {
        let first = Lifetime::default().with_persistent(false);
        let later = Lifetime::default().with_persistent(true);
        let insert = |k: &str| Op::Insert(DataKey::from(k), json!(1));
        let mut ops: Ops = smallvec::smallvec![insert("a")];
        append(&mut ops, &[insert("b")]);
        assert_eq!(set_lifetime(&ops), None);
        append(&mut ops, &[Op::Lifetime(first), insert("c")]);
        assert_eq!(set_lifetime(&ops), Some(first));
        append(&mut ops, &[insert("d")]);
        append(&mut ops, &[Op::Lifetime(later)]);
        assert_eq!(set_lifetime(&ops), Some(later));
        assert_eq!(
            format!("{ops:?}"),
            r#"[Lifetime(Lifetime { idle_timeout: None, absolute_timeout: None, persistent: Some(true) }), Insert("a"), Insert("b"), Insert("c"), Insert("d")]"#
        );
    }

    /// `update` calls `f` once, returns its value as it is, stores its
    /// JSON, and records the change; a current value of another type is
    /// an error that changes nothing.
    #[test]
    fn update_returns_what_f_made_and_stores_it() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let s = Session::detached();
        let bump = |n: Option<u64>| {
            CALLS.fetch_add(1, Ordering::Relaxed);
            n.unwrap_or(0) + 1
        };
        assert_eq!(s.update("n", bump).unwrap(), 1);
        assert_eq!(s.update("n", bump).unwrap(), 2);
        assert_eq!(CALLS.load(Ordering::Relaxed), 2);
        assert_eq!(s.get_value("n"), Some(json!(2)));
        assert_eq!(s.lock().ops.len(), 2);

        s.insert("name", "alice").unwrap();
        let err = s
            .update("name", |n: Option<u64>| n.unwrap_or(0))
            .unwrap_err();
        assert!(matches!(err, SessionError::Deserialize { ref key, .. } if key == "name"));
        assert_eq!(s.get_value("name"), Some(json!("alice")));
        assert_eq!(s.lock().ops.len(), 3, "the failed update recorded nothing");

        // A type whose JSON leaves something out: returned as `f` made it,
        // stored as its JSON.
        #[derive(serde::Serialize, serde::Deserialize, Default)]
        struct Counter {
            n: u64,
            #[serde(skip)]
            scratch: u64,
        }
        let made = s
            .update("c", |c: Option<Counter>| {
                let mut c = c.unwrap_or_default();
                c.n += 1;
                c.scratch = 7;
                c
            })
            .unwrap();
        assert_eq!((made.n, made.scratch), (1, 7));
        assert_eq!(s.get_value("c"), Some(json!({"n": 1})));
    }

    /// A NaN or infinite float has no JSON form: storing one is an error
    /// that changes nothing, not a `null` that every later typed read of
    /// the key would fail on.
    #[test]
    fn a_float_with_no_json_form_is_refused() {
        let s = Session::detached();
        s.insert("avg", &1.5).unwrap();
        let err = s.insert("avg", &f64::NAN).unwrap_err();
        assert!(matches!(err, SessionError::Serialize { ref key, .. } if key == "avg"));
        let err = s
            .update("avg", |v: Option<f64>| v.unwrap_or(0.0) / 0.0)
            .unwrap_err();
        assert!(matches!(err, SessionError::Serialize { .. }), "{err}");
        let err = s
            .insert("all", &[Some(1.0), Some(f64::NEG_INFINITY)])
            .unwrap_err();
        assert!(err.to_string().contains("no JSON form"), "{err}");
        assert_eq!(s.get::<f64>("avg").unwrap(), Some(1.5));
        assert_eq!(s.get_value("all"), None);
        assert_eq!(s.lock().ops.len(), 1, "only the first insert");
        // `None` is `null`, and is stored.
        s.insert("maybe", &None::<f64>).unwrap();
        assert_eq!(s.get_value("maybe"), Some(Value::Null));
    }

    #[test]
    fn wrong_type_is_an_error_naming_the_key() {
        let s = Session::detached();
        s.insert("n", &"text").unwrap();
        let err = s.get::<u32>("n").unwrap_err();
        assert!(err.to_string().contains("\"n\""), "{err}");
    }

    #[test]
    fn same_value_twice_records_no_change() {
        let s = Session::detached();
        s.insert_value("a", json!(1));
        s.insert_value("a", json!(1));
        assert_eq!(s.lock().ops.len(), 1);
    }

    /// An update whose `f` gives back the value already there changes
    /// nothing, so a read-mostly request saves nothing; once the request
    /// updated the key, later calls are recorded, since a conflict replays
    /// them on another value.
    #[test]
    fn an_update_that_keeps_the_value_records_no_change() {
        let s = Session::detached();
        s.insert_value("seen", json!(true));
        s.insert_value("n", json!(1));
        s.lock().ops.clear();

        assert!(
            s.update("seen", |v: Option<bool>| v.unwrap_or(true))
                .unwrap()
        );
        assert!(!s.is_modified());

        assert_eq!(
            s.update("n", |n: Option<u64>| n.unwrap_or(0).saturating_add(1))
                .unwrap(),
            2
        );
        assert_eq!(s.update("n", |n: Option<u64>| n.unwrap_or(0)).unwrap(), 2);
        assert_eq!(s.lock().ops.len(), 2, "both updates of n are kept");
        let mut theirs = Data::new();
        theirs.insert("n", json!(10));
        replay(&s.lock().ops, &mut theirs).unwrap();
        assert_eq!(theirs.get("n"), Some(&json!(11)));
    }

    /// An insert of the value an update of this request made is recorded:
    /// a replay on another request's value then ends where this request's
    /// changes, applied in order, end.
    #[test]
    fn an_insert_after_an_update_of_the_key_is_replayed() {
        let s = Session::detached();
        assert_eq!(
            s.update("n", |n: Option<u64>| n.unwrap_or(0).saturating_add(1))
                .unwrap(),
            1
        );
        s.insert("n", &1).unwrap();
        assert_eq!(s.lock().ops.len(), 2);
        let mut theirs = Data::new();
        theirs.insert("n", json!(5));
        replay(&s.lock().ops, &mut theirs).unwrap();
        assert_eq!(theirs.get("n"), Some(&json!(1)));
    }

    #[test]
    fn removing_a_missing_key_changes_nothing() {
        let s = Session::detached();
        assert_eq!(s.remove("nope"), None);
        assert!(!s.is_modified());
    }

    #[test]
    fn replay_applies_changes_on_top_of_other_data() {
        let s = Session::detached();
        s.insert_value("mine", json!(1));
        s.update("list", |l: Option<Vec<u32>>| {
            let mut l = l.unwrap_or_default();
            l.push(9);
            l
        })
        .unwrap();
        let mut theirs = Data::new();
        theirs.insert("theirs", json!(true));
        theirs.insert("list", json!([1, 2]));
        replay(&s.lock().ops, &mut theirs).unwrap();
        assert_eq!(
            Value::from(theirs),
            json!({"mine": 1, "theirs": true, "list": [1, 2, 9]})
        );
    }

    #[test]
    fn keys_of_every_length_replay_as_they_were_given() {
        // Around the inline limit, empty, and multi-byte characters that
        // end exactly at it or straddle it.
        let keys = [
            String::new(),
            "k".repeat(DATA_KEY_INLINE - 1),
            "k".repeat(DATA_KEY_INLINE),
            "k".repeat(DATA_KEY_INLINE + 1),
            "é".repeat(DATA_KEY_INLINE / 2),
            format!("k{}", "é".repeat(DATA_KEY_INLINE / 2)),
            "ключ сессии".to_owned(),
            "x".repeat(300),
        ];
        let s = Session::detached();
        for (n, key) in keys.iter().enumerate() {
            s.insert_value(key, json!(n));
            s.update(key, |n: Option<u64>| n.unwrap_or(0) + 100)
                .unwrap();
        }
        s.remove(&keys[3]);
        for op in &s.lock().ops {
            if let Op::Insert(k, _) | Op::Remove(k) | Op::Take(k, _) | Op::Update(k, _) = op {
                assert_eq!(!k.is_heap_allocated(), k.len() <= DATA_KEY_INLINE, "{k:?}");
            }
        }
        let mut theirs = Data::new();
        replay(&s.lock().ops, &mut theirs).unwrap();
        for (n, key) in keys.iter().enumerate() {
            let expected = (n != 3).then(|| json!(n + 100));
            assert_eq!(theirs.get(key.as_str()).cloned(), expected, "{key:?}");
        }
        assert_eq!(theirs.len(), keys.len() - 1);
    }

    /// Replayed on another request's data, a `take` removes the value it
    /// read (its own insert's too) and keeps another; after an `update`
    /// of the key in the same request it removes whatever is there.
    #[test]
    fn a_replayed_take_removes_only_the_value_it_read() {
        let theirs = |value: Value| {
            let mut data = Data::new();
            data.insert("flash", value);
            data
        };
        let replayed = |s: &Session, value: Value| {
            let mut data = theirs(value);
            replay(&s.lock().ops, &mut data).unwrap();
            data.get("flash").cloned()
        };

        let read = Session::detached();
        read.insert("flash", "old").unwrap();
        read.lock().ops.clear(); // as if loaded
        assert_eq!(
            read.take::<String>("flash").unwrap().as_deref(),
            Some("old")
        );
        assert_eq!(replayed(&read, json!("old")), None);
        assert_eq!(replayed(&read, json!("new")), Some(json!("new")));

        let own = Session::detached();
        own.insert("flash", "mine").unwrap();
        assert_eq!(
            own.take::<String>("flash").unwrap().as_deref(),
            Some("mine")
        );
        assert_eq!(replayed(&own, json!("new")), None);

        let updated = Session::detached();
        updated
            .update("flash", |n: Option<u64>| n.unwrap_or(0) + 1)
            .unwrap();
        assert_eq!(updated.take::<u64>("flash").unwrap(), Some(1));
        assert_eq!(replayed(&updated, json!(41)), None);
    }

    #[test]
    fn a_replay_that_nests_too_deep_is_refused() {
        let s = Session::detached();
        s.update("d", |d: Option<Value>| {
            // One more array around whatever the other request stored.
            Value::Array(vec![d.unwrap_or(Value::Null)])
        })
        .unwrap();
        let mut just_fits = Data::new();
        let mut theirs = Data::new();
        let mut value = Value::Null;
        for _ in 0..crate::MAX_DATA_DEPTH - 2 {
            value = Value::Array(vec![value]);
        }
        just_fits.insert("d", value.clone());
        replay(&s.lock().ops, &mut just_fits).unwrap();
        theirs.insert("d", Value::Array(vec![value]));
        assert!(matches!(
            replay(&s.lock().ops, &mut theirs),
            Err(SessionError::TooDeep { .. })
        ));
    }

    #[test]
    fn only_the_values_a_request_changed_are_walked_when_it_changed_fewer_keys() {
        let mut too_deep = Value::Null;
        for _ in 0..crate::MAX_DATA_DEPTH {
            too_deep = Value::Array(vec![too_deep]);
        }
        let insert = |k: &str| Op::Insert(DataKey::new(k), Value::Null);
        let update = |k: &str| Op::Update(DataKey::new(k), SharedFn::new(|_, _| Ok(Value::Null)));
        let data = |keys: &[&str]| -> Data {
            keys.iter()
                .map(|k| {
                    (
                        (*k).to_owned(),
                        if *k == "deep" {
                            too_deep.clone()
                        } else {
                            1.into()
                        },
                    )
                })
                .collect()
        };
        let refused = |r: Result<(), SessionError>| matches!(r, Err(SessionError::TooDeep { .. }));
        let three = data(&["deep", "b", "c"]);
        // More keys than changes: the changed ones only.
        assert!(check_changed(&[insert("b")], &three).is_ok());
        assert!(refused(check_changed(&[insert("deep")], &three)));
        assert!(refused(check_changed(&[update("deep")], &three)));
        assert!(check_changed(&[update("x"), Op::Remove(DataKey::new("x"))], &three).is_ok());
        assert!(check_changed(&[], &three).is_ok());
        // As many changes as keys: the whole data (which was cleared, then
        // written, in this request).
        assert!(refused(check_changed(
            &[Op::Clear, insert("b")],
            &data(&["deep", "b"])
        )));
    }

    #[test]
    fn update_on_a_value_of_another_type_fails_cleanly() {
        let s = Session::detached();
        s.insert_value("cart", json!("not a list"));
        assert!(
            s.update("cart", |c: Option<Vec<String>>| c.unwrap_or_default())
                .is_err()
        );
        assert_eq!(s.get_value("cart"), Some(json!("not a list")));
    }

    #[test]
    fn destroy_forgets_pending_changes() {
        let s = Session::detached();
        s.insert_value("a", json!(1));
        s.destroy();
        assert!(s.is_empty());
        assert!(!s.is_modified());
    }

    fn kept_as(s: &Session) -> &'static str {
        match s.lock().ops.last() {
            Some(Op::Update(_, SharedFn::Static(_))) => "static",
            Some(Op::Update(_, SharedFn::Shared(_))) => "shared",
            _ => "no update",
        }
    }

    #[test]
    fn update_closures_are_kept_without_allocating_only_when_that_is_sound() {
        let s = Session::detached();
        s.update("n", |n: Option<u64>| n.unwrap_or(0).saturating_add(1))
            .unwrap();
        assert_eq!(kept_as(&s), "static");

        let step = 5u64;
        s.update("n", move |n: Option<u64>| n.unwrap_or(0) + step)
            .unwrap();
        assert_eq!(kept_as(&s), "shared");

        // Zero-sized but with a destructor: leaking it would skip the drop.
        static DROPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        struct Noisy;
        impl Drop for Noisy {
            fn drop(&mut self) {
                DROPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let noisy = Noisy;
        s.update("n", move |n: Option<u64>| {
            let _keep = &noisy;
            n.unwrap_or(0) + 1
        })
        .unwrap();
        assert_eq!(kept_as(&s), "shared");

        // Every kind replays.
        let mut theirs = Data::new();
        theirs.insert("n", json!(10));
        replay(&s.lock().ops, &mut theirs).unwrap();
        assert_eq!(theirs["n"], json!(17));

        // The closure with a destructor is dropped with the session.
        assert_eq!(DROPS.load(std::sync::atomic::Ordering::SeqCst), 0);
        drop(s);
        assert_eq!(DROPS.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
