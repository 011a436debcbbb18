//! Loading, creating, saving and deleting records.

use serde_json::json;
use session_core::{Clock as _, Lifetime, SaveOutcome, StoreError};
use time::Duration;

use super::{fresh_key, record_at, with_data};
use crate::Outcome;
use crate::failure::{check, check_eq, fail};
use crate::store::{Backend, ExpiryClock, Subject};

/// `load` of a key that was never written is `None`, not an error.
pub async fn load_of_a_missing_key_is_none(subject: Subject) -> Outcome {
    let loaded = subject.store.load(&fresh_key()).await?;
    check_eq!(loaded, None, "load of a key never written");
    Ok(())
}

/// `create` then `load` gives back the same record: every JSON type,
/// unicode and odd keys, escapes, all three times (whole milliseconds) and
/// the version.
pub async fn create_then_load_round_trips_every_json_type(subject: Subject) -> Outcome {
    let now = subject.clock.now();
    let mut record = with_data(
        record_at(now),
        json!({
            "null": null,
            "true": true,
            "false": false,
            "zero": 0,
            "negative": -42,
            "i64_min": i64::MIN,
            "u64_max": u64::MAX,
            "float": 3.25,
            "tiny": 1e-300,
            "huge": f64::MAX,
            "string": "text",
            "empty": "",
            "escapes": "quote \" backslash \\ slash / newline \n tab \t nul \u{0} bell \u{7}",
            "unicode": "héllo wörld ✓ 日本語 🦀",
            "array": [1, "two", null, [3], {"four": 4}],
            "object": {"nested": {"deep": [true, {"deeper": "yes"}]}},
            "empty_array": [],
            "empty_object": {},
            "ключ": "значение",
            "キー": "値",
            "🔑": "🗝",
            "": "the empty key",
            "key with spaces and \"quotes\"": 1,
            "a.b:c{d}[e]*?": 2,
        }),
        7,
    );
    record.last_seen = (now + Duration::milliseconds(1_234)).into();
    let key = fresh_key();
    subject.store.create(&key, &record).await?;
    let loaded = subject.store.load(&key).await?;
    check_eq!(loaded, Some(record), "the record loaded after create");
    Ok(())
}

/// A record with no deadline (no idle or absolute timeout configured)
/// round-trips and is kept: with `expiry: manual_clock`, still there 400
/// days later (a store must not give it an expiry of its own on create).
pub async fn record_without_a_deadline_round_trips(subject: Subject) -> Outcome {
    let now = subject.clock.now();
    let record = with_data(
        session_core::Record::new(now, None),
        json!({"user": "alice"}),
        0,
    );
    let key = fresh_key();
    subject.store.create(&key, &record).await?;
    let loaded = subject.store.load(&key).await?;
    check_eq!(loaded, Some(record.clone()), "a record without expires_at");
    if subject.expiry == ExpiryClock::Manual {
        subject.clock.advance(Duration::days(400));
        check_eq!(
            subject.store.load(&key).await?,
            Some(record),
            "a record created without expires_at, 400 days later"
        );
    }
    // Do not leave a record without a deadline behind in a shared backend.
    subject.store.delete(&key).await?;
    Ok(())
}

/// A session's own lifetime ([`Record::lifetime`](session_core::Record::lifetime),
/// a "remember me") round-trips through `create`, `save` and `take`, and a
/// save that sets it back to the default clears it: a store that keeps
/// records in a format of its own must keep it too
/// ([`Record::to_bytes`](session_core::Record::to_bytes) includes it).
pub async fn session_lifetime_round_trips(subject: Subject) -> Outcome {
    let now = subject.clock.now();
    let mut record = with_data(record_at(now), json!({"user": "alice"}), 0);
    record.lifetime = Lifetime::default()
        .with_idle_timeout(Some(Duration::days(30)))
        .with_absolute_timeout(None)
        .with_persistent(true);
    let key = fresh_key();
    subject.store.create(&key, &record).await?;
    let loaded = subject.store.load(&key).await?;
    check_eq!(
        loaded,
        Some(record.clone()),
        "the record loaded after create"
    );

    let mut next = record.clone();
    next.version = 1;
    next.lifetime = Lifetime::default().with_persistent(false);
    let saved = subject.store.save(&key, &next, 0).await?;
    check!(
        matches!(saved, SaveOutcome::Saved),
        "save with the current version: {saved:?}"
    );
    let loaded = subject.store.load(&key).await?;
    check_eq!(loaded, Some(next.clone()), "the record loaded after save");

    let mut back = next.clone();
    back.version = 2;
    back.lifetime = Lifetime::default();
    let saved = subject.store.save(&key, &back, 1).await?;
    check!(
        matches!(saved, SaveOutcome::Saved),
        "save back to the default: {saved:?}"
    );
    let taken = subject.store.take(&key).await?;
    check_eq!(
        taken,
        Some(back),
        "the record taken after a save back to the default"
    );
    Ok(())
}

