//! What a response that uses cookies tells shared caches (a CDN, a reverse
//! proxy): the header checks every adapter makes, so that none hands one
//! visitor's page or cookie to another. See the adapter duties in the
//! crate docs and [`RequestSlot::uses_cookies`](crate::RequestSlot::uses_cookies).

/// Whether the `Vary` header values `values` already make a response vary
/// on `Cookie`: one of them lists `Cookie` (in any case) or `*`. When they
/// do not, an adapter adds a `Vary: Cookie` header of its own to a
/// response that [uses cookies](crate::RequestSlot::uses_cookies) (a second `Vary`
/// header is the same as a comma-separated one).
///
/// ```
/// use session_core::vary_names_cookie;
///
/// assert!(!vary_names_cookie([]));
/// assert!(!vary_names_cookie([&b"Accept-Encoding"[..]]));
/// assert!(vary_names_cookie([&b"accept-encoding, cookie"[..]]));
/// assert!(vary_names_cookie([&b"Origin"[..], &b"*"[..]]));
/// assert!(!vary_names_cookie([&b"Cookies"[..]]));
/// ```
#[must_use]
pub fn vary_names_cookie<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    values.into_iter().any(|value| {
        value.split(|&b| b == b',').any(|name| {
            let name = name.trim_ascii();
            name == b"*" || name.eq_ignore_ascii_case(b"cookie")
        })
    })
}

/// Whether the `Cache-Control` header values `values` already keep a
/// response out of shared caches: one of them holds a bare `private` or
/// `no-store` directive (in any case). A qualified `private="…"` does not
/// count: it keeps only the fields it names out of a shared cache, which
/// may store the rest (RFC 9111, 5.2.2.7); nor does a directive name
/// inside another directive's quoted argument.
///
/// A response that sets a cookie carries a credential (a session id, a
/// sealed session, a signed value): a shared cache that stored it would
/// hand that cookie to every later visitor of the URL, `Vary: Cookie` or
/// not (a first visit carries no cookie, and neither does the next
/// visitor's). So an adapter adds `Cache-Control: private` to a response
/// that sets any cookie, unless this says it is kept out already. A
/// `public` or `s-maxage` the app gave stays, and loses to `private`
/// (RFC 9111: a shared cache must not store a response marked private);
/// the browser's own cache may still keep it. (A CDN that obeys a
/// `CDN-Cache-Control` or `Surrogate-Control` header the app sets reads
/// that one instead: an app that sets one on a response with a cookie
/// must make it private there too.)
///
/// ```
/// use session_core::cache_control_is_private;
///
/// assert!(!cache_control_is_private([]));
/// assert!(!cache_control_is_private([&b"public, max-age=60"[..]]));
/// assert!(cache_control_is_private([&b"max-age=0,\tPrivate"[..]]));
/// assert!(cache_control_is_private([&b"public"[..], &b"no-store"[..]]));
/// // Only the named field is private: the rest may be stored.
/// assert!(!cache_control_is_private([&b"private=\"set-cookie\""[..]]));
/// // A name inside a quoted argument is no directive.
/// assert!(!cache_control_is_private([&b"ext=\"a, private\", max-age=9"[..]]));
/// assert!(!cache_control_is_private([&b"privately"[..]]));
/// ```
#[must_use]
pub fn cache_control_is_private<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    values.into_iter().any(|value| {
        directives(value).any(|directive| {
            let directive = directive.trim_ascii();
            directive.eq_ignore_ascii_case(b"private")
                || directive.eq_ignore_ascii_case(b"no-store")
        })
    })
}

/// The comma-separated elements of a header value, commas inside quoted
/// strings (with their `\` escapes) left alone.
fn directives(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let text = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, &b) in text.iter().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    rest = Some(&text[i + 1..]);
                    return Some(&text[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(text)
    })
}
