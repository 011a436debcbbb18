//! A session's life: login, destroy, logout, expiry, key rotation.

use session_core::{Key, KeyRing, SessionConfig};
use time::Duration;

use super::{LOGIN, has_attribute, is_removal, json, no_cookies, not_authenticated, text};
use crate::adapter::Suite;
use crate::client::Browser;
use crate::failure::{check, check_eq, fail};
use crate::{Failure, Outcome};

/// Fills a cart, logs in, and returns the session cookie values from
/// before and after the login.
fn cart_then_login(browser: &Browser) -> Result<(String, String), Failure> {
    not_authenticated(&browser.get("/auth/profile")?, "/auth/profile before login")?;
    browser.post_json("/cart", r#"{"item":"apple"}"#)?;
    let Some(before) = browser.cookie("id") else {
        fail!("POST /cart set no session cookie");
    };
    let reply = browser.post_json("/auth/login", LOGIN)?;
    json(&reply, 200, r#"{"message":"Logged in"}"#, "login")?;
    let Some(after) = browser.cookie("id") else {
        fail!("login left no session cookie: {:?}", reply.set_cookies());
    };
    Ok((before, after))
}

/// Login gives the session a fresh id (no fixation) and keeps its data:
/// the cart filled before is still there, and the profile answers.
pub fn login_regenerates_the_id_and_keeps_the_data(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    let (before, after) = cart_then_login(&browser)?;
    check!(before != after, "login kept the session cookie: {after}");
    logged_in_with_the_cart(&browser, "login")
}

/// A browser logged in as alice whose cart holds an apple: the profile
/// answers, and the cart filled before the login is still there.
pub(super) fn logged_in_with_the_cart(browser: &Browser, after: &str) -> Outcome {
    json(
        &browser.get("/auth/profile")?,
        200,
        r#"{"user":{"username":"alice"}}"#,
        &format!("/auth/profile after {after}"),
    )?;
    json(
        &browser.get("/cart")?,
        200,
        r#"["apple"]"#,
        &format!("the cart after {after}"),
    )
}

/// After login the old session id resolves to nothing: its record is gone.
pub fn old_id_is_dead_after_login(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    let (before, _) = cart_then_login(&browser)?;
    check_eq!(
        site.store()?.live_records()?,
        1,
        "records after login (the old one must be gone)"
    );
    let attacker = site.browser();
    attacker.set_cookie("id", &before);
    not_authenticated(
        &attacker.get("/auth/profile")?,
        "/auth/profile with the pre-login cookie",
    )?;
    json(
        &attacker.get("/cart")?,
        200,
        "[]",
        "/cart with the pre-login cookie",
    )?;
    Ok(())
}

/// `/destroy` answers `Session destroyed` and clears the cookie; the next
/// request starts a new session.
pub fn destroy_ends_the_session_and_clears_the_cookie(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    browser.get("/views")?;
    browser.get("/views")?;
    let reply = browser.get("/destroy")?;
    text(&reply, 200, "Session destroyed", "/destroy")?;
    let Some(header) = reply.set_cookie("id") else {
        fail!(
            "/destroy did not clear the session cookie: {:?}",
            reply.set_cookies()
        );
    };
    check!(
        is_removal(header),
        "/destroy's cookie does not remove it: {header}"
    );
    check!(
        header.to_ascii_lowercase().contains("path=/"),
        "the removal needs the cookie's Path=/: {header}"
    );
    text(
        &browser.get("/views")?,
        200,
        "Views: 1",
        "/views after /destroy",
    )?;
    Ok(())
}

/// `/destroy` deletes the record, and a copy of the old cookie is dead.
pub fn destroy_deletes_the_record_and_the_old_cookie_is_dead(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    browser.get("/views")?;
    browser.get("/views")?;
    let Some(old) = browser.cookie("id") else {
        fail!("/views set no session cookie");
    };
    check_eq!(site.store()?.live_records()?, 1, "records before /destroy");
    text(
        &browser.get("/destroy")?,
        200,
        "Session destroyed",
        "/destroy",
    )?;
    check_eq!(site.store()?.live_records()?, 0, "records after /destroy");
    let replay = site.browser();
    replay.set_cookie("id", &old);
    text(
        &replay.get("/views")?,
        200,
        "Views: 1",
        "/views with the destroyed cookie",
    )?;
    Ok(())
}

/// `/auth/logout` answers `{"message":"Logged out"}`, clears the cookie,
/// and the profile is 401 again.
pub fn logout_ends_the_session_and_clears_the_cookie(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    json(
        &browser.post_json("/auth/login", LOGIN)?,
        200,
        r#"{"message":"Logged in"}"#,
        "login",
    )?;
    let reply = browser.get("/auth/logout")?;
    json(&reply, 200, r#"{"message":"Logged out"}"#, "/auth/logout")?;
    let Some(header) = reply.set_cookie("id") else {
        fail!(
            "logout did not clear the session cookie: {:?}",
            reply.set_cookies()
        );
    };
    check!(
        is_removal(header),
        "logout's cookie does not remove it: {header}"
    );
    not_authenticated(&browser.get("/auth/profile")?, "/auth/profile after logout")?;
    Ok(())
}

/// After logout the record is gone and a copy of the logged-in cookie is
/// dead.
pub fn old_cookie_is_dead_after_logout(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    browser.post_json("/auth/login", LOGIN)?;
    let Some(session) = browser.cookie("id") else {
        fail!("login set no session cookie");
    };
    browser.get("/auth/logout")?;
    check_eq!(site.store()?.live_records()?, 0, "records after logout");
    let replay = site.browser();
    replay.set_cookie("id", &session);
    not_authenticated(
        &replay.get("/auth/profile")?,
        "/auth/profile with the logged-out cookie",
    )?;
    Ok(())
}

/// A session unused for longer than the idle timeout (60 s here) is gone;
/// any request, reads included, counts as activity.
pub fn idle_timeout_ends_the_session_and_activity_extends_it(suite: &Suite) -> Outcome {
    let site = suite.start_with(|c| c.with_idle_timeout(Some(Duration::seconds(60))))?;
    let browser = site.browser();
    browser.post_json("/set", r#"{"user":"Alice"}"#)?;
    for step in 1..=3 {
        site.clock.advance(Duration::seconds(45));
        json(
            &browser.get("/get")?,
            200,
            r#"{"user":"Alice"}"#,
            &format!("a read {} s in, 45 s after the last request", step * 45),
        )?;
    }
    let old = browser.cookie("id");
    site.clock.advance(Duration::seconds(61));
    json(
        &browser.get("/get")?,
        200,
        r#"{"user":"No user set"}"#,
        "a read 61 s after the last request",
    )?;
    text(
        &browser.get("/views")?,
        200,
        "Views: 1",
        "/views after the idle timeout",
    )?;
    check!(
        browser.cookie("id") != old,
        "the idle session's cookie was kept"
    );
    Ok(())
}

/// A session ends at its absolute lifetime (2 h here) however active it is.
pub fn absolute_lifetime_ends_an_active_session(suite: &Suite) -> Outcome {
    let site = suite.start_with(|c| c.with_absolute_timeout(Some(Duration::hours(2))))?;
    let browser = site.browser();
    text(&browser.get("/views")?, 200, "Views: 1", "the first /views")?;
    for n in 2..=4 {
        site.clock.advance(Duration::minutes(35));
        text(
            &browser.get("/views")?,
            200,
            &format!("Views: {n}"),
            "an active session",
        )?;
    }
    site.clock.advance(Duration::minutes(16));
    text(
        &browser.get("/views")?,
        200,
        "Views: 1",
        "/views 2 h 1 min after creation",
    )?;
    Ok(())
}

/// A request that still carries the session's id from before a login
/// (sent before the browser had the login's cookie: another tab, a poll),
/// served after the login, stores nothing and sends no session cookie:
/// the login's cookie stands, whichever response the browser takes last.
/// A login with that id (a retry, its browser never got the first one's
/// response) goes through.
pub fn a_request_with_the_id_from_before_login_sets_no_cookie(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    let (before, _) = cart_then_login(&browser)?;
    let stale = site.browser();
    stale.set_cookie("id", &before);
    let reply = stale.post_json("/cart", r#"{"item":"pear"}"#)?;
    check_eq!(
        reply.status,
        200,
        "a push with the id from before the login ({:?})",
        reply.body
    );
    check!(
        reply.set_cookie("id").is_none(),
        "a push with the id from before the login set a session cookie, which would replace \
         the login's: {:?}",
        reply.set_cookies()
    );
    logged_in_with_the_cart(&browser, "a request with the id from before the login")?;
    json(
        &stale.post_json("/auth/login", LOGIN)?,
        200,
        r#"{"message":"Logged in"}"#,
        "a login retried with the id from before the first",
    )?;
    check!(
        stale.cookie("id").is_some_and(|id| id != before),
        "the retried login set no new session cookie"
    );
    json(
        &stale.get("/auth/profile")?,
        200,
        r#"{"user":{"username":"alice"}}"#,
        "/auth/profile after the retried login",
    )
}

/// Login starts the absolute lifetime (2 h here) again: it caps one
/// login, so a login late in a long visit is not ended minutes later.
pub fn login_starts_the_absolute_lifetime_again(suite: &Suite) -> Outcome {
    let site = suite.start_with(|c| c.with_absolute_timeout(Some(Duration::hours(2))))?;
    let browser = site.browser();
    browser.post_json("/cart", r#"{"item":"apple"}"#)?;
    site.clock.advance(Duration::minutes(50));
    browser.get("/cart")?;
    site.clock.advance(Duration::minutes(50));
    json(
        &browser.post_json("/auth/login", LOGIN)?,
        200,
        r#"{"message":"Logged in"}"#,
        "login 100 min into the visit",
    )?;
    for minutes in [150, 200] {
        site.clock.advance(Duration::minutes(50));
        logged_in_with_the_cart(
            &browser,
            &format!(
                "a login {} min ago, {minutes} min into the visit",
                minutes - 100
            ),
        )?;
    }
    site.clock.advance(Duration::minutes(21));
    not_authenticated(
        &browser.get("/auth/profile")?,
        "/auth/profile 2 h 1 min after the login",
    )
}

/// Cookies (session and signed `pref`) made under a previous key are
/// accepted and re-issued under the current key on the next request, even a
/// read-only one; the re-issued cookies verify under the new key alone.
pub fn cookies_under_a_previous_key_are_accepted_and_reissued(suite: &Suite) -> Outcome {
    let world = suite.world();
    let (old_key, new_key) = (Key::generate(), Key::generate());
    let before = suite.serve(&world, KeyRing::new(old_key.clone()), |c| c)?;
    let rotated = suite.serve(
        &world,
        KeyRing::new(new_key.clone()).with_previous(old_key),
        |c| c,
    )?;
    let new_only = suite.serve(&world, KeyRing::new(new_key), |c| c)?;

    let browser = before.browser();
    browser.post_json("/set", r#"{"user":"Alice"}"#)?;
    browser.get("/signed/set?value=compact")?;
    let (Some(old_id), Some(old_pref)) = (browser.cookie("id"), browser.cookie("pref")) else {
        fail!("the demo did not set both `id` and `pref`");
    };

    let browser = rotated.browser();
    browser.set_cookie("id", &old_id);
    browser.set_cookie("pref", &old_pref);
    let reply = browser.get("/get")?;
    json(
        &reply,
        200,
        r#"{"user":"Alice"}"#,
        "/get with an old-key session cookie",
    )?;
    check!(
        reply.set_cookie("id").is_some(),
        "a read with an old-key session cookie did not re-issue it"
    );
    let reply = browser.get("/signed/get")?;
    text(
        &reply,
        200,
        "Signed value: compact",
        "/signed/get with an old-key pref",
    )?;
    check!(
        reply.set_cookie("pref").is_some(),
        "a read with an old-key pref did not re-issue it"
    );
    let (Some(new_id), Some(new_pref)) = (browser.cookie("id"), browser.cookie("pref")) else {
        fail!("the re-issue removed a cookie");
    };
    check!(
        new_id != old_id,
        "the session cookie was re-issued unchanged"
    );

    let later = new_only.browser();
    later.set_cookie("id", &new_id);
    later.set_cookie("pref", &new_pref);
    json(
        &later.get("/get")?,
        200,
        r#"{"user":"Alice"}"#,
        "the re-issued session, new key only",
    )?;
    text(
        &later.get("/signed/get")?,
        200,
        "Signed value: compact",
        "the re-issued pref, new key only",
    )?;
    // Once re-issued, reads send nothing more.
    let reply = browser.get("/get")?;
    no_cookies(&reply, "a read after the re-issue")?;
    Ok(())
}

/// Once the old key is dropped from the ring, cookies made under it read
/// as nothing.
pub fn cookies_under_a_dropped_key_are_refused(suite: &Suite) -> Outcome {
    let world = suite.world();
    let (old_key, new_key) = (Key::generate(), Key::generate());
    let before = suite.serve(&world, KeyRing::new(old_key), |c| c)?;
    let new_only = suite.serve(&world, KeyRing::new(new_key), |c| c)?;
    let browser = before.browser();
    browser.post_json("/set", r#"{"user":"Alice"}"#)?;
    browser.get("/signed/set?value=compact")?;
    let (Some(old_id), Some(old_pref)) = (browser.cookie("id"), browser.cookie("pref")) else {
        fail!("the demo did not set both `id` and `pref`");
    };
    let stranger = new_only.browser();
    stranger.set_cookie("id", &old_id);
    stranger.set_cookie("pref", &old_pref);
    json(
        &stranger.get("/get")?,
        200,
        r#"{"user":"No user set"}"#,
        "/get, old key dropped",
    )?;
    text(
        &stranger.get("/signed/get")?,
        200,
        "Signed value: none",
        "/signed/get, old key dropped",
    )?;
    Ok(())
}

/// A response that is not a success still carries the session's activity:
/// a `401` from `/auth/profile` and a `400` for a malformed body touch the
/// session (a fresh `Max-Age`, and the idle timeout counts from them), and
/// a `401` re-issues a cookie made under a previous key. An adapter that
/// finished the session only on `2xx` responses would let it lapse.
pub fn error_responses_count_as_activity(suite: &Suite) -> Outcome {
    let world = suite.world();
    let (old_key, new_key) = (Key::generate(), Key::generate());
    let idle = |c: SessionConfig| c.with_idle_timeout(Some(Duration::seconds(60)));
    let site = suite.serve(&world, KeyRing::new(old_key.clone()), idle)?;
    let browser = site.browser();
    browser.post_json("/set", r#"{"user":"Alice"}"#)?;
    for step in 1..=2 {
        world.clock.advance(Duration::seconds(45));
        let reply = browser.get("/auth/profile")?;
        not_authenticated(&reply, &format!("/auth/profile {} s in", step * 45))?;
        check!(
            reply
                .set_cookie("id")
                .is_some_and(|c| has_attribute(c, "max-age=60")),
            "a 401 {} s in did not touch the session: {:?}",
            step * 45,
            reply.set_cookies()
        );
    }
    world.clock.advance(Duration::seconds(45));
    let reply = browser.post_json("/set", r#"{"user":"#)?;
    json(
        &reply,
        400,
        r#"{"error":"Malformed JSON body"}"#,
        "a malformed /set",
    )?;
    check!(
        reply
            .set_cookie("id")
            .is_some_and(|c| has_attribute(c, "max-age=60")),
        "a 400 did not touch the session: {:?}",
        reply.set_cookies()
    );
    world.clock.advance(Duration::seconds(45));
    json(
        &browser.get("/get")?,
        200,
        r#"{"user":"Alice"}"#,
        "/get 180 s after the session began, 45 s after the 400",
    )?;

    let Some(old_id) = browser.cookie("id") else {
        fail!("the session cookie is gone");
    };
    let rotated = suite.serve(
        &world,
        KeyRing::new(new_key.clone()).with_previous(old_key),
        idle,
    )?;
    let new_only = suite.serve(&world, KeyRing::new(new_key), idle)?;
    let browser = rotated.browser();
    browser.set_cookie("id", &old_id);
    let reply = browser.get("/auth/profile")?;
    not_authenticated(&reply, "/auth/profile with an old-key session cookie")?;
    let Some(new_id) = browser.cookie("id") else {
        fail!("the 401 removed the session cookie");
    };
    check!(
        new_id != old_id,
        "a 401 with an old-key session cookie did not re-issue it: {:?}",
        reply.set_cookies()
    );
    let later = new_only.browser();
    later.set_cookie("id", &new_id);
    json(
        &later.get("/get")?,
        200,
        r#"{"user":"Alice"}"#,
        "the session the 401 re-issued, new key only",
    )?;
    Ok(())
}
