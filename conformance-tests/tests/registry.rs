//! The macros and the registries list the same cases, and every case
//! function is registered: a new case can never be silently skipped.

#![allow(unnameable_test_items)] // the suites expanded below are checked, not run

use std::collections::BTreeSet;

use conformance_tests::adapter::{Harness, Running, StorageMode};
use conformance_tests::startup::STARTUP_CASES;
use conformance_tests::store::ExpiryClock;
use conformance_tests::{ADAPTER_CASES, Case, STORE_CASES};
use session_core::{BoxError, SessionConfig};

/// A harness for expanding `adapter_suite!`; its tests are never run.
#[allow(dead_code)]
struct Unserved;

impl Harness for Unserved {
    fn serve(_: SessionConfig) -> Result<Running, BoxError> {
        Err("never served".into())
    }
}

/// The public functions of the case files.
fn case_functions(sources: &[&str]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for source in sources {
        for line in source.lines() {
            let line = line.trim_start();
            let Some(rest) = line
                .strip_prefix("pub async fn ")
                .or_else(|| line.strip_prefix("pub fn "))
            else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

fn registered(cases: &[Case]) -> BTreeSet<String> {
    let names: BTreeSet<String> = cases.iter().map(|c| c.name.to_owned()).collect();
    assert_eq!(names.len(), cases.len(), "a case is registered twice");
    names
}

/// `(name, ignore reason)` as the registry says for these capabilities.
fn expected(
    cases: &[Case],
    ignored: impl Fn(&Case) -> Option<&'static str>,
) -> Vec<(&'static str, Option<&'static str>)> {
    cases.iter().map(|c| (c.name, ignored(c))).collect()
}

#[test]
fn every_store_case_function_is_registered() {
    let functions = case_functions(&[
        include_str!("../src/store/cases/records.rs"),
        include_str!("../src/store/cases/expiry.rs"),
        include_str!("../src/store/cases/privacy.rs"),
        include_str!("../src/store/cases/concurrency.rs"),
        include_str!("../src/store/cases/races.rs"),
    ]);
    assert_eq!(functions, registered(STORE_CASES));
}

#[test]
fn every_adapter_case_function_is_registered() {
    let functions = case_functions(&[
        include_str!("../src/adapter/cases/routes.rs"),
        include_str!("../src/adapter/cases/session_cookie.rs"),
        include_str!("../src/adapter/cases/app_cookies.rs"),
        include_str!("../src/adapter/cases/lifecycle.rs"),
        include_str!("../src/adapter/cases/robustness.rs"),
    ]);
    assert_eq!(functions, registered(ADAPTER_CASES));
}

#[test]
fn every_case_file_is_checked_above() {
    // A new file of cases must be added to the lists above.
    for (dir, checked) in [("src/store/cases", 5), ("src/adapter/cases", 5)] {
        let path = format!("{}/{dir}", env!("CARGO_MANIFEST_DIR"));
        let files = std::fs::read_dir(&path)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != "mod.rs")
            .count();
        assert_eq!(files, checked, "case files in {dir}");
    }
}

#[test]
fn store_suite_generates_exactly_the_registered_cases() {
    mod manual {
        conformance_tests::store_suite!(suite, expiry: manual_clock, |ctx| async move {
            session_core::MemoryStore::with_clock(ctx.clock())
        });
    }
    mod wall {
        conformance_tests::store_suite!(suite, expiry: wall_clock, |_ctx| async move {
            session_core::MemoryStore::new()
        });
    }
    assert_eq!(
        manual::suite::CASES,
        expected(STORE_CASES, |c| c.ignored_for_store(ExpiryClock::Manual))
    );
    assert_eq!(
        wall::suite::CASES,
        expected(STORE_CASES, |c| c.ignored_for_store(ExpiryClock::Wall))
    );
    assert!(
        wall::suite::CASES
            .iter()
            .any(|(_, reason)| reason.is_some()),
        "the wall-clock suite ignores the cases that stop the clock"
    );
}

#[test]
fn adapter_suite_generates_exactly_the_registered_cases() {
    mod server {
        conformance_tests::adapter_suite!(suite, crate::Unserved, storage: server);
    }
    mod cookie {
        conformance_tests::adapter_suite!(suite, crate::Unserved, storage: cookie);
    }
    mod store {
        conformance_tests::adapter_suite!(suite, crate::Unserved, storage: store(|ctx| async move {
            session_core::MemoryStore::with_clock(ctx.clock())
        }));
    }
    mod wall_clock_store {
        // A trailing comma, and a store whose expiry the suite cannot move.
        conformance_tests::adapter_suite!(
            suite,
            crate::Unserved,
            storage: store(|_ctx| async move { session_core::MemoryStore::new() }),
        );
    }
    assert_eq!(
        server::suite::CASES,
        expected(ADAPTER_CASES, |c| c
            .ignored_for_adapter(StorageMode::Server))
    );
    // A store of the caller's is server-side storage: every case runs.
    for cases in [store::suite::CASES, wall_clock_store::suite::CASES] {
        assert_eq!(cases, server::suite::CASES);
        assert!(cases.iter().all(|(_, reason)| reason.is_none()));
    }
    assert_eq!(
        cookie::suite::CASES,
        expected(ADAPTER_CASES, |c| c
            .ignored_for_adapter(StorageMode::Cookie))
    );
    let ignored: Vec<_> = cookie::suite::CASES
        .iter()
        .filter(|(_, reason)| reason.is_some())
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(
        ignored,
        [
            "old_id_is_dead_after_login",
            "a_request_with_the_id_from_before_login_sets_no_cookie",
            "destroy_deletes_the_record_and_the_old_cookie_is_dead",
            "old_cookie_is_dead_after_logout",
            "unknown_id_is_never_adopted",
            "twenty_concurrent_cart_pushes_of_one_session_are_all_kept",
            "store_failure_is_a_500_never_a_lost_session",
            "a_failed_save_delete_or_login_is_a_500_that_loses_nothing",
            "a_read_whose_touch_fails_is_answered_and_touched_later",
        ]
    );
}

#[test]
fn every_startup_case_function_is_registered() {
    let source = include_str!("../src/startup.rs");
    let start = source
        .find("pub mod cases {")
        .expect("startup.rs has a `cases` module");
    let end = start
        + source[start..]
            .find("\n}\n")
            .expect("the `cases` module ends at a closing brace in column 0");
    let functions = case_functions(&[&source[start..end]]);
    let registered: BTreeSet<String> = STARTUP_CASES.iter().map(|&n| n.to_owned()).collect();
    assert_eq!(
        registered.len(),
        STARTUP_CASES.len(),
        "a case is registered twice"
    );
    assert_eq!(functions, registered);
}

#[test]
fn startup_suite_generates_exactly_the_registered_cases() {
    mod demo {
        conformance_tests::startup_suite!(suite, program: "/no/such/demo");
    }
    assert_eq!(demo::suite::CASES, STARTUP_CASES);
}
