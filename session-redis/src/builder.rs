//! [`RedisStoreBuilder`]: where Redis is, the key prefix and the timeouts.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion};
use session_core::DEFAULT_MAX_RECORD_SIZE;

use crate::connection::{Connection, Single, millis};
use crate::error::ConnectError;
use crate::store::RedisStore;

/// The key prefix used unless [`RedisStoreBuilder::key_prefix`] sets another.
pub const DEFAULT_KEY_PREFIX: &str = "session:";

/// How long [`RedisStoreBuilder::connect`] (and each reconnection attempt)
/// waits for Redis, unless [`RedisStoreBuilder::connect_timeout`] sets
/// another: 2 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one store operation waits for its reply, unless
/// [`RedisStoreBuilder::command_timeout`] sets another: 1 second.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// How long data sent to Redis may stay unacknowledged by the peer's TCP
/// stack before the connection is dropped and made anew (`TCP_USER_TIMEOUT`
/// on Linux). It catches a server that vanished without closing the
/// connection (a host that died, a network partition), which would
/// otherwise time out every command until the kernel gave up, many minutes
/// later. A hung but running Redis still acknowledges, so it is not
/// affected.
#[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest connect or command timeout [`RedisStoreBuilder::connect`]
/// takes: a day.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Sets up a [`RedisStore`]: where Redis is, the key prefix and the
/// timeouts. Made by [`RedisStore::builder`] (one server),
/// [`RedisStore::cluster_builder`] (a Redis Cluster), or from a connection
/// you made yourself with [`from_connection_manager`](Self::from_connection_manager)
/// or [`from_cluster_connection`](Self::from_cluster_connection).
///
/// ```no_run
/// use std::time::Duration;
/// use session_redis::RedisStore;
///
/// # async fn run() -> Result<(), session_redis::ConnectError> {
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .key_prefix("myapp:session:")
///     .connect_timeout(Duration::from_secs(1))
///     .command_timeout(Duration::from_millis(250))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `connect` is awaited"]
pub struct RedisStoreBuilder {
    target: Target,
    prefix: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    max_record_size: usize,
    #[cfg(feature = "tls")]
    tls: Tls,
}

/// The certificates given for TLS: none means the system's roots and no
/// client certificate.
#[cfg(feature = "tls")]
#[derive(Default)]
struct Tls {
    root_certificates: Option<Vec<u8>>,
    client_certificate: Option<redis::ClientTlsConfig>,
}

#[cfg(feature = "tls")]
impl Tls {
    fn is_set(&self) -> bool {
        self.root_certificates.is_some() || self.client_certificate.is_some()
    }

    fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self.client_certificate.clone(),
            root_cert: self.root_certificates.clone(),
        }
    }

    /// Checks that each PEM given holds what it should: at least one
    /// certificate, and for a client certificate the private key that goes
    /// with it. (The `redis` crate would take a PEM with no certificate in
    /// it as an empty list, and a key that does not match at every
    /// connection attempt, failing then for another reason.) Runs after the
    /// crypto provider is installed.
    fn check(&self) -> Result<(), ConnectError> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let invalid = |reason: String| ConnectError::TlsCertificates { reason };
        let certificates = |what: &str, pem: &[u8]| {
            let chain = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| invalid(format!("the {what}: {error}")))?;
            if chain.is_empty() {
                return Err(invalid(format!(
                    "the {what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                )));
            }
            Ok(chain)
        };
        if let Some(pem) = &self.root_certificates {
            certificates("root certificates", pem)?;
        }
        if let Some(client) = &self.client_certificate {
            let chain = certificates("client certificate", &client.client_cert)?;
            let key = PrivateKeyDer::from_pem_slice(&client.client_key).map_err(|error| {
                invalid(format!("the client certificate's private key: {error}"))
            })?;
            if let Some(provider) = rustls::crypto::CryptoProvider::get_default() {
                rustls::sign::CertifiedKey::from_der(chain, key, provider).map_err(|error| {
                    invalid(format!(
                        "the client certificate and its private key do not go together: {error}"
                    ))
                })?;
            }
        }
        Ok(())
    }
}

enum Target {
    Url(String),
    Cluster(Vec<String>),
    Manager(ConnectionManager),
    ClusterConnection(ClusterConnection),
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            // URLs may hold a password: never print them.
            Target::Url(_) => "standalone (URL)",
            Target::Cluster(_) => "cluster (URLs)",
            Target::Manager(_) => "standalone (connection manager)",
            Target::ClusterConnection(_) => "cluster (connection)",
        };
        let mut debug = f.debug_struct("RedisStoreBuilder");
        debug
            .field("target", &target)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("max_record_size", &self.max_record_size);
        // Whether certificates were given, never their contents (a key).
        #[cfg(feature = "tls")]
        debug
            .field(
                "tls_root_certificates",
                &self.tls.root_certificates.is_some(),
            )
            .field(
                "tls_client_certificate",
                &self.tls.client_certificate.is_some(),
            );
        debug.finish()
    }
}

