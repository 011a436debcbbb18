//! `RequestSlot`: a request's lazily opened session and jar. Opening into a
//! slot and finishing it makes the same plans as `open` and `finish`; the
//! first opening wins; a slot nobody opened, or whose session needs
//! nothing, finishes with nothing to do; a slot finishes once.

mod support;

use session_core::{
    CookieOp, Engine, KeyRing, Plan, RequestSlot, Session, SessionConfig, StoreOp, Timestamp,
};
use support::{Browser, CapturedLogs, Harness, commit_into, fixed_key, same_plans_as_finish};

/// Reads and loads `browser`'s session and opens it into a new slot.
async fn open_in_slot(engine: &Engine, browser: &Browser) -> (RequestSlot, Session) {
    let loaded = engine
        .load(engine.read(browser.cookie_header()))
        .await
        .unwrap();
    let slot = RequestSlot::new();
    let session = engine.open_in(&slot, loaded, engine.now());
    (slot, session)
}

#[tokio::test]
async fn a_slot_plans_exactly_as_open_and_finish_through_a_whole_session() {
    same_plans_as_finish(
        async |h: &Harness, browser: &Browser, handler: &dyn Fn(&Session)| {
            let (mut slot, session) = open_in_slot(&h.engine, browser).await;
            handler(&session);
            drop(session);
            match h.engine.finish_slot(&mut slot) {
                Some(finished) => {
                    let (plan, at) = finished.unwrap();
                    let now = Timestamp::from(h.engine.now());
                    assert_eq!(at, now, "finished at the opening time");
                    assert!(!plan.is_noop(), "a plan that does nothing is None");
                    plan
                }
                // Nothing to do: what `finish` says with a plan that does
                // nothing.
                None => Plan {
                    store: StoreOp::None,
                    cookie: CookieOp::None,
                },
            }
        },
    )
    .await;
}

#[test]
fn a_slot_nobody_opened_finishes_with_nothing() {
    let engine = Engine::new(SessionConfig::new(KeyRing::new(fixed_key()))).unwrap();
    let mut slot = RequestSlot::new();
    assert!(slot.session().is_none());
    assert!(slot.opened_at().is_none());
    assert!(engine.finish_slot(&mut slot).is_none());

    // The jar alone does not open the session.
    let jar = engine.cookies_in(&slot, [&b"theme=dark"[..]]);
    assert!(jar.add(session_core::cookie::Cookie::new("theme", "light")));
    assert!(engine.finish_slot(&mut slot).is_none());
    let kept = slot.cookies().expect("the jar is in the slot");
    assert_eq!(kept.get("theme").as_deref(), Some("light"));
    assert_eq!(kept.delta().len(), 1);
}

#[tokio::test]
async fn the_first_opening_wins_and_later_ones_share_it() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;

    let (mut slot, first) = open_in_slot(&h.engine, &browser).await;
    first.insert("seen", &true).unwrap();
    // A second opening with another (empty) load changes nothing.
    let opened_at = slot.opened_at().unwrap();
    h.advance_secs(5);
    let second = h.engine.open_in(&slot, Default::default(), h.engine.now());
    assert_eq!(slot.opened_at(), Some(opened_at));
    assert_eq!(
        second.get::<Vec<String>>("cart").unwrap().unwrap(),
        ["apple"]
    );
    assert_eq!(second.get::<bool>("seen").unwrap(), Some(true));
    assert_eq!(
        slot.session().unwrap().get::<bool>("seen").unwrap(),
        Some(true)
    );

    drop((first, second));
    let (plan, at) = h.engine.finish_slot(&mut slot).unwrap().unwrap();
    assert_eq!(at, opened_at);
    assert!(matches!(plan.store, StoreOp::Save { .. }), "{plan:?}");
}

