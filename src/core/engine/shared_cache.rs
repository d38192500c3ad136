//! Verified tokens shared across worker VMs through proxy-wasm shared data.
//!
//! Shared data has no delete, so the cache is a fixed ring of slots: a token's SHA-256 picks the
//! slot, the slot holds `hash ‖ token`. A colliding token simply overwrites the slot; a reader
//! checks the stored hash and the expiry, so a collision is a miss, never a wrong identity.
//! Memory stays bounded by `slots × entry size` however many distinct tokens arrive. The raw
//! token is never stored, only its hash.

use crate::host::Host;
use crate::token::VerifiedToken;

/// Largest serialized token kept in a slot.
pub(super) const MAX_ENTRY_BYTES: usize = 16 * 1024;

fn slot_key(prefix: &str, slots: usize, hash: &[u8; 32]) -> Option<String> {
    family_slot_key(prefix, "tok", slots, hash)
}

/// The shared-data key of `hash`'s slot in the ring `family` (`None` when there are no slots).
pub(super) fn family_slot_key(
    prefix: &str,
    family: &str,
    slots: usize,
    hash: &[u8; 32],
) -> Option<String> {
    if slots == 0 {
        return None;
    }
    let n = u64::from_be_bytes([
        hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7],
    ]);
    let slot = n % slots as u64;
    Some(format!("fhirgate.{prefix}.{family}.{slot}"))
}

/// Looks a token up by hash; `None` on a miss, a collision, or an expired entry.
pub fn get(
    host: &dyn Host,
    prefix: &str,
    slots: usize,
    hash: &[u8; 32],
    now_s: u64,
) -> Option<VerifiedToken> {
    let key = slot_key(prefix, slots, hash)?;
    let (bytes, _) = host.shared_get(&key)?;
    let (stored_hash, rest) = bytes.split_at_checked(32)?;
    if stored_hash != hash.as_slice() {
        return None;
    }
    let token = VerifiedToken::from_cache_bytes(rest)?;
    (token.expires_at() > now_s).then_some(token)
}

/// Stores a verified token in its slot (overwriting whatever was there).
pub fn put(host: &dyn Host, prefix: &str, slots: usize, hash: &[u8; 32], token: &VerifiedToken) {
    let Some(key) = slot_key(prefix, slots, hash) else {
        return;
    };
    let body = token.to_cache_bytes();
    if body.len() > MAX_ENTRY_BYTES {
        return;
    }
    let mut value = Vec::with_capacity(32 + body.len());
    value.extend_from_slice(hash);
    value.extend_from_slice(&body);
    host.shared_set(&key, &value, None);
}
