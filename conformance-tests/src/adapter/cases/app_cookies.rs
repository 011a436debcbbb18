//! The application's plain and signed cookies.

use super::{attributes, flip_middle, has_attribute, is_removal, text};
use crate::Outcome;
use crate::adapter::Suite;
use crate::failure::{check, check_eq, fail};

/// `/set-theme` sets `theme=dark; Max-Age=900; HttpOnly; Path=/`,
/// `/get-theme` reads it, `/clear-theme` removes it.
pub fn theme_cookie_is_set_read_and_cleared(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    text(
        &browser.get("/get-theme")?,
        200,
        "Current theme: default",
        "before",
    )?;

    let reply = browser.get("/set-theme")?;
    text(&reply, 200, "Theme cookie set", "/set-theme")?;
    check_eq!(reply.set_cookies().len(), 1, "cookies set by /set-theme");
    let Some(header) = reply.set_cookie("theme") else {
        fail!(
            "/set-theme set no `theme` cookie: {:?}",
            reply.set_cookies()
        );
    };
    check!(
        header.starts_with("theme=dark;"),
        "the theme cookie: {header}"
    );
    check_eq!(
        attributes(header),
        ["httponly", "max-age=900", "path=/"],
        "the theme cookie's attributes ({header})"
    );
    text(
        &browser.get("/get-theme")?,
        200,
        "Current theme: dark",
        "after /set-theme",
    )?;

    let reply = browser.get("/clear-theme")?;
    text(&reply, 200, "Theme cookie cleared", "/clear-theme")?;
    let Some(header) = reply.set_cookie("theme") else {
        fail!(
            "/clear-theme sent no `theme` cookie: {:?}",
            reply.set_cookies()
        );
    };
    check!(is_removal(header), "not a removal cookie: {header}");
    check!(
        has_attribute(header, "path=/"),
        "the removal must have the cookie's Path=/: {header}"
    );
    text(
        &browser.get("/get-theme")?,
        200,
        "Current theme: default",
        "after /clear-theme",
    )?;
    Ok(())
}

/// `/signed/set?value=X` sets a signed `pref` that `/signed/get` reads back;
/// a changed, truncated or unsigned value reads as `none`.
pub fn signed_cookie_round_trips_and_tampered_value_reads_as_none(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    text(
        &browser.get("/signed/get")?,
        200,
        "Signed value: none",
        "before",
    )?;
    text(
        &browser.get("/signed/set?value=compact%20mode")?,
        200,
        "Signed cookie set",
        "/signed/set",
    )?;
    let Some(value) = browser.cookie("pref") else {
        fail!("/signed/set set no `pref` cookie");
    };
    check!(
        value != "compact mode" && value != "compact%20mode",
        "the signed cookie holds no signature: {value}"
    );
    check!(
        !value.is_empty() && value.is_ascii(),
        "the signed cookie's value is not a signed value: {value:?}"
    );
    text(
        &browser.get("/signed/get")?,
        200,
        "Signed value: compact mode",
        "after /signed/set",
    )?;
    // Characters a cookie value cannot hold as they are come back as given.
    let special = site.browser();
    special.get("/signed/set?value=a%3Bb%22c%2C%C3%A9%2B%20d")?;
    text(
        &special.get("/signed/get")?,
        200,
        "Signed value: a;b\"c,é+ d",
        "after /signed/set of a value with ; \" , é + and a space",
    )?;

    let truncated = &value[..value.len() - 1];
    for bad in [
        flip_middle(&value),
        truncated.to_owned(),
        "compact".to_owned(),
        String::new(),
    ] {
        browser.set_cookie("pref", &bad);
        text(
            &browser.get("/signed/get")?,
            200,
            "Signed value: none",
            &format!("pref={bad}"),
        )?;
    }
    Ok(())
}

/// A value signed for one cookie name is refused under another: the
/// session cookie's value sent as `pref`, and a signed `pref` value sent as
/// the session cookie, are nothing.
pub fn value_signed_for_one_cookie_name_is_refused_under_another(suite: &Suite) -> Outcome {
    let site = suite.start()?;
    let browser = site.browser();
    browser.get("/views")?;
    browser.get("/signed/set?value=x")?;
    let (Some(session), Some(pref)) = (browser.cookie("id"), browser.cookie("pref")) else {
        fail!("the demo did not set both `id` and `pref`");
    };
    let swapped = site.browser();
    swapped.set_cookie("pref", &session);
    text(
        &swapped.get("/signed/get")?,
        200,
        "Signed value: none",
        "the session value as pref",
    )?;
    swapped.remove_cookie("pref");
    swapped.set_cookie("id", &pref);
    text(
        &swapped.get("/views")?,
        200,
        "Views: 1",
        "the pref value as the session cookie",
    )?;
    Ok(())
}
