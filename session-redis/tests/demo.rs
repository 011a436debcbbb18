//! The axum demo app (`session-axum/examples/demo.rs`) on Redis, over real
//! HTTP on 127.0.0.1: the round trips each route costs, read from Redis
//! itself (`MONITOR` and `INFO commandstats`), concurrent requests, and a
//! Redis that goes away and comes back.

#[allow(dead_code, unreachable_pub)] // its `main` is the example's
#[path = "../../session-axum/examples/demo.rs"]
mod demo;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use session_axum::{Key, KeyRing, SessionConfig};
use session_redis::RedisStore;
use support::PrivateRedis;
use support::count::{Counter, counts, names};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The demo on a store on `redis_url`, on an ephemeral port of this
/// runtime.
async fn serve(redis_url: &str) -> SocketAddr {
    let store = RedisStore::builder(redis_url)
        .command_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let config = SessionConfig::new(KeyRing::new(Key::generate())).with_store(Arc::new(store));
    let app = demo::app(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<Request>::into_make_service(app),
        )
        .await
        .unwrap()
    });
    addr
}

/// A response, as far as these tests look at it.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// The session cookie (`id=...`) the response set, if any.
    cookie: Option<String>,
    body: String,
}

/// One HTTP/1.1 request on a fresh connection.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    json: Option<&str>,
) -> Reply {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(cookie) = cookie {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    let body = json.unwrap_or_default();
    if json.is_some() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no complete answer within 10 s"));

    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let cookie = lines
        .filter_map(|line| {
            line.strip_prefix("set-cookie: ")
                .or_else(|| line.strip_prefix("Set-Cookie: "))
        })
        .map(|value| value.split(';').next().unwrap().to_owned())
        .find(|pair| pair.starts_with("id="));
    Reply {
        status,
        cookie,
        body: body.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_costs_the_promised_round_trips() {
    let redis = PrivateRedis::start();
    let addr = serve(&redis.url()).await;
    let mut counter = Counter::new(&redis).await;

    // `/views` without a cookie: a new session, one SET NX.
    let (reply, sent, stats) = counter.count(call(addr, "GET", "/views", None, None)).await;
    assert_eq!(reply.body, "Views: 1");
    let cookie = reply.cookie.expect("a new session sets its cookie");
    assert_eq!(sent, names(&["SET"]), "new session");
    assert_eq!(stats, counts(&[("set", 1)]), "new session");

    // `/get` with the session: read only, one GET.
    let (reply, sent, stats) = counter
        .count(call(addr, "GET", "/get", Some(&cookie), None))
        .await;
    assert_eq!(reply.body, r#"{"user":"No user set"}"#);
    assert_eq!(sent, names(&["GET"]), "/get");
    assert_eq!(stats, counts(&[("get", 1)]), "/get");

    // `/views` with the session: read and write, GET then the save script
    // (which runs its own GET and SET inside Redis).
    let (reply, sent, stats) = counter
        .count(call(addr, "GET", "/views", Some(&cookie), None))
        .await;
    assert_eq!(reply.body, "Views: 2");
    assert_eq!(sent, names(&["GET", "EVALSHA"]), "/views");
    assert_eq!(
        stats,
        counts(&[("get", 2), ("evalsha", 1), ("set", 1)]),
        "/views"
    );

    // Routes that never touch the session cost nothing.
    for path in ["/get-theme", "/set-theme", "/signed/get", "/nowhere"] {
        let (_, sent, stats) = counter
            .count(call(addr, "GET", path, Some(&cookie), None))
            .await;
        assert_eq!(sent, names(&[]), "{path}");
        assert_eq!(stats, counts(&[]), "{path}");
    }

    // Log-in: GET, SET NX of the new id, the take script on the old one.
    let (reply, sent, _) = counter
        .count(call(
            addr,
            "POST",
            "/auth/login",
            Some(&cookie),
            Some(r#"{"username":"alice","password":"password123"}"#),
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let cookie = reply.cookie.expect("log-in issues a new id");
    assert_eq!(sent, names(&["GET", "SET", "EVALSHA"]), "log-in");

    // Log-out: GET, DEL.
    let (reply, sent, _) = counter
        .count(call(addr, "GET", "/auth/logout", Some(&cookie), None))
        .await;
    assert_eq!(reply.body, r#"{"message":"Logged out"}"#);
    assert_eq!(sent, names(&["GET", "DEL"]), "log-out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_parallel_cart_pushes_are_all_kept() {
    let redis = PrivateRedis::start();
    let addr = serve(&redis.url()).await;
    let reply = call(addr, "POST", "/cart", None, Some(r#"{"item":"first"}"#)).await;
    let cookie = reply.cookie.unwrap();

    let pushes: Vec<_> = (0..20)
        .map(|i| {
            let cookie = cookie.clone();
            tokio::spawn(async move {
                let body = format!(r#"{{"item":"item-{i}"}}"#);
                call(addr, "POST", "/cart", Some(&cookie), Some(&body)).await
            })
        })
        .collect();
    for push in pushes {
        let reply = push.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    let cart: Vec<String> =
        serde_json::from_str(&call(addr, "GET", "/cart", Some(&cookie), None).await.body).unwrap();
    assert_eq!(cart.len(), 21, "{cart:?}");
    for i in 0..20 {
        assert!(
            cart.contains(&format!("item-{i}")),
            "item-{i} lost: {cart:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_session_routes_answer_500_the_rest_work_and_all_recover() {
    let mut redis = PrivateRedis::start();
    let addr = serve(&redis.url()).await;
    let cookie = call(addr, "GET", "/views", None, None)
        .await
        .cookie
        .unwrap();

    redis.kill();
    for path in ["/views", "/get", "/cart"] {
        let reply = call(addr, "GET", path, Some(&cookie), None).await;
        assert_eq!(reply.status, 500, "{path}: {}", reply.body);
        assert!(reply.cookie.is_none(), "{path}");
    }
    let reply = call(addr, "GET", "/views", None, None).await;
    assert_eq!(reply.status, 500, "a new session cannot be stored either");
    let reply = call(addr, "GET", "/get-theme", Some(&cookie), None).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "Current theme: default")
    );

    // Redis is back (empty: the old session is gone, and an unknown id is
    // never adopted), and so is the demo, without a restart.
    redis.restart();
    let reply = call(addr, "GET", "/views", Some(&cookie), None).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Views: 1"));
    let cookie = reply.cookie.unwrap();
    let reply = call(addr, "GET", "/views", Some(&cookie), None).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Views: 2"));
}
