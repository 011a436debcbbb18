//! The plan: what to store and which `Set-Cookie` to send, and the helper
//! that carries out the store part.

use std::fmt;
use std::sync::atomic::AtomicU64;

use crate::session::{Ops, merge_times, replay};
use crate::store::{ImmediateStore, SaveOutcome, SessionStore};
use crate::{Lifetime, Record, SessionError, StoreError, StoreKey};

/// What [`Engine::finish`](crate::Engine::finish) decided for one request.
///
/// Carry it out with [`Engine::commit`](crate::Engine::commit) (or
/// [`Plan::execute`] for a store of your own): run the store operation, then
/// send the cookie header it returns. Never send [`Plan::cookie`] before the
/// store operation has succeeded: a cookie naming a record that was never
/// saved would be a session silently lost.
#[derive(Debug)]
#[must_use = "a plan does nothing until it is committed"]
pub struct Plan {
    /// The store operation.
    pub store: StoreOp,
    /// The session cookie to send.
    pub cookie: CookieOp,
}

/// The store operation of a [`Plan`].
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreOp {
    /// Nothing to store.
    None,
    /// A new session: create its record (never overwriting).
    Create {
        /// The new session's key.
        key: StoreKey,
        /// Its record.
        record: Record,
    },
    /// A changed (or touched) session: compare-and-set its record. On a
    /// version conflict the changes are replayed onto the stored record and
    /// the save is tried again.
    Save {
        /// The session's key.
        key: StoreKey,
        /// The new record; its version is `expected_version + 1`.
        record: Record,
        /// The version the request loaded.
        expected_version: u64,
        /// The changes, for replaying on a conflict.
        changes: Changes,
    },
    /// An ended session (destroyed or expired): delete its record.
    Delete {
        /// The key to delete.
        key: StoreKey,
    },
    /// A session that changes id (regeneration, or new data after
    /// `destroy` or on an expired session): create the new record first,
    /// then delete the old one, so
    /// that a failure never leaves the user with no session at all.
    ///
    /// For a regeneration, the old record is removed with
    /// [`SessionStore::take`], which hands back what it held: when another
    /// request of the old id saved after this one loaded (a cart filled
    /// during the log-in), this request's changes are replayed onto that
    /// newer data and the new record saved again, so the new id carries
    /// both. A save of the old id after the take finds no record (see
    /// [`Executed::SessionGone`]), and so does a regeneration whose take
    /// finds none: the session ended meanwhile (a log-out in another tab,
    /// its deadline, or a second log-in of the same id), so the new record
    /// is deleted again rather than bring it back. With a store whose `take` is one step
    /// (the memory store, Redis) no save can land between the read and the
    /// removal.
    ///
    /// When the take fails after the new record was created (it may still
    /// have run: a reply lost to a timeout), the old id is deleted instead
    /// and, if that works, the log-in stands without the carry-over, with a
    /// warning: the new record may hold the only copy of the session. Only
    /// when that delete fails too is it an error.
    Replace {
        /// The key to delete once the new record is stored.
        old: StoreKey,
        /// The new key.
        key: StoreKey,
        /// The new record.
        record: Record,
        /// For a regeneration: the old record's version as this request
        /// loaded it, and this request's changes, to replay onto a newer
        /// one. `None` after `destroy` (nothing of the old record is kept).
        carry: Option<Box<(u64, Changes)>>,
    },
}

/// The changes a request made to its session, in order.
#[derive(Clone, Default)]
pub struct Changes(pub(crate) Ops);

impl Changes {
    /// Whether the request changed nothing, neither the data nor the
    /// session's lifetime (a touch or a key re-issue).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

/// The session cookie part of a [`Plan`].
///
/// Its `Debug` output leaves the cookie's value out (a signed id or a
/// sealed session is a credential): `Set("id=…(69 bytes); HttpOnly; …")`.
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub enum CookieOp {
    /// Send no session cookie.
    None,
    /// Send this `Set-Cookie` header value (a new or re-issued cookie).
    Set(String),
    /// Send this `Set-Cookie` header value, which removes the cookie.
    Clear(String),
}

impl fmt::Debug for CookieOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Set(header) => f.debug_tuple("Set").field(&Redacted(header)).finish(),
            Self::Clear(header) => f.debug_tuple("Clear").field(&Redacted(header)).finish(),
        }
    }
}

