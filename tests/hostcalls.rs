//! The hostcall diet: what a steady-state request (a cached token, `GET Patient/123` with the
//! default consent check of its response, audit on, access log off) costs in calls across the
//! host boundary. Counted at the `Host` trait; the glue adds no `set_effective_context` inside a
//! stream's own callbacks. Before the diet the same request made 21 trait calls (and about 14
//! more context switches in the glue).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod harness;
use harness::tokens::{self, Spec, AUDIENCE, ISSUER};
use harness::{Harness, Req};
use serde_json::{json, Value};

fn config() -> String {
    json!({
        "fhir": {"basePath": "/fhir"},
        "providers": [{"name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
            "jwks": {"inline": serde_json::from_str::<Value>(&tokens::jwks()).unwrap()}}],
        "forward": {"headers": {"x-fhirgate-subject": "subject"}}
    })
    .to_string()
}

#[test]
fn hostcalls_per_cached_request() {
    let mut h = Harness::new(&config(), 1);
    let t = tokens::token(&Spec::new().scope("patient/*.rs").patient("123"), h.now_s());
    let patient = json!({"resourceType": "Patient", "id": "123"}).to_string();
    for _ in 0..3 {
        let id = h.send(0, Req::get("/fhir/Patient/123").bearer(&t));
        let (status, _, _) = h.respond(0, id, 200, &patient);
        assert_eq!(status, 200);
        h.done(0, id);
    }
    h.sim.hostcalls.borrow_mut().clear();
    let n = 100;
    for _ in 0..n {
        let id = h.send(0, Req::get("/fhir/Patient/123").bearer(&t));
        h.respond(0, id, 200, &patient);
        h.done(0, id);
    }
    h.flush_metrics();
    let calls = h.sim.hostcalls.borrow().clone();
    let total: u64 = calls.values().sum();
    println!(
        "HOSTCALLS per request: {:.1} {:?}",
        total as f64 / n as f64,
        calls
            .iter()
            .map(|(k, v)| (k, *v as f64 / n as f64))
            .collect::<Vec<_>>()
    );
}
