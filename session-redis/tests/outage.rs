//! What the store does when Redis is missing, hung, stopped or restarted,
//! each against a `redis-server` (or a silent socket) of the test's own.

mod support;

use std::time::{Duration, Instant};

use session_core::{SaveOutcome, SessionStore, StoreError};
use session_redis::{CommandError, ConnectError, RedisStore};
use support::{PrivateRedis, free_port, key, record};

async fn store_on(redis: &PrivateRedis, command_timeout: Duration) -> RedisStore {
    RedisStore::builder(redis.url())
        .connect_timeout(Duration::from_millis(500))
        .command_timeout(command_timeout)
        .connect()
        .await
        .unwrap()
}

/// `future`, which must not hang: a guard against a regression that waits
/// for a timeout far longer than the test (not a measure of speed).
async fn unhung<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("hung for a minute: waiting on a timeout it should not have met")
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_at_once_naming_the_server() {
    let port = free_port();
    // Refused, not timed out: the refusal is the answer, however long the
    // connect timeout.
    let err = unhung(
        RedisStore::builder(format!("redis://127.0.0.1:{port}"))
            .connect_timeout(Duration::from_secs(3600))
            .connect(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[tokio::test]
async fn connecting_to_a_server_that_never_answers_times_out() {
    // Accepts connections (the kernel does) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let err = unhung(
        RedisStore::builder(format!("redis://127.0.0.1:{port}"))
            .connect_timeout(Duration::from_millis(300))
            .connect(),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(
        matches!(err, ConnectError::Timeout { millis: 300, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn bad_settings_are_refused_before_connecting() {
    let err = RedisStore::connect("http://127.0.0.1:6379")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidUrl { .. }), "{err}");

    let err = RedisStore::builder("redis://127.0.0.1:1")
        .key_prefix("{sessions}:")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Config { .. }), "{err}");
    assert!(err.to_string().contains("hash tag"), "{err}");

    let err = RedisStore::builder("redis://127.0.0.1:1")
        .command_timeout(Duration::ZERO)
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Config { .. }), "{err}");
    // "No limit" is not one: a deadline that far would not fit the clock.
    for (name, builder) in [
        (
            "command",
            RedisStore::builder("redis://127.0.0.1:1").command_timeout(Duration::MAX),
        ),
        (
            "connect",
            RedisStore::builder("redis://127.0.0.1:1")
                .connect_timeout(Duration::from_secs(24 * 3600 + 1)),
        ),
    ] {
        let err = builder.connect().await.unwrap_err();
        assert!(matches!(err, ConnectError::Config { .. }), "{name}: {err}");
        assert!(err.to_string().contains("over a day"), "{name}: {err}");
    }

    // TLS without the feature that brings it: said at start-up.
    #[cfg(not(feature = "tls"))]
    for url in [
        "rediss://127.0.0.1:1",
        "REDISS://127.0.0.1:1",
        " rediss://127.0.0.1:1",
        "valkeys://127.0.0.1:1",
    ] {
        let err = RedisStore::connect(url).await.unwrap_err();
        assert!(matches!(err, ConnectError::Config { .. }), "{err}");
        assert!(err.to_string().contains("`tls` feature"), "{err}");
    }
}

#[tokio::test]
async fn a_password_in_the_url_never_shows_in_errors_or_debug() {
    let port = free_port();
    let url = format!("redis://user:hunter2@127.0.0.1:{port}");
    let builder = RedisStore::builder(url.clone());
    assert!(!format!("{builder:?}").contains("hunter2"));
    let err = builder.connect().await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test]
async fn a_hung_redis_fails_every_operation_within_the_command_timeout_then_recovers() {
    let redis = PrivateRedis::start();
    let store = store_on(&redis, Duration::from_millis(200)).await;
    store.create(&key(1), &record()).await.unwrap();

    redis.pause();
    let results = unhung(async {
        [
            store.load(&key(1)).await.err(),
            store.create(&key(2), &record()).await.err(),
            store.save(&key(1), &record(), 0).await.err(),
            store.delete(&key(3)).await.err(),
            store.ping().await.err(),
        ]
    })
    .await;
    for err in results {
        let err = err.expect("a hung Redis is an error");
        assert!(matches!(err, StoreError::Timeout { millis: 200 }), "{err}");
    }

    // Commands that timed out were still queued, and run now: a timeout
    // tells the caller nothing about whether the command took effect.
    redis.resume();
    let loaded = store.load(&key(1)).await.unwrap().unwrap();
    assert_eq!(loaded.data["views"], 1);
    assert!(store.load(&key(2)).await.unwrap().is_some());
}

#[tokio::test]
async fn a_stopped_redis_is_a_backend_error_with_the_cause_and_the_store_recovers() {
    let mut redis = PrivateRedis::start();
    // A timeout far beyond the test's length: a load that waited for it
    // would hang the test, and one that ran into it would be a `Timeout`.
    let store = store_on(&redis, Duration::from_secs(3600)).await;
    store.create(&key(1), &record()).await.unwrap();

    redis.kill();
    for attempt in 0..3 {
        let err = unhung(store.load(&key(1))).await.unwrap_err();
        // Refused: the cause, not a timeout.
        let StoreError::Backend(source) = &err else {
            panic!("attempt {attempt}: expected a backend error, got {err}");
        };
        let command = source
            .downcast_ref::<CommandError>()
            .expect("a CommandError");
        assert_eq!(command.command(), "GET");
        let message = err.to_string();
        assert!(message.contains("Redis GET failed"), "{message}");
        assert!(
            message.to_lowercase().contains("refused") || message.contains("dropped"),
            "{message}"
        );
    }
    let err = store.create(&key(2), &record()).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    let err = unhung(store.ping()).await.unwrap_err();
    assert!(err.to_string().contains("Redis PING failed"), "{err}");

    // Back (empty: this Redis keeps nothing on disk): the same store works
    // again without being rebuilt, starting with its very first command.
    redis.restart();
    store.ping().await.expect("a readiness probe answers again");
    store.create(&key(3), &record()).await.unwrap();
    assert_eq!(store.load(&key(1)).await.unwrap(), None);
    let third = store.load(&key(3)).await.unwrap().unwrap();
    let mut next = third.clone();
    next.version = 1;
    assert_eq!(
        store.save(&key(3), &next, 0).await.unwrap(),
        SaveOutcome::Saved,
        "the save script is sent again after the restart emptied its cache"
    );
}

// Multi-threaded, as servers run: the connection's driver notices the
// restart while this test's thread blocks restarting Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_creates_and_deletes_right_after_a_redis_restart_succeed() {
    let mut redis = PrivateRedis::start();
    let store = store_on(&redis, Duration::from_millis(500)).await;
    store.create(&key(1), &record()).await.unwrap();

    // Each is sent once more on the new connection if the old one is met.
    redis.restart();
    store.create(&key(2), &record()).await.unwrap();
    redis.restart();
    assert_eq!(store.load(&key(2)).await.unwrap(), None);
    redis.restart();
    store.delete(&key(2)).await.unwrap();

    // The restarted server is empty: a save needs a record created after
    // the restart. (A save that meets the dropped connection is re-sent
    // too: `a_save_whose_reply_is_lost_is_sent_again_and_applied_once`.)
    redis.restart();
    store.create(&key(3), &record()).await.unwrap();
    let mut next = record();
    next.version = 1;
    assert_eq!(
        store.save(&key(3), &next, 0).await.unwrap(),
        SaveOutcome::Saved
    );
}