/// A `Set-Cookie` header value for `Debug` output: its name and attributes,
/// and of its value only the length.
pub(crate) struct Redacted<'a>(pub(crate) &'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (pair, attributes) = self.0.split_once(';').unwrap_or((self.0, ""));
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if value.is_empty() {
            write!(f, "\"{name}=")?;
        } else {
            write!(f, "\"{name}=…({} bytes)", value.len())?;
        }
        if !attributes.is_empty() {
            write!(f, ";{attributes}")?;
        }
        f.write_str("\"")
    }
}

impl CookieOp {
    /// The `Set-Cookie` header value to send, if any.
    #[must_use]
    pub fn header(&self) -> Option<&str> {
        match self {
            Self::None => None,
            Self::Set(h) | Self::Clear(h) => Some(h),
        }
    }

    /// Consumes the op into its header value.
    #[must_use]
    pub fn into_header(self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Set(h) | Self::Clear(h) => Some(h),
        }
    }
}

/// What happened when a plan was executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Executed {
    /// The store operation ran as planned (possibly after merging with
    /// concurrent writers).
    Done,
    /// The session was deleted (logged out elsewhere, given a new id by a
    /// log-in, or expired) while this request ran: its changes were dropped
    /// rather than resurrect it, and no session cookie should be sent. Not
    /// even a removal: the request that deleted the record set the cookie
    /// the browser should keep (cleared at logout, a new id at log-in), and
    /// a removal arriving after it would undo a concurrent log-in. A cookie
    /// naming a deleted record reads as no session.
    SessionGone,
    /// The save ran (merged with concurrent writers), but one of them gave
    /// the session another lifetime
    /// ([`Session::set_lifetime`](crate::Session::set_lifetime)) than the
    /// one this request's cookie was made for: the lifetime it loaded, or
    /// the one it set, when a request saved with it set another later.
    /// The cookie would contradict the stored lifetime (a `Max-Age` of an
    /// hour for a session remembered for thirty days, or a lasting cookie
    /// for a browser-session one): send no session cookie. The browser's
    /// cookie stands, and the response of the request whose lifetime
    /// stands carries the right one.
    CookieWithheld,
    /// The plan was a touch (a save without changes, which only moves the
    /// idle deadline: a read once a touch interval) and the store failed
    /// it (Redis down or read-only during a failover, a timeout): nothing
    /// of the session is lost, so the request is answered as if no touch
    /// had been due, rather than with a 500. The session's deadline stays
    /// where the last touch put it, and its next request tries again. Send
    /// no session cookie: its `Max-Age` would name the deadline that was
    /// not stored (a cookie under a previous key moves to the current one
    /// at the next touch that is stored). The failure is logged at warn
    /// level, at most once a minute in the process (a store that is down
    /// fails every load too, and those are errors the adapter logs). A
    /// store that goes on failing writes while it answers reads (a replica
    /// left read-only) ends its sessions at their idle deadlines, however
    /// much they are read: writes then fail with errors.
    TouchSkipped,
}

/// [`Executed::CookieWithheld`] in place of `Done` when the lifetime
/// now stored (`stored`, if known) is not `own`, the one the request's
/// cookie was made for: one that loaded a lifetime another request then
/// replaced, or that set one a later request replaced in turn (the
/// lifetime set last wins, see `merge_times`).
#[inline]
pub(crate) fn settle(executed: Executed, own: Lifetime, stored: Option<Lifetime>) -> Executed {
    match (executed, stored) {
        (Executed::Done, Some(stored)) if stored != own => Executed::CookieWithheld,
        (executed, _) => executed,
    }
}

impl Plan {
    /// The store key of the id a log-in gives up, when this plan is one
    /// (a regeneration, with its carry-over).
    #[inline]
    pub(crate) fn given_up_at_log_in(&self) -> Option<StoreKey> {
        match &self.store {
            StoreOp::Replace {
                old,
                carry: Some(_),
                ..
            } => Some(*old),
            _ => None,
        }
    }

