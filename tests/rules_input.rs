//! The token's part of the rules' input (issue 13, item 6): built once per verified token, the
//! same value is what the rules read for every later request with that token (the per-worker
//! token cache keeps the token, and the value with it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod harness;

use fhirgate::config::{Config, KeySource};
use fhirgate::decision::{decide, RequestInfo};
use fhirgate::token::{token_hash, verify_jwt, TokenCache};
use harness::tokens::{self, Spec, AUDIENCE, ISSUER};
use serde_json::{json, Value};
use std::rc::Rc;

fn config() -> Config {
    let json = json!({
        "fhir": {"basePath": "/fhir"},
        "providers": [{"name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
            "jwks": {"inline": serde_json::from_str::<Value>(&tokens::jwks()).unwrap()}}],
        "rules": [{"name": "not-blocked", "expression": "token.clientId != 'blocked' && token.claims.sub == 'user-1'"}]
    });
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

fn map_of(
    v: &cel_interpreter::Value,
) -> &std::sync::Arc<std::collections::HashMap<cel_interpreter::objects::Key, cel_interpreter::Value>>
{
    match v {
        cel_interpreter::Value::Map(m) => &m.map,
        other => panic!("not a map: {other:?}"),
    }
}

#[test]
fn the_token_input_is_built_once_and_reused_on_cache_hits() {
    let cfg = config();
    let now = 1_790_000_000;
    let bearer = tokens::token(&Spec::new().scope("user/*.rs"), now);
    let provider = &cfg.providers[0];
    let Some(KeySource::Inline(keys)) = &provider.keys else {
        panic!("inline keys")
    };
    let verified = verify_jwt(&bearer, &provider.policy, keys, &cfg.claim_names, now).unwrap();
    let mut cache = TokenCache::new(8);
    let hash = token_hash(&bearer);
    cache.insert(hash, Rc::new(verified), u64::MAX, now);
    let req = RequestInfo {
        method: "GET".into(),
        path: "/fhir/Patient/123".into(),
        source_address: "192.0.2.1:4000".into(),
        ..Default::default()
    };
    let mut seen = Vec::new();
    for i in 0..3 {
        let token = cache.get(&hash, now + i).unwrap();
        let decision = decide(&cfg, &token, &req, None);
        assert!(decision.denial.is_none(), "{:?}", decision.denial);
        let input = decision.input.expect("rules ran");
        seen.push(input.token_cel.expect("the token's CEL value"));
    }
    let first = map_of(&seen[0]);
    for later in &seen[1..] {
        assert!(
            std::sync::Arc::ptr_eq(first, map_of(later)),
            "rebuilt for a cached token"
        );
    }
}