#[tokio::test]
async fn a_live_handle_keeps_its_data_and_the_slot_finishes_once() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;

    let (mut slot, session) = open_in_slot(&h.engine, &browser).await;
    session.insert("cart", &["apple", "pear"]).unwrap();
    // The handler keeps its handle (a task it spawned, say): the plan is
    // made from a copy.
    let (plan, _) = h.engine.finish_slot(&mut slot).unwrap().unwrap();
    assert!(format!("{plan:?}").contains("pear"), "{plan:?}");
    assert_eq!(
        session.get::<Vec<String>>("cart").unwrap().unwrap(),
        ["apple", "pear"]
    );
    assert!(session.is_modified());

    // Finished: a second finish does nothing, and the slot no longer hands
    // out the session.
    assert!(h.engine.finish_slot(&mut slot).is_none());
    assert!(slot.session().is_none());

    // Alone, the data moves into the plan, and a second finish does nothing
    // either (it must not save the emptied state).
    let (mut slot, session) = open_in_slot(&h.engine, &browser).await;
    session.insert("n", &1).unwrap();
    drop(session);
    let (plan, _) = h.engine.finish_slot(&mut slot).unwrap().unwrap();
    assert!(format!("{plan:?}").contains("\"n\""), "{plan:?}");
    assert!(slot.session().is_none());
    assert!(h.engine.finish_slot(&mut slot).is_none());
}