    /// Whether the plan neither stores nor sends anything.
    #[must_use]
    pub fn is_noop(&self) -> bool {
        matches!(self.store, StoreOp::None) && matches!(self.cookie, CookieOp::None)
    }

    /// Runs the store operation against `store`, in the order that loses
    /// nothing: a new id's record is created before the old one is deleted,
    /// and a save that meets a concurrent writer replays this request's
    /// changes onto that writer's record and tries again, up to
    /// `max_conflict_retries` times.
    ///
    /// [`Engine::commit`](crate::Engine::commit) does the same, and with a
    /// store that waits (not [`immediate`](SessionStore::immediate)) also
    /// serializes and groups the saves of one session within the process,
    /// so that a burst of simultaneous requests of one session costs about
    /// two saves instead of a cascade of conflicts.
    ///
    /// Send the plan's cookie only when this returns [`Executed::Done`]:
    /// [`Executed::SessionGone`], [`Executed::CookieWithheld`] and
    /// [`Executed::TouchSkipped`] mean no session cookie at all (as
    /// `Engine::commit` does). `Executed` may grow: treat a variant you do
    /// not know as no cookie. (`Engine::commit` also remembers, for a few
    /// seconds, the id a log-in gives up, so that a request still carrying
    /// it starts no session; plans run here do not.)
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the store fails (a touch excepted:
    /// [`Executed::TouchSkipped`]),
    /// [`SessionError::TooManyConflicts`] when the retries run out,
    /// [`SessionError::TooDeep`] when the changes replayed on the stored
    /// record make its data nest too deep, and the errors of an `update`
    /// closure replayed on a value of another type.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use session_core::{
    ///     Engine, Executed, Key, KeyRing, MemoryStore, SessionConfig, SessionStore,
    /// };
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    /// let config = SessionConfig::new(KeyRing::new(Key::generate())).with_store(store.clone());
    /// let engine = Engine::new(config).unwrap();
    ///
    /// let now = engine.timestamp();
    /// let session = engine.open(engine.load(engine.read([b""])).await.unwrap(), now);
    /// session.insert("cart", &["apple"]).unwrap();
    /// let mut plan = engine.finish(&session, now).unwrap();
    /// let executed = plan.execute(&*store, 64).await.unwrap();
    /// // `Executed::SessionGone` (the session ended meanwhile),
    /// // `Executed::CookieWithheld` or `Executed::TouchSkipped` would
    /// // mean: send no session cookie.
    /// assert_eq!(executed, Executed::Done);
    /// // The record was created: send the plan's cookie.
    /// assert!(plan.cookie.header().is_some());
    /// # });
    /// ```
    pub async fn execute(
        &mut self,
        store: &dyn SessionStore,
        max_conflict_retries: u32,
    ) -> Result<Executed, SessionError> {
        self.execute_with(store, max_conflict_retries, None).await
    }

    /// [`execute`](Self::execute) against a store that answers at once
    /// (see [`ImmediateStore`]): the same operations and conflict handling,
    /// with no future to poll.
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute).
    pub fn execute_now(
        &mut self,
        store: &dyn ImmediateStore,
        max_conflict_retries: u32,
    ) -> Result<Executed, SessionError> {
        match std::mem::replace(&mut self.store, StoreOp::None) {
            StoreOp::None => {}
            StoreOp::Create { key, record } => store.create_now(&key, &record)?,
            StoreOp::Delete { key } => store.delete_now(&key)?,
            StoreOp::Replace {
                old,
                key,
                record,
                carry,
            } => return replace_now(store, old, key, &record, carry, max_conflict_retries),
            StoreOp::Save {
                key,
                record,
                expected_version,
                changes,
            } => {
                let touch = changes.is_empty();
                let saved = save_now(
                    store,
                    key,
                    record,
                    expected_version,
                    &changes,
                    max_conflict_retries,
                    touch,
                );
                return touched(touch, saved);
            }
        }
        Ok(Executed::Done)
    }

