//! The store never sees a session id, only its digest.

use std::sync::Arc;

use serde_json::json;

use session_core::{
    Engine, Key, KeyRing, Session, SessionConfig, SessionError, SessionId, StoreKey, codec,
};

use super::super::recording::Recording;
use crate::failure::{check, check_eq, fail};
use crate::store::Subject;
use crate::{Failure, Outcome};

/// Runs sessions through the core's [`Engine`] over the store (create,
/// change, regenerate, destroy) and checks what the store was handed: every
/// key is the [`StoreKey`] digest of an id that a cookie carried, and no key
/// or record contains a raw session id in any form.
///
/// A store only ever receives [`StoreKey`]s, so this case holds the engine
/// to the rule on the store's path; for the store itself it proves that the
/// whole session life cycle runs on it: the data moves to the new id at a
/// regeneration and the old id holds nothing (its `take`), and nothing is
/// left under either id after the destroy.
pub async fn store_sees_only_digests_of_session_ids(subject: Subject) -> Outcome {
    let recording = Arc::new(Recording::new(subject.store.clone()));
    let engine = engine(&subject, recording.clone())?;

    let first = request(&engine, None, |s| s.insert("user", "alice")).await?;
    let Some(first) = first else {
        fail!("a new session set no cookie");
    };
    request(&engine, Some(&first), |s| {
        s.update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
            .map(drop)
    })
    .await?;
    let Some(second) = request(&engine, Some(&first), |s| {
        s.regenerate();
        Ok(())
    })
    .await?
    else {
        fail!("regenerating set no cookie");
    };
    // The data moved to the new id, and the old id holds nothing.
    let moved = open(&engine, Some(&second)).await?;
    check_eq!(
        (moved.get_value("user"), moved.get_value("views")),
        (Some(json!("alice")), Some(json!(1))),
        "the session under its new id"
    );
    let old = open(&engine, Some(&first)).await?;
    check_eq!(
        old.get_value("user"),
        None,
        "the session under its old id, after the regeneration"
    );
    request(&engine, Some(&second), |s| {
        s.destroy();
        Ok(())
    })
    .await?;

    let ids = [id_of(&engine, &first)?, id_of(&engine, &second)?];
    let digests: Vec<StoreKey> = ids.iter().map(SessionId::store_key).collect();
    for digest in &digests {
        check_eq!(
            subject.store.load(digest).await?,
            None,
            "a record left under {digest} after the destroy"
        );
    }
    let seen = recording.take();
    check!(
        seen.keys.len() >= 6,
        "the store saw only {} operations for create, load+save, load+create+delete, load+delete",
        seen.keys.len()
    );
    for key in &seen.keys {
        check!(
            digests.contains(key),
            "the store was handed a key that is no session id's digest: {key}"
        );
        for id in &ids {
            check!(
                !contains(key.as_bytes(), id.as_bytes()),
                "a store key holds the raw id bytes"
            );
            check!(
                !key.to_hex().contains(&hex(id.as_bytes())),
                "a store key holds the raw id in hex"
            );
        }
    }
    for record in &seen.records {
        for (id, cookie) in ids.iter().zip([&first, &second]) {
            let forms = [
                id.to_string_unsafe(),
                hex(id.as_bytes()),
                cookie_value(cookie).to_owned(),
            ];
            for form in forms {
                check!(
                    !contains(record, form.as_bytes()),
                    "a record handed to the store holds a session id or cookie: {form}"
                );
            }
        }
    }
    Ok(())
}

/// An engine over `store` on the suite's clock. It retries a save up to 64
/// times, more than the 49 conflicts the last of 50 concurrent writers can
/// meet.
pub(super) fn engine(
    subject: &Subject,
    store: Arc<dyn session_core::SessionStore>,
) -> Result<Engine, Failure> {
    let config = SessionConfig::new(KeyRing::new(Key::generate()))
        .with_store(store)
        .with_clock(Arc::new(subject.clock.clone()))
        .with_max_conflict_retries(64);
    Ok(Engine::new(config)?)
}

/// One request through the engine: the session cookie (`id=...`) it
/// carries, what the handler does, and the `Set-Cookie` sent back.
pub(super) async fn request(
    engine: &Engine,
    cookie: Option<&str>,
    handler: impl FnOnce(&Session) -> Result<(), SessionError>,
) -> Result<Option<String>, Failure> {
    let session = open(engine, cookie).await?;
    handler(&session)?;
    commit(engine, &session).await
}

/// Steps 1–3 of a request: read, load, open.
pub(super) async fn open(engine: &Engine, cookie: Option<&str>) -> Result<Session, Failure> {
    let incoming = engine.read(cookie.map(|c| c.split(';').next().unwrap_or(c)));
    let loaded = engine.load(incoming).await?;
    Ok(engine.open(loaded, engine.now()))
}

/// Steps 4–5 of a request: finish, commit.
pub(super) async fn commit(engine: &Engine, session: &Session) -> Result<Option<String>, Failure> {
    let plan = engine.finish(session, engine.now())?;
    Ok(engine.commit(plan).await?)
}

fn cookie_value(set_cookie: &str) -> &str {
    let pair = set_cookie.split(';').next().unwrap_or_default();
    pair.split_once('=').map_or(pair, |(_, value)| value)
}

fn id_of(engine: &Engine, set_cookie: &str) -> Result<SessionId, Failure> {
    let config = engine.config();
    let (payload, _) = codec::verify(
        config.keys(),
        config.cookie_name(),
        cookie_value(set_cookie),
    )
    .map_err(|e| Failure::new(format!("the engine's own cookie does not verify: {e}")))?;
    let bytes: [u8; session_core::ID_LEN] = payload
        .try_into()
        .map_err(|_| Failure::new("the signed payload is not a session id"))?;
    Ok(SessionId::from_bytes(bytes))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
