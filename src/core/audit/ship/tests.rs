#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn limits() -> Collector {
    Collector {
        cluster: "audit".into(),
        authority: "collector".into(),
        path: "/ingest".into(),
        batch_size: 3,
        flush_interval_ms: 1000,
        max_queue: 5,
        max_queue_bytes: 64 << 10,
        timeout_ms: 2000,
        max_in_flight: 2,
    }
}

fn rec(i: usize) -> String {
    format!("{{\"n\":{i}}}")
}

#[test]
fn a_full_batch_goes_at_once_a_partial_one_after_the_flush_interval() {
    let mut q = ShipQueue::new(&limits());
    q.push(rec(1), 0);
    q.push(rec(2), 0);
    assert_eq!(q.next_batch(10), None, "neither full nor old enough");
    q.push(rec(3), 5);
    let b = q.next_batch(10).unwrap();
    assert_eq!(b.records, 3);
    assert_eq!(b.body, b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    assert_eq!(q.depth(), 0);
    assert_eq!(q.bytes(), 0);
    q.push(rec(4), 100);
    assert_eq!(q.next_batch(1099), None);
    let b = q.next_batch(1100).unwrap();
    assert_eq!(b.records, 1);
}

#[test]
fn the_queue_drops_the_newest_record_at_its_bounds() {
    let mut q = ShipQueue::new(&limits());
    for i in 0..5 {
        assert_eq!(q.push(rec(i), 0), Push::Queued);
    }
    assert_eq!(q.push(rec(5), 0), Push::Dropped);
    assert_eq!(q.depth(), 5);
    let b = q.next_batch(0).unwrap();
    assert!(
        b.body.starts_with(b"{\"n\":0}\n"),
        "the oldest records are kept"
    );

    let mut small = limits();
    small.max_queue_bytes = 20;
    let mut q = ShipQueue::new(&small);
    assert_eq!(q.push("x".repeat(15), 0), Push::Queued);
    assert_eq!(q.push("y".repeat(15), 0), Push::Dropped, "byte bound");
    assert_eq!(q.bytes(), 16);
}

#[test]
fn batches_in_flight_are_bounded_answered_and_expired() {
    let mut q = ShipQueue::new(&limits());
    for i in 0..5 {
        q.push(rec(i), 0);
    }
    q.push(rec(9), 0);
    let a = q.next_batch(0).unwrap();
    q.dispatched(7, &a, 0);
    let b = q.next_batch(2000).unwrap();
    assert_eq!(b.records, 2);
    q.dispatched(8, &b, 2000);
    assert_eq!(q.in_flight(), 2);
    q.push(rec(10), 2000);
    assert_eq!(q.next_batch(10_000), None, "no slot free");
    assert!(q.owns(7));
    assert_eq!(q.answered(7), Some(3));
    assert_eq!(q.answered(7), None);
    assert_eq!(q.expire(4000, 5000), vec![]);
    assert_eq!(q.expire(9001, 5000), vec![(8, 2)]);
    assert_eq!(q.in_flight(), 0);
    assert_eq!(q.next_batch(10_000).unwrap().records, 1);
}

#[test]
fn a_batch_never_passes_the_byte_cap() {
    let mut l = limits();
    l.batch_size = 10;
    l.max_queue = 10;
    l.max_queue_bytes = 4 << 20;
    let mut q = ShipQueue::new(&l);
    let big = "z".repeat(MAX_BATCH_BYTES / 2);
    q.push(big.clone(), 0);
    q.push(big.clone(), 0);
    q.push(big, 0);
    let b = q.next_batch(5000).unwrap();
    assert_eq!(b.records, 1);
    assert!(b.body.len() <= MAX_BATCH_BYTES);
    assert_eq!(q.depth(), 2);
    assert_eq!(q.push("w".repeat(MAX_BATCH_BYTES), 0), Push::Dropped);
}