    pub(crate) async fn execute_with(
        &mut self,
        store: &dyn SessionStore,
        max_conflict_retries: u32,
        saves: Option<&crate::lanes::SaveLanes>,
    ) -> Result<Executed, SessionError> {
        match std::mem::replace(&mut self.store, StoreOp::None) {
            StoreOp::None => {}
            StoreOp::Create { key, record } => store.create(&key, &record).await?,
            StoreOp::Delete { key } => {
                store.delete(&key).await?;
                if let Some(saves) = saves {
                    saves.forget(&key).await;
                }
            }
            StoreOp::Replace {
                old,
                key,
                record,
                carry,
            } => {
                store.create(&key, &record).await?;
                let Some(carry) = carry.as_deref() else {
                    store.delete(&old).await?;
                    if let Some(saves) = saves {
                        saves.forget(&old).await;
                    }
                    return Ok(Executed::Done);
                };
                // A save of the old id that lands before the take is carried
                // over; one that lands after finds the record gone. (Holding
                // the old id's lane here would only turn the first kind into
                // the second.)
                let taken = match store.take(&old).await {
                    Ok(taken) => Ok(taken.ok_or(Taken::Gone)),
                    Err(error) => {
                        untaken(error, store.delete(&old).await).map(|()| Err(Taken::Lost))
                    }
                };
                if let Some(saves) = saves {
                    saves.forget(&old).await;
                }
                let taken = match taken? {
                    Ok(taken) => taken,
                    Err(Taken::Lost) => return Ok(Executed::Done),
                    Err(Taken::Gone) => {
                        return Ok(gone_before_take(store.delete(&key).await));
                    }
                };
                let Some(merged) = carry_over(taken, carry, &record) else {
                    return Ok(Executed::Done);
                };
                let saved = save(
                    store,
                    key,
                    merged,
                    record.version,
                    &carry.1,
                    max_conflict_retries,
                    false,
                )
                .await;
                return Ok(carried(saved.map(|(executed, _)| executed)));
            }
            StoreOp::Save {
                key,
                record,
                expected_version,
                changes,
            } => {
                let touch = changes.is_empty();
                let Some(saves) = saves else {
                    let own = record.lifetime;
                    let saved = save(
                        store,
                        key,
                        record,
                        expected_version,
                        &changes,
                        max_conflict_retries,
                        touch,
                    )
                    .await
                    .map(|(executed, stored)| settle(executed, own, stored.map(|r| r.lifetime)));
                    return touched(touch, saved);
                };
                // A touch grouped with other requests' writes fails with the
                // group: it is skipped all the same (those requests answer
                // for their writes).
                let saved = saves
                    .save(
                        store,
                        crate::lanes::Job {
                            record,
                            expected_version,
                            changes,
                        },
                        key,
                        max_conflict_retries,
                    )
                    .await;
                return touched(touch, saved);
            }
        }
        Ok(Executed::Done)
    }
}

/// [`Plan::execute_now`]'s [`StoreOp::Replace`]. Out of line; a merge is
/// saved with [`save_now`] (never taken for a touch), which is forced
/// inline so that the save path common to every write stays inlined in
/// `execute_now`.
#[cold]
#[inline(never)]
fn replace_now(
    store: &dyn ImmediateStore,
    old: StoreKey,
    key: StoreKey,
    record: &Record,
    carry: Option<Box<(u64, Changes)>>,
    max_conflict_retries: u32,
) -> Result<Executed, SessionError> {
    store.create_now(&key, record)?;
    let Some(carry) = carry else {
        store.delete_now(&old)?;
        return Ok(Executed::Done);
    };
    let taken = match store.take_now(&old) {
        Ok(Some(taken)) => taken,
        Ok(None) => return Ok(gone_before_take(store.delete_now(&key))),
        Err(error) => {
            untaken(error, store.delete_now(&old))?;
            return Ok(Executed::Done);
        }
    };
    let Some(merged) = carry_over(taken, &carry, record) else {
        return Ok(Executed::Done);
    };
    let saved = save_now(
        store,
        key,
        merged,
        record.version,
        &carry.1,
        max_conflict_retries,
        false,
    );
    Ok(carried(saved))
}

/// The outcome of a regeneration whose carry-over was saved with `saved`.
/// The new record holds this request's session either way, so the log-in
/// stands (its cookie is sent): a carry-over that failed loses only what
/// the other request wrote, and says so at warn level.
fn carried(saved: Result<Executed, SessionError>) -> Executed {
    match saved {
        // The new id's cookie is sent either way: it is the session now.
        // (A carry-over is never a touch, so never skipped as one.)
        Ok(Executed::Done | Executed::CookieWithheld | Executed::TouchSkipped) => Executed::Done,
        Ok(Executed::SessionGone) => carry_failed(&SessionError::Store(StoreError::backend(
            "the new record was gone when the carried-over changes were saved",
        ))),
        Err(error) => carry_failed(&error),
    }
}

