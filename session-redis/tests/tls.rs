//! `rediss://` with the `tls` feature, against `redis-server`s of the
//! tests' own that speak only TLS, with certificates made by `openssl` for
//! each run: a private authority, a server certificate for 127.0.0.1 and a
//! client certificate.
//!
//! Run with `cargo test -p session-redis --features tls --test tls`
//! (`scripts/test` does).

#![cfg(feature = "tls")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use session_core::{SaveOutcome, SessionStore};
use session_redis::{ConnectError, RedisStore};
use support::{free_port, key, record, spawn_redis_server};

/// The certificates of one test, in a directory of its own.
struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    /// A private authority, a server certificate it signed for the IP
    /// address 127.0.0.1 only, and a client certificate it signed.
    fn make(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("session-redis-tls-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=session-redis test CA",
            ],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt"],
        );
        for (name, extensions) in [
            // Cluster nodes present it to each other as clients too.
            (
                "server",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
            openssl(
                &dir,
                &["req", "-subj", &format!("/CN=session-redis test {name}")],
                &ec,
                &[
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
            openssl(
                &dir,
                &["x509", "-req", "-days", "2", "-in", &format!("{name}.csr")],
                &["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"],
                &[
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.crt"),
                ],
            );
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, a: &[&str], b: &[&str], c: &[&str]) {
    let output = Command::new("openssl")
        .args(a)
        .args(b)
        .args(c)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl ({e}); install it (apt-get install -y openssl)")
        });
    assert!(
        output.status.success(),
        "openssl {a:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A `redis-server` that speaks only TLS, killed on drop.
struct TlsRedis {
    port: u16,
    child: Child,
}

impl TlsRedis {
    fn start(certificates: &Certificates, clients_need_certificates: bool) -> Self {
        Self::start_with(certificates, clients_need_certificates, &[])
    }

    /// A node of a Redis Cluster whose bus speaks TLS too.
    fn start_cluster_node(certificates: &Certificates, dir: &Path) -> Self {
        let bus = free_port().to_string();
        let config = dir.join(format!("nodes-{bus}.conf"));
        Self::start_with(
            certificates,
            false,
            &[
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus,
                "--tls-cluster",
                "yes",
                "--cluster-config-file",
                &config.to_string_lossy(),
                "--dir",
                &dir.to_string_lossy(),
            ],
        )
    }

    /// Starts the server on a free port, and on another one when the
    /// server exits at start (the port was taken in the meantime, say).
    fn start_with(
        certificates: &Certificates,
        clients_need_certificates: bool,
        extra: &[&str],
    ) -> Self {
        let mut exits = Vec::new();
        for _ in 0..3 {
            match Self::spawn(certificates, clients_need_certificates, extra) {
                Ok(redis) => return redis,
                Err(status) => exits.push(status),
            }
        }
        panic!(
            "redis-server with TLS exited at start three times ({exits:?}): ports taken, \
             a redis-server built without TLS, or one older than 7.0 (--cluster-port)?"
        );
    }

    fn spawn(
        certificates: &Certificates,
        clients_need_certificates: bool,
        extra: &[&str],
    ) -> Result<Self, std::process::ExitStatus> {
        let port = free_port();
        let path = |name: &str| certificates.path(name).to_string_lossy().into_owned();
        let (tls_port, cert, key, ca) = (
            port.to_string(),
            path("server.crt"),
            path("server.key"),
            path("ca.crt"),
        );
        let mut args = vec!["--bind", "127.0.0.1", "--port", "0"];
        args.extend(["--tls-port", &tls_port, "--tls-cert-file", &cert]);
        args.extend(["--tls-key-file", &key, "--tls-ca-cert-file", &ca]);
        let auth = if clients_need_certificates {
            "yes"
        } else {
            "no"
        };
        args.extend(["--tls-auth-clients", auth]);
        args.extend(extra);
        let listening = |_pid| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        let child = spawn_redis_server(&args, &format!("listen with TLS on {port}"), listening)?;
        let mut redis = Self { port, child };
        // Listening: ours, unless it exits right away (another process
        // holds the port).
        std::thread::sleep(Duration::from_millis(50));
        if let Ok(Some(status)) = redis.child.try_wait() {
            return Err(status);
        }
        Ok(redis)
    }

    fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every operation works over TLS, checked against the authority given,
/// on the record of `key(n)`. (A key taken stays marked for a minute: each
/// call takes a key of its own.)
async fn serves_sessions(store: &RedisStore, n: u8) {
    let first = record();
    store.create(&key(n), &first).await.unwrap();
    assert_eq!(store.load(&key(n)).await.unwrap(), Some(first.clone()));
    let mut second = first.clone();
    second.version = 1;
    second.data.insert("views", 2.into());
    assert_eq!(
        store.save(&key(n), &second, 0).await.unwrap(),
        SaveOutcome::Saved
    );
    assert_eq!(store.take(&key(n)).await.unwrap(), Some(second));
    assert_eq!(store.load(&key(n)).await.unwrap(), None);
}

#[tokio::test]
async fn a_rediss_url_with_the_private_authority_serves_sessions() {
    let certificates = Certificates::make("private_ca");
    let redis = TlsRedis::start(&certificates, false);
    let store = RedisStore::builder(redis.url("127.0.0.1"))
        .tls_root_certificates(certificates.read("ca.crt"))
        .connect()
        .await
        .unwrap();
    serves_sessions(&store, 3).await;

    // Valkey's name for the scheme is TLS too.
    let valkeys = redis.url("127.0.0.1").replace("rediss://", "valkeys://");
    let store = RedisStore::builder(valkeys)
        .tls_root_certificates(certificates.read("ca.crt"))
        .connect()
        .await
        .unwrap();
    serves_sessions(&store, 4).await;
}

#[tokio::test]
async fn a_server_the_system_roots_do_not_vouch_for_is_refused_at_start_up() {
    let certificates = Certificates::make("unknown_ca");
    let redis = TlsRedis::start(&certificates, false);
    let err = RedisStore::builder(redis.url("127.0.0.1"))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn a_host_name_the_certificate_does_not_hold_is_refused_at_start_up() {
    let certificates = Certificates::make("wrong_name");
    let redis = TlsRedis::start(&certificates, false);
    // The certificate names 127.0.0.1 only.
    let err = RedisStore::builder(redis.url("localhost"))
        .tls_root_certificates(certificates.read("ca.crt"))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_redis_asks_for_one() {
    let certificates = Certificates::make("client_certificate");
    let redis = TlsRedis::start(&certificates, true);
    let without = RedisStore::builder(redis.url("127.0.0.1"))
        .tls_root_certificates(certificates.read("ca.crt"))
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    let err = without.unwrap_err();
    assert!(
        matches!(err, ConnectError::Unreachable { .. }),
        "Redis asked for a client certificate: {err}"
    );

    let store = RedisStore::builder(redis.url("127.0.0.1"))
        .tls_root_certificates(certificates.read("ca.crt"))
        .tls_client_certificate(
            certificates.read("client.crt"),
            certificates.read("client.key"),
        )
        .connect()
        .await
        .unwrap();
    serves_sessions(&store, 5).await;
}

#[tokio::test]
async fn certificates_that_cannot_apply_are_refused_before_connecting() {
    let certificates = Certificates::make("plain_url");
    let other = Certificates::make("plain_url_other");
    let builder = || RedisStore::builder("rediss://127.0.0.1:1");
    for (what, builder) in [
        (
            "root certificates",
            builder().tls_root_certificates(b"not a certificate".to_vec()),
        ),
        (
            "root certificates",
            builder().tls_root_certificates(certificates.read("ca.key")),
        ),
        (
            "client certificate",
            builder().tls_client_certificate(b"".to_vec(), certificates.read("client.key")),
        ),
        (
            "private key",
            builder().tls_client_certificate(certificates.read("client.crt"), b"no key".to_vec()),
        ),
        (
            "do not go together",
            builder()
                .tls_client_certificate(certificates.read("client.crt"), other.read("client.key")),
        ),
    ] {
        let err = builder.connect().await.unwrap_err();
        assert!(matches!(err, ConnectError::TlsCertificates { .. }), "{err}");
        assert!(err.to_string().contains(what), "{what}: {err}");
    }

    let err = RedisStore::builder("redis://127.0.0.1:1")
        .tls_root_certificates(certificates.read("ca.crt"))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Config { .. }), "{err}");
    assert!(err.to_string().contains("rediss://"), "{err}");

    // No certificate checks, and clusters half on TLS: refused.
    let err = RedisStore::connect("rediss://127.0.0.1:1/#insecure")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Config { .. }), "{err}");
    assert!(err.to_string().contains("#insecure"), "{err}");
    let err = RedisStore::cluster_builder(["rediss://127.0.0.1:1", "redis://127.0.0.1:2"])
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Config { .. }), "{err}");
    assert!(err.to_string().contains("all with TLS"), "{err}");

    // Debug output says whether certificates were given, never the key.
    let builder = RedisStore::builder("rediss://127.0.0.1:1").tls_client_certificate(
        certificates.read("client.crt"),
        certificates.read("client.key"),
    );
    let debug = format!("{builder:?}");
    assert!(debug.contains("tls_client_certificate: true"), "{debug}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
}

/// `redis-cli` with TLS against the server on `port`.
fn redis_cli(certificates: &Certificates, port: u16, args: &[&str]) -> String {
    let ca = certificates.path("ca.crt");
    // `timeout`: redis-cli --cluster create waits without end for nodes
    // that never meet.
    let output = Command::new("timeout")
        .args(["20", "redis-cli"])
        .args(["--tls", "--cacert", &ca.to_string_lossy()])
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli ({e})"));
    assert!(
        output.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls_serves_sessions() {
    let certificates = Certificates::make("cluster");
    let dir = certificates.path("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    let nodes: Vec<TlsRedis> = (0..3)
        .map(|_| TlsRedis::start_cluster_node(&certificates, &dir))
        .collect();
    let addresses: Vec<String> = nodes
        .iter()
        .map(|node| format!("127.0.0.1:{}", node.port))
        .collect();
    let mut create = vec!["--cluster", "create"];
    create.extend(addresses.iter().map(String::as_str));
    create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
    redis_cli(&certificates, nodes[0].port, &create);
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in &nodes {
        while !redis_cli(&certificates, node.port, &["cluster", "info"])
            .contains("cluster_state:ok")
        {
            assert!(
                Instant::now() < deadline,
                "the TLS cluster did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let store = RedisStore::cluster_builder(nodes.iter().map(|node| node.url("127.0.0.1")))
        .tls_root_certificates(certificates.read("ca.crt"))
        .connect()
        .await
        .unwrap();
    assert!(store.is_cluster());
    serves_sessions(&store, 200).await;
    // Sessions spread over the primaries: keys in other slots work too.
    for n in 0..32u8 {
        let key = key(n);
        store.create(&key, &record()).await.unwrap();
        assert!(store.load(&key).await.unwrap().is_some());
    }
}
