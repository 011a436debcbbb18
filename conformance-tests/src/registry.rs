//! The registries: every case of both suites, by name, with the capability
//! it needs. The suite macros are generated from the same lists, and a test
//! of this crate checks that every case function is listed, so a new case
//! can never be silently skipped.

use crate::adapter::StorageMode;
use crate::store::ExpiryClock;

/// One case of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The case's name: its function's name and its test's name.
    pub name: &'static str,
    /// What the implementation under test must be able to do for the case
    /// to run.
    pub needs: Needs,
}

/// What a case needs from the implementation under test. When the
/// capabilities passed to the suite macro lack it, the case's test is
/// generated with `#[ignore = reason]`: it shows as ignored, never as a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Runs everywhere.
    Nothing,
    /// A store whose expiry follows the suite's manual clock
    /// (`expiry: manual_clock`).
    ManualClockExpiry {
        /// Why the case cannot run otherwise.
        reason: &'static str,
    },
    /// Sessions kept on the server (`storage: server` or
    /// `storage: store(…)`, both [`StorageMode::Server`]), so that they can
    /// be revoked and merged.
    ServerState {
        /// Why the case cannot run otherwise.
        reason: &'static str,
    },
}

impl Case {
    /// Why this case is ignored for a store whose expiry follows `expiry`,
    /// or `None` when it runs.
    #[must_use]
    pub fn ignored_for_store(&self, expiry: ExpiryClock) -> Option<&'static str> {
        match self.needs {
            Needs::ManualClockExpiry { reason } if expiry != ExpiryClock::Manual => Some(reason),
            _ => None,
        }
    }

    /// Why this case is ignored for an adapter serving `storage`, or `None`
    /// when it runs.
    #[must_use]
    pub fn ignored_for_adapter(&self, storage: StorageMode) -> Option<&'static str> {
        match self.needs {
            Needs::ServerState { reason } if storage != StorageMode::Server => Some(reason),
            _ => None,
        }
    }
}

/// Every case of the store suite, in the order [`store_suite!`](crate::store_suite)
/// generates them. Each is a function of [`store::cases`](crate::store::cases).
pub const STORE_CASES: &[Case] = crate::__store_cases!(__case_registry!());

/// Every case of the adapter suite, in the order
/// [`adapter_suite!`](crate::adapter_suite) generates them. Each is a
/// function of [`adapter::cases`](crate::adapter::cases).
pub const ADAPTER_CASES: &[Case] = crate::__adapter_cases!(__case_registry!());

/// The store suite's case list, handed to the macro `$callback`.
///
/// Each entry is `name: needs;` where needs is `always` or
/// `manual_clock "why it cannot run otherwise"`.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_cases {
    ($callback:ident ! ( $($args:tt)* )) => {
        $crate::$callback! { ($($args)*)
            load_of_a_missing_key_is_none: always;
            create_then_load_round_trips_every_json_type: always;
            record_without_a_deadline_round_trips: always;
            session_lifetime_round_trips: always;
            large_record_round_trips: always;
            oversized_writes_are_too_large_and_write_nothing: always;
            create_never_overwrites: always;
            records_under_different_keys_are_independent: always;
            save_with_the_current_version_replaces_the_record: always;
            save_with_a_stale_version_is_a_conflict_not_an_overwrite: always;
            save_of_a_missing_record_is_missing_and_writes_nothing: always;
            delete_then_save_of_the_old_version_does_not_resurrect: always;
            delete_of_a_missing_key_is_not_an_error: always;
            create_after_a_delete_takes_the_key: always;
            take_removes_the_record_and_returns_it: always;
            instances_share_records_only_under_one_prefix: always;
            expired_record_is_never_returned_as_live: always;
            save_moves_the_deadline: always;
            save_can_bring_the_deadline_earlier: always;
            create_over_an_expired_record_succeeds: manual_clock "the store expires records on the wall clock, which the suite cannot move past a deadline; a backend that frees records at their deadline (a Redis PXAT) lets a create take the key by itself";
            record_is_live_until_its_exact_deadline: manual_clock "the store expires records on the wall clock, which cannot be stopped one millisecond before a deadline; expired_record_is_never_returned_as_live covers its expiry";
            store_sees_only_digests_of_session_ids: always;
            fifty_concurrent_writers_each_keep_their_own_key: always;
            twenty_concurrent_updates_of_one_list_lose_nothing: always;
            concurrent_creates_of_one_key_have_one_winner: always;
            concurrent_saves_of_one_version_have_one_winner: always;
            take_racing_saves_loses_nothing: always;
            concurrent_takes_hand_out_the_record_once: always;
        }
    };
}

