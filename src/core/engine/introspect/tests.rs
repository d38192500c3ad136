//! Unit tests of the introspection callout request.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use crate::config::IntrospectionMode;

fn intro(auth: ClientAuth) -> Introspection {
    Introspection {
        cluster: "idp".into(),
        authority: "idp.example.org".into(),
        path: "/introspect".into(),
        client_id: "gate way".into(),
        client_secret: "s3cr&t".into(),
        mode: IntrospectionMode::Opaque,
        auth,
        cache_ttl_ms: 60_000,
        negative_cache_ttl_ms: 10_000,
        timeout_ms: 1_000,
    }
}

#[test]
fn basic_auth_goes_in_a_header_not_the_body() {
    let (headers, body) = callout_request(&intro(ClientAuth::Basic), "tok+en");
    assert_eq!(body, "token=tok%2Ben&token_type_hint=access_token");
    let auth = headers.iter().find(|(n, _)| *n == "authorization");
    assert_eq!(
        auth.map(|(_, v)| v.as_str()),
        Some(basic_auth("gate way", "s3cr&t").as_str())
    );
    assert!(headers.contains(&(":method", "POST".to_string())));
    assert!(headers.contains(&(":path", "/introspect".to_string())));
}

#[test]
fn post_auth_goes_in_the_body_not_a_header() {
    let (headers, body) = callout_request(&intro(ClientAuth::Post), "abc");
    assert!(headers.iter().all(|(n, _)| *n != "authorization"));
    assert_eq!(
        body,
        "token=abc&token_type_hint=access_token&client_id=gate+way&client_secret=s3cr%26t"
    );
}
