//! Caches of introspection answers, keyed by the SHA-256 of the token (never the token).
//!
//! Active answers live per worker in a [`crate::token::TokenCache`]; inactive answers live per
//! worker in a [`NegativeCache`]. Both kinds are also shared across worker VMs through a fixed
//! ring of shared-data slots (family `intro`, like [`super::shared_cache`]): a slot holds
//! `hash ‖ tag ‖ valid-until (ms, big endian) ‖ payload`, where the payload is the serialized
//! token for an active answer and the error code for an inactive one. A colliding token
//! overwrites the slot; a reader checks the stored hash and the time, so a collision is a miss.

use std::collections::{BTreeSet, HashMap};

use super::shared_cache::{family_slot_key, MAX_ENTRY_BYTES};
use crate::host::Host;
use crate::token::{TokenError, VerifiedToken};

const TAG_ACTIVE: u8 = 1;
const TAG_INACTIVE: u8 = 0;

/// A bounded map from token hash to the error of an inactive (or refused) introspection answer.
///
/// Entries are never returned at or after their expiry; when full, the entry expiring first is
/// evicted. Every operation is O(log n).
pub(super) struct NegativeCache {
    max_entries: usize,
    entries: HashMap<[u8; 32], (u64, TokenError)>,
    by_expiry: BTreeSet<(u64, [u8; 32])>,
}

impl NegativeCache {
    /// A cache holding at most `max_entries` answers (0 disables it).
    pub(super) fn new(max_entries: usize) -> Self {
        NegativeCache {
            max_entries,
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// The cached refusal for `key`, unless it expired at `now_ms` (then it is dropped).
    pub(super) fn get(&mut self, key: &[u8; 32], now_ms: u64) -> Option<TokenError> {
        let (until, err) = self.entries.get(key)?;
        if now_ms >= *until {
            self.remove(key);
            return None;
        }
        Some(err.clone())
    }

    /// Caches `err` under `key` until `until_ms`; nothing is stored when that is not after `now_ms`.
    pub(super) fn insert(&mut self, key: [u8; 32], err: TokenError, until_ms: u64, now_ms: u64) {
        self.remove(&key);
        if self.max_entries == 0 || until_ms <= now_ms {
            return;
        }
        while self.entries.len() >= self.max_entries {
            let Some(first) = self.by_expiry.pop_first() else {
                break;
            };
            self.entries.remove(&first.1);
        }
        self.by_expiry.insert((until_ms, key));
        self.entries.insert(key, (until_ms, err));
    }

    /// Drops the entry under `key`, if any.
    pub(super) fn remove(&mut self, key: &[u8; 32]) {
        if let Some((until, _)) = self.entries.remove(key) {
            self.by_expiry.remove(&(until, *key));
        }
    }

    /// Number of entries (expired ones not yet evicted included).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// An introspection answer found in shared data.
pub(super) enum SharedAnswer {
    /// Active: the token, valid until this many ms since the epoch.
    Active(VerifiedToken, u64),
    /// Inactive or refused: the error, cached until this many ms since the epoch.
    Refused(TokenError, u64),
}

/// Looks an answer up by hash; `None` on a miss, a collision, or an expired entry.
pub(super) fn get(
    host: &dyn Host,
    prefix: &str,
    slots: usize,
    hash: &[u8; 32],
    now_ms: u64,
) -> Option<SharedAnswer> {
    let key = family_slot_key(prefix, "intro", slots, hash)?;
    let (bytes, _) = host.shared_get(&key)?;
    let (stored_hash, rest) = bytes.split_at_checked(32)?;
    if stored_hash != hash.as_slice() {
        return None;
    }
    let (&tag, rest) = rest.split_first()?;
    let (until, payload) = rest.split_at_checked(8)?;
    let until = u64::from_be_bytes(until.try_into().ok()?);
    if now_ms >= until {
        return None;
    }
    match tag {
        TAG_ACTIVE => {
            let token = VerifiedToken::from_cache_bytes(payload)?;
            (token.expires_at() > now_ms / 1000).then_some(SharedAnswer::Active(token, until))
        }
        TAG_INACTIVE => {
            let code = std::str::from_utf8(payload).ok()?;
            Some(SharedAnswer::Refused(error_from_code(code), until))
        }
        _ => None,
    }
}

/// Stores an active answer valid until `until_ms`.
pub(super) fn put_active(
    host: &dyn Host,
    prefix: &str,
    slots: usize,
    hash: &[u8; 32],
    token: &VerifiedToken,
    until_ms: u64,
) {
    put(
        host,
        prefix,
        slots,
        hash,
        TAG_ACTIVE,
        until_ms,
        &token.to_cache_bytes(),
    );
}

/// Stores a refusal cached until `until_ms`.
pub(super) fn put_refused(
    host: &dyn Host,
    prefix: &str,
    slots: usize,
    hash: &[u8; 32],
    err: &TokenError,
    until_ms: u64,
) {
    put(
        host,
        prefix,
        slots,
        hash,
        TAG_INACTIVE,
        until_ms,
        err.code().as_bytes(),
    );
}

fn put(
    host: &dyn Host,
    prefix: &str,
    slots: usize,
    hash: &[u8; 32],
    tag: u8,
    until_ms: u64,
    payload: &[u8],
) {
    let Some(key) = family_slot_key(prefix, "intro", slots, hash) else {
        return;
    };
    if payload.len() > MAX_ENTRY_BYTES {
        return;
    }
    let mut value = Vec::with_capacity(41 + payload.len());
    value.extend_from_slice(hash);
    value.push(tag);
    value.extend_from_slice(&until_ms.to_be_bytes());
    value.extend_from_slice(payload);
    host.shared_set(&key, &value, None);
}

/// The refusal named by a stored code; unknown codes read as `Inactive` (still a refusal).
fn error_from_code(code: &str) -> TokenError {
    match code {
        "expired" => TokenError::Expired,
        "wrong_issuer" => TokenError::WrongIssuer,
        "wrong_audience" => TokenError::WrongAudience,
        "bad_cnf" => TokenError::BadConfirmation,
        "malformed" => TokenError::Malformed(crate::token::MalformedReason::ClaimType),
        _ => TokenError::Inactive,
    }
}

#[cfg(test)]
mod tests;