impl RedisStoreBuilder {
    fn new(target: Target) -> Self {
        Self {
            target,
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
            #[cfg(feature = "tls")]
            tls: Tls::default(),
        }
    }

    pub(crate) fn url(url: String) -> Self {
        Self::new(Target::Url(url))
    }

    pub(crate) fn cluster(urls: Vec<String>) -> Self {
        Self::new(Target::Cluster(urls))
    }

    /// A store on a [`ConnectionManager`] you configured yourself (TLS,
    /// credentials, RESP3, retry policy). Its own timeouts stay as you set
    /// them; the store's [command timeout](Self::command_timeout) still
    /// bounds every operation.
    pub fn from_connection_manager(manager: ConnectionManager) -> Self {
        Self::new(Target::Manager(manager))
    }

    /// A store on a [`ClusterConnection`] you configured yourself.
    pub fn from_cluster_connection(connection: ClusterConnection) -> Self {
        Self::new(Target::ClusterConnection(connection))
    }

    /// The text put before every key: a record lives under
    /// `prefix + 64 hex digits` ([`StoreKey::to_hex`]). Defaults to
    /// [`DEFAULT_KEY_PREFIX`], `"session:"`. Give each application sharing
    /// a Redis its own prefix.
    ///
    /// It must not contain `{` or `}`: in a cluster a hash tag would put
    /// every session into one slot, on one node.
    ///
    /// [`StoreKey::to_hex`]: session_core::StoreKey::to_hex
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long [`connect`](Self::connect) waits for Redis to answer, and how
    /// long each later reconnection attempt may take. Defaults to
    /// [`DEFAULT_CONNECT_TIMEOUT`] (2 s); zero, or more than a day, is a
    /// [`ConnectError::Config`](crate::ConnectError::Config).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one store operation (one command) waits for its reply
    /// before failing with [`StoreError::Timeout`], so that a hung Redis
    /// fails requests quickly instead of holding them. Defaults to
    /// [`DEFAULT_COMMAND_TIMEOUT`] (1 s); zero, or more than a day, is a
    /// [`ConnectError::Config`](crate::ConnectError::Config) from
    /// [`connect`](Self::connect).
    ///
    /// [`StoreError::Timeout`]: session_core::StoreError::Timeout
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The largest value the store writes, in bytes (the version header
    /// and the record's JSON, as in the crate docs' "Key layout and value
    /// format", the save tokens left out): a create or save of a larger
    /// one fails with [`StoreError::TooLarge`] before anything is sent, the
    /// adapters answer it with a 500 and log it, and the stored record
    /// stays as it was. Without a limit, a session that a client keeps
    /// adding to grows without end, and every save sends all of it.
    /// Defaults to [`DEFAULT_MAX_RECORD_SIZE`] (1 MiB); `usize::MAX` lifts
    /// it (Redis itself takes values of up to 512 MB). A record stored
    /// before the limit was lowered can still be read and deleted; the
    /// engine skips its touches (with a warning), and only a request that
    /// makes it small enough saves it again.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), session_redis::ConnectError> {
    /// let store = session_redis::RedisStore::builder("redis://127.0.0.1:6379")
    ///     .max_record_size(64 * 1024)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// [`StoreError::TooLarge`]: session_core::StoreError::TooLarge
    pub fn max_record_size(mut self, bytes: usize) -> Self {
        self.max_record_size = bytes;
        self
    }

    /// Trusts these certificate authorities, and only these, for a
    /// `rediss://` server: one or more PEM certificates (the contents of a
    /// `ca.crt`), for a Redis whose certificate a private authority signed.
    /// Without it the system's root certificates are trusted. Needs the
    /// `tls` feature.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = session_redis::RedisStore::builder("rediss://redis.internal:6380")
    ///     .tls_root_certificates(std::fs::read("/etc/redis/ca.crt")?)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.root_certificates = Some(pem.into());
        self
    }

    /// Presents this certificate to a `rediss://` server that asks for one
    /// (Redis' `tls-auth-clients yes`): the certificate chain and its
    /// private key, both PEM. Needs the `tls` feature.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = session_redis::RedisStore::builder("rediss://redis.internal:6380")
    ///     .tls_root_certificates(std::fs::read("/etc/redis/ca.crt")?)
    ///     .tls_client_certificate(
    ///         std::fs::read("/etc/myapp/redis-client.crt")?,
    ///         std::fs::read("/etc/myapp/redis-client.key")?,
    ///     )
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_client_certificate(
        mut self,
        certificate_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.client_certificate = Some(redis::ClientTlsConfig {
            client_cert: certificate_pem.into(),
            client_key: key_pem.into(),
        });
        self
    }

