//! The conformance store suite against `RedisStore`: on the standalone
//! Redis at `REDIS_URL` and on the Redis Cluster at `REDIS_CLUSTER_URLS`
//! (both started by `scripts/test`). Redis expires records itself, on the
//! wall clock (`PXAT`), so the suite runs its wall-clock expiry variant.
//! Every case gets its own key prefix from the suite.
//!
//! The outage check runs twice, each time on a `redis-server` of its own:
//! stopped once the store has connected (connections refused), and frozen
//! with `SIGSTOP` (connections open, nothing answered: every operation
//! must give up after the command timeout).
//!
//! The adapter suite runs with the axum demo on Redis in
//! `session-axum/tests/conformance.rs` (`redis_store::*`).

mod support;

use std::time::Duration;

use conformance_tests::{store_outage_suite, store_suite};
use session_redis::RedisStore;
use support::{PrivateRedis, cluster_urls, redis_url};

store_suite!(standalone, expiry: wall_clock, backend: shared, |ctx| async move {
    let url = redis_url();
    RedisStore::builder(url.clone())
        .key_prefix(ctx.prefix())
        .connect()
        .await
        .unwrap_or_else(|e| {
            panic!("Redis is not reachable at {url} ({e}); run scripts/test or set REDIS_URL")
        })
});

store_suite!(cluster, expiry: wall_clock, backend: shared, |ctx| async move {
    let urls = cluster_urls();
    RedisStore::cluster_builder(urls.clone())
        .key_prefix(ctx.prefix())
        .connect()
        .await
        .unwrap_or_else(|e| {
            panic!("the Redis Cluster at {urls:?} is not reachable ({e}); run scripts/test")
        })
});

/// A store on a `redis-server` of its own, the server beside it.
async fn on_private_redis(
    ctx: &conformance_tests::store::StoreContext,
    command_timeout: Duration,
) -> (RedisStore, PrivateRedis) {
    let redis = PrivateRedis::start();
    let store = RedisStore::builder(redis.url())
        .key_prefix(ctx.prefix())
        .connect_timeout(Duration::from_millis(500))
        .command_timeout(command_timeout)
        .connect()
        .await
        .expect("a redis-server of the test's own");
    (store, redis)
}

store_outage_suite!(standalone_down, |ctx| async move {
    let (store, mut redis) = on_private_redis(&ctx, Duration::from_secs(2)).await;
    redis.kill();
    store
});

store_outage_suite!(standalone_hung, hold: |ctx| async move {
    let (store, redis) = on_private_redis(&ctx, Duration::from_millis(300)).await;
    // Thawed and stopped when the check drops it.
    redis.pause();
    (store, redis)
});