/// The adapter suite's case list, handed to the macro `$callback`.
///
/// Each entry is `name: needs;` where needs is `always` or
/// `server_state "why it cannot run otherwise"`.
#[doc(hidden)]
#[macro_export]
macro_rules! __adapter_cases {
    ($callback:ident ! ( $($args:tt)* )) => {
        $crate::$callback! { ($($args)*)
            views_count_per_session: always;
            set_then_get_user: always;
            cart_pushes_and_lists: always;
            flash_is_read_once: always;
            login_with_wrong_credentials_is_refused: always;
            unknown_route_is_404_and_wrong_methods_never_5xx: always;
            session_cookie_has_the_contract_attributes: always;
            session_cookie_max_age_never_passes_the_absolute_lifetime: always;
            secure_setting_adds_the_secure_attribute: always;
            session_data_is_never_readable_in_the_cookie: always;
            responses_that_use_the_session_vary_on_cookie: always;
            responses_that_set_cookies_are_private: always;
            requests_without_session_data_get_no_session_cookie: always;
            unchanged_session_gets_no_cookie_until_the_touch_is_due: always;
            writes_within_the_touch_interval_get_no_cookie: always;
            theme_cookie_is_set_read_and_cleared: always;
            signed_cookie_round_trips_and_tampered_value_reads_as_none: always;
            value_signed_for_one_cookie_name_is_refused_under_another: always;
            login_regenerates_the_id_and_keeps_the_data: always;
            old_id_is_dead_after_login: server_state "cookie-store mode keeps no server state, so nothing can revoke a copy of an old cookie: it stays valid until its own deadlines pass";
            a_request_with_the_id_from_before_login_sets_no_cookie: server_state "cookie-store mode has no session ids: a copy of the old cookie is still a session";
            destroy_ends_the_session_and_clears_the_cookie: always;
            destroy_deletes_the_record_and_the_old_cookie_is_dead: server_state "cookie-store mode keeps no server state, so nothing can revoke a copy of an old cookie: it stays valid until its own deadlines pass";
            logout_ends_the_session_and_clears_the_cookie: always;
            old_cookie_is_dead_after_logout: server_state "cookie-store mode keeps no server state, so nothing can revoke a copy of an old cookie: it stays valid until its own deadlines pass";
            idle_timeout_ends_the_session_and_activity_extends_it: always;
            absolute_lifetime_ends_an_active_session: always;
            login_starts_the_absolute_lifetime_again: always;
            cookies_under_a_previous_key_are_accepted_and_reissued: always;
            error_responses_count_as_activity: always;
            cookies_under_a_dropped_key_are_refused: always;
            tampered_session_cookie_starts_a_fresh_session: always;
            truncated_oversized_and_garbage_cookies_start_a_fresh_session: always;
            duplicated_session_cookies_never_fail: always;
            unknown_id_is_never_adopted: server_state "cookie-store mode has no session ids: the whole session travels in the cookie";
            an_oversized_cart_push_is_refused_and_the_cart_keeps_its_items: always;
            malformed_json_gets_400_and_leaves_the_session_unchanged: always;
            twenty_concurrent_cart_pushes_of_one_session_are_all_kept: server_state "cookie-store mode cannot merge concurrent requests: each response carries a whole new cookie and the browser keeps the last one";
            store_failure_is_a_500_never_a_lost_session: server_state "cookie-store mode has no store that could fail";
            a_failed_save_delete_or_login_is_a_500_that_loses_nothing: server_state "cookie-store mode has no store that could fail";
            a_read_whose_touch_fails_is_answered_and_touched_later: server_state "cookie-store mode has no store that could fail";
        }
    };
}

/// Turns a case list into a `&[Case]`.
#[doc(hidden)]
#[macro_export]
macro_rules! __case_registry {
    (() $( $name:ident : $needs:ident $($reason:literal)? ; )*) => {
        &[ $( $crate::Case {
            name: stringify!($name),
            needs: $crate::__needs!($needs $($reason)?),
        } ),* ]
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __needs {
    (always) => {
        $crate::Needs::Nothing
    };
    (manual_clock $reason:literal) => {
        $crate::Needs::ManualClockExpiry { reason: $reason }
    };
    (server_state $reason:literal) => {
        $crate::Needs::ServerState { reason: $reason }
    };
}
