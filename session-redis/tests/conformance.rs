//! The conformance store suite against `RedisStore`: on the standalone
//! Redis at `REDIS_URL` and on the Redis Cluster at `REDIS_CLUSTER_URLS`
//! (both started by `scripts/test`). Redis expires records itself, on the
//! wall clock (`PXAT`), so the suite runs its wall-clock expiry variant.
//! Every case gets its own key prefix from the suite.
//!
//! The adapter suite runs with the axum demo on Redis in
//! `session-axum/tests/conformance.rs` (`redis_store::*`).

mod support;

use conformance_tests::store_suite;
use session_redis::RedisStore;
use support::{cluster_urls, redis_url};

store_suite!(standalone, expiry: wall_clock, |ctx| async move {
    let url = redis_url();
    RedisStore::builder(url.clone())
        .key_prefix(ctx.prefix())
        .connect()
        .await
        .unwrap_or_else(|e| {
            panic!("Redis is not reachable at {url} ({e}); run scripts/test or set REDIS_URL")
        })
});

store_suite!(cluster, expiry: wall_clock, |ctx| async move {
    let urls = cluster_urls();
    RedisStore::cluster_builder(urls.clone())
        .key_prefix(ctx.prefix())
        .connect()
        .await
        .unwrap_or_else(|e| {
            panic!("the Redis Cluster at {urls:?} is not reachable ({e}); run scripts/test")
        })
});