/// A save whose reply is lost (it ran in Redis, then the connection
/// dropped) is sent once more on a new connection and reports "saved",
/// once: the copy finds its own token and writes nothing. A `take` whose
/// reply is lost is sent again too, and its copy hands back the record.
#[tokio::test]
async fn a_save_or_take_whose_reply_is_lost_is_sent_again_and_applied_once() {
    let redis = PrivateRedis::start();
    let cutter = support::cut::ReplyCutter::start(redis.port()).await;
    let store = RedisStore::builder(cutter.url())
        .command_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let first = record();
    store.create(&key(1), &first).await.unwrap();
    let mut counter = support::count::Counter::new(&redis).await;

    let mut next = first.clone();
    next.version = 1;
    next.data.insert("views", 2.into());
    cutter.arm("EVALSHA");
    let (saved, sent, _) = counter.count(store.save(&key(1), &next, 0)).await;
    assert_eq!(saved.unwrap(), SaveOutcome::Saved);
    assert_eq!(cutter.cuts(), 1, "the first reply was lost");
    // The save and its copy (the new connection's handshake between them).
    let saves: Vec<_> = sent
        .iter()
        .filter(|name| name.starts_with("EVAL"))
        .collect();
    assert_eq!(saves, ["EVALSHA", "EVALSHA"], "{sent:?}");
    assert_eq!(store.load(&key(1)).await.unwrap(), Some(next.clone()));

    // A take whose reply is lost is sent again, and its copy hands back
    // the record the first one took (as when the cluster client re-sends
    // it): a log-in then carries the session over instead of reading it as
    // ended.
    cutter.arm("EVALSHA");
    assert_eq!(store.take(&key(1)).await.unwrap(), Some(next));
    assert_eq!(cutter.cuts(), 2);
    assert_eq!(store.take(&key(1)).await.unwrap(), None, "taken once");
}

