//! The shared replay cache: replays refused on every worker, entries forgotten only when they
//! can no longer pass, memory bounded by the slots whatever the load, fail closed when full,
//! contended or refused.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use sha2::{Digest, Sha256};

use super::*;
use crate::engine::test_host::TestHost;

const NOW: u64 = 1_700_000_000_000;

fn key(n: u64) -> [u8; 32] {
    Sha256::digest(n.to_be_bytes()).into()
}

/// Replay keys that all fall into slot 0 of `slots`.
fn keys_in_slot_zero(slots: usize, count: usize) -> Vec<[u8; 32]> {
    let target = slot_key(slots, &key(0));
    (0..)
        .map(key)
        .filter(|k| slot_key(slots, k) == target)
        .take(count)
        .collect()
}

#[test]
fn a_proof_is_fresh_once_then_a_replay_until_it_expires() {
    let host = TestHost::default();
    let until = NOW + 61_000;
    assert_eq!(
        check_and_record(&host, 64, &key(1), until, NOW),
        ReplayOutcome::Fresh
    );
    assert_eq!(
        check_and_record(&host, 64, &key(1), until, NOW + 1),
        ReplayOutcome::Replay
    );
    assert_eq!(
        check_and_record(&host, 64, &key(1), until, until - 1),
        ReplayOutcome::Replay,
        "remembered to the last millisecond it could pass"
    );
    assert_eq!(
        check_and_record(&host, 64, &key(2), until, NOW),
        ReplayOutcome::Fresh
    );
    // After its expiry the entry is dropped (the proof's iat check refuses it by then).
    assert_eq!(
        check_and_record(&host, 64, &key(1), until + 60_000, until),
        ReplayOutcome::Fresh
    );
}

#[test]
fn two_workers_share_the_cache() {
    // Both "workers" see the same shared data; the second one sees the first one's entry.
    let host = TestHost::default();
    let (worker_a, worker_b) = (&host as &dyn Host, &host as &dyn Host);
    assert_eq!(
        check_and_record(worker_a, 8, &key(7), NOW + 60_000, NOW),
        ReplayOutcome::Fresh
    );
    assert_eq!(
        check_and_record(worker_b, 8, &key(7), NOW + 60_000, NOW),
        ReplayOutcome::Replay
    );
}

#[test]
fn a_full_slot_refuses_instead_of_evicting_a_live_entry() {
    let host = TestHost::default();
    let keys = keys_in_slot_zero(16, WAYS + 1);
    for k in &keys[..WAYS] {
        assert_eq!(
            check_and_record(&host, 16, k, NOW + 60_000, NOW),
            ReplayOutcome::Fresh
        );
    }
    assert_eq!(
        check_and_record(&host, 16, &keys[WAYS], NOW + 60_000, NOW),
        ReplayOutcome::Full
    );
    // Every one of the 32 is still remembered.
    for k in &keys[..WAYS] {
        assert_eq!(
            check_and_record(&host, 16, k, NOW + 60_000, NOW),
            ReplayOutcome::Replay
        );
    }
    // Once they expire, room again.
    assert_eq!(
        check_and_record(&host, 16, &keys[WAYS], NOW + 200_000, NOW + 60_000),
        ReplayOutcome::Fresh
    );
}

#[test]
fn memory_stays_bounded_by_slots_whatever_the_load() {
    let host = TestHost::default();
    let slots = 64;
    let mut outcomes = [0usize; 4];
    // 100,000 distinct proofs within one minute: far more than 64 × 32 can hold.
    for n in 0..100_000u64 {
        let now = NOW + n / 2;
        let o = check_and_record(&host, slots, &key(n), now + 60_000, now);
        outcomes[o as usize] += 1;
    }
    let (bytes, count) = host.shared_usage("fhirgate.dpop.");
    assert!(count <= slots, "{count} keys");
    assert!(bytes <= slots * SLOT_BYTES, "{bytes} bytes");
    assert_eq!(SLOT_BYTES, 513);
    assert_eq!(
        outcomes[ReplayOutcome::Replay as usize],
        0,
        "no false replay"
    );
    assert!(
        outcomes[ReplayOutcome::Full as usize] > 0,
        "the overflow was refused"
    );
    assert_eq!(
        outcomes[ReplayOutcome::Fresh as usize] + outcomes[ReplayOutcome::Full as usize],
        100_000
    );
}

#[test]
fn a_lost_race_is_retried_and_endless_contention_fails_closed() {
    let host = TestHost::default();
    let k = keys_in_slot_zero(4, 4);
    assert_eq!(
        check_and_record(&host, 4, &k[0], NOW + 60_000, NOW),
        ReplayOutcome::Fresh
    );
    // Another worker wins the next two writes to the slot: the third attempt succeeds.
    host.steal_writes.set(2);
    assert_eq!(
        check_and_record(&host, 4, &k[1], NOW + 60_000, NOW),
        ReplayOutcome::Fresh
    );
    assert_eq!(
        check_and_record(&host, 4, &k[1], NOW + 60_000, NOW),
        ReplayOutcome::Replay
    );
    host.steal_writes.set(u32::try_from(MAX_ATTEMPTS).unwrap());
    assert_eq!(
        check_and_record(&host, 4, &k[2], NOW + 60_000, NOW),
        ReplayOutcome::Busy
    );
    host.steal_writes.set(0);
    host.refuse_writes.set(true);
    assert_eq!(
        check_and_record(&host, 4, &k[3], NOW + 60_000, NOW),
        ReplayOutcome::Busy
    );
    host.refuse_writes.set(false);
    // Neither refused proof was remembered: a retry with it would be checked again.
    assert_eq!(
        check_and_record(&host, 4, &k[2], NOW + 60_000, NOW),
        ReplayOutcome::Fresh
    );
}

#[test]
fn creating_a_slot_cannot_overwrite_one_a_concurrent_worker_created() {
    let host = TestHost::default();
    let k = slot_key(4, &key(1));
    // Worker A found the slot absent, then worker B created it with its proof.
    assert!(host.shared_set(
        &k,
        &encode(&[Entry {
            fingerprint: fingerprint(&key(1)),
            expires_s: u32::MAX
        }]),
        None
    ));
    // A's create-write (CAS version u32::MAX on a key that now exists) fails...
    assert!(!host.shared_set(&k, &encode(&[]), Some(CREATE_CAS)));
    // ...so A re-reads and sees B's entry: the same proof is a replay.
    assert_eq!(
        check_and_record(&host, 4, &key(1), NOW + 60_000, NOW),
        ReplayOutcome::Replay
    );
}

#[test]
fn a_slot_in_another_format_reads_as_empty_and_is_rewritten() {
    let host = TestHost::default();
    let k = slot_key(4, &key(1));
    assert!(host.shared_set(&k, b"garbage", None));
    assert_eq!(
        check_and_record(&host, 4, &key(1), NOW + 60_000, NOW),
        ReplayOutcome::Fresh
    );
    assert_eq!(
        check_and_record(&host, 4, &key(1), NOW + 60_000, NOW),
        ReplayOutcome::Replay
    );
    let (bytes, _) = host.shared_usage(&k);
    assert_eq!(bytes, 1 + 16);
}

#[test]
fn keys_name_the_slot_count_and_stay_in_range() {
    for n in 0..1000 {
        let k = slot_key(10, &key(n));
        let index: usize = k
            .strip_prefix("fhirgate.dpop.10.")
            .unwrap()
            .parse()
            .unwrap();
        assert!(index < 10);
    }
    assert!(slot_key(0, &key(1)).starts_with("fhirgate.dpop.1."));
}
