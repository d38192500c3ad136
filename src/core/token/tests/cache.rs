//! Tests of the per-worker token cache.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::super::*;
use super::*;
use serde_json::{json, Map, Value};
use std::rc::Rc;

const NOW: u64 = 1_000;

fn token(exp: u64) -> Rc<VerifiedToken> {
    let claims: Map<String, Value> = json!({"exp": exp}).as_object().unwrap().clone();
    Rc::new(VerifiedToken::for_policy_test(
        TokenKind::Jwt,
        claims,
        &ClaimNames::default(),
    ))
}

fn key(i: u8) -> [u8; 32] {
    [i; 32]
}

#[test]
fn token_hash_is_sha256() {
    assert_eq!(
        token_hash("abc")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_ne!(token_hash("a"), token_hash("b"));
}

#[test]
fn get_returns_until_expiry_only() {
    let mut c = TokenCache::new(10);
    c.insert(key(1), token(NOW + 100), NOW + 60, NOW);
    assert!(c.get(&key(1), NOW).is_some());
    assert!(c.get(&key(1), NOW + 59).is_some());
    assert!(c.get(&key(1), NOW + 60).is_none(), "never at expires_at");
    assert!(c.is_empty(), "expired entry dropped on access");
    assert!(c.get(&key(2), NOW).is_none());
}

#[test]
fn cache_ttl_is_capped_by_token_expiry() {
    let mut c = TokenCache::new(10);
    c.insert(key(1), token(NOW + 30), NOW + 600, NOW);
    assert!(c.get(&key(1), NOW + 29).is_some());
    assert!(c.get(&key(1), NOW + 30).is_none());
}

#[test]
fn already_expired_or_disabled_is_not_stored() {
    let mut c = TokenCache::new(10);
    c.insert(key(1), token(NOW), NOW + 60, NOW);
    c.insert(key(2), token(NOW + 60), NOW, NOW);
    assert!(c.is_empty());
    let mut off = TokenCache::new(0);
    off.insert(key(1), token(NOW + 60), NOW + 60, NOW);
    assert!(off.is_empty());
}

#[test]
fn full_cache_evicts_expired_first_then_oldest() {
    let mut c = TokenCache::new(3);
    c.insert(key(1), token(u64::MAX), NOW + 1_000, NOW);
    c.insert(key(2), token(u64::MAX), NOW + 10, NOW);
    c.insert(key(3), token(u64::MAX), NOW + 1_000, NOW);
    // At NOW + 20 key 2 is expired: it goes first although key 1 is older.
    c.insert(key(4), token(u64::MAX), NOW + 1_000, NOW + 20);
    assert_eq!(c.len(), 3);
    assert!(c.get(&key(1), NOW + 20).is_some());
    assert!(c.get(&key(2), NOW + 20).is_none());
    // Nothing expired: the oldest (key 1) goes.
    c.insert(key(5), token(u64::MAX), NOW + 1_000, NOW + 20);
    assert_eq!(c.len(), 3);
    assert!(c.get(&key(1), NOW + 20).is_none());
    for k in [3, 4, 5] {
        assert!(c.get(&key(k), NOW + 20).is_some(), "key {k}");
    }
}

#[test]
fn reinsert_replaces_and_refreshes_age() {
    let mut c = TokenCache::new(2);
    c.insert(key(1), token(u64::MAX), NOW + 100, NOW);
    c.insert(key(2), token(u64::MAX), NOW + 100, NOW);
    c.insert(key(1), token(u64::MAX), NOW + 200, NOW);
    assert_eq!(c.len(), 2);
    c.insert(key(3), token(u64::MAX), NOW + 100, NOW);
    assert!(c.get(&key(2), NOW).is_none(), "key 2 became the oldest");
    assert!(c.get(&key(1), NOW + 150).is_some(), "new expiry applies");
}

#[test]
fn bounded_under_many_inserts() {
    let mut c = TokenCache::new(100);
    for i in 0..10_000u32 {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_be_bytes());
        c.insert(k, token(u64::MAX), NOW + 1 + u64::from(i % 7), NOW);
        assert!(c.len() <= 100);
    }
    c.remove(&[0u8; 32]);
    c.clear();
    assert!(c.is_empty());
}

#[test]
fn the_rules_value_is_built_once_per_token_and_reused_on_cache_hits() {
    let mut cache = TokenCache::new(4);
    let key = [7u8; 32];
    let t = token(NOW + 100);
    cache.insert(key, Rc::clone(&t), NOW + 100, NOW);
    let first = cache.get(&key, NOW).unwrap().rules_value();
    let again = cache.get(&key, NOW + 1).unwrap().rules_value();
    let (cel_interpreter::Value::Map(a), cel_interpreter::Value::Map(b)) = (&first, &again) else {
        panic!("the token variable is a map");
    };
    assert!(std::sync::Arc::ptr_eq(&a.map, &b.map), "built twice");
    // It is the CEL form of the token's JSON input, and takes no part in equality.
    assert_eq!(first, crate::rules::json_to_cel(&t.to_cel_value()));
    let fresh = token(NOW + 100);
    assert!(*fresh == *t);
}