/// A 100 KB record round-trips unchanged.
pub async fn large_record_round_trips(subject: Subject) -> Outcome {
    let big: String = "0123456789abcdef".repeat(100 * 1024 / 16);
    let items: Vec<_> = (0..1000)
        .map(|i| json!({"item": i, "name": format!("item-{i}")}))
        .collect();
    let record = with_data(
        record_at(subject.clock.now()),
        json!({"big": big, "items": items}),
        0,
    );
    let key = fresh_key();
    subject.store.create(&key, &record).await?;
    let loaded = subject.store.load(&key).await?;
    check!(
        loaded.as_ref() == Some(&record),
        "a {} byte record did not round-trip (loaded: {} bytes)",
        record.to_bytes().len(),
        loaded.map_or(0, |r| r.to_bytes().len())
    );
    Ok(())
}

/// The largest record [`oversized_writes_are_too_large_and_write_nothing`]
/// tries: a store's limit must lie below it.
pub const OVERSIZED_RECORD_CEILING: usize = 32 * 1024 * 1024;

/// A store has a limit on a record's size (the trait's rule; the built-in
/// stores default to [`session_core::DEFAULT_MAX_RECORD_SIZE`], 1 MiB): a
/// `create` or `save` over it answers [`StoreError::TooLarge`] and writes
/// nothing. The engine relies on that variant (it skips a touch that meets
/// it, and keeps a log-in that does), so a store that answers
/// [`StoreError::Backend`] instead turns the touch of a big session into a
/// 500.
///
/// The case writes records of 2, 8 and 32 MiB
/// ([`OVERSIZED_RECORD_CEILING`]) until one is refused: a store must take
/// the record of [`large_record_round_trips`] (about 130 KB) and refuse
/// 32 MiB. Check the size before sending anything, as the built-in stores
/// do: a store that sends 32 MiB to its backend to find out may meet its
/// own command timeout first, and fail the case with that error.
pub async fn oversized_writes_are_too_large_and_write_nothing(subject: Subject) -> Outcome {
    let now = subject.clock.now();
    let small = with_data(record_at(now), json!({"n": 1}), 0);
    for size in [2 << 20, 8 << 20, OVERSIZED_RECORD_CEILING] {
        let big = with_data(record_at(now), json!({"big": "x".repeat(size)}), 0);
        let key = fresh_key();
        match subject.store.create(&key, &big).await {
            Ok(()) => {
                subject.store.delete(&key).await?;
                if size == OVERSIZED_RECORD_CEILING {
                    fail!(
                        "a record of {size} bytes was created: a store needs a limit on a \
                         record's size below that, answered with StoreError::TooLarge"
                    );
                }
                continue;
            }
            Err(StoreError::TooLarge { .. }) => {}
            Err(other) => fail!(
                "create of a {size} byte record: want StoreError::TooLarge (the engine relies \
                 on it), got {other}"
            ),
        }
        let loaded = subject.store.load(&key).await?;
        check!(
            loaded.is_none(),
            "load after a create of {size} bytes refused as too large: found a record of {} bytes",
            loaded.map_or(0, |r| r.to_bytes().len())
        );
        subject.store.create(&key, &small).await?;
        let mut bigger = big.clone();
        bigger.version = 1;
        match subject.store.save(&key, &bigger, 0).await {
            Err(StoreError::TooLarge { .. }) => {}
            Ok(outcome) => fail!(
                "save of a {size} byte record over a live one: want StoreError::TooLarge, got \
                 {outcome:?}"
            ),
            Err(other) => fail!(
                "save of a {size} byte record over a live one: want StoreError::TooLarge, got \
                 {other}"
            ),
        }
        let loaded = subject.store.load(&key).await?;
        check!(
            loaded.as_ref() == Some(&small),
            "the record after a save refused as too large: want the small record (version 0), \
             found {}",
            loaded.map_or_else(
                || "none".to_owned(),
                |r| format!("version {}, {} bytes", r.version, r.to_bytes().len())
            )
        );
        return Ok(());
    }
    fail!("no record size was tried")
}