/// Why a regeneration has no old record to carry over from.
enum Taken {
    /// The take found nothing: the old session ended while this request
    /// ran (logged out, expired, or taken by another log-in).
    Gone,
    /// The take failed and the old id was deleted instead: what it held
    /// is unknown (see [`untaken`]).
    Lost,
}

/// A regeneration's take of the old record failed with `error`, after its
/// new record was created; `deleted` is how a plain delete of the old id
/// went then. The take may have run (a reply lost to a timeout), so the new
/// record may hold the only copy of the session: once the old id is surely
/// gone the log-in stands, without a carry-over (logged). Only when the
/// delete fails too is it an error (the old id may still resolve, and no
/// cookie may name the new one).
#[cold]
fn untaken(error: StoreError, deleted: Result<(), StoreError>) -> Result<(), SessionError> {
    match deleted {
        Ok(()) => {
            carry_failed(&SessionError::Store(error));
            Ok(())
        }
        Err(delete_error) => {
            tracing::warn!(
                %delete_error,
                "session id regeneration: the old id could not be deleted after its take failed"
            );
            Err(SessionError::Store(error))
        }
    }
}

/// A regeneration whose take found the old record gone: the session ended
/// while this request ran (a log-out in another tab, its deadline, or a
/// second log-in of the same id that took it first). The new record would
/// bring back what that ended, so it is deleted (`deleted` is how that
/// went) and no cookie names it: [`Executed::SessionGone`], as for a save
/// that finds its record gone. A new record that could not be deleted is
/// named by no cookie and ends at its deadline (logged).
#[cold]
fn gone_before_take(deleted: Result<(), StoreError>) -> Executed {
    match deleted {
        Ok(()) => tracing::warn!(
            "session id regeneration: the old session ended while the request ran (logged \
             out, expired, or taken by another log-in); the new id was dropped and no \
             cookie sent"
        ),
        Err(error) => tracing::warn!(
            %error,
            "session id regeneration: the old session ended while the request ran, and \
             the new id's record could not be deleted (no cookie names it; it ends at its \
             deadline)"
        ),
    }
    Executed::SessionGone
}

/// Logs a carry-over that could not be saved; the log-in stands.
#[cold]
fn carry_failed(error: &SessionError) -> Executed {
    tracing::warn!(
        %error,
        "session id regenerated, but what another request saved under the old id \
         meanwhile could not be carried over"
    );
    Executed::Done
}

/// What a regeneration's new record (`stored`, already created) must
/// become, given the old record as it was taken: when another request saved
/// it after this one loaded version `loaded`, this request's changes
/// replayed onto that newer data, as the next version of `stored`. `None`
/// when `stored` already holds everything, or when the changes cannot be
/// replayed there (logged: the log-in stands with `stored`).
fn carry_over(
    taken: Record,
    (loaded, changes): &(u64, Changes),
    stored: &Record,
) -> Option<Record> {
    if taken.version == *loaded {
        return None;
    }
    // The new record keeps this request's lifetime and times, which its
    // cookie was made for (a lifetime another request set on the old id
    // meanwhile is not carried over: its cookie names the old id).
    let mut merged = stored.clone();
    merged.data = taken.data;
    if let Err(error) = replay(&changes.0, &mut merged.data) {
        carry_failed(&error);
        return None;
    }
    merged.version = stored.version.wrapping_add(1);
    Some(merged)
}