    /// Connects, loads the save and take scripts and returns the store.
    ///
    /// A standalone server is reached through a [`ConnectionManager`]: one
    /// multiplexed connection that is made anew, in the background, after
    /// Redis restarts or the connection drops. Unless the URL chooses a
    /// protocol (`?protocol=resp2`), RESP3 is used, so that a dropped
    /// connection is noticed and replaced even while the store is idle.
    /// A cluster is reached through the `redis` crate's cluster client,
    /// which follows the cluster's slot map and its changes.
    ///
    /// # Errors
    ///
    /// [`ConnectError`]: an invalid URL or setting, a Redis that refuses or
    /// fails the handshake, or one that does not answer within the
    /// [connect timeout](Self::connect_timeout); a Redis that refuses to
    /// load the store's scripts ([`ConnectError::ScriptLoad`], an ACL); with
    /// the `tls` feature, certificates or a client key that cannot be used
    /// ([`ConnectError::TlsCertificates`]).
    pub async fn connect(self) -> Result<RedisStore, ConnectError> {
        if self.prefix.contains(['{', '}']) {
            return Err(ConnectError::Config {
                reason: format!(
                    "key prefix {:?} contains '{{' or '}}'; in a Redis Cluster a hash tag \
                     would put every session into one slot: choose a prefix without braces",
                    self.prefix
                ),
            });
        }
        for (name, value) in [
            ("connect timeout", self.connect_timeout),
            ("command timeout", self.command_timeout),
        ] {
            if value.is_zero() {
                return Err(ConnectError::Config {
                    reason: format!("the {name} is zero; give it a positive duration"),
                });
            }
            // Also keeps deadlines (now + timeout) within what clocks hold.
            if value > MAX_TIMEOUT {
                return Err(ConnectError::Config {
                    reason: format!(
                        "the {name} is over a day ({value:?}): a request would wait that long \
                         on a hung Redis; give at most a day"
                    ),
                });
            }
        }
        // The URLs, parsed; TLS settings checked against them.
        let nodes = match &self.target {
            Target::Url(url) => vec![connection_info(url)?],
            Target::Cluster(urls) => {
                let nodes = urls
                    .iter()
                    .map(|url| connection_info(url))
                    .collect::<Result<Vec<_>, _>>()?;
                if nodes.is_empty() {
                    return Err(ConnectError::Config {
                        reason: "a cluster needs at least one node URL".to_owned(),
                    });
                }
                nodes
            }
            Target::Manager(_) | Target::ClusterConnection(_) => Vec::new(),
        };
        self.check_tls(&nodes)?;
        let connect_timeout = self.connect_timeout;
        let (connection, target) = match self.target {
            Target::Url(_) => {
                let info = nodes.into_iter().next().expect("one URL, parsed above");
                let target = info.addr().to_string();
                #[cfg(feature = "tls")]
                let client = if self.tls.is_set() {
                    // The certificates were checked above; what is left to
                    // refuse is theirs too.
                    redis::Client::build_with_tls(info, self.tls.certificates()).map_err(
                        |source| ConnectError::TlsCertificates {
                            reason: source.to_string(),
                        },
                    )?
                } else {
                    redis::Client::open(info).map_err(invalid_url)?
                };
                #[cfg(not(feature = "tls"))]
                let client = redis::Client::open(info).map_err(invalid_url)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    // The store times every command itself.
                    .set_response_timeout(None)
                    // A reconnection is one attempt, made when a command
                    // needs the connection: while Redis is down, requests
                    // fail at once with the cause instead of waiting out a
                    // back-off.
                    .set_number_of_retries(0);
                let manager = within(
                    connect_timeout,
                    &target,
                    ConnectionManager::new_with_config(client.clone(), config.clone()),
                )
                .await?;
                (
                    Connection::Single(Single::new(manager, Some((client, config)))),
                    target,
                )
            }
            Target::Cluster(_) => {
                let target = nodes
                    .iter()
                    .map(|node| node.addr().to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                let builder = ClusterClientBuilder::new(nodes)
                    .connection_timeout(connect_timeout)
                    .response_timeout(self.command_timeout)
                    .retries(2)
                    .tcp_settings(tcp_settings());
                #[cfg(feature = "tls")]
                let builder = if self.tls.is_set() {
                    builder.certs(self.tls.certificates())
                } else {
                    builder
                };
                let client = builder.build().map_err(invalid_url)?;
                let connection =
                    within(connect_timeout, &target, client.get_async_connection()).await?;
                (Connection::Cluster(connection), target)
            }
            Target::Manager(manager) => (
                Connection::Single(Single::new(manager, None)),
                "Redis".to_owned(),
            ),
            Target::ClusterConnection(connection) => {
                (Connection::Cluster(connection), "Redis Cluster".to_owned())
            }
        };
        // Load the scripts now (on every primary of a cluster), so that the
        // first save and the first take are one round trip too.
        let deadline = tokio::time::Instant::now() + connect_timeout;
        for script in [crate::script::SAVE_SCRIPT, crate::script::TAKE_SCRIPT] {
            let mut load = redis::cmd("SCRIPT");
            load.arg("LOAD").arg(script);
            match tokio::time::timeout_at(deadline, connection.send(&load)).await {
                Ok(Ok(_)) => {}
                Ok(Err(source)) if !source.is_timeout() => {
                    return Err(ConnectError::ScriptLoad { target, source });
                }
                Ok(Err(_)) | Err(_) => {
                    return Err(ConnectError::Timeout {
                        target,
                        millis: millis(connect_timeout),
                    });
                }
            }
        }
        Ok(RedisStore::new(
            connection,
            self.prefix,
            self.command_timeout,
            self.max_record_size,
        ))
    }
}

impl RedisStoreBuilder {
    /// The parsed URLs (`nodes`) against the TLS settings: refuses a
    /// cluster that mixes TLS and plain nodes, `#insecure` (no certificate
    /// checks), and certificates given for servers they cannot apply to.
    /// With TLS in use, makes sure rustls has a crypto provider and checks
    /// the certificates given.
    fn check_tls(&self, nodes: &[ConnectionInfo]) -> Result<(), ConnectError> {
        let mut tls_nodes = 0;
        for node in nodes {
            if let ConnectionAddr::TcpTls { insecure, .. } = node.addr() {
                if *insecure {
                    return Err(ConnectError::Config {
                        reason: "a rediss:// URL ending in #insecure turns off the checks of \
                                 the server's certificate, which this store does not do; \
                                 give the authority that signed it with \
                                 tls_root_certificates (the `tls` feature) instead"
                            .to_owned(),
                    });
                }
                tls_nodes += 1;
            }
        }
        if tls_nodes > 0 && tls_nodes < nodes.len() {
            return Err(ConnectError::Config {
                reason: "some node URLs are rediss:// and some redis://; a cluster's nodes \
                         are reached all with TLS or all without"
                    .to_owned(),
            });
        }
        #[cfg(feature = "tls")]
        {
            if self.tls.is_set() && tls_nodes == 0 {
                return Err(ConnectError::Config {
                    reason: if nodes.is_empty() {
                        "TLS certificates apply to the URLs the builder connects to; \
                         configure TLS on your own connection instead"
                    } else {
                        "TLS certificates were given for a redis:// URL; \
                         use rediss:// to connect with TLS"
                    }
                    .to_owned(),
                });
            }
            if tls_nodes > 0 {
                // rustls needs a process-wide crypto provider: keep the
                // application's if it installed one, else install ring's.
                let _ = rustls::crypto::ring::default_provider().install_default();
                self.tls.check()?;
            }
        }
        Ok(())
    }
}

/// The URL's connection settings, with this crate's TCP settings and RESP3
/// unless the URL names a protocol.
fn connection_info(url: &str) -> Result<ConnectionInfo, ConnectError> {
    let info = url.into_connection_info().map_err(|source| {
        // Built without TLS support, the `redis` crate refuses a TLS URL
        // with a message about its own features.
        let url = url.trim_start().as_bytes();
        let tls = [&b"rediss://"[..], b"valkeys://"].iter().any(|tls| {
            url.get(..tls.len())
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case(tls))
        });
        if tls && !cfg!(feature = "tls") && source.kind() == redis::ErrorKind::InvalidClientConfig {
            ConnectError::Config {
                reason: "a TLS URL (rediss://) needs session-redis's `tls` feature: \
                         session-redis = { version = \"…\", features = [\"tls\"] }"
                    .to_owned(),
            }
        } else {
            invalid_url(source)
        }
    })?;
    let mut redis = info.redis_settings().clone();
    if !url.contains("protocol=") {
        redis = redis.set_protocol(ProtocolVersion::RESP3);
    }
    Ok(info
        .set_tcp_settings(tcp_settings())
        .set_redis_settings(redis))
}

fn invalid_url(source: redis::RedisError) -> ConnectError {
    ConnectError::InvalidUrl { source }
}

fn tcp_settings() -> TcpSettings {
    let settings = TcpSettings::default().set_nodelay(true);
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    let settings = settings.set_user_timeout(DEAD_PEER_TIMEOUT);
    settings
}

async fn within<T>(
    timeout: Duration,
    target: &str,
    connect: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, ConnectError> {
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) if !source.is_timeout() => Err(ConnectError::Unreachable {
            target: target.to_owned(),
            source,
        }),
        Ok(Err(_)) | Err(_) => Err(ConnectError::Timeout {
            target: target.to_owned(),
            millis: millis(timeout),
        }),
    }
}
