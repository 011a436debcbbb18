//! The start-up suite against the demo program (`examples/demo.rs`), as
//! `cargo run -p session-axum --example demo` runs it: its environment
//! variables, their one-line errors, the random-key warning, the listening
//! line, and each store. The Redis case uses `REDIS_URL` (default
//! `redis://127.0.0.1:6379`; `scripts/test` starts one).

conformance_tests::startup_suite!(demo_startup, example: "demo");
