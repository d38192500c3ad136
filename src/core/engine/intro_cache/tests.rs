//! Unit tests of the negative introspection cache and the stored refusal codes.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn key(n: u8) -> [u8; 32] {
    [n; 32]
}

#[test]
fn an_entry_is_served_until_it_expires() {
    let mut c = NegativeCache::new(10);
    c.insert(key(1), TokenError::Inactive, 10_000, 0);
    assert_eq!(c.get(&key(1), 9_999), Some(TokenError::Inactive));
    assert_eq!(c.get(&key(1), 10_000), None);
    assert_eq!(c.len(), 0, "an expired entry is dropped on read");
}

#[test]
fn nothing_is_stored_with_no_time_left_or_no_room() {
    let mut c = NegativeCache::new(10);
    c.insert(key(1), TokenError::Inactive, 5, 5);
    assert_eq!(c.get(&key(1), 0), None);
    let mut off = NegativeCache::new(0);
    off.insert(key(1), TokenError::Inactive, 100, 0);
    assert_eq!(off.get(&key(1), 0), None);
}

#[test]
fn the_cache_stays_bounded_evicting_the_earliest_expiry() {
    let mut c = NegativeCache::new(3);
    for n in 0..10u8 {
        c.insert(key(n), TokenError::Inactive, 1_000 + u64::from(n), 0);
        assert!(c.len() <= 3);
    }
    assert_eq!(c.get(&key(9), 0), Some(TokenError::Inactive));
    assert_eq!(c.get(&key(0), 0), None);
}

#[test]
fn reinserting_replaces_the_entry() {
    let mut c = NegativeCache::new(3);
    c.insert(key(1), TokenError::Inactive, 100, 0);
    c.insert(key(1), TokenError::Expired, 200, 0);
    assert_eq!(c.len(), 1);
    assert_eq!(c.get(&key(1), 150), Some(TokenError::Expired));
    c.remove(&key(1));
    assert_eq!(c.get(&key(1), 150), None);
}

#[test]
fn stored_codes_read_back_as_refusals() {
    for err in [
        TokenError::Inactive,
        TokenError::Expired,
        TokenError::WrongIssuer,
        TokenError::WrongAudience,
    ] {
        assert_eq!(error_from_code(err.code()), err);
    }
    assert_eq!(
        error_from_code(TokenError::Malformed(crate::token::MalformedReason::ClaimType).code()),
        TokenError::Malformed(crate::token::MalformedReason::ClaimType)
    );
    assert_eq!(error_from_code("garbage"), TokenError::Inactive);
}
