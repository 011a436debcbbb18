//! The adapter suite on a store of the caller's (`storage: store(factory)`):
//! each store gets a prefix of its own and the world's clock, the suite
//! checks records through the store's `load` (so a store that does not
//! delete fails), and the records a case made are deleted when it ends.
//!
//! The app serves `/views` and `/destroy` with the contract's bodies, which
//! is all the cases run here use.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::routing::get;
use conformance_tests::adapter::{self, Harness, Running, cases};
use conformance_tests::store::StoreContext;
use session_axum::core::Clock;
use session_axum::core::{BoxError, Record, SaveOutcome, StoreKey, async_trait};
use session_axum::{MemoryStore, Session, SessionConfig, SessionLayer, SessionStore, StoreError};
use time::macros::datetime;

struct ViewsApp;

impl Harness for ViewsApp {
    fn serve(config: SessionConfig) -> Result<Running, BoxError> {
        let views = |session: Session| async move {
            let n = session.update("views", |n: Option<u64>| n.unwrap_or(0) + 1);
            format!("Views: {}", n.unwrap_or_default())
        };
        let destroy = |session: Session| async move {
            session.destroy();
            "Session destroyed"
        };
        let app = Router::new()
            .route("/views", get(views))
            .route("/destroy", get(destroy))
            .layer(SessionLayer::new(config)?);
        Ok(Running::spawn(move |listener, shutdown| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .unwrap();
            });
        })?)
    }
}

/// A memory store on the wall clock that the test keeps a handle on, and
/// that can be told to ignore `delete`.
#[derive(Debug, Clone)]
struct Watched {
    inner: Arc<MemoryStore>,
    deletes: bool,
}

#[async_trait]
impl SessionStore for Watched {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.inner.load(key).await
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.inner.create(key, record).await
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.inner.save(key, record, expected).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        if self.deletes {
            self.inner.delete(key).await
        } else {
            Ok(())
        }
    }
}

/// What the factory was given, and the stores it made.
#[derive(Default)]
struct Made {
    contexts: Vec<StoreContext>,
    stores: Vec<Arc<MemoryStore>>,
}

/// Runs `case` on `Watched` stores, returning its outcome and what the
/// factory saw.
fn run(
    case_name: &str,
    case: fn(&adapter::Suite) -> conformance_tests::Outcome,
    deletes: bool,
) -> (conformance_tests::Outcome, Made) {
    let made = Arc::new(Mutex::new(Made::default()));
    let seen = made.clone();
    let outcome = adapter::run_with_store::<ViewsApp, _, _, _>(
        "adapter_store",
        case_name,
        move |ctx| {
            let inner = Arc::new(MemoryStore::new());
            let mut made = seen.lock().unwrap_or_else(PoisonError::into_inner);
            made.contexts.push(ctx);
            made.stores.push(inner.clone());
            async move { Watched { inner, deletes } }
        },
        case,
    );
    let made = std::mem::take(&mut *made.lock().unwrap());
    (outcome, made)
}

#[test]
fn each_store_gets_a_prefix_of_its_own_and_the_worlds_clock() {
    // Two worlds: the foreign server's store and this server's.
    let (outcome, made) = run(
        "unknown_id_is_never_adopted",
        cases::unknown_id_is_never_adopted,
        true,
    );
    outcome.unwrap();
    let prefixes: Vec<&str> = made.contexts.iter().map(StoreContext::prefix).collect();
    assert_eq!(prefixes.len(), 2, "{prefixes:?}");
    assert_ne!(prefixes[0], prefixes[1]);
    for prefix in &prefixes {
        assert!(
            prefix.starts_with("conformance:adapter_store:unknown_id_is_never_adopted:")
                && prefix.ends_with(':')
                && !prefix.contains(['{', '}']),
            "{prefix}"
        );
    }
    let (_, again) = run(
        "unknown_id_is_never_adopted",
        cases::unknown_id_is_never_adopted,
        true,
    );
    assert_ne!(
        again.contexts[0].prefix(),
        prefixes[0],
        "two runs share a prefix"
    );
    for ctx in &made.contexts {
        assert_eq!(ctx.clock().now(), datetime!(2030-01-01 0:00 UTC));
    }
}

#[test]
fn the_records_a_case_made_are_deleted_when_it_ends() {
    let (outcome, made) = run(
        "views_count_per_session",
        cases::views_count_per_session,
        true,
    );
    outcome.unwrap();
    assert_eq!(made.stores.len(), 1);
    assert!(made.stores[0].is_empty(), "records left behind");
}

#[test]
fn a_store_that_does_not_delete_fails_the_destroy_case() {
    let (outcome, _) = run(
        "destroy_deletes_the_record_and_the_old_cookie_is_dead",
        cases::destroy_deletes_the_record_and_the_old_cookie_is_dead,
        false,
    );
    let failure = outcome.expect_err("a store that never deletes passed");
    eprintln!("a store that never deletes fails, as it must:\n{failure}");
    let (outcome, _) = run(
        "destroy_deletes_the_record_and_the_old_cookie_is_dead",
        cases::destroy_deletes_the_record_and_the_old_cookie_is_dead,
        true,
    );
    outcome.unwrap();
}
