//! Fixed test vectors: this key, this `now` and these random bytes give
//! exactly these cookie strings. A change here is a format change that
//! breaks every cookie in the wild, and must be deliberate.
//!
//! The signed and encrypted values were checked against an independent
//! Python implementation (hmac, hashlib and `cryptography`'s AESGCM, with
//! HKDF-SHA256 written out) when the format was fixed.

mod support;

use std::sync::Arc;

use session_core::{SequenceRandom, Storage};
use support::{Browser, Harness};

#[tokio::test]
async fn signed_id_cookie_vector() {
    // Key bytes 0..64; the id is sixteen 0x01 bytes (the first draw of
    // SequenceRandom::starting_at(1)); now = 2026-01-01T00:00:00Z.
    let h = Harness::with(|c| c.with_random(Arc::new(SequenceRandom::starting_at(1))));
    let mut browser = Browser::new();
    let (_, set) = h
        .request(&mut browser, |s| s.insert("views", &1).unwrap())
        .await;
    assert_eq!(
        set.unwrap(),
        "id=s1.AQEBAQEBAQEBAQEBAQEBAQ.uOEy7Gcx7_S6RJa4wCCGCGPHITfJiJ_3slG19ltBB8w; \
         HttpOnly; SameSite=Lax; Path=/; Max-Age=3600"
    );
}

#[tokio::test]
async fn removal_cookie_vector() {
    let h = Harness::new();
    assert_eq!(
        h.engine.removal_cookie(),
        "id=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    );
}

#[tokio::test]
async fn cookie_store_vector() {
    // Nonce: twelve 0x05 bytes; the record holds {"views":1}, created and
    // last seen at 2026-01-01T00:00:00Z, version 0, expiring an hour
    // later, in the binary plaintext format (`codec::inline`). Opened with
    // Python's `cryptography` (HKDF-SHA256 of the key bytes 0..64, AES-GCM
    // with the associated data `session-core/private/v1\0id`) to
    // 020100a8da769b01000000a8da769b01000000809611779b010000010576696577730301.
    let h = Harness::with(|c| {
        c.with_storage(Storage::Cookie)
            .with_random(Arc::new(SequenceRandom::starting_at(5)))
    });
    let mut browser = Browser::new();
    let (_, set) = h
        .request(&mut browser, |s| s.insert("views", &1).unwrap())
        .await;
    assert_eq!(
        set.unwrap(),
        "id=p1.BQUFBQUFBQUFBQUFacJOS4eMnAcjwR7oTzsOxnF2uE5zWillVAlJie04PD36Z9DIwKQaJ1raYueBxL8gANV49Q; \
         HttpOnly; SameSite=Lax; Path=/; Max-Age=3600"
    );
}
