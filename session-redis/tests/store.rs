//! What the store writes into Redis (key layout, value, expiry) and how it
//! treats values it did not write, against the shared standalone Redis at
//! `REDIS_URL`, each test under its own key prefix. The behaviour every
//! store shares is checked by the conformance suite (tests/conformance.rs).

mod support;

use redis::AsyncCommands as _;
use session_core::{Record, SaveOutcome, SessionId, SessionStore, StoreError, StoreKey};
use session_redis::RedisStore;
use support::{raw, redis_url, shared_store, unique_prefix};
use time::{Duration, OffsetDateTime};

fn new_key() -> StoreKey {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rand_u64().to_le_bytes());
    SessionId::from_bytes(bytes).store_key()
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

/// A record created now, alive for an hour, holding `views`.
fn record(views: u64) -> Record {
    let now = OffsetDateTime::now_utc();
    let mut record = Record::new(now, Some(now + Duration::hours(1)));
    record.data.insert("views", views.into());
    record
}

/// A store of the test `test`'s own prefix, holding `record(1)` under a
/// new key.
async fn created(test: &str) -> (RedisStore, StoreKey, Record) {
    let store = shared_store(test).await;
    let key = new_key();
    let first = record(1);
    store.create(&key, &first).await.unwrap();
    (store, key, first)
}

fn next(record: &Record, views: u64) -> Record {
    let mut next = record.clone();
    next.data.insert("views", views.into());
    next.version += 1;
    next
}

async fn stored_bytes(store: &RedisStore, key: &StoreKey) -> Option<Vec<u8>> {
    raw(&redis_url())
        .await
        .get(store.redis_key(key))
        .await
        .unwrap()
}

/// The value stored for `record`: its version as 16 lowercase hex digits
/// and `:`, then the core record encoding.
fn layout(record: &Record) -> Vec<u8> {
    [
        format!("{:016x}:", record.version).as_bytes(),
        &record.to_bytes(),
    ]
    .concat()
}

#[tokio::test]
async fn value_is_a_version_header_and_the_core_record_encoding_under_prefix_and_digest() {
    let store = shared_store("layout").await;
    let id = SessionId::from_bytes([7; 16]);
    let key = id.store_key();
    let original = record(1);
    store.create(&key, &original).await.unwrap();

    let redis_key = store.redis_key(&key);
    assert_eq!(redis_key, format!("{}{}", store.key_prefix(), key.to_hex()));
    assert!(!redis_key.contains(&id.to_string_unsafe()));
    let stored = stored_bytes(&store, &key).await.unwrap();
    assert_eq!(stored, layout(&original));
    assert!(stored.starts_with(b"0000000000000000:{\"v\":1,"));

    // A save writes the new version into the header.
    let mut second = next(&original, 2);
    second.version = 0x1f;
    assert_eq!(
        store.save(&key, &second, original.version).await.unwrap(),
        SaveOutcome::Saved
    );
    // With the save's own token first: `{"w":"<16 hex digits>",`.
    let stored = stored_bytes(&store, &key).await.unwrap();
    let (head, rest) = stored.split_at(17 + 24);
    let head = std::str::from_utf8(head).unwrap();
    assert!(head.starts_with("000000000000001f:{\"w\":\""), "{head}");
    assert!(head.ends_with("\","), "{head}");
    assert!(
        head[23..39].bytes().all(|b| b.is_ascii_hexdigit()),
        "{head}"
    );
    assert_eq!(rest, &second.to_bytes()[1..]);
    assert_eq!(store.load(&key).await.unwrap(), Some(second));
}

/// The save script's reply to `value` (a save's value, its token at bytes
/// 23..39) expecting `expected_version`, sent straight to Redis as the
/// store sends it: what a copy of that save's command meets.
async fn resend(
    store: &RedisStore,
    key: &StoreKey,
    value: &[u8],
    expected_version: u64,
) -> redis::Value {
    let deadline = OffsetDateTime::now_utc() + Duration::hours(1);
    redis::Script::new(session_redis::SAVE_SCRIPT)
        .key(store.redis_key(key))
        .arg(value)
        .arg(format!("{expected_version:016x}:"))
        .arg(deadline.unix_timestamp() * 1000)
        .invoke_async(&mut raw(&redis_url()).await)
        .await
        .unwrap()
}

