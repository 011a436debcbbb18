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
    // last seen at 2026-01-01T00:00:00Z, expiring an hour later.
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
        "id=p1.BQUFBQUFBQUFBQUFEOE4wWfLKyRA4yRxonui9UNDjv7Ve27OeSs6qtJ_Ym66JuH8LRGpP6uNV5E5_vXi8RZ9\
         xcdPK3iGWEQ2WPNIIaYM8K8nzj5SyDrEusNHDtY2PF_o0v3wFXsJLpMyOWT0g1bF; \
         HttpOnly; SameSite=Lax; Path=/; Max-Age=3600"
    );
}
