//! A small cookie-keeping HTTP/1.1 client, the "browser" the adapter suite
//! drives servers with.
//!
//! It speaks plain HTTP/1.1 over a [`TcpStream`], one connection per request
//! (`Connection: close`), and blocks: the server under test runs on its own
//! thread and runtime, so the client needs none. It can send what a real
//! browser never would (raw bytes, several `Cookie` headers), which the
//! suite's tampering cases need.
//!
//! ```no_run
//! use conformance_tests::client::Browser;
//!
//! # fn main() -> Result<(), conformance_tests::Failure> {
//! let browser = Browser::new("127.0.0.1:3000".parse().unwrap());
//! let reply = browser.get("/views")?;
//! assert_eq!(reply.body, "Views: 1");
//! assert!(browser.cookie("id").is_some(), "the browser keeps the session cookie");
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::Failure;

/// How long a request may take before the case fails (a server that hangs
/// must not hang the test run).
const TIMEOUT: Duration = Duration::from_secs(10);

/// A browser for one site: it keeps the cookies the server sets (by name;
/// the suite's servers use one host and `Path=/`) and sends them back.
///
/// A `Set-Cookie` with `Max-Age` of zero or less, or an `Expires` in 1970,
/// removes the cookie, as a browser would. For concurrent requests of one
/// session, share one `Browser` (it is `Sync`) behind an
/// [`Arc`](std::sync::Arc).
#[derive(Debug)]
pub struct Browser {
    addr: SocketAddr,
    cookies: Mutex<BTreeMap<String, String>>,
}

/// One request, built with [`Request::new`] and sent with [`Browser::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    with_jar: bool,
}

impl Request {
    /// A request for `path` (with its query) with `method`, no body, and
    /// the browser's cookies.
    #[must_use]
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            with_jar: true,
        }
    }

    /// Adds a header, raw bytes and all (the same name may be added twice).
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The body; `Content-Length` is set from it.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends none of the browser's cookies: only the `Cookie` headers added
    /// with [`Request::header`].
    #[must_use]
    pub fn without_jar(mut self) -> Self {
        self.with_jar = false;
        self
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Every header, in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (decoded from chunked transfer encoding), as text; bytes
    /// that are not UTF-8 are replaced.
    pub body: String,
}

impl Reply {
    /// The first value of the header `name` (any case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `Content-Type` without its parameters, lowercased
    /// (`text/plain; charset=utf-8` gives `text/plain`).
    #[must_use]
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// Every value of the header `name` (any case), in order.
    #[must_use]
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every `Set-Cookie` header value, in order.
    #[must_use]
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers_named("set-cookie")
    }

    /// The `Set-Cookie` header value for the cookie `name`, if the response
    /// sets or removes it.
    #[must_use]
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.split_once('=').is_some_and(|(n, _)| n.trim() == name))
    }
}

impl Browser {
    /// A browser with an empty jar for the server at `addr`.
    #[must_use]
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    /// `GET path`.
    ///
    /// # Errors
    ///
    /// A [`Failure`] when the server cannot be reached or does not answer
    /// with a well-formed HTTP/1.1 response within 10 seconds.
    pub fn get(&self, path: &str) -> Result<Reply, Failure> {
        self.send(Request::new("GET", path))
    }

    /// `POST path` with `body` as `application/json`.
    ///
    /// # Errors
    ///
    /// As for [`Browser::get`].
    pub fn post_json(&self, path: &str, body: &str) -> Result<Reply, Failure> {
        self.send(
            Request::new("POST", path)
                .header("Content-Type", "application/json")
                .body(body),
        )
    }

    /// Sends `request` with the jar's cookies (unless
    /// [`Request::without_jar`]) and stores the cookies the response sets.
    ///
    /// # Errors
    ///
    /// As for [`Browser::get`].
    pub fn send(&self, request: Request) -> Result<Reply, Failure> {
        let Request {
            method,
            path,
            headers,
            body,
            with_jar,
        } = request;
        let mut raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        if with_jar {
            let jar = self.cookie_header();
            if !jar.is_empty() {
                raw.extend_from_slice(format!("Cookie: {jar}\r\n").as_bytes());
            }
        }
        for (name, value) in headers {
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(b": ");
            raw.extend(value);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend(body);

        let what = format!("{method} {path}");
        let (raw, cut) = exchange(self.addr, &raw)
            .map_err(|e| Failure::new(format!("{what}: no answer from {}: {e}", self.addr)))?;
        let reply = parse(&raw).map_err(|e| Failure::new(format!("{what}: {e}")))?;
        let framed = reply.header("content-length").is_some()
            || reply
                .header("transfer-encoding")
                .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
        if cut && !framed {
            return Err(Failure::new(format!(
                "{what}: the connection was reset after a response head with no body length, \
                 so where its body ends is unknown"
            )));
        }
        for header in reply.set_cookies() {
            self.keep(header);
        }
        Ok(reply)
    }

    /// The value of the cookie `name` in the jar.
    #[must_use]
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar().get(name).cloned()
    }

