//! The store under session-core's engine, driven the way an adapter drives
//! it: concurrent writers, and the Redis commands each kind of request
//! costs, seen with `MONITOR` and Redis' own counters (`INFO commandstats`).

mod support;

use session_core::{Engine, Record, SaveOutcome, SessionId, SessionStore as _};
use session_redis::RedisStore;
use support::count::{Counter, counts, names};
use support::{
    PrivateRedis, engine, request, shared_store, twenty_concurrent_appends, twenty_items,
};
use time::OffsetDateTime;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_appends_to_one_session_are_all_kept() {
    let engine = engine(shared_store("concurrent").await);
    assert_eq!(twenty_concurrent_appends(&engine).await, twenty_items());
}

#[tokio::test]
async fn destroy_deletes_the_record_and_a_stale_writer_cannot_bring_it_back() {
    let store = shared_store("destroy").await;
    let engine = engine(store.clone());
    let cookie = request(&engine, None, |s| s.insert("user", "alice").unwrap())
        .await
        .unwrap()
        .unwrap();

    // A slow request loads the session before the logout...
    let incoming = engine.read([cookie.as_bytes()]);
    let slow = engine.open(engine.load(incoming).await.unwrap(), engine.now());
    // ...the logout deletes it...
    let cleared = request(&engine, Some(&cookie), |s| s.destroy())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared, "id=");
    // ...and the slow request's write is dropped, with no cookie of its own
    // (the logout's removal stands).
    slow.insert("cart", &["late"]).unwrap();
    let plan = engine.finish(&slow, engine.now()).unwrap();
    assert_eq!(engine.commit(plan).await.unwrap(), None);

    let mut user = None;
    request(&engine, Some(&cookie), |s| {
        user = s.get::<String>("user").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(user, None);
}

/// A log-in on one server while another server saves to the same session:
/// the save lands in Redis before the log-in takes the old record, and the
/// log-in carries it over to the new id (the take returns the newer record,
/// and the log-in's own changes are replayed onto it).
#[tokio::test]
async fn a_login_carries_over_a_write_another_server_made_while_it_ran() {
    let store = shared_store("login-carry").await;
    let server = engine(store);
    let other_server = Engine::new(server.config().clone()).unwrap();
    let cookie = request(&server, None, |s| s.insert("cart", &["apple"]).unwrap())
        .await
        .unwrap()
        .unwrap();

    // The log-in loads the session...
    let incoming = server.read([cookie.as_bytes()]);
    let login = server.open(server.load(incoming).await.unwrap(), server.now());
    // ...another server adds to the cart and saves...
    request(&other_server, Some(&cookie), |s| {
        s.update("cart", |cart: Option<Vec<String>>| {
            let mut cart = cart.unwrap_or_default();
            cart.push("pear".to_owned());
            cart
        })
        .unwrap();
    })
    .await
    .unwrap();
    // ...and the log-in changes the id.
    login.insert("user", "alice").unwrap();
    login.regenerate();
    let plan = server.finish(&login, server.now()).unwrap();
    let set_cookie = server.commit(plan).await.unwrap().unwrap();
    let new_cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert_ne!(new_cookie, cookie);

    let mut seen = (None, None);
    request(&other_server, Some(&new_cookie), |s| {
        seen = (
            s.get::<String>("user").unwrap(),
            s.get::<Vec<String>>("cart").unwrap(),
        );
    })
    .await
    .unwrap();
    assert_eq!(
        seen,
        (
            Some("alice".to_owned()),
            Some(vec!["apple".to_owned(), "pear".to_owned()])
        )
    );
    let mut old_cart = Some(Vec::new());
    request(&server, Some(&cookie), |s| {
        old_cart = s.get::<Vec<String>>("cart").unwrap();
    })
    .await
    .unwrap();
    assert_eq!(old_cart, None, "the old id no longer has a session");
}

#[tokio::test]
async fn each_kind_of_request_costs_the_promised_round_trips() {
    let redis = PrivateRedis::start();
    let store = RedisStore::builder(redis.url()).connect().await.unwrap();
    let engine = engine(store);
    let mut counter = Counter::new(&redis).await;

    // A new session (`/views` without a cookie): one SET NX.
    let (cookie, sent, stats) = counter
        .count(request(&engine, None, |s| {
            s.update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
                .unwrap();
        }))
        .await;
    let cookie = cookie.unwrap().unwrap();
    assert_eq!(sent, names(&["SET"]), "new session");
    assert_eq!(stats, counts(&[("set", 1)]), "new session");

    // Read only (`/get`): one GET.
    let (_, sent, stats) = counter
        .count(request(&engine, Some(&cookie), |s| {
            let _ = s.get::<u64>("views");
        }))
        .await;
    assert_eq!(sent, names(&["GET"]), "read-only request");
    assert_eq!(stats, counts(&[("get", 1)]), "read-only request");

    // Read and write (`/views`): GET, then the save script, which runs its
    // GET and SET inside Redis.
    let (_, sent, stats) = counter
        .count(request(&engine, Some(&cookie), |s| {
            s.update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
                .unwrap();
        }))
        .await;
    assert_eq!(sent, names(&["GET", "EVALSHA"]), "read+write request");
    assert_eq!(
        stats,
        counts(&[("get", 2), ("evalsha", 1), ("set", 1)]),
        "read+write request"
    );

    // Log-in (`regenerate`): GET, SET NX of the new id, then the take
    // script on the old one.
    let (new_cookie, sent, _) = counter
        .count(request(&engine, Some(&cookie), |s| {
            s.regenerate();
            s.insert("user", "alice").unwrap();
        }))
        .await;
    let new_cookie = new_cookie.unwrap().unwrap();
    assert_eq!(sent, names(&["GET", "SET", "EVALSHA"]), "id regeneration");

    // Log-out (`destroy`): GET, DEL.
    let (_, sent, _) = counter
        .count(request(&engine, Some(&new_cookie), |s| s.destroy()))
        .await;
    assert_eq!(sent, names(&["GET", "DEL"]), "destroy");

    // The destroyed session's cookie: one GET, nothing written.
    let (_, sent, _) = counter
        .count(request(&engine, Some(&new_cookie), |s| {
            let _ = s.get::<String>("user");
        }))
        .await;
    assert_eq!(sent, names(&["GET"]), "unknown session");
}

#[tokio::test]
async fn a_flushed_script_cache_costs_one_extra_round_trip_once() {
    let redis = PrivateRedis::start();
    let store = RedisStore::builder(redis.url()).connect().await.unwrap();
    let mut counter = Counter::new(&redis).await;
    let key = SessionId::from_bytes([3; 16]).store_key();
    let now = OffsetDateTime::now_utc();
    let first = Record::new(now, Some(now + time::Duration::hours(1)));
    store.create(&key, &first).await.unwrap();

    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(counter.connection())
        .await
        .unwrap();
    let mut second = first.clone();
    second.version = 1;
    let (outcome, sent, _) = counter.count(store.save(&key, &second, 0)).await;
    assert_eq!(outcome.unwrap(), SaveOutcome::Saved);
    assert_eq!(sent, names(&["EVALSHA", "EVAL"]));

    let mut third = second.clone();
    third.version = 2;
    let (outcome, sent, _) = counter.count(store.save(&key, &third, 1)).await;
    assert_eq!(outcome.unwrap(), SaveOutcome::Saved);
    assert_eq!(sent, names(&["EVALSHA"]));
}