/// A handle kept past the end of its request (a task the handler spawned)
/// may read, but its changes are saved by nobody: the first one is logged
/// at warn level, once, so the loss is never silent. Changes made before
/// the end are not.
#[tokio::test]
async fn a_change_after_the_slot_finished_is_not_saved_and_is_logged_once() {
    let logs = CapturedLogs::start();
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;

    let (mut slot, session) = open_in_slot(&h.engine, &browser).await;
    session.insert("seen", &true).unwrap();
    let (plan, _) = h.engine.finish_slot(&mut slot).unwrap().unwrap();
    assert!(logs.text().is_empty(), "{}", logs.text());

    // Reading is fine and logs nothing; so does a write of the same value.
    assert_eq!(session.get::<bool>("seen").unwrap(), Some(true));
    session.insert("seen", &true).unwrap();
    assert!(logs.text().is_empty(), "{}", logs.text());

    session.insert("late", &1).unwrap();
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(
        text.contains("changed after its request finished"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    // Every kind of change after the end, and only one line for them all.
    session
        .update("n", |n: Option<u64>| n.unwrap_or(0) + 1)
        .unwrap();
    session.remove("cart");
    session.clear();
    session.regenerate();
    session.destroy();
    assert_eq!(logs.text().lines().count(), 1, "{}", logs.text());

    commit_into(&h.engine, plan, &mut browser).await;
    let saved = h.open(&browser).await;
    assert_eq!(saved.get::<bool>("seen").unwrap(), Some(true));
    assert_eq!(
        saved.get_value("late"),
        None,
        "the late change was not saved"
    );
    assert_eq!(
        saved.get::<Vec<String>>("cart").unwrap().unwrap(),
        ["apple"]
    );
}

/// The jar of a slot, kept past the response: once the adapter took its
/// cookies, a change is refused and the first refusal logged at warn level.
#[test]
fn a_cookie_set_after_the_jar_was_sent_is_refused_and_logged_once() {
    let logs = CapturedLogs::start();
    let engine = Engine::new(SessionConfig::new(KeyRing::new(fixed_key()))).unwrap();
    let slot = RequestSlot::new();
    let jar = engine.cookies_in(&slot, [&b"theme=dark"[..]]);
    assert!(jar.add(session_core::cookie::Cookie::new("theme", "light")));
    let sent = slot.cookies().unwrap().take_delta();
    assert_eq!(sent, ["theme=light; Path=/"]);
    assert!(logs.text().is_empty(), "{}", logs.text());

    assert!(!jar.add(session_core::cookie::Cookie::new("theme", "blue")));
    assert!(!jar.add(session_core::cookie::Cookie::new("lang", "en")));
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("already sent"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(jar.get("theme").as_deref(), Some("light"));
}

/// `try_add` and its kin answer why a cookie was not set, and log
/// nothing; `add` and its kin log the same reasons: at warn level what a
/// client can cause (a value from the request, too long), at error level
/// a cookie that breaks the rules.
#[test]
fn the_jar_answers_why_with_try_and_logs_by_cause_without() {
    use session_core::CookieError;
    use session_core::cookie::Cookie;

    let logs = CapturedLogs::start();
    let engine = Engine::new(SessionConfig::new(KeyRing::new(fixed_key()))).unwrap();
    let slot = RequestSlot::new();
    let jar = engine.cookies_in(&slot, [&b""[..]]);
    let long = || Cookie::new("note", "x".repeat(5000));
    type Expected = fn(&CookieError) -> bool;
    let cases: [(Cookie<'static>, Expected); 4] = [
        (Cookie::new("theme", "dark blue"), |e| {
            matches!(e, CookieError::Value { .. })
        }),
        (
            long(),
            |e| matches!(e, CookieError::TooLarge { size, limit: 4096, .. } if *size > 5000),
        ),
        (
            Cookie::new("id", "mine"),
            |e| matches!(e, CookieError::Rules { reason, .. } if reason.contains("session cookie")),
        ),
        (
            Cookie::build(("a", "1")).path("x").build(),
            |e| matches!(e, CookieError::Rules { reason, .. } if reason.contains("start with '/'")),
        ),
    ];
    for (cookie, expected) in cases.iter().cloned() {
        let error = jar.try_add(cookie.clone()).unwrap_err();
        assert!(expected(&error), "{error:?}");
        assert_eq!(error.name(), cookie.name());
    }
    let error = jar.try_add_signed(long()).unwrap_err();
    assert!(matches!(error, CookieError::TooLarge { .. }), "{error:?}");
    let error = jar.try_remove(Cookie::from("id")).unwrap_err();
    assert!(matches!(error, CookieError::Rules { .. }), "{error:?}");
    assert!(logs.text().is_empty(), "{}", logs.text());
    assert!(jar.delta().is_empty(), "{:?}", jar.delta());

    for (cookie, _) in cases {
        assert!(!jar.add(cookie));
    }
    let text = logs.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (line, level) in lines.iter().zip(["WARN", "WARN", "ERROR", "ERROR"]) {
        assert!(line.contains(level), "{level}: {line}");
    }

    // A cookie given no `Path` is set, and removed, at `Path=/`.
    assert_eq!(jar.try_add(Cookie::new("theme", "dark")), Ok(()));
    assert_eq!(jar.try_remove(Cookie::from("old")), Ok(()));
    let delta = jar.take_delta();
    assert_eq!(delta[0], "theme=dark; Path=/");
    assert!(
        delta[1].starts_with("old=; Path=/; Max-Age=0"),
        "{}",
        delta[1]
    );
    let error = jar.try_add_private(Cookie::new("late", "1")).unwrap_err();
    assert!(matches!(error, CookieError::Sent { .. }), "{error:?}");
}

/// Each kind of change after the end is noticed on its own.
#[tokio::test]
async fn every_kind_of_change_after_the_end_is_logged() {
    type Change = fn(&Session);
    let changes: [(&str, Change); 6] = [
        ("insert", |s| s.insert("late", &1).unwrap()),
        ("update", |s| {
            s.update("n", |n: Option<u64>| n.unwrap_or(0) + 1).unwrap();
        }),
        ("remove", |s| drop(s.remove("cart"))),
        ("clear", Session::clear),
        ("regenerate", Session::regenerate),
        ("destroy", Session::destroy),
    ];
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;
    for (name, change) in changes {
        let logs = CapturedLogs::start();
        let (mut slot, session) = open_in_slot(&h.engine, &browser).await;
        assert!(
            h.engine.finish_slot(&mut slot).is_none(),
            "{name}: unchanged"
        );
        change(&session);
        assert!(
            logs.text().contains("changed after its request finished"),
            "{name}: {}",
            logs.text()
        );
    }
}

#[tokio::test]
async fn opening_a_finished_slot_starts_afresh() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;

    let (mut slot, session) = open_in_slot(&h.engine, &browser).await;
    session.insert("n", &1).unwrap();
    drop(session);
    let (plan, _) = h.engine.finish_slot(&mut slot).unwrap().unwrap();
    commit_into(&h.engine, plan, &mut browser).await;

    // A misuse: opening the finished slot again, with nothing loaded. The
    // session is new and empty, not the remains of the finished one (whose
    // origin, kept, would have saved its emptied data over the record).
    let again = h.engine.open_in(&slot, Default::default(), h.engine.now());
    assert!(again.is_new());
    assert_eq!(again.get_value("cart"), None);
    drop(again);
    assert!(
        h.engine.finish_slot(&mut slot).is_none(),
        "a new, empty session: nothing to do"
    );

    // Still the finished request's slot: a change through a handle opened
    // anew is saved by nobody, and says so.
    let logs = CapturedLogs::start();
    let late = h.engine.open_in(&slot, Default::default(), h.engine.now());
    late.insert("late", &1).unwrap();
    assert!(
        logs.text().contains("changed after its request finished"),
        "{}",
        logs.text()
    );
    drop(late);
    // The slot was finished once: it is never planned again, so the
    // change made after that is not stored behind the request's back.
    assert!(
        h.engine.finish_slot(&mut slot).is_none(),
        "a slot opened again after it finished is never planned"
    );

    // The record is intact.
    let session = h.open(&browser).await;
    assert_eq!(
        session.get::<Vec<String>>("cart").unwrap().unwrap(),
        ["apple"]
    );
    assert_eq!(session.get::<u64>("n").unwrap(), Some(1));
}

#[tokio::test]
async fn a_finished_slot_opened_again_from_the_old_cookie_plans_nothing() {
    // Two clones of one layer share a slot; the inner one finished it with
    // a log-in's new cookie. Middleware between the two then opens the
    // slot again from the cookie the request brought, whose touch is due.
    // Finishing that again would send the old id's cookie after the new
    // one (undoing the log-in in the browser).
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;
    h.advance_secs(120);

    let (mut slot, session) = open_in_slot(&h.engine, &browser).await;
    session.regenerate();
    session.insert("user", "alice").unwrap();
    drop(session);
    let (plan, _) = h.engine.finish_slot(&mut slot).unwrap().unwrap();
    assert!(
        matches!(plan.cookie, CookieOp::Set(_)),
        "the log-in's new cookie"
    );

    let loaded = h
        .engine
        .load(h.engine.read(browser.cookie_header()))
        .await
        .unwrap();
    let again = h.engine.open_in(&slot, loaded, h.engine.now());
    assert_eq!(
        again.get::<Vec<String>>("cart").unwrap().unwrap(),
        ["apple"],
        "the old record, whose touch is due"
    );
    drop(again);
    assert!(
        h.engine.finish_slot(&mut slot).is_none(),
        "the old id is not touched nor its cookie sent after the new one"
    );
}

#[tokio::test]
async fn a_read_only_request_finishes_with_nothing_to_do() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;

    let (mut slot, session) = open_in_slot(&h.engine, &browser).await;
    assert_eq!(
        session.get::<Vec<String>>("cart").unwrap().unwrap(),
        ["apple"]
    );
    drop(session);
    assert!(h.engine.finish_slot(&mut slot).is_none());

    // Once the touch interval has passed, the same read is a touch.
    h.advance_secs(120);
    let (mut slot, session) = open_in_slot(&h.engine, &browser).await;
    drop(session.get_value("cart"));
    drop(session);
    let (plan, _) = h.engine.finish_slot(&mut slot).unwrap().unwrap();
    assert!(matches!(plan.store, StoreOp::Save { .. }), "{plan:?}");
}
