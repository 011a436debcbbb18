//! Round trips of the contract's session routes.

use super::{LOGIN, json, no_cookies, not_authenticated, text};
use crate::Outcome;
use crate::adapter::Suite;
use crate::client::Request;
use crate::failure::check;

/// `GET /views` counts per session: 1 on a new session, +1 per request of
/// the same session, and another browser has its own count.
pub fn views_count_per_session(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let (alice, bob) = (site.browser(), site.browser());
    text(
        &alice.get("/views")?,
        200,
        "Views: 1",
        "alice's first /views",
    )?;
    text(
        &alice.get("/views")?,
        200,
        "Views: 2",
        "alice's second /views",
    )?;
    text(&bob.get("/views")?, 200, "Views: 1", "bob's first /views")?;
    text(
        &alice.get("/views")?,
        200,
        "Views: 3",
        "alice's third /views",
    )?;
    Ok(())
}

/// `POST /set` stores the user that `GET /get` returns; before, `GET /get`
/// says `No user set`. A JSON content type with parameters is JSON too.
pub fn set_then_get_user(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    json(
        &browser.get("/get")?,
        200,
        r#"{"user":"No user set"}"#,
        "/get before /set",
    )?;
    text(
        &browser.post_json("/set", r#"{"user": "Alice"}"#)?,
        200,
        "Session set",
        "POST /set",
    )?;
    json(
        &browser.get("/get")?,
        200,
        r#"{"user":"Alice"}"#,
        "/get after /set",
    )?;
    let reply = browser.send(
        Request::new("POST", "/set")
            .header("Content-Type", "application/json; charset=utf-8")
            .body(r#"{"user":"Bob"}"#),
    )?;
    text(
        &reply,
        200,
        "Session set",
        "POST /set as application/json; charset=utf-8",
    )?;
    json(
        &browser.get("/get")?,
        200,
        r#"{"user":"Bob"}"#,
        "/get after the second /set",
    )?;
    Ok(())
}

/// `POST /cart` pushes an item and answers the cart; `GET /cart` lists it
/// (`[]` when empty).
pub fn cart_pushes_and_lists(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    json(&browser.get("/cart")?, 200, "[]", "the empty cart")?;
    json(
        &browser.post_json("/cart", r#"{"item": "apple"}"#)?,
        200,
        r#"["apple"]"#,
        "the first push",
    )?;
    json(
        &browser.post_json("/cart", r#"{"item":"pear"}"#)?,
        200,
        r#"["apple","pear"]"#,
        "the second push",
    )?;
    json(
        &browser.get("/cart")?,
        200,
        r#"["apple","pear"]"#,
        "GET /cart",
    )?;
    Ok(())
}

/// A flash message is read once: `{"flash":"Saved!"}`, then
/// `{"flash":null}`.
pub fn flash_is_read_once(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    json(
        &browser.get("/flash")?,
        200,
        r#"{"flash":null}"#,
        "/flash before any",
    )?;
    text(
        &browser.post_json("/flash", r#"{"message": "Saved!"}"#)?,
        200,
        "Flash set",
        "POST /flash",
    )?;
    json(
        &browser.get("/flash")?,
        200,
        r#"{"flash":"Saved!"}"#,
        "the first read",
    )?;
    json(
        &browser.get("/flash")?,
        200,
        r#"{"flash":null}"#,
        "the second read",
    )?;
    Ok(())
}

/// Wrong credentials get 401 `{"error":"Invalid credentials"}`, no cookie,
/// and no login.
pub fn login_with_wrong_credentials_is_refused(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    for body in [
        r#"{"username":"alice","password":"wrong"}"#,
        r#"{"username":"bob","password":"password123"}"#,
        r#"{"username":"Alice","password":"password123"}"#,
    ] {
        let reply = browser.post_json("/auth/login", body)?;
        json(&reply, 401, r#"{"error":"Invalid credentials"}"#, body)?;
        no_cookies(&reply, body)?;
    }
    not_authenticated(
        &browser.get("/auth/profile")?,
        "/auth/profile after refused logins",
    )?;
    // The right credentials still work afterwards.
    json(
        &browser.post_json("/auth/login", LOGIN)?,
        200,
        r#"{"message":"Logged in"}"#,
        "login",
    )?;
    Ok(())
}

/// Any other path is 404 `Not found`; a known path with the wrong method is
/// 404 or 405, never a 5xx.
pub fn unknown_route_is_404_and_wrong_methods_never_5xx(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    for path in ["/", "/nope", "/views/extra", "/auth", "/signed", "/cart/1"] {
        let reply = browser.get(path)?;
        check!(
            (reply.status, reply.body.as_str()) == (404, "Not found"),
            "GET {path}: want 404 \"Not found\", got {} {:?}",
            reply.status,
            reply.body
        );
    }
    for (method, path) in [
        ("POST", "/views"),
        ("GET", "/set"),
        ("GET", "/auth/login"),
        ("POST", "/auth/logout"),
        ("DELETE", "/cart"),
        ("PUT", "/flash"),
        ("POST", "/signed/get"),
    ] {
        let reply = browser.send(Request::new(method, path))?;
        check!(
            matches!(reply.status, 404 | 405),
            "{method} {path}: want 404 or 405, got {} {:?}",
            reply.status,
            reply.body
        );
    }
    Ok(())
}
