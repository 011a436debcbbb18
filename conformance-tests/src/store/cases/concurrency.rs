//! Concurrent requests of one session, through the core's conflict
//! handling: the store's compare-and-set must make every change survive.
//!
//! Each writer runs on its own [`Engine`](session_core::Engine), as if each
//! request reached another server process: within one process the engine
//! serializes the saves of a session, so only the store's compare-and-set
//! stands between writers of different processes.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::Barrier;

use super::join_all;
use super::privacy::{commit, engine, open, request};
use crate::failure::{check_eq, fail};
use crate::store::Subject;
use crate::{Failure, Outcome};

/// 50 requests of one session, each on its own engine, load it at the same time, then each inserts
/// its own key and saves: every save but one meets a version conflict, and
/// the engine's merge must leave all 50 keys (and the key set before) in the
/// record.
pub async fn fifty_concurrent_writers_each_keep_their_own_key(subject: Subject) -> Outcome {
    const WRITERS: usize = 50;
    let engine = engine(&subject, subject.store.clone())?;
    let Some(cookie) = request(&engine, None, |s| s.insert("created", &true)).await? else {
        fail!("a new session set no cookie");
    };
    let cookie = Arc::new(cookie);
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        // Same keys, store and clock; its own save lanes.
        let engine = session_core::Engine::new(engine.config().clone())?;
        let (cookie, barrier) = (cookie.clone(), barrier.clone());
        tasks.spawn(async move {
            let session = open(&engine, Some(&cookie)).await?;
            // Every writer has loaded the same version before any saves.
            barrier.wait().await;
            session.insert(&format!("writer-{i}"), &i)?;
            commit(&engine, &session).await?;
            Ok::<_, Failure>(())
        });
    }
    join_all(tasks).await?;

    let session = open(&engine, Some(&cookie)).await?;
    let mut missing = Vec::new();
    for i in 0..WRITERS {
        if session.get_value(&format!("writer-{i}")) != Some(json!(i)) {
            missing.push(i);
        }
    }
    check_eq!(missing, Vec::<usize>::new(), "writers whose key was lost");
    check_eq!(
        session.get_value("created"),
        Some(json!(true)),
        "the key set before the writers"
    );
    Ok(())
}

/// 20 requests of one session, each on its own engine, append to one list with
/// [`Session::update`](session_core::Session::update) at the same time:
/// the list ends with all 20 items.
pub async fn twenty_concurrent_updates_of_one_list_lose_nothing(subject: Subject) -> Outcome {
    const WRITERS: usize = 20;
    let engine = engine(&subject, subject.store.clone())?;
    let Some(cookie) = request(&engine, None, |s| s.insert("list", &Vec::<u64>::new())).await?
    else {
        fail!("a new session set no cookie");
    };
    let cookie = Arc::new(cookie);
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        // Same keys, store and clock; its own save lanes.
        let engine = session_core::Engine::new(engine.config().clone())?;
        let (cookie, barrier) = (cookie.clone(), barrier.clone());
        tasks.spawn(async move {
            let session = open(&engine, Some(&cookie)).await?;
            barrier.wait().await;
            session.update("list", move |list: Option<Vec<usize>>| {
                let mut list = list.unwrap_or_default();
                list.push(i);
                list
            })?;
            commit(&engine, &session).await?;
            Ok::<_, Failure>(())
        });
    }
    join_all(tasks).await?;

    let session = open(&engine, Some(&cookie)).await?;
    let mut list: Vec<usize> = session.get("list")?.unwrap_or_default();
    list.sort_unstable();
    check_eq!(
        list,
        (0..WRITERS).collect::<Vec<_>>(),
        "the list after 20 concurrent appends"
    );
    Ok(())
}
