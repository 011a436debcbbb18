//! What clients send that they should not: bad cookies, unknown ids, bad
//! bodies, many requests at once; and a store that fails.

use std::sync::Arc;

use session_core::{Key, KeyRing};

use super::{flip_middle, json, no_cookies, not_authenticated, store_key_of, text};
use crate::adapter::{Op, Site, StorageMode, Suite};
use crate::client::{Browser, Reply, Request};
use crate::failure::{check, check_eq, fail};
use crate::{Failure, Outcome};

/// A session of `browser` after two `/views`; its cookie value.
fn two_views(browser: &Browser) -> Result<String, Failure> {
    text(&browser.get("/views")?, 200, "Views: 1", "the first /views")?;
    text(
        &browser.get("/views")?,
        200,
        "Views: 2",
        "the second /views",
    )?;
    let Some(value) = browser.cookie("id") else {
        fail!("/views set no session cookie");
    };
    // The cases cut and change it byte by byte.
    check!(
        value.len() >= 4 && value.is_ascii(),
        "the session cookie's value is not a signed or sealed value: {value:?}"
    );
    Ok(value)
}

/// `GET /views` with exactly `cookie` as the `Cookie` header, from a
/// browser of its own (so that the session it may start is not kept).
fn views_with(site: &Site, cookie: impl Into<Vec<u8>>) -> Result<Reply, Failure> {
    site.browser().send(
        Request::new("GET", "/views")
            .without_jar()
            .header("Cookie", cookie),
    )
}

/// A session cookie changed anywhere starts a fresh session (never an
/// error), and the real session is untouched.
pub fn tampered_session_cookie_starts_a_fresh_session(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    let value = two_views(&browser)?;
    let mut last = value.clone().into_bytes();
    if let Some(byte) = last.last_mut() {
        *byte = if *byte == b'A' { b'g' } else { b'A' };
    }
    let mut first = value.clone().into_bytes();
    first[0] = if first[0] == b's' { b't' } else { b's' };
    let variants = [
        flip_middle(&value),
        String::from_utf8_lossy(&last).into_owned(),
        String::from_utf8_lossy(&first).into_owned(),
        format!("{value}A"),
    ];
    for (i, bad) in variants.iter().enumerate() {
        let reply = views_with(&site, format!("id={bad}"))?;
        text(
            &reply,
            200,
            "Views: 1",
            &format!("/views with tampered cookie #{i} {bad}"),
        )?;
        if let Some(set) = reply.set_cookie("id") {
            check!(
                !set.contains(bad.as_str()),
                "the tampered value was adopted: {set}"
            );
        }
    }
    text(
        &browser.get("/views")?,
        200,
        "Views: 3",
        "the real session after the tampering",
    )?;
    if suite.storage() == StorageMode::Server {
        check_eq!(
            site.store()?.live_records()?,
            1 + variants.len(),
            "records (the real one and one fresh per tampered request)"
        );
    }
    Ok(())
}

/// Truncated, empty, oversized, wrongly versioned and garbage session
/// cookies, and bytes that are not UTF-8, are no session: a fresh one, never
/// a 5xx.
pub fn truncated_oversized_and_garbage_cookies_start_a_fresh_session(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    let value = two_views(&browser)?;
    let well_formed = [
        value[..value.len() - 1].to_owned(),
        value[..value.len() / 2].to_owned(),
        value[..3].to_owned(),
        String::new(),
        format!("{value}{}", "A".repeat(5000)),
        "A".repeat(8000),
        "garbage".to_owned(),
        "s1.".to_owned(),
        "s1..".to_owned(),
        "p1.AAAA".to_owned(),
        "....".to_owned(),
        format!("v9{}", &value[2..]),
        format!("\"{value}\""),
        "%00%ff".to_owned(),
        "s1.!!!!.????".to_owned(),
    ];
    for (i, bad) in well_formed.iter().enumerate() {
        let reply = views_with(&site, format!("id={bad}"))?;
        let shown: String = bad.chars().take(40).collect();
        text(
            &reply,
            200,
            "Views: 1",
            &format!("/views with bad cookie #{i} id={shown}"),
        )?;
    }
    // Not valid UTF-8, or not a valid header value at all: a framework may
    // refuse the request (4xx), but it must not fail (5xx) or adopt anything.
    let raw: [&[u8]; 4] = [
        b"id=\xff\xfe\x80",
        b"id=\xc3\x28; theme=dark",
        b"id",
        b";;;=;=",
    ];
    for (i, bad) in raw.iter().enumerate() {
        let reply = views_with(&site, *bad)?;
        check!(
            reply.status < 500,
            "raw cookie #{i} {bad:?}: got {} {:?}",
            reply.status,
            reply.body
        );
        if reply.status == 200 {
            text(&reply, 200, "Views: 1", &format!("raw cookie #{i} {bad:?}"))?;
        }
    }
    // A byte that is not UTF-8 in another cookie does not hide the session
    // (unless the framework drops the whole header: then it is no session).
    let mut mixed = b"junk=\xff\xfe; id=".to_vec();
    mixed.extend_from_slice(value.as_bytes());
    let reply = views_with(&site, mixed)?;
    if suite.drops_non_utf8_headers() {
        text(
            &reply,
            200,
            "Views: 1",
            "a header the framework drops (DROPS_NON_UTF8_HEADERS) carries no session",
        )?;
    } else {
        // The framework gives the adapter the header: the session is read,
        // whatever the byte beside it (a 4xx would lose it too).
        text(
            &reply,
            200,
            "Views: 3",
            "the session beside a non-UTF-8 cookie",
        )?;
    }
    Ok(())
}

