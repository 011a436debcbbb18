//! The conformance suite's adapter cases against the demo app
//! (`examples/demo.rs`) over real HTTP: with a server-side store, and in
//! cookie-store mode.

#[allow(dead_code)] // its `main` is the example's, unused here
#[path = "../examples/demo.rs"]
mod demo;

use conformance_tests::adapter::{Harness, Running};
use conformance_tests::adapter_suite;
use session_axum::SessionConfig;
use session_axum::core::BoxError;

/// Serves the demo app with the suite's config, on its own thread and
/// tokio runtime.
struct AxumHarness;

impl Harness for AxumHarness {
    fn serve(config: SessionConfig) -> Result<Running, BoxError> {
        let app = demo::app(config)?;
        Ok(Running::spawn(move |listener, shutdown| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                listener
                    .set_nonblocking(true)
                    .expect("a non-blocking listener");
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .expect("the demo serves");
            });
        })?)
    }
}

adapter_suite!(memory_store, AxumHarness, storage: server);
adapter_suite!(cookie_store, AxumHarness, storage: cookie);