/// `create` under a key that holds a live record is
/// [`StoreError::Exists`], and the stored record stays as it was.
pub async fn create_never_overwrites(subject: Subject) -> Outcome {
    let now = subject.clock.now();
    let first = with_data(record_at(now), json!({"owner": "first"}), 0);
    let second = with_data(record_at(now), json!({"owner": "second"}), 0);
    let key = fresh_key();
    subject.store.create(&key, &first).await?;
    match subject.store.create(&key, &second).await {
        Err(StoreError::Exists) => {}
        Ok(()) => fail!("create over an existing record succeeded; it must be StoreError::Exists"),
        Err(other) => fail!("create over an existing record: want StoreError::Exists, got {other}"),
    }
    let loaded = subject.store.load(&key).await?;
    check_eq!(loaded, Some(first), "the record after a refused create");
    Ok(())
}

/// Writing or deleting one key leaves the others alone.
pub async fn records_under_different_keys_are_independent(subject: Subject) -> Outcome {
    let now = subject.clock.now();
    let (a, b) = (fresh_key(), fresh_key());
    let record_a = with_data(record_at(now), json!({"who": "a"}), 0);
    let record_b = with_data(record_at(now), json!({"who": "b"}), 0);
    subject.store.create(&a, &record_a).await?;
    subject.store.create(&b, &record_b).await?;
    let saved_b = with_data(record_at(now), json!({"who": "b", "n": 1}), 1);
    check_eq!(
        subject.store.save(&b, &saved_b, 0).await?,
        SaveOutcome::Saved,
        "save of b"
    );
    check_eq!(
        subject.store.load(&a).await?,
        Some(record_a),
        "a after b was saved"
    );
    subject.store.delete(&a).await?;
    check_eq!(subject.store.load(&a).await?, None, "a after its delete");
    check_eq!(
        subject.store.load(&b).await?,
        Some(saved_b),
        "b after a was deleted"
    );
    Ok(())
}

/// `save` with the stored version writes the record (whose version is one
/// more), and the next save expects that new version.
pub async fn save_with_the_current_version_replaces_the_record(subject: Subject) -> Outcome {
    let now = subject.clock.now();
    let key = fresh_key();
    subject
        .store
        .create(&key, &with_data(record_at(now), json!({"n": 0}), 0))
        .await?;
    for version in 1..=3_u64 {
        let mut next = with_data(record_at(now), json!({ "n": version }), version);
        next.last_seen = (now + Duration::seconds(i64::try_from(version).unwrap_or(0))).into();
        let outcome = subject.store.save(&key, &next, version - 1).await?;
        check_eq!(
            outcome,
            SaveOutcome::Saved,
            "save of version {version} over version {}",
            version - 1
        );
        check_eq!(
            subject.store.load(&key).await?,
            Some(next),
            "the record after saving version {version}"
        );
    }
    Ok(())
}

/// `save` with a version other than the stored one (older or newer) answers
/// [`SaveOutcome::Conflict`] with the record as stored, and writes nothing.
pub async fn save_with_a_stale_version_is_a_conflict_not_an_overwrite(subject: Subject) -> Outcome {
    let now = subject.clock.now();
    let key = fresh_key();
    subject
        .store
        .create(
            &key,
            &with_data(record_at(now), json!({"by": "creator"}), 0),
        )
        .await?;
    let winner = with_data(record_at(now), json!({"by": "winner"}), 1);
    check_eq!(
        subject.store.save(&key, &winner, 0).await?,
        SaveOutcome::Saved,
        "the first save"
    );
    for stale in [0_u64, 5] {
        let loser = with_data(record_at(now), json!({"by": "loser"}), stale + 1);
        let outcome = subject.store.save(&key, &loser, stale).await?;
        check_eq!(
            outcome,
            SaveOutcome::Conflict(winner.clone()),
            "save expecting version {stale} while version 1 is stored"
        );
        check_eq!(
            subject.store.load(&key).await?,
            Some(winner.clone()),
            "the record after a conflicting save expecting version {stale}"
        );
    }
    Ok(())
}

