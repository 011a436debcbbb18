//! Data nested deeper than `MAX_DATA_DEPTH` is refused before it is written:
//! written, it could never be loaded again.

mod support;

use serde_json::{Value, json};
use session_core::{MAX_DATA_DEPTH, Record, SessionError, Storage};
use support::{Browser, Harness};

/// `levels` arrays around a null (0: the null itself).
fn nested(levels: usize) -> Value {
    (0..levels).fold(Value::Null, |inner, _| Value::Array(vec![inner]))
}

fn refused(result: Result<impl std::fmt::Debug, SessionError>) {
    match result {
        Err(SessionError::TooDeep { limit }) => assert_eq!(limit, MAX_DATA_DEPTH),
        other => panic!("expected TooDeep, got {other:?}"),
    }
}

#[test]
fn the_limit_is_the_deepest_data_a_record_can_be_loaded_with() {
    // The data's map is the first level.
    let mut record = Record::new(time::OffsetDateTime::UNIX_EPOCH, None);
    record.data.insert("d", nested(MAX_DATA_DEPTH - 1));
    assert_eq!(Record::from_bytes(&record.to_bytes()).unwrap(), record);
    record.data.insert("d", nested(MAX_DATA_DEPTH));
    assert!(Record::from_bytes(&record.to_bytes()).is_err());
}

#[tokio::test]
async fn data_at_the_limit_is_saved_and_loads_again_in_both_storages() {
    for h in [
        Harness::new(),
        Harness::with(|c| c.with_storage(Storage::Cookie)),
    ] {
        let mut browser = Browser::new();
        let deepest = nested(MAX_DATA_DEPTH - 1);
        let (_, set) = h
            .request(&mut browser, |s| s.insert_value("d", deepest.clone()))
            .await;
        assert!(set.is_some());
        let (value, _) = h.request(&mut browser, |s| s.get_value("d")).await;
        assert_eq!(value, Some(deepest));
    }
}

#[tokio::test]
async fn one_level_deeper_is_refused_and_the_session_keeps_what_it_had() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let writes = h.store.writes();

    let session = h.open(&browser).await;
    session.insert_value("d", nested(MAX_DATA_DEPTH));
    refused(h.engine.finish(&session, h.engine.now()));
    assert_eq!(h.store.writes(), writes, "nothing was written");

    // Deep inside an object counts the same.
    let session = h.open(&browser).await;
    let mut deep = json!(1);
    for _ in 0..MAX_DATA_DEPTH {
        deep = json!({ "k": deep });
    }
    session.insert_value("d", deep);
    refused(h.engine.finish_owned(session, h.engine.now()));

    let (data, _) = h
        .request(&mut browser, |s| (s.get_value("user"), s.get_value("d")))
        .await;
    assert_eq!(data, (Some(json!("alice")), None));
}

#[tokio::test]
async fn a_new_session_too_deep_is_refused_in_cookie_store_mode_too() {
    let h = Harness::with(|c| c.with_storage(Storage::Cookie));
    let session = h.open(&Browser::new()).await;
    session.insert_value("d", nested(MAX_DATA_DEPTH));
    refused(h.engine.finish(&session, h.engine.now()));
}

#[tokio::test]
async fn deep_data_that_is_removed_again_in_the_same_request_is_no_error() {
    let h = Harness::new();
    let session = h.open(&Browser::new()).await;
    session.insert_value("d", nested(MAX_DATA_DEPTH + 10));
    session.remove("d");
    session.insert("views", &1).unwrap();
    assert!(h.engine.finish(&session, h.engine.now()).is_ok());
}

#[tokio::test]
async fn an_update_that_nests_too_deep_is_refused_too() {
    let h = Harness::new();
    let mut browser = Browser::new();
    // Alone in its session, and beside keys the request did not change
    // (which are not walked).
    let session = h.open(&browser).await;
    session
        .update("d", |_: Option<Value>| nested(MAX_DATA_DEPTH))
        .unwrap();
    refused(h.engine.finish(&session, h.engine.now()));
    h.request(&mut browser, |s| {
        s.insert("a", &1).unwrap();
        s.insert("b", &2).unwrap();
    })
    .await;
    let session = h.open(&browser).await;
    session
        .update("d", |_: Option<Value>| nested(MAX_DATA_DEPTH))
        .unwrap();
    refused(h.engine.finish(&session, h.engine.now()));
}

#[tokio::test]
async fn data_at_the_limit_is_kept_when_a_later_request_changes_another_key() {
    // Data loaded at the limit is saved again when another key changes.
    let h = Harness::new();
    let mut browser = Browser::new();
    let deepest = nested(MAX_DATA_DEPTH - 1);
    h.request(&mut browser, |s| s.insert_value("d", deepest.clone()))
        .await;
    h.request(&mut browser, |s| s.insert("views", &1).unwrap())
        .await;
    let (data, _) = h
        .request(&mut browser, |s| (s.get_value("d"), s.get_value("views")))
        .await;
    assert_eq!(data, (Some(deepest), Some(json!(1))));
}