/// Several session cookies in one request (in one header or several,
/// valid, garbage or from two sessions) never fail, and the session is the
/// one the core's rule picks: the first cookie that verifies and loads, in
/// the order the request's `Cookie` headers came (an adapter hands the core
/// every `Cookie` header, not only the first).
pub fn duplicated_session_cookies_never_fail(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let (one, two) = (site.browser(), site.browser());
    let first = two_views(&one)?;
    let second = two_views(&two)?;
    let headers: Vec<Vec<String>> = vec![
        vec![format!("id={first}; id={first}")],
        vec![format!("id=garbage; id={first}")],
        vec![format!("id={first}; id=garbage")],
        vec![format!("id={first}; id={second}")],
        vec![format!("id={first}"), format!("id={second}")],
        vec![format!("id={first}"), "id=garbage".to_owned()],
        vec!["id=garbage".to_owned(), format!("id={first}")],
        vec!["theme=dark".to_owned(), format!("id={first}")],
        vec![vec![format!("id={first}"); 10].join("; ")],
    ];
    // Every request is a `/views` of the first session, sent without a jar.
    // In server mode its count goes on from 2; in cookie-store mode the
    // state is in the cookie the request brings, which holds 2 every time,
    // so every reply says 3.
    let mut views = 2;
    for (i, cookies) in headers.iter().enumerate() {
        let mut request = Request::new("GET", "/views").without_jar();
        for header in cookies {
            request = request.header("Cookie", header.as_str());
        }
        let reply = site.browser().send(request)?;
        views = match suite.storage() {
            StorageMode::Server => views + 1,
            StorageMode::Cookie => 3,
        };
        text(
            &reply,
            200,
            &format!("Views: {views}"),
            &format!("duplicated cookies #{i} (the first session's count)"),
        )?;
    }
    let all_garbage = site.browser().send(
        Request::new("GET", "/views")
            .without_jar()
            .header("Cookie", ["id=garbage"; 10].join("; ")),
    )?;
    text(&all_garbage, 200, "Views: 1", "ten garbage session cookies")?;
    text(
        &two.get("/views")?,
        200,
        "Views: 3",
        "the second session, never picked, after the duplicates",
    )?;
    Ok(())
}

/// A validly signed id that this server's store does not know (made by
/// another server with the same key) is never adopted: the request gets a
/// fresh session under a fresh id, and nothing is stored under the foreign
/// id.
pub fn unknown_id_is_never_adopted(suite: &Suite) -> Outcome {
    let keys = KeyRing::new(Key::generate());
    let elsewhere = suite.serve(&suite.world(), keys.clone(), |c| c)?;
    let here = suite.serve(&suite.world(), keys.clone(), |c| c)?;
    let browser = elsewhere.browser();
    browser.get("/views")?;
    let Some(foreign) = browser.cookie("id") else {
        fail!("/views set no session cookie");
    };
    let Some(foreign_key) = store_key_of(&keys, &foreign) else {
        fail!("the session cookie is not a signed session id: {foreign}");
    };

    let browser = here.browser();
    browser.set_cookie("id", &foreign);
    text(
        &browser.get("/views")?,
        200,
        "Views: 1",
        "/views with a foreign id",
    )?;
    check!(
        browser.cookie("id").is_some_and(|id| id != foreign),
        "the foreign id was kept as the session cookie"
    );
    check!(
        !here.store()?.contains(&foreign_key)?,
        "a record was stored under the foreign id"
    );
    check_eq!(
        here.store()?.live_records()?,
        1,
        "records here: the fresh session only"
    );
    text(
        &browser.get("/views")?,
        200,
        "Views: 2",
        "the fresh session",
    )?;
    Ok(())
}

