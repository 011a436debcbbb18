//! Shared helpers of this crate's integration tests: the shared Redis at
//! `REDIS_URL`, the cluster at `REDIS_CLUSTER_URLS`, a private
//! `redis-server` per test for tests that stop, pause or count, and an
//! engine driven like an adapter drives it.

#![allow(dead_code, unreachable_pub)] // each test file uses a part

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use session_core::{Engine, Key, KeyRing, Session, SessionConfig};
use session_redis::RedisStore;

pub mod count;
pub mod cut;

/// The shared standalone Redis (started by `scripts/test`).
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The cluster's node URLs (started by `scripts/test`), comma-separated in
/// `REDIS_CLUSTER_URLS`.
pub fn cluster_urls() -> Vec<String> {
    let Ok(list) = std::env::var("REDIS_CLUSTER_URLS") else {
        panic!(
            "REDIS_CLUSTER_URLS is not set: the cluster tests need a Redis Cluster; \
             run scripts/test, which starts a three-node cluster on 127.0.0.1:7001-7003, \
             or set REDIS_CLUSTER_URLS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,..."
        )
    };
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A key prefix no other test (or earlier run) uses.
pub fn unique_prefix(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "test:{test}:{}:{nanos}:{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store on the shared Redis with its own prefix.
pub async fn shared_store(test: &str) -> RedisStore {
    let url = redis_url();
    RedisStore::builder(url.clone())
        .key_prefix(unique_prefix(test))
        .connect()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Redis is not reachable at {url} ({e}); start it (scripts/test does) \
                 or point REDIS_URL at one"
            )
        })
}

/// A store on the cluster with its own prefix.
pub async fn cluster_store(test: &str) -> RedisStore {
    let urls = cluster_urls();
    RedisStore::cluster_builder(urls.clone())
        .key_prefix(unique_prefix(test))
        .connect()
        .await
        .unwrap_or_else(|e| {
            panic!("the Redis Cluster at {urls:?} is not reachable ({e}); scripts/test starts one")
        })
}

/// A plain connection for looking at what the store wrote.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis is not reachable at {url}: {e}"))
}

/// A cluster connection for looking at what the store wrote.
pub async fn raw_cluster() -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(cluster_urls())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap_or_else(|e| panic!("the Redis Cluster is not reachable: {e}"))
}

/// A `redis-server` of this test's own, on a free port, killed on drop.
/// Tests that stop, pause, flush or count commands use one, so they never
/// disturb the shared Redis.
pub struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        // The port was free a moment ago; another process may take it
        // before the server binds it, and the server then exits: try
        // another.
        for _ in 0..3 {
            let mut redis = Self {
                port: free_port(),
                child: None,
            };
            if redis.spawn() {
                return redis;
            }
        }
        panic!("redis-server exited at start three times (ports taken?)");
    }

    /// Starts the server on this port and waits until it answers as itself:
    /// `true` once `INFO` on the port names its process, `false` when it
    /// exited (the port was taken).
    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let args = ["--bind", "127.0.0.1", "--port", &port];
        let what = format!("answer on port {port}");
        match spawn_redis_server(&args, &what, |pid| answers_as(self.port, pid)) {
            Ok(child) => {
                self.child = Some(child);
                true
            }
            Err(status) => {
                eprintln!("redis-server on port {port} exited at start: {status}");
                false
            }
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (connections drop, the port refuses).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing is saved).
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "redis-server could not start again on port {}",
            self.port
        );
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is
    /// answered, like a hung Redis.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("server running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid} failed");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.resume();
        }
        self.kill();
    }
}

/// Runs `redis-server` with `args` (and no persistence) and waits up to
/// 5 s until `ready(pid)`: the running server, or how it exited first (its
/// port was taken, say). Panics, killing it, when it does neither in time
/// (`what` says what it was waited for).
pub fn spawn_redis_server(
    args: &[&str],
    what: &str,
    ready: impl Fn(u32) -> bool,
) -> Result<Child, std::process::ExitStatus> {
    let mut child = Command::new("redis-server")
        .args(args)
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run redis-server ({e}); install it (scripts/test does)")
        });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(status);
        }
        if ready(child.id()) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redis-server did not {what} within 5 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether the server on `port` is the process `pid`: its `INFO server`
/// says `process_id:PID`. (A server that is still loading, or another
/// program on the port, does not.)
fn answers_as(port: u16, pid: u32) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream
        .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        .is_err()
    {
        return false;
    }
    let wanted = format!("\r\nprocess_id:{pid}\r\n");
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        reply.extend_from_slice(&buf[..n]);
        if reply.windows(wanted.len()).any(|w| w == wanted.as_bytes()) {
            return true;
        }
    }
    false
}

/// The store key of the session id made of `n` sixteen times.
pub fn key(n: u8) -> session_core::StoreKey {
    session_core::SessionId::from_bytes([n; 16]).store_key()
}

/// A record made now, alive for an hour, holding `{"views":1}`.
pub fn record() -> session_core::Record {
    let now = time::OffsetDateTime::now_utc();
    let mut record = session_core::Record::new(now, Some(now + time::Duration::hours(1)));
    record.data.insert("views", 1.into());
    record
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An engine on `store`, with the system clock.
pub fn engine(store: RedisStore) -> Engine {
    Engine::new(SessionConfig::new(KeyRing::new(Key::generate())).with_store(Arc::new(store)))
        .unwrap()
}

/// One request, as an adapter runs it: the cookie sent (if any), the
/// handler, and the cookie received (if any). Store errors are returned.
pub async fn request(
    engine: &Engine,
    cookie: Option<&str>,
    handler: impl FnOnce(&Session),
) -> Result<Option<String>, session_core::SessionError> {
    let incoming = engine.read(cookie.map(str::as_bytes));
    let session = engine.open(engine.load(incoming).await?, engine.now());
    handler(&session);
    let plan = engine.finish(&session, engine.now())?;
    Ok(engine
        .commit(plan)
        .await?
        .map(|set_cookie| set_cookie.split(';').next().unwrap().to_owned()))
}

/// Makes a session with an empty cart, then sends twenty requests of it at
/// once, each pushing its own item with `update`, and returns the cart as
/// the next request reads it, sorted. The requests alternate between
/// `engine` and a second engine on the same config, as two servers would:
/// one engine queues the saves of one session one after another, two meet
/// in Redis's compare-and-set.
pub async fn twenty_concurrent_appends(engine: &Engine) -> Vec<String> {
    let other = Engine::new(engine.config().clone()).unwrap();
    let cookie = request(engine, None, |s| {
        s.insert("cart", &Vec::<String>::new()).unwrap()
    })
    .await
    .unwrap()
    .expect("a new session sets its cookie");
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let engine = if i % 2 == 0 { engine } else { &other }.clone();
            let cookie = cookie.clone();
            tokio::spawn(async move {
                request(&engine, Some(&cookie), move |s| {
                    s.update("cart", move |cart: Option<Vec<String>>| {
                        let mut cart = cart.unwrap_or_default();
                        cart.push(format!("item-{i}"));
                        cart
                    })
                    .unwrap();
                })
                .await
                .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut cart = Vec::new();
    request(engine, Some(&cookie), |s| {
        cart = s.get::<Vec<String>>("cart").unwrap().unwrap();
    })
    .await
    .unwrap();
    cart.sort();
    cart
}

/// What [`twenty_concurrent_appends`] must return.
pub fn twenty_items() -> Vec<String> {
    let mut items: Vec<String> = (0..20).map(|i| format!("item-{i}")).collect();
    items.sort();
    items
}
