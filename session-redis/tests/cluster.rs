//! What is particular to a Redis Cluster (`REDIS_CLUSTER_URLS`, started by
//! `scripts/test`): keys spread over the primaries, the script on every
//! node, connecting. The conformance suite runs on the cluster too
//! (tests/conformance.rs).

mod support;

use std::time::Duration;

use session_core::{Record, SaveOutcome, SessionId, SessionStore, StoreKey};
use session_redis::{ConnectError, RedisStore};
use support::{
    cluster_store, cluster_urls, engine, free_port, raw, raw_cluster, twenty_concurrent_appends,
    twenty_items,
};
use time::OffsetDateTime;

fn key(n: u8) -> StoreKey {
    SessionId::from_bytes([n; 16]).store_key()
}

fn record(views: u64) -> Record {
    let now = OffsetDateTime::now_utc();
    let mut record = Record::new(now, Some(now + time::Duration::hours(1)));
    record.data.insert("views", views.into());
    record
}

fn next(record: &Record, views: u64) -> Record {
    let mut next = record.clone();
    next.data.insert("views", views.into());
    next.version += 1;
    next
}

#[tokio::test]
async fn sessions_spread_over_every_primary_with_their_expiry() {
    let store = cluster_store("spread").await;
    for n in 0..60 {
        store.create(&key(n), &record(1)).await.unwrap();
    }
    let pattern = format!("{}*", store.key_prefix());
    let mut total = 0;
    for url in cluster_urls() {
        let mut node = raw(&url).await;
        let (_, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(0)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(100_000)
            .query_async(&mut node)
            .await
            .unwrap();
        assert!(!keys.is_empty(), "no session on the node at {url}");
        for redis_key in &keys {
            let pttl: i64 = redis::cmd("PTTL")
                .arg(redis_key)
                .query_async(&mut node)
                .await
                .unwrap();
            assert!(pttl > 3_500_000, "{redis_key}: PTTL {pttl}");
        }
        total += keys.len();
    }
    assert_eq!(total, 60);
}

/// A readiness probe answers from a cluster (the `redis` crate sends
/// `PING` to every primary).
#[tokio::test]
async fn ping_answers_from_a_cluster() {
    let store = cluster_store("ping").await;
    assert!(store.is_cluster());
    store.ping().await.expect("every primary answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_appends_to_one_session_are_all_kept_on_a_cluster() {
    let engine = engine(cluster_store("concurrent").await);
    assert_eq!(twenty_concurrent_appends(&engine).await, twenty_items());
}

#[tokio::test]
async fn saves_work_on_nodes_that_forgot_the_script() {
    let store = cluster_store("noscript").await;
    let mut cluster = raw_cluster().await;
    for n in 0..6 {
        store.create(&key(n), &record(1)).await.unwrap();
    }
    // SCRIPT FLUSH goes to every primary.
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut cluster)
        .await
        .unwrap();
    for n in 0..6 {
        let first = store.load(&key(n)).await.unwrap().unwrap();
        assert_eq!(
            store.save(&key(n), &next(&first, 2), 0).await.unwrap(),
            SaveOutcome::Saved
        );
    }
}

#[tokio::test]
async fn an_unreachable_cluster_fails_at_connect() {
    let err = RedisStore::cluster_builder([format!("redis://127.0.0.1:{}", free_port())])
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Unreachable { .. } | ConnectError::Timeout { .. }
        ),
        "{err}"
    );
    let err = RedisStore::cluster_builder(Vec::<String>::new())
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Config { .. }), "{err}");
}

#[tokio::test]
async fn a_standalone_server_is_not_a_cluster() {
    let err = RedisStore::cluster_builder([support::redis_url()])
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Unreachable { .. } | ConnectError::Timeout { .. }
        ),
        "{err}"
    );
}