/// A value as the store writes it for `record`, with `w` as its `"w"`
/// field: what another writer, or a hand-made value, would hold.
fn value_with_w(record: &Record, w: &str) -> Vec<u8> {
    [
        format!("{:016x}:{{\"w\":\"{w}\",", record.version).as_bytes(),
        &record.to_bytes()[1..],
    ]
    .concat()
}

/// The tokens in a stored value's `"w"` field, newest first.
fn tokens(value: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(value).unwrap();
    let list = text[17..].strip_prefix("{\"w\":\"").unwrap();
    list[..list.find('"').unwrap()]
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// One save's command that reaches Redis twice (re-sent after its
/// connection dropped) is applied once: the second copy finds the save's
/// token in the stored value and answers "saved". A value of the same
/// record with another token (another writer) meets a conflict.
#[tokio::test]
async fn a_save_that_reaches_redis_twice_is_applied_once() {
    let (store, key, first) = created("save_twice").await;
    let second = next(&first, 2);
    assert_eq!(
        store.save(&key, &second, first.version).await.unwrap(),
        SaveOutcome::Saved
    );
    // The first save after a create: the value holds its token alone, so
    // it is the command's value byte for byte.
    let written = stored_bytes(&store, &key).await.unwrap();
    assert_eq!(tokens(&written).len(), 1);

    // The save's own command, once more.
    assert_eq!(
        resend(&store, &key, &written, first.version).await,
        redis::Value::Int(1)
    );
    assert_eq!(stored_bytes(&store, &key).await.unwrap(), written);
    // Another writer's save of the same record: its own token.
    let other = value_with_w(&second, "00000000000000bb");
    assert_ne!(other, written);
    assert_eq!(
        resend(&store, &key, &other, first.version).await,
        redis::Value::BulkString(written.clone())
    );
    assert_eq!(stored_bytes(&store, &key).await.unwrap(), written);
    assert_eq!(store.load(&key).await.unwrap(), Some(second));
}

/// A copy of a save that arrives after other saves of the session is still
/// recognised, as long as its token is among the stored value's last
/// `SAVE_TOKENS_KEPT`: the cart item it added is not added twice. One save
/// later it is a conflict, as the docs say.
#[tokio::test]
async fn a_save_copy_that_arrives_after_other_saves_is_applied_once() {
    let (store, key, first) = created("copy_after_others").await;
    let mut current = next(&first, 2);
    assert_eq!(
        store.save(&key, &current, first.version).await.unwrap(),
        SaveOutcome::Saved
    );
    let copy = stored_bytes(&store, &key).await.unwrap();
    let copy_token = tokens(&copy)[0].clone();

    // The copy's save and `kept - 1` more: the copy is still recognised
    // after each, and the value lists the tokens newest first.
    let kept = session_redis::SAVE_TOKENS_KEPT;
    for others in 1..kept {
        let later = next(&current, current.version + 10);
        assert_eq!(
            store.save(&key, &later, current.version).await.unwrap(),
            SaveOutcome::Saved
        );
        current = later;
        let stored = stored_bytes(&store, &key).await.unwrap();
        let stored_tokens = tokens(&stored);
        assert_eq!(stored_tokens.len(), others + 1, "{stored_tokens:?}");
        assert_eq!(stored_tokens.last(), Some(&copy_token), "{stored_tokens:?}");
        assert!(
            stored_tokens.iter().all(|t| t.len() == 16),
            "{stored_tokens:?}"
        );
        assert_eq!(
            resend(&store, &key, &copy, first.version).await,
            redis::Value::Int(1)
        );
        assert_eq!(stored_bytes(&store, &key).await.unwrap(), stored);
        assert_eq!(store.load(&key).await.unwrap(), Some(current.clone()));
    }

    // One more save pushes the copy's token out: the copy now conflicts.
    let last = next(&current, 99);
    assert_eq!(
        store.save(&key, &last, current.version).await.unwrap(),
        SaveOutcome::Saved
    );
    let stored = stored_bytes(&store, &key).await.unwrap();
    let stored_tokens = tokens(&stored);
    assert_eq!(stored_tokens.len(), kept);
    assert!(
        stored_tokens.iter().all(|t| t.len() == 16),
        "{stored_tokens:?}"
    );
    assert!(!stored_tokens.contains(&copy_token));
    assert_eq!(
        resend(&store, &key, &copy, first.version).await,
        redis::Value::BulkString(stored)
    );
}

/// Only the token list counts: a copy whose token shows up elsewhere in the
/// stored value (in the session's data, say) is a conflict.
#[tokio::test]
async fn a_token_found_outside_the_list_is_no_copy() {
    let (store, key, first) = created("token_in_data").await;
    let token = "abcdef0123456789";
    let mut second = next(&first, 2);
    second.data.insert("note", token.into());
    assert_eq!(
        store.save(&key, &second, first.version).await.unwrap(),
        SaveOutcome::Saved
    );
    let stored = stored_bytes(&store, &key).await.unwrap();
    assert!(!tokens(&stored).contains(&token.to_owned()));
    assert!(String::from_utf8_lossy(&stored).contains(token));

    let copy = value_with_w(&second, token);
    assert_eq!(
        resend(&store, &key, &copy, first.version).await,
        redis::Value::BulkString(stored.clone())
    );
    assert_eq!(stored_bytes(&store, &key).await.unwrap(), stored);
}

/// A `"w"` field the script did not write (not a list of hex tokens) is
/// not carried into the next value, which stays valid JSON.
#[tokio::test]
async fn a_foreign_w_field_is_not_carried_over() {
    let (store, key, _) = created("foreign_w").await;
    let long = "0123456789abcdef".repeat(4);
    for w in [
        r#"x\"y"#,
        "not hex",
        "ABCDEF0123456789",
        "abc",
        &long,
        "0123456789abcdef,0123",
    ] {
        let current = store.load(&key).await.unwrap().unwrap();
        let foreign = value_with_w(&current, w);
        let _: () = raw(&redis_url())
            .await
            .set(store.redis_key(&key), &foreign)
            .await
            .unwrap();
        assert_eq!(store.load(&key).await.unwrap(), Some(current.clone()));

        let saved = next(&current, current.version + 10);
        assert_eq!(
            store.save(&key, &saved, current.version).await.unwrap(),
            SaveOutcome::Saved,
            "{w}"
        );
        let stored = stored_bytes(&store, &key).await.unwrap();
        assert_eq!(
            tokens(&stored).len(),
            1,
            "{w}: {}",
            String::from_utf8_lossy(&stored)
        );
        assert_eq!(store.load(&key).await.unwrap(), Some(saved));
    }
}

#[tokio::test]
async fn versions_beyond_two_to_the_53_compare_exactly() {
    let store = shared_store("big_version").await;
    let key = new_key();
    let mut first = record(1);
    first.version = (1 << 53) + 1;
    store.create(&key, &first).await.unwrap();

    // One less: a double would take it for equal.
    let stale = next(&first, 9);
    assert_eq!(
        store.save(&key, &stale, 1 << 53).await.unwrap(),
        SaveOutcome::Conflict(first.clone())
    );
    let second = next(&first, 2);
    assert_eq!(
        store.save(&key, &second, first.version).await.unwrap(),
        SaveOutcome::Saved
    );
    let mut last = next(&second, 3);
    last.version = u64::MAX;
    assert_eq!(
        store.save(&key, &last, second.version).await.unwrap(),
        SaveOutcome::Saved
    );
    assert_eq!(store.load(&key).await.unwrap(), Some(last));
}

#[tokio::test]
async fn save_after_delete_is_missing_and_never_resurrects() {
    let (store, key, first) = created("no_resurrection").await;
    store.delete(&key).await.unwrap();
    assert_eq!(
        store
            .save(&key, &next(&first, 2), first.version)
            .await
            .unwrap(),
        SaveOutcome::Missing
    );
    assert_eq!(store.load(&key).await.unwrap(), None);
    assert_eq!(stored_bytes(&store, &key).await, None);
}

/// Two servers that change one session the same way (each request of a
/// `/views` pair computes `views: 5` from `views: 4`, with the same times)
/// send byte-identical values: the second is a conflict, so the engine
/// replays its change and both count.
#[tokio::test]
async fn an_identical_save_from_a_second_writer_is_a_conflict() {
    let (store, key, first) = created("identical").await;
    let second = next(&first, 2);
    assert_eq!(
        store.save(&key, &second, first.version).await.unwrap(),
        SaveOutcome::Saved
    );
    assert_eq!(
        store
            .save(&key, &second.clone(), first.version)
            .await
            .unwrap(),
        SaveOutcome::Conflict(second.clone())
    );
    assert_eq!(store.load(&key).await.unwrap(), Some(second));
}

/// A create that reaches Redis twice (sent again after a lost connection)
/// succeeds the second time; another record under the same key is still
/// refused.
#[tokio::test]
async fn a_create_sent_twice_succeeds_both_times() {
    let (store, key, first) = created("create_twice").await;
    store.create(&key, &first).await.unwrap();
    assert!(matches!(
        store.create(&key, &record(2)).await,
        Err(StoreError::Exists)
    ));
    assert_eq!(store.load(&key).await.unwrap(), Some(first));
}

/// `take` is one script: the record comes back, and what Redis keeps is
/// a mark (`~`, the take's token, the value taken) that expires within a
/// minute and is no record to anything else.
#[tokio::test]
async fn take_removes_the_value_in_one_step() {
    let (store, key, first) = created("take").await;
    let before = stored_bytes(&store, &key).await.unwrap();
    assert_eq!(store.take(&key).await.unwrap(), Some(first.clone()));
    let mark = stored_bytes(&store, &key).await.unwrap();
    assert_eq!(mark[0], b'~', "{}", String::from_utf8_lossy(&mark));
    assert!(mark[1..17].iter().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(&mark[17..], &before[..]);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(store.redis_key(&key))
        .query_async(&mut raw(&redis_url()).await)
        .await
        .unwrap();
    assert!((1..=60_000).contains(&pttl), "{pttl}");

    assert_eq!(store.take(&key).await.unwrap(), None, "another take");
    assert_eq!(store.load(&key).await.unwrap(), None);
    let mut later = first.clone();
    later.version = 1;
    assert_eq!(
        store.save(&key, &later, 0).await.unwrap(),
        SaveOutcome::Missing,
        "a save after the take"
    );
    assert!(matches!(
        store.create(&key, &first).await,
        Err(StoreError::Exists)
    ));
    store.delete(&key).await.unwrap();
    assert_eq!(stored_bytes(&store, &key).await, None);
}

#[tokio::test]
async fn every_write_sets_the_redis_expiry_to_the_record_deadline() {
    let (store, key, first) = created("pxat").await;
    let mut conn = raw(&redis_url()).await;
    let redis_key = store.redis_key(&key);
    // Redis keeps a key through its PXAT millisecond; the deadline is the
    // first millisecond the record is dead.
    let deadline_ms = |r: &Record| r.expires_at.unwrap().unix_ms() - 1;

    let pexpiretime: i64 = redis::cmd("PEXPIRETIME")
        .arg(&redis_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pexpiretime, deadline_ms(&first));
    let pttl: i64 = conn.pttl(&redis_key).await.unwrap();
    assert!((3_590_000..=3_600_000).contains(&pttl), "PTTL {pttl}");

    // A save moves the deadline with the record.
    let mut second = next(&first, 2);
    second.expires_at = Some(first.expires_at.unwrap() + Duration::minutes(30));
    assert_eq!(
        store.save(&key, &second, first.version).await.unwrap(),
        SaveOutcome::Saved
    );
    let pexpiretime: i64 = redis::cmd("PEXPIRETIME")
        .arg(&redis_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pexpiretime, deadline_ms(&second));
}

#[tokio::test]
async fn a_record_that_never_expires_gets_no_ttl() {
    let store = shared_store("no_ttl").await;
    let first_key = new_key();
    let mut first = Record::new(OffsetDateTime::now_utc(), None);
    first.data.insert("a", 1.into());
    store.create(&first_key, &first).await.unwrap();
    let mut conn = raw(&redis_url()).await;
    let pttl: i64 = conn.pttl(store.redis_key(&first_key)).await.unwrap();
    assert_eq!(pttl, -1);

    // A save from a record with a deadline to one without drops the TTL.
    let key = new_key();
    let timed = record(1);
    store.create(&key, &timed).await.unwrap();
    let mut endless = next(&timed, 2);
    endless.expires_at = None;
    assert_eq!(
        store.save(&key, &endless, timed.version).await.unwrap(),
        SaveOutcome::Saved
    );
    let pttl: i64 = conn.pttl(store.redis_key(&key)).await.unwrap();
    assert_eq!(pttl, -1);
    assert_eq!(store.load(&key).await.unwrap(), Some(endless));
    // Records without expiry: gone when the test ends, not left in a Redis
    // that outlives the run.
    store.delete(&key).await.unwrap();
    store.delete(&first_key).await.unwrap();
}

#[tokio::test]
async fn a_record_whose_deadline_has_passed_is_gone() {
    let store = shared_store("past_deadline").await;
    let now = OffsetDateTime::now_utc();
    let mut dead = Record::new(now - Duration::hours(2), Some(now - Duration::hours(1)));
    dead.data.insert("a", 1.into());

    let key = new_key();
    store.create(&key, &dead).await.unwrap();
    assert_eq!(store.load(&key).await.unwrap(), None);

    // Saving a record onto a past deadline removes it too.
    let key = new_key();
    let live = record(1);
    store.create(&key, &live).await.unwrap();
    let mut expired = next(&live, 2);
    expired.expires_at = Some((now - Duration::seconds(1)).into());
    assert_eq!(
        store.save(&key, &expired, live.version).await.unwrap(),
        SaveOutcome::Saved
    );
    assert_eq!(store.load(&key).await.unwrap(), None);
}

/// A value Redis still holds past its deadline (written without an
/// expiry, say by a migration, or kept by a Redis clock that runs behind)
/// is none to `load` and `take`, as the trait requires.
#[tokio::test]
async fn a_value_held_past_its_deadline_is_none() {
    let store = shared_store("held_past_deadline").await;
    let now = OffsetDateTime::now_utc();
    let mut dead = Record::new(now - Duration::hours(2), Some(now - Duration::hours(1)));
    dead.data.insert("a", 1.into());
    let mut conn = raw(&redis_url()).await;
    let key = new_key();
    let () = conn
        .set(store.redis_key(&key), layout(&dead))
        .await
        .unwrap();
    assert_eq!(store.load(&key).await.unwrap(), None);
    assert_eq!(stored_bytes(&store, &key).await, Some(layout(&dead)));
    assert_eq!(store.take(&key).await.unwrap(), None);
    let mark = stored_bytes(&store, &key).await.unwrap();
    assert_eq!(mark.first(), Some(&b'~'), "take left its mark in its place");

    // The same value with a deadline ahead is loaded: the check is the
    // deadline's, not the missing TTL's.
    let mut live = dead.clone();
    live.expires_at = Some((now + Duration::hours(1)).into());
    let () = conn
        .set(store.redis_key(&key), layout(&live))
        .await
        .unwrap();
    assert_eq!(store.load(&key).await.unwrap(), Some(live));
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn a_record_expires_in_redis_at_its_deadline() {
    let store = shared_store("expires").await;
    let key = new_key();
    let now = OffsetDateTime::now_utc();
    let mut short = Record::new(now, Some(now + Duration::milliseconds(300)));
    short.data.insert("a", 1.into());
    store.create(&key, &short).await.unwrap();
    let loaded = store.load(&key).await.unwrap();
    // A slow machine may have passed the deadline already: only a load
    // made before it must find the record.
    if OffsetDateTime::now_utc() < now + Duration::milliseconds(300) {
        assert_eq!(loaded, Some(short));
    }
    // Redis itself frees the key: waited for on Redis' clock, up to ten
    // seconds.
    let mut waited = 0;
    while stored_bytes(&store, &key).await.is_some() {
        assert!(waited < 200, "the key outlived its deadline by seconds");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(
        OffsetDateTime::now_utc() >= now + Duration::milliseconds(300),
        "the key was gone before its deadline"
    );
    assert_eq!(store.load(&key).await.unwrap(), None);
}

/// Stores `value` raw under a new key, then checks that `load` and a save
/// expecting any of `versions` fail as `is_expected` says, leaving the
/// value as it was.
async fn assert_refused(
    store: &RedisStore,
    value: &[u8],
    versions: &[u64],
    is_expected: fn(&StoreError) -> bool,
) {
    let mut conn = raw(&redis_url()).await;
    let key = new_key();
    let () = conn.set(store.redis_key(&key), value).await.unwrap();

    let err = store.load(&key).await.unwrap_err();
    assert!(is_expected(&err), "load of {value:?}: {err}");
    for &version in versions {
        let mut update = record(1);
        update.version = version + 1;
        let err = store.save(&key, &update, version).await.unwrap_err();
        assert!(
            is_expected(&err),
            "save onto {value:?} from {version}: {err}"
        );
    }
    assert_eq!(stored_bytes(store, &key).await.as_deref(), Some(value));
    // Written without an expiry: gone when the test ends, not left in a
    // Redis that outlives the run.
    let () = conn.del(store.redis_key(&key)).await.unwrap();
}

fn is_corrupt(err: &StoreError) -> bool {
    matches!(err, StoreError::Corrupt { .. })
}

fn is_encoding(err: &StoreError) -> bool {
    matches!(err, StoreError::Encoding(_))
}

#[tokio::test]
async fn values_without_a_version_header_are_corrupt_and_never_overwritten() {
    let store = shared_store("no_header").await;
    let versions = [0, 3, 0x30];
    assert_refused(&store, b"not json", &versions, is_corrupt).await;
    assert_refused(&store, b"", &versions, is_corrupt).await;
    // Starting with `~` as a taken record's mark does, without being one.
    assert_refused(&store, b"~junk", &versions, is_corrupt).await;
    assert_refused(&store, b"~0123456789abcdef{}", &versions, is_corrupt).await;
    // The record encoding alone (no header), version 0 and 3.
    let mut bare = record(1);
    assert_refused(&store, &bare.to_bytes(), &versions, is_corrupt).await;
    bare.version = 3;
    assert_refused(&store, &bare.to_bytes(), &versions, is_corrupt).await;
    // Headers that are not 16 lowercase hex digits and a ':'.
    let json = bare.to_bytes();
    for head in [
        "0000000000000003",
        "000000000000003:",
        "0000000000000003;",
        "000000000000000A:",
        " 000000000000003:",
    ] {
        let value = [head.as_bytes(), &json].concat();
        assert_refused(&store, &value, &versions, is_corrupt).await;
    }
}

/// A take of a value without a version header (one that only looks like a
/// taken record's mark included) reports it as corrupt and leaves it as it
/// was, where a mark would read as no record.
#[tokio::test]
async fn a_take_of_a_value_that_is_no_record_is_corrupt_and_leaves_it() {
    let store = shared_store("no_mark").await;
    let mut conn = raw(&redis_url()).await;
    for value in [
        b"~junk".as_slice(),
        b"~0123456789abcdef{}",
        b"not json",
        b"",
    ] {
        let key = new_key();
        let () = conn.set(store.redis_key(&key), value).await.unwrap();
        let err = store.take(&key).await.unwrap_err();
        assert!(is_corrupt(&err), "{value:?}: {err}");
        let err = store.load(&key).await.unwrap_err();
        assert!(is_corrupt(&err), "{value:?} after the take: {err}");
        assert_eq!(stored_bytes(&store, &key).await.as_deref(), Some(value));
        let () = conn.del(store.redis_key(&key)).await.unwrap();
    }
}

#[tokio::test]
async fn undecodable_records_are_errors_and_are_never_overwritten() {
    let store = shared_store("garbage").await;
    assert_refused(&store, b"0000000000000003:not json", &[0, 4], is_encoding).await;
    assert_refused(&store, b"0000000000000003:", &[0, 4], is_encoding).await;
}

#[tokio::test]
async fn an_unknown_record_format_is_corrupt_and_never_overwritten() {
    let store = shared_store("format").await;
    let future = br#"0000000000000007:{"v":2,"c":0,"s":0,"n":7,"d":{}}"#;
    assert_refused(&store, future, &[0, 6, 8], is_corrupt).await;
}

#[tokio::test]
async fn a_header_that_disagrees_with_the_record_is_corrupt_and_never_overwritten() {
    let store = shared_store("disagree").await;
    let mut stored = record(1);
    stored.version = 5;
    let value = [b"0000000000000004:".as_slice(), &stored.to_bytes()].concat();
    assert_refused(&store, &value, &[0, 5, 6], is_corrupt).await;
}

#[tokio::test]
async fn a_key_of_another_redis_type_is_corrupt() {
    let store = shared_store("wrongtype").await;
    let mut conn = raw(&redis_url()).await;
    let key = new_key();
    let () = conn
        .hset(store.redis_key(&key), "field", "value")
        .await
        .unwrap();

    let err = store.load(&key).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("another application"), "{err}");
    let err = store.save(&key, &record(1), 0).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let () = conn.del(store.redis_key(&key)).await.unwrap();
}

/// A value longer than the store's limit is `TooLarge` before anything is
/// sent: a create writes nothing, a save leaves the stored value as it
/// was. A value of exactly the limit is written.
#[tokio::test]
async fn values_over_the_size_limit_are_refused_before_anything_is_sent() {
    const LIMIT: usize = 400;
    let store = RedisStore::builder(redis_url())
        .key_prefix(unique_prefix("size-limit"))
        .max_record_size(LIMIT)
        .connect()
        .await
        .unwrap();
    assert!(
        format!("{store:?}").contains("max_record_size: 400"),
        "{store:?}"
    );
    let with_note = |record: &Record, len: usize| {
        let mut record = record.clone();
        record.data.insert("note", "x".repeat(len).into());
        record
    };
    let base = layout(&with_note(&record(1), 0)).len();
    let at_limit = with_note(&record(1), LIMIT - base);
    assert_eq!(layout(&at_limit).len(), LIMIT);
    let key = new_key();
    store.create(&key, &at_limit).await.unwrap();
    assert_eq!(stored_bytes(&store, &key).await, Some(layout(&at_limit)));

    let over = with_note(&record(1), LIMIT - base + 1);
    let other = new_key();
    let err = store.create(&other, &over).await.unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { size, limit: LIMIT } if size == LIMIT + 1),
        "{err}"
    );
    assert_eq!(stored_bytes(&store, &other).await, None);

    // A save of the same size (a touch) goes through: its token is not
    // counted.
    let mut touched = at_limit.clone();
    touched.version = 1;
    assert_eq!(
        store.save(&key, &touched, 0).await.unwrap(),
        SaveOutcome::Saved
    );
    let before = stored_bytes(&store, &key).await;

    let grown = with_note(&next(&touched, 2), LIMIT);
    let err = store.save(&key, &grown, 1).await.unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { limit: LIMIT, .. }),
        "{err}"
    );
    assert_eq!(stored_bytes(&store, &key).await, before);

    // The default: 1 MiB.
    assert!(
        format!("{:?}", shared_store("size-default").await).contains("max_record_size: 1048576")
    );
}

#[tokio::test]
async fn prefixes_keep_stores_apart() {
    let a = shared_store("apart_a").await;
    let b = shared_store("apart_b").await;
    let key = new_key();
    a.create(&key, &record(1)).await.unwrap();
    assert_eq!(b.load(&key).await.unwrap(), None);
    b.create(&key, &record(2)).await.unwrap();
    assert_eq!(a.load(&key).await.unwrap().unwrap().data["views"], 1);
    assert_eq!(b.load(&key).await.unwrap().unwrap().data["views"], 2);
}