/// A cart push that would make the session larger than the adapter keeps
/// (1.5 MiB in one item, over the built-in stores' 1 MiB and a cookie's
/// 4 KB) is refused: not a success (a 4xx for a body limit, or the 500 of
/// a store's or cookie's size limit), no cookie, and the cart keeps its
/// items; a normal push goes on working.
pub fn an_oversized_cart_push_is_refused_and_the_cart_keeps_its_items(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    first_push(&browser)?;
    let cookie = browser.cookie("id");

    let huge = format!(r#"{{"item":"{}"}}"#, "x".repeat(3 << 19));
    let reply = browser.post_json("/cart", &huge)?;
    check!(
        reply.status >= 400,
        "a 1.5 MiB cart item: want it refused (a 4xx or a 500), got {} {:?}",
        reply.status,
        reply.body.chars().take(80).collect::<String>()
    );
    no_cookies(&reply, "the refused push")?;
    check_eq!(
        browser.cookie("id"),
        cookie,
        "the session cookie after the refused push"
    );
    json(
        &browser.get("/cart")?,
        200,
        r#"["apple"]"#,
        "the cart after the refused push",
    )?;
    json(
        &browser.post_json("/cart", r#"{"item":"pear"}"#)?,
        200,
        r#"["apple","pear"]"#,
        "a push after the refused one",
    )?;
    Ok(())
}

/// A body that is not a JSON object holding the route's field as a string
/// gets 400 `{"error":"Malformed JSON body"}` and leaves the session as it
/// was; so does a good body sent without a JSON `Content-Type` (as
/// `text/plain`, a form, or with none, the types a page of another origin
/// may send without a preflight).
pub fn malformed_json_gets_400_and_leaves_the_session_unchanged(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    browser.post_json("/set", r#"{"user":"Alice"}"#)?;
    browser.post_json("/cart", r#"{"item":"apple"}"#)?;
    browser.post_json("/flash", r#"{"message":"kept"}"#)?;
    let cookie = browser.cookie("id");

    let bad_bodies = [
        "",
        "{",
        r#"{"FIELD":"Alice""#,
        r#"{"FIELD":"Alice"} trailing"#,
        r#"{"FIELD":"Alice"}{}"#,
        "null",
        r#""Alice""#,
        r#"["Alice"]"#,
        r#"{"FIELD":1}"#,
        r#"{"FIELD":null}"#,
        r#"{"FIELD":["Alice"]}"#,
        r#"{"FIELD":{"name":"Alice"}}"#,
        "{}",
        r#"{"other":"Alice"}"#,
        "\u{feff}garbage",
    ];
    for (path, field) in [
        ("/set", "user"),
        ("/cart", "item"),
        ("/flash", "message"),
        ("/auth/login", "username"),
    ] {
        for body in bad_bodies {
            let body = body.replace("FIELD", field);
            let reply = browser.post_json(path, &body)?;
            let what = format!("POST {path} {body:?}");
            json(&reply, 400, r#"{"error":"Malformed JSON body"}"#, &what)?;
            no_cookies(&reply, &what)?;
        }
        // A good body sent as something other than JSON.
        let good = format!(r#"{{"{field}":"x","password":"password123"}}"#);
        for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
            let reply = browser.send(
                Request::new("POST", path)
                    .header("Content-Type", content_type)
                    .body(good.as_str()),
            )?;
            json(
                &reply,
                400,
                r#"{"error":"Malformed JSON body"}"#,
                &format!("POST {path} as {content_type}"),
            )?;
        }
        // With no Content-Type at all (what a `no-cors` fetch of a Blob
        // sends): not JSON either.
        let reply = browser.send(Request::new("POST", path).body(good.as_str()))?;
        json(
            &reply,
            400,
            r#"{"error":"Malformed JSON body"}"#,
            &format!("POST {path} with no Content-Type"),
        )?;
    }
    let reply = browser.post_json("/auth/login", r#"{"username":"alice","password":123}"#)?;
    json(
        &reply,
        400,
        r#"{"error":"Malformed JSON body"}"#,
        "login with a numeric password",
    )?;

    check_eq!(
        browser.cookie("id"),
        cookie,
        "the session cookie after the bad bodies"
    );
    json(
        &browser.get("/get")?,
        200,
        r#"{"user":"Alice"}"#,
        "the user after the bad bodies",
    )?;
    json(
        &browser.get("/cart")?,
        200,
        r#"["apple"]"#,
        "the cart after the bad bodies",
    )?;
    json(
        &browser.get("/flash")?,
        200,
        r#"{"flash":"kept"}"#,
        "the flash after the bad bodies",
    )?;
    not_authenticated(
        &browser.get("/auth/profile")?,
        "no login from the bad bodies",
    )?;
    Ok(())
}

/// 20 parallel `POST /cart` of one session, with distinct items, leave all
/// 20 in the cart, and the session keeps its id. Each reply is a cart that
/// holds its own request's item (the cart after that push, as the request
/// saw it).
pub fn twenty_concurrent_cart_pushes_of_one_session_are_all_kept(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = Arc::new(site.browser());
    browser.get("/views")?;
    let cookie = browser.cookie("id");
    let results: Vec<Result<Reply, Failure>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let browser = browser.clone();
                scope
                    .spawn(move || browser.post_json("/cart", &format!(r#"{{"item":"item-{i}"}}"#)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Failure::new("a request thread panicked")))
            })
            .collect()
    });
    for (i, result) in results.into_iter().enumerate() {
        let reply = result?;
        check_eq!(
            reply.status,
            200,
            "a concurrent POST /cart ({:?})",
            reply.body
        );
        let cart: Vec<String> = serde_json::from_str(&reply.body).map_err(|e| {
            Failure::new(format!(
                "a concurrent POST /cart answered no JSON array of strings: {e}: {:?}",
                reply.body
            ))
        })?;
        check!(
            cart.contains(&format!("item-{i}")),
            "the reply to the push of item-{i} lacks it: {:?}",
            reply.body
        );
    }
    check_eq!(
        browser.cookie("id"),
        cookie,
        "the session cookie after the pushes"
    );
    let reply = browser.get("/cart")?;
    let mut cart: Vec<String> = serde_json::from_str(&reply.body).map_err(|e| {
        Failure::new(format!(
            "GET /cart is not a JSON array of strings: {e}: {:?}",
            reply.body
        ))
    })?;
    cart.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("item-{i}")).collect();
    want.sort();
    check_eq!(cart, want, "the cart after 20 concurrent pushes");
    Ok(())
}

/// When the store fails, the response is a 500 with no session cookie, and
/// the session is not lost: once the store is back, it is there. A log-in
/// refused before it needs the session (a malformed body, wrong
/// credentials) is answered as always, store or not.
pub fn store_failure_is_a_500_never_a_lost_session(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    let cookie = two_views(&browser)?;
    let store = site.store()?;
    store.fail(true);
    let load_fails = browser.get("/views");
    let newcomer = site.browser();
    let create_fails = newcomer.post_json("/set", r#"{"user":"Bob"}"#);
    let wrong_password =
        browser.post_json("/auth/login", r#"{"username":"alice","password":"nope"}"#);
    let malformed = browser.post_json("/auth/login", r#"{"username":"alice""#);
    store.fail(false);
    json(
        &wrong_password?,
        401,
        r#"{"error":"Invalid credentials"}"#,
        "a log-in with wrong credentials while the store is down",
    )?;
    check_eq!(
        malformed?.status,
        400,
        "a log-in with a malformed body while the store is down"
    );
    for (what, reply) in [("loading", load_fails?), ("creating", create_fails?)] {
        check_eq!(
            reply.status,
            500,
            "a store failing while {what} ({:?})",
            reply.body
        );
        check!(
            reply.set_cookie("id").is_none(),
            "a store failing while {what} still sent a session cookie: {:?}",
            reply.set_cookies()
        );
    }
    check_eq!(
        browser.cookie("id"),
        Some(cookie),
        "the browser's session cookie"
    );
    text(
        &browser.get("/views")?,
        200,
        "Views: 3",
        "the session once the store is back",
    )?;
    json(
        &newcomer.get("/get")?,
        200,
        r#"{"user":"No user set"}"#,
        "the failed create stored nothing",
    )?;
    Ok(())
}

/// Each write failing on its own is a 500 that changes nothing the browser
/// holds, and the session is intact once the store is back:
///
/// - a failed save (`POST /cart`): no cookie, and the cart is as before;
/// - a failed delete (`/destroy`): no removal cookie, and the session
///   still answers;
/// - a failed create of the new record at login: no new cookie, not
///   logged in, the old session kept.
///
/// And a login whose `take` of the old record fails while its delete works
/// stands (200, a new id, the data kept, the old id dead): the old record
/// is gone either way, so refusing the login would only lose it.
pub fn a_failed_save_delete_or_login_is_a_500_that_loses_nothing(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let store = site.store()?;
    let browser = site.browser();
    first_push(&browser)?;
    let Some(cookie) = browser.cookie("id") else {
        fail!("POST /cart set no session cookie");
    };

    // Sends one request while `ops` fail, then checks what it left.
    let refused = |ops: &[Op], send: &dyn Fn() -> Result<Reply, Failure>, what: &str| {
        store.fail_only(ops);
        let reply = send();
        store.fail(false);
        let reply = reply?;
        check_eq!(reply.status, 500, "{what} ({:?})", reply.body);
        no_cookies(&reply, what)?;
        check_eq!(
            browser.cookie("id").as_deref(),
            Some(cookie.as_str()),
            "the browser's session cookie after {what}"
        );
        json(
            &browser.get("/cart")?,
            200,
            r#"["apple"]"#,
            &format!("the cart once the store is back, after {what}"),
        )
    };
    let login = || browser.post_json("/auth/login", super::LOGIN);
    refused(
        &[Op::Save],
        &|| browser.post_json("/cart", r#"{"item":"pear"}"#),
        "a push whose save failed",
    )?;
    refused(
        &[Op::Delete],
        &|| browser.get("/destroy"),
        "/destroy whose delete failed",
    )?;
    refused(&[Op::Create], &login, "a login whose create failed")?;
    refused(
        &[Op::Take, Op::Delete],
        &login,
        "a login whose take and delete failed",
    )?;
    not_authenticated(
        &browser.get("/auth/profile")?,
        "/auth/profile after the failed logins",
    )?;

    store.fail_only(&[Op::Take]);
    let reply = login();
    store.fail(false);
    json(
        &reply?,
        200,
        r#"{"message":"Logged in"}"#,
        "a login whose take failed and delete worked",
    )?;
    let Some(after) = browser.cookie("id") else {
        fail!("the login left no session cookie");
    };
    check!(after != cookie, "the login kept the session id");
    super::lifecycle::logged_in_with_the_cart(&browser, "a login whose take failed")?;
    let old = site.browser();
    old.set_cookie("id", &cookie);
    json(&old.get("/cart")?, 200, "[]", "the old id after that login")?;
    Ok(())
}

/// A read whose touch (due once a touch interval, to move the idle
/// deadline) fails in the store is answered as if none were due: 200 with
/// the session's data, no session cookie (its `Max-Age` would name a
/// deadline that was not stored). Nothing of the session is at stake, so
/// a store blip (or a Redis replica that is read-only during a failover)
/// is no 500 for readers. The deadline did not move, so the next read
/// touches again, and a write while saves fail is still a 500.
pub fn a_read_whose_touch_fails_is_answered_and_touched_later(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let store = site.store()?;
    let browser = site.browser();
    first_push(&browser)?;
    site.clock.advance(time::Duration::minutes(2));
    store.fail_only(&[Op::Save]);
    let read = browser.get("/cart");
    let write = browser.post_json("/cart", r#"{"item":"pear"}"#);
    store.fail(false);
    let read = read?;
    json(&read, 200, r#"["apple"]"#, "a read whose touch failed")?;
    check!(
        read.set_cookie("id").is_none(),
        "a read whose touch failed sent a session cookie: {:?}",
        read.set_cookies()
    );
    let write = write?;
    check_eq!(
        write.status,
        500,
        "a push whose save failed ({:?})",
        write.body
    );
    let again = browser.get("/cart")?;
    json(
        &again,
        200,
        r#"["apple"]"#,
        "the read after the store is back",
    )?;
    check!(
        again.set_cookie("id").is_some(),
        "the read after the store is back did not touch the session (no cookie)"
    );
    Ok(())
}

/// Pushes "apple" into `browser`'s empty cart.
fn first_push(browser: &Browser) -> Outcome {
    json(
        &browser.post_json("/cart", r#"{"item":"apple"}"#)?,
        200,
        r#"["apple"]"#,
        "the first push",
    )
}