/// `save` of a key that holds nothing is [`SaveOutcome::Missing`], and
/// writes nothing: a save never creates a session.
pub async fn save_of_a_missing_record_is_missing_and_writes_nothing(subject: Subject) -> Outcome {
    let key = fresh_key();
    let record = with_data(record_at(subject.clock.now()), json!({"ghost": true}), 1);
    let outcome = subject.store.save(&key, &record, 0).await?;
    check_eq!(outcome, SaveOutcome::Missing, "save of a key never written");
    check_eq!(
        subject.store.load(&key).await?,
        None,
        "the key after a save that found nothing"
    );
    Ok(())
}

/// A request that loaded a session saves after another request deleted it
/// (logged out): the save is [`SaveOutcome::Missing`] and the session stays
/// deleted.
pub async fn delete_then_save_of_the_old_version_does_not_resurrect(subject: Subject) -> Outcome {
    let now = subject.clock.now();
    let key = fresh_key();
    let record = with_data(record_at(now), json!({"user": "alice"}), 0);
    subject.store.create(&key, &record).await?;
    let Some(loaded) = subject.store.load(&key).await? else {
        fail!("the record just created does not load");
    };
    subject.store.delete(&key).await?;
    let mut changed = loaded.clone();
    changed.data.insert("cart", json!(["apple"]));
    changed.version = loaded.version.wrapping_add(1);
    let outcome = subject.store.save(&key, &changed, loaded.version).await?;
    check_eq!(outcome, SaveOutcome::Missing, "save after delete");
    check_eq!(
        subject.store.load(&key).await?,
        None,
        "the deleted session after a late save"
    );
    Ok(())
}

/// A key whose record was deleted is free: a `create` there succeeds and
/// its record loads (a store that keeps a tombstone must not answer
/// [`StoreError::Exists`] for it).
pub async fn create_after_a_delete_takes_the_key(subject: Subject) -> Outcome {
    let key = fresh_key();
    let now = subject.clock.now();
    subject.store.create(&key, &record_at(now)).await?;
    subject.store.delete(&key).await?;
    let next = with_data(record_at(now), json!({"user": "bob"}), 0);
    match subject.store.create(&key, &next).await {
        Ok(()) => {}
        Err(error) => fail!("create after a delete of the key: {error}"),
    }
    check_eq!(
        subject.store.load(&key).await?,
        Some(next),
        "the record created after the delete"
    );
    Ok(())
}

/// Deleting a key that holds nothing, or deleting twice, is not an error.
pub async fn delete_of_a_missing_key_is_not_an_error(subject: Subject) -> Outcome {
    let key = fresh_key();
    subject.store.delete(&key).await?;
    subject
        .store
        .create(&key, &record_at(subject.clock.now()))
        .await?;
    subject.store.delete(&key).await?;
    subject.store.delete(&key).await?;
    check_eq!(subject.store.load(&key).await?, None, "after two deletes");
    Ok(())
}

