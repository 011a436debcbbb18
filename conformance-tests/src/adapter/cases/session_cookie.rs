//! The session cookie: its attributes, and when it is sent at all.

use time::Duration;

use super::{LOGIN, attributes, has_attribute, json, no_cookies, text};
use crate::Outcome;
use crate::adapter::{StorageMode, Suite};
use crate::client::Request;
use crate::failure::{check, check_eq, fail};

/// The session cookie is `id`, `Path=/`, `HttpOnly`, `SameSite=Lax`, with a
/// `Max-Age` of the idle timeout (1 h here) and no `Secure` by default.
pub fn session_cookie_has_the_contract_attributes(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let reply = site.browser().get("/views")?;
    let Some(header) = reply.set_cookie("id") else {
        fail!(
            "a new session sent no `id` cookie: {:?}",
            reply.set_cookies()
        );
    };
    check_eq!(
        attributes(header),
        ["httponly", "max-age=3600", "path=/", "samesite=lax"],
        "the session cookie's attributes ({header})"
    );
    check!(
        header.len() > "id=".len() + 20,
        "the session cookie's value is too short to be authenticated: {header}"
    );
    Ok(())
}

/// What the session holds never travels readable: the session cookie's
/// value (an id, or in cookie-store mode the sealed session) shows no trace
/// of the data, as text, as hex, or base64-encoded (either alphabet) in any
/// run of base64 characters in it, at any of the four offsets.
pub fn session_data_is_never_readable_in_the_cookie(suite: &Suite) -> Outcome {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

    const MARKER: &str = "Zanzibar-4711-marker";
    let site = suite.start()?;
    let browser = site.browser();
    text(
        &browser.post_json("/set", &format!(r#"{{"user":"{MARKER}"}}"#))?,
        200,
        "Session set",
        "POST /set",
    )?;
    let Some(value) = browser.cookie("id") else {
        fail!("no session cookie after POST /set");
    };
    let hex: String = MARKER.bytes().map(|b| format!("{b:02x}")).collect();
    let lower = value.to_ascii_lowercase();
    check!(
        !lower.contains(&MARKER.to_ascii_lowercase()) && !lower.contains(&hex),
        "the session cookie shows the session's data: {value}"
    );
    let runs =
        value.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_')));
    for run in runs {
        for offset in 0..4.min(run.len()) {
            let encoded = &run[offset..];
            for decoded in [
                STANDARD_NO_PAD.decode(encoded),
                URL_SAFE_NO_PAD.decode(encoded),
            ]
            .into_iter()
            .flatten()
            {
                check!(
                    !decoded
                        .windows(MARKER.len())
                        .any(|w| w == MARKER.as_bytes()),
                    "the session cookie carries the session's data in base64: {value}"
                );
            }
        }
    }
    json(
        &browser.get("/get")?,
        200,
        &format!(r#"{{"user":"{MARKER}"}}"#),
        "/get after /set",
    )?;
    Ok(())
}

/// `Max-Age` follows the idle timeout but never passes the absolute
/// lifetime: 30 minutes before the end of a 2 h session with a 1 h idle
/// timeout, it is 1800.
pub fn session_cookie_max_age_never_passes_the_absolute_lifetime(suite: &Suite) -> Outcome {
    let site = suite.start_with(|c| c.with_absolute_timeout(Some(Duration::hours(2))))?;
    let browser = site.browser();
    browser.get("/views")?;
    for n in 2..=4 {
        site.clock.advance(Duration::minutes(30));
        let reply = browser.get("/views")?;
        text(&reply, 200, &format!("Views: {n}"), "an active session")?;
        let want = if n == 4 {
            "max-age=1800"
        } else {
            "max-age=3600"
        };
        let Some(header) = reply.set_cookie("id") else {
            fail!("a changed session sent no `id` cookie");
        };
        check!(
            has_attribute(header, want),
            "{} min into a 2 h session: want {want} in {header}",
            (n - 1) * 30
        );
    }
    Ok(())
}

/// With `Secure` configured, the session cookie has the `Secure` attribute
/// (even over plain http).
pub fn secure_setting_adds_the_secure_attribute(suite: &Suite) -> Outcome {
    let site = suite.start_with(|c| c.with_secure(true))?;
    let reply = site.browser().get("/views")?;
    let Some(header) = reply.set_cookie("id") else {
        fail!("a new session sent no `id` cookie");
    };
    check!(has_attribute(header, "secure"), "want Secure in {header}");
    Ok(())
}

/// A response that used the session (or the app's cookies) varies on
/// `Cookie`: without `Vary: Cookie` a shared cache (a CDN, a reverse proxy)
/// may hand one visitor's page, and the `Set-Cookie` that came with it, to
/// the next visitor of that URL. A new session's response, a write's, a
/// read's and one that read an app cookie each name `Cookie` (or `*`) in a
/// `Vary` header.
pub fn responses_that_use_the_session_vary_on_cookie(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    for (what, reply) in [
        ("GET /views, a new session", browser.get("/views")?),
        ("GET /views again", browser.get("/views")?),
        ("GET /get", browser.get("/get")?),
        ("GET /get-theme", browser.get("/get-theme")?),
    ] {
        let vary = reply.headers_named("vary");
        check!(
            session_core::vary_names_cookie(vary.iter().map(|v| v.as_bytes())),
            "{what}: the response used the session but does not vary on Cookie (Vary: {vary:?})"
        );
    }
    Ok(())
}

/// A response that sets a cookie carries a credential: it says
/// `Cache-Control: private` (or `no-store`), so that no shared cache hands
/// the cookie to a later visitor of the URL (`Vary: Cookie` alone does
/// not: a first visit and the next visitor's both carry no cookie). A new
/// session's response, a log-in's (a new id), a destroy's (the removal)
/// and one that sets an app cookie are checked.
pub fn responses_that_set_cookies_are_private(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    for (what, reply) in [
        ("GET /views, a new session", browser.get("/views")?),
        ("POST /auth/login", browser.post_json("/auth/login", LOGIN)?),
        ("GET /destroy", browser.get("/destroy")?),
        ("GET /set-theme", browser.get("/set-theme")?),
    ] {
        check!(
            !reply.set_cookies().is_empty(),
            "{what} set no cookie: {:?}",
            reply.headers
        );
        let values = reply.headers_named("cache-control");
        check!(
            session_core::cache_control_is_private(values.iter().map(|v| v.as_bytes())),
            "{what}: a response that sets a cookie is not kept out of shared caches \
             (Cache-Control: {values:?}; want private or no-store)"
        );
    }
    Ok(())
}

/// Requests that neither carry nor create session data get no
/// `Set-Cookie`, and nothing is stored.
pub fn requests_without_session_data_get_no_session_cookie(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    for path in [
        "/get",
        "/cart",
        "/flash",
        "/auth/profile",
        "/auth/logout",
        "/destroy",
        "/get-theme",
        "/signed/get",
        "/nope",
    ] {
        no_cookies(&browser.get(path)?, &format!("GET {path}"))?;
    }
    let reply = browser.send(
        Request::new("POST", "/set")
            .header("Content-Type", "application/json")
            .body("{"),
    )?;
    no_cookies(&reply, "POST /set with a bad body")?;
    // Without a session, log-out and destroy answer as always.
    json(
        &browser.get("/auth/logout")?,
        200,
        r#"{"message":"Logged out"}"#,
        "GET /auth/logout without a session",
    )?;
    text(
        &browser.get("/destroy")?,
        200,
        "Session destroyed",
        "GET /destroy without a session",
    )?;
    // The app's own cookies bring no session cookie with them.
    for path in ["/set-theme", "/clear-theme", "/signed/set?value=x"] {
        let reply = browser.get(path)?;
        check!(
            reply.set_cookie("id").is_none(),
            "GET {path} without a session sent a session cookie: {:?}",
            reply.set_cookies()
        );
    }
    if suite.storage() == StorageMode::Server {
        check_eq!(site.store()?.live_records()?, 0, "records stored");
    }
    Ok(())
}

/// A request that changes nothing sends no cookie; once enough time has
/// passed (30 min of a 1 h idle timeout here), a read re-sends it with a
/// fresh `Max-Age`, keeping the idle timeout rolling.
pub fn unchanged_session_gets_no_cookie_until_the_touch_is_due(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    text(
        &browser.post_json("/set", r#"{"user":"Alice"}"#)?,
        200,
        "Session set",
        "POST /set",
    )?;
    let reply = browser.get("/get")?;
    json(&reply, 200, r#"{"user":"Alice"}"#, "/get")?;
    no_cookies(&reply, "a read right after the write")?;
    site.clock.advance(Duration::minutes(30));
    let reply = browser.get("/get")?;
    json(&reply, 200, r#"{"user":"Alice"}"#, "/get 30 min later")?;
    let Some(header) = reply.set_cookie("id") else {
        fail!("a read 30 min after the last write did not re-send the session cookie");
    };
    check!(
        has_attribute(header, "max-age=3600"),
        "the touched cookie's Max-Age: {header}"
    );
    Ok(())
}

/// A write right after another (within the touch interval: 1 min by default
/// for a 1 h idle timeout) is saved but sends no cookie, since the browser's
/// cookie still carries the session's deadline; once the interval has
/// passed, a write re-sends it with a fresh `Max-Age`. In cookie-store mode
/// the data travels in the cookie, so every write sends it.
pub fn writes_within_the_touch_interval_get_no_cookie(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    text(&browser.get("/views")?, 200, "Views: 1", "the first /views")?;
    let reply = browser.get("/views")?;
    text(&reply, 200, "Views: 2", "a second /views at once")?;
    if suite.storage() == StorageMode::Server {
        no_cookies(&reply, "a write within the touch interval")?;
    } else {
        check!(
            reply.set_cookie("id").is_some(),
            "cookie-store mode: a write sent no session cookie"
        );
    }
    site.clock.advance(Duration::minutes(2));
    let reply = browser.get("/views")?;
    text(&reply, 200, "Views: 3", "/views 2 min later")?;
    let Some(header) = reply.set_cookie("id") else {
        fail!("a write 2 min after the last touch did not re-send the session cookie");
    };
    check!(
        has_attribute(header, "max-age=3600"),
        "the touched cookie's Max-Age: {header}"
    );
    Ok(())
}