/// The compare-and-set loop. Returns the record as written, if it was.
/// `touch` says that the save only moves the idle deadline (the engine
/// planned a save without changes): one the store finds too large is then
/// skipped (see [`touch_too_large`]).
pub(crate) async fn save(
    store: &dyn SessionStore,
    key: StoreKey,
    mut record: Record,
    mut expected_version: u64,
    changes: &Changes,
    max_conflict_retries: u32,
    touch: bool,
) -> Result<(Executed, Option<Record>), SessionError> {
    let mut conflicts = 0;
    loop {
        let outcome = match store.save(&key, &record, expected_version).await {
            Err(StoreError::TooLarge { size, limit }) if touch => {
                touch_too_large(size, limit);
                return Ok((Executed::Done, None));
            }
            outcome => outcome?,
        };
        match turn(
            outcome,
            &mut record,
            &mut expected_version,
            &mut conflicts,
            changes,
            max_conflict_retries,
        )? {
            Turn::Saved => return Ok((Executed::Done, Some(record))),
            Turn::Finished(executed, current) => return Ok((executed, current)),
            Turn::Again => {}
        }
    }
}

/// [`save`] against a store that answers at once. Forced inline: in
/// [`Plan::execute_now`] it runs on every save of the memory store, and
/// with a second call site (a log-in's carry-over, in [`replace_now`])
/// the compiler made it a call of its own, 70 instructions a request more
/// (session 22, `cold-cache.sh`). Settled: `Done` becomes
/// [`Executed::CookieWithheld`] as [`settle`] says.
#[inline(always)]
fn save_now(
    store: &dyn ImmediateStore,
    key: StoreKey,
    mut record: Record,
    mut expected_version: u64,
    changes: &Changes,
    max_conflict_retries: u32,
    touch: bool,
) -> Result<Executed, SessionError> {
    let own = record.lifetime;
    let mut conflicts = 0;
    loop {
        let outcome = match store.save_now(&key, &record, expected_version) {
            Err(StoreError::TooLarge { size, limit }) if touch => {
                touch_too_large(size, limit);
                return Ok(Executed::Done);
            }
            outcome => outcome?,
        };
        match turn(
            outcome,
            &mut record,
            &mut expected_version,
            &mut conflicts,
            changes,
            max_conflict_retries,
        )? {
            Turn::Saved => return Ok(settle(Executed::Done, own, Some(record.lifetime))),
            Turn::Finished(executed, current) => {
                return Ok(settle(executed, own, current.map(|c| c.lifetime)));
            }
            Turn::Again => {}
        }
    }
}

/// A touch (a save without changes) of a record the store finds larger
/// than its limit (stored before the limit was lowered, or grown by a
/// digit of its version): skipped, so that reading an oversized session is
/// never an error; the session then ends at its old idle deadline unless
/// a request makes it smaller. The request's cookie is still sent: it may
/// be moving the session to the current key, which matters more than a
/// `Max-Age` that outlives the record (a cookie naming an ended session
/// reads as no session).
///
/// Every read of such a session meets it again (its deadline never moves),
/// so the warning is given at most once a minute in the process, and at
/// debug level in between.
#[cold]
fn touch_too_large(size: usize, limit: usize) {
    static LAST_WARNED_SECS: AtomicU64 = AtomicU64::new(0);
    let message = "session record is over the store's size limit; its touch is skipped, so the \
                   session ends at its old idle deadline unless a request makes it smaller";
    if warn_due(&LAST_WARNED_SECS) {
        tracing::warn!(size, limit, "{message}");
    } else {
        tracing::debug!(size, limit, "{message}");
    }
}

/// The outcome of a save that was a `touch` (a save without changes) or
/// not: a touch that failed is skipped ([`Executed::TouchSkipped`]).
#[inline]
fn touched(touch: bool, saved: Result<Executed, SessionError>) -> Result<Executed, SessionError> {
    match saved {
        Err(error) if touch => Ok(touch_failed(&error)),
        saved => saved,
    }
}

/// A touch failed with `error`: logged at warn level at most once a minute
/// in the process, at debug level in between (a store that is down meets
/// every read whose touch is due).
#[cold]
fn touch_failed(error: &SessionError) -> Executed {
    static LAST_WARNED_SECS: AtomicU64 = AtomicU64::new(0);
    let message = "the store failed a session's touch; it is skipped (the session keeps its \
                   idle deadline, and its next request tries again)";
    if warn_due(&LAST_WARNED_SECS) {
        tracing::warn!(%error, "{message}");
    } else {
        tracing::debug!(%error, "{message}");
    }
    Executed::TouchSkipped
}

