//! Per-worker cache of verified tokens, keyed by the SHA-256 of the token.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use super::claims::VerifiedToken;

/// SHA-256 of the token: the cache key (the token itself is never stored).
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

struct Entry {
    token: Rc<VerifiedToken>,
    expires_at: u64,
    seq: u64,
}

/// A bounded map from token hash to verified token.
///
/// Entries are never returned at or after their expiry. When full, an expired entry is
/// evicted first, else the oldest inserted. Every operation is O(log n).
pub struct TokenCache {
    max_entries: usize,
    next_seq: u64,
    entries: BTreeMap<[u8; 32], Entry>,
    /// Insertion order: seq -> key.
    by_age: BTreeMap<u64, [u8; 32]>,
    /// Expiry order: (expires_at, seq).
    by_expiry: BTreeSet<(u64, u64)>,
}

impl TokenCache {
    /// A cache holding at most `max_entries` tokens (0 disables caching).
    pub fn new(max_entries: usize) -> Self {
        TokenCache {
            max_entries,
            next_seq: 0,
            entries: BTreeMap::new(),
            by_age: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// The token cached under `key`, unless it expired at `now` (then it is dropped).
    pub fn get(&mut self, key: &[u8; 32], now: u64) -> Option<Rc<VerifiedToken>> {
        let expires_at = self.entries.get(key)?.expires_at;
        if now >= expires_at {
            self.remove(key);
            return None;
        }
        self.entries.get(key).map(|e| Rc::clone(&e.token))
    }

    /// Caches `token` under `key` until `expires_at`, capped by the token's own expiry.
    /// Nothing is stored when that moment is not after `now`.
    pub fn insert(&mut self, key: [u8; 32], token: Rc<VerifiedToken>, expires_at: u64, now: u64) {
        self.remove(&key);
        let expires_at = expires_at.min(token.expires_at());
        if self.max_entries == 0 || expires_at <= now {
            return;
        }
        while self.entries.len() >= self.max_entries {
            if !self.evict_one(now) {
                break;
            }
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.by_age.insert(seq, key);
        self.by_expiry.insert((expires_at, seq));
        self.entries.insert(
            key,
            Entry {
                token,
                expires_at,
                seq,
            },
        );
    }

    /// Drops the entry under `key`, if any.
    pub fn remove(&mut self, key: &[u8; 32]) {
        if let Some(e) = self.entries.remove(key) {
            self.by_age.remove(&e.seq);
            self.by_expiry.remove(&(e.expires_at, e.seq));
        }
    }

    /// Number of entries (expired ones not yet evicted included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops everything (e.g. after a configuration change).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_age.clear();
        self.by_expiry.clear();
    }

    /// Evicts the earliest-expiring entry if expired, else the oldest. False when empty.
    fn evict_one(&mut self, now: u64) -> bool {
        let victim_seq = match self.by_expiry.first() {
            Some(&(exp, seq)) if exp <= now => seq,
            _ => match self.by_age.first_key_value() {
                Some((&seq, _)) => seq,
                None => return false,
            },
        };
        match self.by_age.get(&victim_seq).copied() {
            Some(key) => {
                self.remove(&key);
                true
            }
            None => false,
        }
    }
}