/// `take` removes a record and hands back what it held, the latest saved
/// version: the engine carries what another request saved into a session
/// that changes id at log-in. A key that holds nothing takes as `None`, and
/// so does an expired record (with a manual clock); a save after the take
/// finds nothing and writes nothing.
pub async fn take_removes_the_record_and_returns_it(subject: Subject) -> Outcome {
    let now = subject.clock.now();
    check_eq!(
        subject.store.take(&fresh_key()).await?,
        None,
        "take of a key never written"
    );

    let key = fresh_key();
    let record = with_data(record_at(now), json!({"cart": ["apple"]}), 0);
    subject.store.create(&key, &record).await?;
    let mut saved = record.clone();
    saved.data.insert("cart", json!(["apple", "pear"]));
    saved.version = 1;
    check_eq!(
        subject.store.save(&key, &saved, 0).await?,
        SaveOutcome::Saved,
        "save before the take"
    );
    check_eq!(
        subject.store.take(&key).await?,
        Some(saved.clone()),
        "the record taken"
    );
    check_eq!(subject.store.load(&key).await?, None, "load after the take");
    check_eq!(subject.store.take(&key).await?, None, "a second take");
    let mut late = saved.clone();
    late.version = 2;
    check_eq!(
        subject.store.save(&key, &late, 1).await?,
        SaveOutcome::Missing,
        "save after the take"
    );
    check_eq!(
        subject.store.load(&key).await?,
        None,
        "load after the late save"
    );

    if subject.expiry == crate::store::ExpiryClock::Manual {
        let key = fresh_key();
        subject.store.create(&key, &record_at(now)).await?;
        subject.clock.advance(Duration::minutes(10));
        check_eq!(
            subject.store.take(&key).await?,
            None,
            "take at the deadline"
        );
        check_eq!(
            subject.store.load(&key).await?,
            None,
            "load after taking an expired record"
        );
    }
    Ok(())
}

/// Two more instances of the store, as two more server processes make
/// them: one with the same key prefix as the case's store, one with a
/// prefix of its own. A store over a shared backend must show the first
/// exactly what the case's store holds as either of them changes it (a
/// record created, saved, deleted), and the second nothing. Fails a store
/// that ignores the context's prefix, and one that serves loads from a
/// cache of its own process (a session logged out on one server would
/// live on another).
///
/// When the same-prefix instance does not see the record the case's store
/// created, a store said to be over a shared backend
/// ([`Backend::Shared`](crate::store::Backend::Shared), `backend: shared`)
/// fails; any other is taken for an in-process one (each instance keeps
/// its own records), and the case checks nothing more.
pub async fn instances_share_records_only_under_one_prefix(subject: Subject) -> Outcome {
    let same = subject.another_instance(true).await;
    let other = subject.another_instance(false).await;
    let now = subject.clock.now();
    let key = fresh_key();
    let record = with_data(record_at(now), json!({"n": 0}), 0);
    subject.store.create(&key, &record).await?;
    check_eq!(
        other.load(&key).await?,
        None,
        "an instance with another key prefix loaded the record"
    );
    let Some(seen) = same.load(&key).await? else {
        check!(
            subject.backend != Backend::Shared,
            "a second instance with the same key prefix does not see the record the first \
             created: the instances of a store over a shared backend must share its records"
        );
        // An in-process store: each instance keeps its own records.
        check_eq!(
            subject.store.load(&key).await?,
            Some(record),
            "the record, after a second instance looked"
        );
        return Ok(());
    };
    check_eq!(seen, record, "the record, through a second instance");
    let saved = with_data(record_at(now), json!({"n": 1}), 1);
    check_eq!(
        subject.store.save(&key, &saved, 0).await?,
        SaveOutcome::Saved,
        "the save through the first instance"
    );
    check_eq!(
        same.load(&key).await?,
        Some(saved.clone()),
        "the record through the second instance, after a save through the first"
    );
    check_eq!(
        same.save(&key, &with_data(record_at(now), json!({"n": 9}), 1), 0)
            .await?,
        SaveOutcome::Conflict(saved),
        "a stale save through the second instance"
    );
    let saved_there = with_data(record_at(now), json!({"n": 2}), 2);
    check_eq!(
        same.save(&key, &saved_there, 1).await?,
        SaveOutcome::Saved,
        "a save through the second instance"
    );
    check_eq!(
        subject.store.load(&key).await?,
        Some(saved_there),
        "the record through the first instance, after a save through the second"
    );
    same.delete(&key).await?;
    check_eq!(
        subject.store.load(&key).await?,
        None,
        "the record through the first instance, after a delete through the second"
    );
    check_eq!(
        subject
            .store
            .save(&key, &with_data(record_at(now), json!({"n": 3}), 3), 2)
            .await?,
        SaveOutcome::Missing,
        "a save through the first instance, after the delete"
    );
    check_eq!(
        same.load(&key).await?,
        None,
        "the record through the second instance, after that save"
    );
    Ok(())
}