/// What one save's outcome means in the compare-and-set loop.
enum Turn {
    /// Written as it is.
    Saved,
    /// Nothing more to write; the record now stored, if any.
    Finished(Executed, Option<Record>),
    /// Merged onto the stored record: save again.
    Again,
}

/// One turn of the compare-and-set loop, shared by its async and immediate
/// forms: on a conflict the request's changes are replayed onto the stored
/// record, which the next save expects.
fn turn(
    outcome: SaveOutcome,
    record: &mut Record,
    expected_version: &mut u64,
    conflicts: &mut u32,
    changes: &Changes,
    max_conflict_retries: u32,
) -> Result<Turn, SessionError> {
    match outcome {
        SaveOutcome::Saved => Ok(Turn::Saved),
        SaveOutcome::Missing => {
            if changes.is_empty() {
                tracing::debug!("session record vanished during the request; its touch is dropped");
            } else {
                // The handler's writes are lost (rather than resurrect the
                // session): say so where operators look.
                tracing::warn!(
                    "session record vanished during the request (logged out elsewhere, given \
                     a new id by a log-in, or expired); the request's changes are dropped"
                );
            }
            Ok(Turn::Finished(Executed::SessionGone, None))
        }
        SaveOutcome::Conflict(current) => {
            let times = merge_times(record.times(), &changes.0, current.times());
            // A touch that lost to a write which moved the idle deadline
            // at least as far (or gave the session another lifetime):
            // nothing left to do.
            if changes.is_empty() && times == current.times() {
                return Ok(Turn::Finished(Executed::Done, Some(current)));
            }
            *conflicts += 1;
            if *conflicts > max_conflict_retries {
                if changes.is_empty() {
                    // A touch gives way: the session is busy being written,
                    // and a read is no reason to answer 500.
                    return Ok(Turn::Finished(Executed::Done, Some(current)));
                }
                return Err(SessionError::TooManyConflicts {
                    attempts: *conflicts,
                });
            }
            tracing::debug!(conflicts = *conflicts, "session save conflict; merging");
            let mut data = current.data;
            replay(&changes.0, &mut data)?;
            record.data = data;
            record.created_at = current.created_at;
            // The later touch wins (a write within the touch interval keeps
            // the last-use time it loaded, which a concurrent touch may
            // have moved since, and the other way round), unless a
            // lifetime was set: see `merge_times`.
            record.set_times(times);
            *expected_version = current.version;
            record.version = current.version.wrapping_add(1);
            Ok(Turn::Again)
        }
    }
}

/// Whether a warning met on every request of one session is due at warn
/// level: at most once a minute in the process (`last` holds when it was,
/// in Unix seconds), at debug level in between, so that a user cannot fill
/// the logs by repeating a request.
pub(crate) fn warn_due(last: &AtomicU64) -> bool {
    use std::sync::atomic::Ordering;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let then = last.load(Ordering::Relaxed);
    now >= then.saturating_add(60)
        && last
            .compare_exchange(then, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cookie's value is a credential: `Debug` shows its name, its
    /// length and its attributes only.
    #[test]
    fn debug_leaves_the_cookie_value_out() {
        let set = CookieOp::Set("id=s1.secret.tag; HttpOnly; Path=/".to_owned());
        assert_eq!(
            format!("{set:?}"),
            r#"Set("id=…(13 bytes); HttpOnly; Path=/")"#
        );
        let clear = CookieOp::Clear("id=; Max-Age=0".to_owned());
        assert_eq!(format!("{clear:?}"), r#"Clear("id=; Max-Age=0")"#);
        let done = crate::CommitNow::Done(Some("id=p1.sealed".to_owned()));
        assert_eq!(format!("{done:?}"), r#"Done(Some("id=…(9 bytes)"))"#);
        assert_eq!(format!("{:?}", CookieOp::None), "None");
    }

    /// Plans move from the engine to the adapter on every request that
    /// extracts its session: the rare operations (a regeneration's carried
    /// changes) stay boxed so they do not make every plan bigger, and a
    /// record's own lifetime packs into one word.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_plan_stays_small() {
        assert_eq!(size_of::<crate::Lifetime>(), 8);
        assert!(size_of::<Plan>() <= 248, "{} bytes", size_of::<Plan>());
    }
}