    /// Puts a cookie into the jar, as if the server had set it.
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar().insert(name.to_owned(), value.to_owned());
    }

    /// Removes a cookie from the jar.
    pub fn remove_cookie(&self, name: &str) {
        self.jar().remove(name);
    }

    /// The `Cookie` header the next request sends (`a=1; b=2`).
    #[must_use]
    pub fn cookie_header(&self) -> String {
        self.jar()
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn jar(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.cookies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn keep(&self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let removes = parts.any(|attr| {
            let (key, val) = attr.split_once('=').unwrap_or((attr, ""));
            let key = key.trim().to_ascii_lowercase();
            (key == "max-age" && val.trim().parse::<i64>().is_ok_and(|secs| secs <= 0))
                || (key == "expires" && val.contains("1970"))
        });
        let name = name.trim().to_owned();
        if removes {
            self.jar().remove(&name);
        } else {
            self.jar().insert(name, value.trim().to_owned());
        }
    }
}

/// Sends `request` and reads the response to the end of the connection;
/// `true` with it when the connection was reset (or the request could not
/// be written whole) after a whole response head had arrived: a server may
/// answer before it has read the whole request (a 413 for a body over its
/// limit) and close, which resets the connection under the client. Any
/// other failure, and a reset before a whole head, is an error.
fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<(Vec<u8>, bool)> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let written = stream.write_all(request);
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw).map(|_| ());
    let cut_off = |error: &std::io::Error| {
        matches!(
            error.kind(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
        )
    };
    match (written, read) {
        (Ok(()), Ok(())) => Ok((raw, false)),
        (Err(error), _) | (Ok(()), Err(error)) if !cut_off(&error) || !has_head(&raw) => Err(error),
        (_, Err(error)) if !cut_off(&error) => Err(error),
        _ => Ok((raw, true)),
    }
}

/// Whether `raw` holds a response's whole head.
fn has_head(raw: &[u8]) -> bool {
    raw.windows(4).any(|w| w == b"\r\n\r\n")
}

fn parse(raw: &[u8]) -> Result<Reply, String> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(format!(
            "the response has no complete head ({} bytes received)",
            raw.len()
        ));
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let body = if find("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length {len:?}"))?;
        rest.get(..len)
            .ok_or_else(|| format!("body shorter than Content-Length {len}"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size line")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_and_chunked_bodies() {
        let reply = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2; Max-Age=0\r\n\r\nhello").unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, "hello"));
        assert_eq!(reply.set_cookies(), ["a=1", "b=2; Max-Age=0"]);
        assert_eq!(reply.set_cookie("b"), Some("b=2; Max-Age=0"));
        let reply = parse(
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nNot\r\n6\r\n found\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (404, "Not found"));
    }

    #[test]
    fn jar_keeps_and_removes_cookies() {
        let browser = Browser::new("127.0.0.1:9".parse().unwrap());
        browser.keep("id=abc; Path=/; HttpOnly; Max-Age=3600");
        browser.keep("theme=dark");
        assert_eq!(browser.cookie_header(), "id=abc; theme=dark");
        browser.keep("theme=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        browser.keep("id=; Max-Age=0");
        assert_eq!(browser.cookie_header(), "");
    }

    /// A server that answers 413 after the head and closes without
    /// reading the 64 MiB body (the close resets the connection under the
    /// client's write): the 413 is the reply, not a connection error.
    #[test]
    fn an_answer_sent_before_the_body_was_read_is_the_reply() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            stream
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig")
                .unwrap();
            // The answer leaves before the close resets the connection.
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            head
        });
        let reply = Browser::new(addr)
            .send(Request::new("POST", "/cart").body(vec![b'x'; 64 << 20]))
            .unwrap();
        let head = server.join().unwrap();
        assert!(head.starts_with(b"POST /cart HTTP/1.1\r\n"));
        assert_eq!((reply.status, reply.body.as_str()), (413, "big"));
    }

    /// A server that sends a head, then resets the connection: with a
    /// body shorter than its `Content-Length`, or with no length at all,
    /// the exchange fails rather than passing for a whole reply.
    #[test]
    fn a_reset_in_the_body_is_an_error() {
        for (answer, error) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
                "shorter",
            ),
            (&b"HTTP/1.1 200 OK\r\n\r\nno length"[..], "no body length"),
        ] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = std::thread::spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                let mut head = [0u8; 64];
                let _ = stream.read(&mut head).unwrap();
                stream.write_all(answer).unwrap();
                // Unread request bytes make the close a reset.
            });
            let failure = Browser::new(addr)
                .send(Request::new("POST", "/").body(vec![b'x'; 1 << 20]))
                .unwrap_err();
            server.join().unwrap();
            assert!(failure.message().contains(error), "{failure}");
        }
    }
}
