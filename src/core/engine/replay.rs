//! The DPoP `jti` replay cache, shared by every worker VM of the proxy through shared data.
//!
//! Shared data has no delete and no atomic create, so the cache is a fixed set of `slots` keys
//! (`fhirgate.dpop.<slots>.<n>`); a proof's replay key (SHA-256 over its key thumbprint and
//! `jti`) picks the slot, and the slot's value lists up to [`WAYS`] proofs as (96-bit
//! fingerprint, expiry in unix seconds). A proof is remembered until its `iat + dpopMaxAge`
//! (+1 s): after that its `iat` check fails anyway. Each check reads the slot, drops expired
//! entries, refuses a fingerprint it finds, and writes the slot back with the proof added under
//! the version it read (CAS); a lost race re-reads. So:
//!
//! - memory is bounded by `slots × SLOT_BYTES` whatever the load (plus the proxy's per-key
//!   overhead), never by the number of proofs;
//! - a slot full of live entries refuses the new proof (`Full`, answered 503: the client retries
//!   with a new proof, which lands in another slot) instead of evicting a live entry, which could
//!   let that proof be replayed;
//! - a slot that cannot be updated after [`MAX_ATTEMPTS`] CAS races is `Busy` (503 too).
//!
//! Creating a slot: the proxy ignores a CAS version on a key that does not exist yet, so a first
//! write passes [`CREATE_CAS`]: it creates the key when it is absent, and fails (re-read) when a
//! concurrent first write created it in between, unless that key's version happens to be exactly
//! `u32::MAX` (the proxy's version counter would have to be there at that moment). The key names
//! carry no configuration hash: a configuration reload keeps what was remembered.

use crate::host::Host;

/// Proofs one slot holds at most.
pub const WAYS: usize = 32;
/// Bytes of one entry: a 12-byte fingerprint and a 4-byte expiry (unix seconds, big endian).
const ENTRY_BYTES: usize = 16;
/// Fingerprint bytes kept per proof (from the replay key, after the 8 bytes that pick the slot).
const FINGERPRINT_BYTES: usize = 12;
/// Largest slot value: a version byte and [`WAYS`] entries.
pub const SLOT_BYTES: usize = 1 + WAYS * ENTRY_BYTES;
/// Format version of a slot value.
const VERSION: u8 = 1;
/// CAS rounds before giving up.
pub(super) const MAX_ATTEMPTS: usize = 8;
/// The version passed when writing a slot that did not exist (see the module docs).
pub(super) const CREATE_CAS: u32 = u32::MAX;

/// What the replay cache says about a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// Not seen before; now remembered.
    Fresh,
    /// Seen before, and still remembered: a replay.
    Replay,
    /// Its slot is full of live entries: refused, never evicting one.
    Full,
    /// The slot could not be updated (CAS races, or the proxy refused the write).
    Busy,
}

/// The shared-data key of the slot a replay key falls into.
pub fn slot_key(slots: usize, replay_key: &[u8; 32]) -> String {
    let mut first = [0u8; 8];
    first.copy_from_slice(replay_key.get(..8).unwrap_or(&[0u8; 8]));
    let slots = slots.max(1);
    let index = u64::from_be_bytes(first) % slots as u64;
    format!("fhirgate.dpop.{slots}.{index}")
}

fn fingerprint(replay_key: &[u8; 32]) -> [u8; FINGERPRINT_BYTES] {
    let mut fp = [0u8; FINGERPRINT_BYTES];
    if let Some(bytes) = replay_key.get(8..8 + FINGERPRINT_BYTES) {
        fp.copy_from_slice(bytes);
    }
    fp
}

/// One remembered proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    fingerprint: [u8; FINGERPRINT_BYTES],
    expires_s: u32,
}

/// Reads a slot value; anything not in the current format reads as empty (only fhirgate writes
/// these keys; an entry lost that way can only make a proof look fresh within one version
/// change of the filter).
fn decode(bytes: &[u8]) -> Vec<Entry> {
    let Some((&VERSION, rest)) = bytes.split_first() else {
        return Vec::new();
    };
    rest.chunks_exact(ENTRY_BYTES)
        .take(WAYS)
        .filter_map(|chunk| {
            let (fp, exp) = chunk.split_at_checked(FINGERPRINT_BYTES)?;
            Some(Entry {
                fingerprint: fp.try_into().ok()?,
                expires_s: u32::from_be_bytes(exp.try_into().ok()?),
            })
        })
        .collect()
}

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + entries.len() * ENTRY_BYTES);
    out.push(VERSION);
    for e in entries.iter().take(WAYS) {
        out.extend_from_slice(&e.fingerprint);
        out.extend_from_slice(&e.expires_s.to_be_bytes());
    }
    out
}

/// Checks a proof against the replay cache and remembers it until `remember_until_ms`.
pub fn check_and_record(
    host: &dyn Host,
    slots: usize,
    replay_key: &[u8; 32],
    remember_until_ms: u64,
    now_ms: u64,
) -> ReplayOutcome {
    let key = slot_key(slots, replay_key);
    let entry = Entry {
        fingerprint: fingerprint(replay_key),
        expires_s: u32::try_from(remember_until_ms.div_ceil(1000)).unwrap_or(u32::MAX),
    };
    for _ in 0..MAX_ATTEMPTS {
        let (mut live, cas) = match host.shared_get(&key) {
            None => (Vec::new(), CREATE_CAS),
            Some((bytes, cas)) => {
                let live: Vec<Entry> = decode(&bytes)
                    .into_iter()
                    .filter(|e| u64::from(e.expires_s).saturating_mul(1000) > now_ms)
                    .collect();
                (live, cas)
            }
        };
        if live.iter().any(|e| e.fingerprint == entry.fingerprint) {
            return ReplayOutcome::Replay;
        }
        if live.len() >= WAYS {
            return ReplayOutcome::Full;
        }
        live.push(entry);
        if host.shared_set(&key, &encode(&live), Some(cas)) {
            return ReplayOutcome::Fresh;
        }
    }
    ReplayOutcome::Busy
}

#[cfg(test)]
mod tests;
