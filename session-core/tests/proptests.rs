//! Property tests: codecs round-trip, and no input makes the engine panic.

use proptest::prelude::*;
use session_core::{Engine, Key, KeyRing, Record, SessionConfig, Storage, codec};

fn ring() -> KeyRing {
    KeyRing::new(Key::from_bytes(&(0..64u8).collect::<Vec<_>>()).unwrap())
}

fn cookie_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_!#$%&'*+.^`|~-]{1,20}"
}

proptest! {
    #[test]
    fn signed_values_round_trip(name in cookie_name(), payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let ring = ring();
        let value = codec::sign(ring.current(), &name, &payload);
        let (back, _) = codec::verify(&ring, &name, &value).unwrap();
        prop_assert_eq!(back, payload);
    }

    #[test]
    fn private_values_round_trip(name in cookie_name(), payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let ring = ring();
        let value = codec::seal(ring.current(), &name, &payload).unwrap();
        let (back, _) = codec::open(&ring, &name, &value).unwrap();
        prop_assert_eq!(back, payload);
    }

    #[test]
    fn signed_value_never_verifies_under_another_name(a in cookie_name(), b in cookie_name(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assume!(a != b);
        let ring = ring();
        let value = codec::sign(ring.current(), &a, &payload);
        prop_assert!(codec::verify(&ring, &b, &value).is_err());
        let sealed = codec::seal(ring.current(), &a, &payload).unwrap();
        prop_assert!(codec::open(&ring, &b, &sealed).is_err());
    }

    #[test]
    fn codecs_never_panic_on_arbitrary_text(value in ".{0,300}") {
        let ring = ring();
        let _ = codec::verify(&ring, "id", &value);
        let _ = codec::open(&ring, "id", &value);
        let _ = Key::parse(&value);
    }

    #[test]
    fn read_never_panics_on_arbitrary_header_bytes(headers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 0..4)) {
        for storage in [Storage::Memory, Storage::Cookie] {
            let engine = Engine::new(SessionConfig::new(ring()).with_storage(storage)).unwrap();
            let incoming = engine.read(headers.iter());
            prop_assert!(incoming.is_empty());
            let jar = engine.cookies(headers.iter());
            let _ = jar.get_signed("pref");
            let _ = jar.get_private("pref");
        }
    }

    #[test]
    fn read_never_panics_on_cookie_shaped_headers(value in "(id|pref)=(s1\\.|p1\\.)?[A-Za-z0-9_.=\"-]{0,200}(; ?[a-z]{1,3}=[^;]{0,20}){0,3}") {
        let engine = Engine::new(SessionConfig::new(ring())).unwrap();
        let _ = engine.read([value.as_bytes()]);
        let cookie_engine = Engine::new(SessionConfig::new(ring()).with_storage(Storage::Cookie)).unwrap();
        let _ = cookie_engine.read([value.as_bytes()]);
    }

    #[test]
    fn record_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Record::from_bytes(&bytes);
    }

    #[test]
    fn records_round_trip(json in proptest::collection::btree_map("[a-zé✓ ]{0,8}", any::<i64>(), 0..8), created in 0i64..4_000_000_000_000, version in any::<u64>()) {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(created) * 1_000_000).unwrap();
        let mut record = Record::new(t, Some(t + time::Duration::hours(1)));
        record.version = version;
        for (k, v) in json {
            record.data.insert(&k, v.into());
        }
        prop_assert_eq!(Record::from_bytes(&record.to_bytes()).unwrap(), record);
    }
}
