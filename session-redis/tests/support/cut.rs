//! A TCP proxy in front of a Redis that can lose one reply: the command
//! reaches Redis and runs, and the connection drops before its answer comes
//! back, as when a network path or a load balancer fails at that moment.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Forwards every connection to Redis. Once [`armed`](Self::arm) with a
/// command name, the next reply to a request holding that name is not
/// forwarded: the proxy closes that client connection instead (and then
/// forwards everything again). For tests that send one command at a time:
/// "the next reply" is the one after that request on its connection.
pub struct ReplyCutter {
    port: u16,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    cuts: Arc<Mutex<u32>>,
}

impl ReplyCutter {
    pub async fn start(redis_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(Mutex::new(None));
        let cuts = Arc::new(Mutex::new(0));
        let (armed_, cuts_) = (Arc::clone(&armed), Arc::clone(&cuts));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(("127.0.0.1", redis_port))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("the proxy cannot reach Redis on {redis_port}: {e}")
                    });
                tokio::spawn(relay(
                    client,
                    server,
                    Arc::clone(&armed_),
                    Arc::clone(&cuts_),
                ));
            }
        });
        Self { port, armed, cuts }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Loses the reply to the next request that holds `command`.
    pub fn arm(&self, command: &str) {
        *self.armed.lock().unwrap() = Some(command.as_bytes().to_vec());
    }

    /// How many replies were lost so far.
    pub fn cuts(&self) -> u32 {
        *self.cuts.lock().unwrap()
    }
}

/// One client connection: requests go through as they come; a reply is
/// withheld, and the connection closed, when the request before it held
/// the armed command.
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    cuts: Arc<Mutex<u32>>,
) {
    let mut cut_next_reply = false;
    let (mut up, mut down) = ([0u8; 16 * 1024], [0u8; 16 * 1024]);
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let Ok(n @ 1..) = read else { return };
                let request = &up[..n];
                if disarm_on(&armed, request) {
                    cut_next_reply = true;
                }
                if server.write_all(request).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut down) => {
                let Ok(n @ 1..) = read else { return };
                if cut_next_reply {
                    *cuts.lock().unwrap() += 1;
                    return; // both streams drop: the client sees the connection close
                }
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether `request` holds the armed command; if so, disarms.
fn disarm_on(armed: &Mutex<Option<Vec<u8>>>, request: &[u8]) -> bool {
    let mut armed = armed.lock().unwrap();
    let hit = armed.as_ref().is_some_and(|name| {
        request
            .windows(name.len())
            .any(|w| w.eq_ignore_ascii_case(name))
    });
    if hit {
        *armed = None;
    }
    hit
}