/// A connection attempt that fails otherwise than with an I/O error (the
/// handshake answered `NOAUTH`, as during a password change) is not kept:
/// once the server accepts connections again, the same store serves its
/// first command, without being rebuilt.
#[tokio::test]
async fn a_refused_handshake_is_not_kept_once_the_server_accepts_again() {
    let redis = PrivateRedis::start();
    let store = store_on(&redis, Duration::from_millis(500)).await;
    store.create(&key(1), &record()).await.unwrap();

    // This connection stays logged in when a password is set.
    let mut admin = support::raw(&redis.url()).await;
    set_password(&mut admin, "rotated").await;
    // The store's connection drops; its next handshake is refused.
    kill_other_clients(&mut admin).await;
    for attempt in 0..3 {
        let err = store.load(&key(1)).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Backend(_)),
            "attempt {attempt}: {err}"
        );
    }

    // The store's connection now holds a refused handshake of its own.
    set_password(&mut admin, "").await;
    // The first request once the server accepts again is served: the kept
    // refusal never reached Redis, so the command goes once more.
    let answer = store.load(&key(1)).await;
    assert!(
        matches!(answer, Ok(Some(_))),
        "the first load after the password change: {answer:?}"
    );
}

/// Sets the server's password (`""`: none); `admin` stays logged in.
async fn set_password(admin: &mut redis::aio::MultiplexedConnection, password: &str) {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(password)
        .query_async::<()>(admin)
        .await
        .unwrap();
}

/// Drops every connection to `admin`'s server but `admin`'s own.
async fn kill_other_clients(admin: &mut redis::aio::MultiplexedConnection) {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async::<i64>(admin)
        .await
        .unwrap();
}

/// How many handshakes `admin`'s server refused for want of a password
/// (`NOAUTH` and `WRONGPASS` in `INFO errorstats`).
async fn refused_handshakes(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("errorstats")
        .query_async(admin)
        .await
        .unwrap();
    info.lines()
        .filter(|line| {
            line.starts_with("errorstat_NOAUTH:") || line.starts_with("errorstat_WRONGPASS:")
        })
        .filter_map(|line| {
            line.split("count=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The connection attempt the manager makes by itself when its connection
/// drops, refused while no command was asked, is not answered to the first
/// command once the server accepts again: that command goes through.
#[tokio::test]
async fn a_handshake_refused_between_commands_does_not_fail_the_next_one() {
    let redis = PrivateRedis::start();
    let store = store_on(&redis, Duration::from_millis(500)).await;
    store.create(&key(1), &record()).await.unwrap();
    let mut admin = support::raw(&redis.url()).await;
    set_password(&mut admin, "rotated").await;
    let refused = refused_handshakes(&mut admin).await;
    kill_other_clients(&mut admin).await;
    // The manager connects again by itself (the server's disconnection is
    // pushed to it), and is refused. Waited for by polling the server: no
    // clock of ours decides when that happens.
    let waited = Instant::now();
    while refused_handshakes(&mut admin).await == refused {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the store's connection never tried the server again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    set_password(&mut admin, "").await;
    let answer = store.load(&key(1)).await;
    assert!(
        matches!(answer, Ok(Some(_))),
        "the first load after the password change: {answer:?}"
    );
}

/// The ids of the clients connected to `admin`'s server, this one left out.
async fn other_clients(admin: &mut redis::aio::MultiplexedConnection) -> Vec<i64> {
    let own: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(admin)
        .await
        .unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("normal")
        .query_async(admin)
        .await
        .unwrap();
    list.lines()
        .filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok())
        .filter(|id| *id != own)
        .collect()
}

/// A server demoted to a replica answers writes with `READONLY` on the
/// connection the store holds; the store then connects anew for its next
/// command (behind a name that moved to the new primary, that reaches it).
#[tokio::test]
async fn a_readonly_answer_makes_the_store_connect_anew() {
    let primary = PrivateRedis::start();
    let demoted = PrivateRedis::start();
    let store = store_on(&demoted, Duration::from_millis(500)).await;
    store.create(&key(1), &record()).await.unwrap();
    let mut admin = support::raw(&demoted.url()).await;
    let before = other_clients(&mut admin).await;
    assert_eq!(before.len(), 1, "the store's connection: {before:?}");

    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port())
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    let err = store.create(&key(2), &record()).await.unwrap_err();
    assert!(err.to_string().contains("read only replica"), "{err}");
    store.load(&key(1)).await.unwrap();
    // The old connection closes once its driver notices it was dropped.
    let mut after = other_clients(&mut admin).await;
    for _ in 0..100 {
        if after.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = other_clients(&mut admin).await;
    }
    assert_eq!(after.len(), 1, "the old connection is closed: {after:?}");
    assert_ne!(after, before, "a new connection");
}
