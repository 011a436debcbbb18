//! Counting what Redis receives: the commands the store sent (its round
//! trips, from `MONITOR`) and Redis' own counters (`INFO commandstats`).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use super::{PrivateRedis, raw};

/// The commands Redis ran, by name, from `INFO commandstats`. Redis counts
/// the commands a script runs too, so a save (one `EVALSHA`) shows as
/// `evalsha` plus the script's own `get` and `set`.
pub async fn command_stats(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.strip_prefix("calls=")?.split(',').next()?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        // Leave out the counting itself.
        .filter(|(name, _): &(String, u64)| {
            !name.starts_with("info") && !name.starts_with("config") && name != "echo"
        })
        .collect()
}

/// A `MONITOR` connection: every command Redis receives, in order, with
/// the commands scripts run marked as such (`[0 lua]`), so that what the
/// store sent (its round trips) can be told from what its script did.
pub struct Monitor {
    lines: tokio::io::Lines<BufReader<TcpStream>>,
}

impl Monitor {
    pub async fn start(port: u16) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut lines = BufReader::new(stream).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("+OK"));
        Self { lines }
    }

    /// The names of the commands clients sent until `marker` was echoed,
    /// leaving out those run inside scripts.
    pub async fn sent_until(&mut self, marker: &str) -> Vec<String> {
        let mut sent = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
                .await
                .expect("MONITOR went quiet")
                .unwrap()
                .expect("MONITOR connection closed");
            if line.contains(marker) {
                return sent;
            }
            let Some((origin, command)) = line.split_once("] ") else {
                continue;
            };
            if origin.ends_with(" lua") {
                continue;
            }
            let name = command.split('"').nth(1).unwrap_or_default();
            sent.push(name.to_ascii_uppercase());
        }
    }
}

/// What one step cost: the commands the store sent (round trips, from
/// `MONITOR`) and Redis' command counters (`INFO commandstats`). The Redis
/// is this test's own, so nothing else is counted.
pub struct Counter {
    conn: redis::aio::MultiplexedConnection,
    monitor: Monitor,
    steps: u32,
}

impl Counter {
    pub async fn new(redis: &PrivateRedis) -> Self {
        Self {
            conn: raw(&redis.url()).await,
            monitor: Monitor::start(redis.port()).await,
            steps: 0,
        }
    }

    pub async fn count<F: Future>(
        &mut self,
        step: F,
    ) -> (F::Output, Vec<String>, BTreeMap<String, u64>) {
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut self.conn)
            .await
            .unwrap();
        // Everything sent before this marker belongs to earlier steps.
        self.steps += 1;
        let before = format!("before-step-{}", self.steps);
        self.echo(&before).await;
        let _ = self.monitor.sent_until(&before).await;

        let out = step.await;

        let after = format!("after-step-{}", self.steps);
        self.echo(&after).await;
        let sent = self.monitor.sent_until(&after).await;
        let stats = command_stats(&mut self.conn).await;
        (out, sent, stats)
    }

    /// The plain connection the counter uses.
    pub fn connection(&mut self) -> &mut redis::aio::MultiplexedConnection {
        &mut self.conn
    }

    async fn echo(&mut self, marker: &str) {
        let _: String = redis::cmd("ECHO")
            .arg(marker)
            .query_async(&mut self.conn)
            .await
            .unwrap();
    }
}

pub fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| (*n).to_owned()).collect()
}

pub fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
}
