//! The adapter suite's cases, one function each.
//!
//! Every case takes the [`Suite`](super::Suite) and returns an
//! [`Outcome`](crate::Outcome). They are listed, with what each needs, in
//! [`ADAPTER_CASES`](crate::ADAPTER_CASES). Expected bodies, statuses and
//! content types are the demo contract's, byte for byte.

use session_core::{KeyRing, SessionId, StoreKey, codec};

use crate::Failure;
use crate::client::Reply;
use crate::failure::{check, check_eq};

mod app_cookies;
mod lifecycle;
mod robustness;
mod routes;
mod session_cookie;

pub use app_cookies::*;
pub use lifecycle::*;
pub use robustness::*;
pub use routes::*;
pub use session_cookie::*;

/// The contract's credentials, as the login body.
const LOGIN: &str = r#"{"username":"alice","password":"password123"}"#;

/// Checks a `text/plain` reply.
fn text(reply: &Reply, status: u16, body: &str, what: &str) -> Result<(), Failure> {
    check_eq!(
        (reply.status, reply.body.as_str()),
        (status, body),
        "{what}: status and body"
    );
    check_eq!(
        reply.media_type().as_deref(),
        Some("text/plain"),
        "{what}: content type"
    );
    Ok(())
}

/// Checks an `application/json` reply.
fn json(reply: &Reply, status: u16, body: &str, what: &str) -> Result<(), Failure> {
    check_eq!(
        (reply.status, reply.body.as_str()),
        (status, body),
        "{what}: status and body"
    );
    check_eq!(
        reply.media_type().as_deref(),
        Some("application/json"),
        "{what}: content type"
    );
    Ok(())
}

/// Checks that a reply sets no cookie at all.
/// `reply` is the contract's answer to `/auth/profile` without a login.
fn not_authenticated(reply: &Reply, what: &str) -> Result<(), Failure> {
    json(reply, 401, r#"{"error":"Not authenticated"}"#, what)
}

fn no_cookies(reply: &Reply, what: &str) -> Result<(), Failure> {
    check!(
        reply.set_cookies().is_empty(),
        "{what}: want no Set-Cookie, got {:?}",
        reply.set_cookies()
    );
    Ok(())
}

/// The attributes of a `Set-Cookie` header after the value, lowercased and
/// sorted, so that the framework's attribute order does not matter.
fn attributes(set_cookie: &str) -> Vec<String> {
    let mut attrs: Vec<String> = set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| !a.is_empty())
        .collect();
    attrs.sort();
    attrs
}

/// Whether a `Set-Cookie` header has `attribute` (lowercase, as
/// [`attributes`] gives them, e.g. `"secure"` or `"max-age=3600"`).
fn has_attribute(set_cookie: &str, attribute: &str) -> bool {
    attributes(set_cookie).iter().any(|a| a == attribute)
}

/// Whether a `Set-Cookie` header removes its cookie: an empty value and a
/// `Max-Age` of zero or an `Expires` in the past.
fn is_removal(set_cookie: &str) -> bool {
    let value_empty = set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .is_some_and(|(_, value)| value.trim().is_empty());
    let attrs = attributes(set_cookie);
    let expires_now = attrs.iter().any(|a| {
        a.strip_prefix("max-age=")
            .is_some_and(|secs| secs.parse::<i64>().is_ok_and(|s| s <= 0))
            || a.starts_with("expires=") && a.contains("1970")
    });
    value_empty && expires_now
}

/// The store key of the session id inside a signed session cookie value.
fn store_key_of(keys: &KeyRing, value: &str) -> Option<StoreKey> {
    let (payload, _) = codec::verify(keys, "id", value).ok()?;
    let bytes: [u8; session_core::ID_LEN] = payload.try_into().ok()?;
    Some(SessionId::from_bytes(bytes).store_key())
}

/// `value` with one character in its middle changed: a different value of
/// the same length and shape.
fn flip_middle(value: &str) -> String {
    let mut bytes = value.as_bytes().to_vec();
    if let Some(byte) = bytes.get_mut(value.len() / 2) {
        *byte = if *byte == b'A' { b'Q' } else { b'A' };
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
