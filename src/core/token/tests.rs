//! Shared fixtures for the token tests (keys generated once), plus alg and strict JSON tests.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jwt_simple::prelude::{
    Audiences, ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ECDSAP384KeyPairLike,
    ECDSAP384PublicKeyLike, ES256KeyPair, ES384KeyPair, Ed25519KeyPair, EdDSAKeyPairLike,
    HeaderOptions, JWTClaims, RS256KeyPair, RSAKeyPairLike,
};
use serde_json::{json, Map, Value};
use sha2::{Sha256, Sha384, Sha512};

use super::strict_json::{self, StrictJsonError};
use super::*;

pub(super) const NOW: u64 = 1_700_000_000;
pub(super) const ISS: &str = "https://idp.example.org";
pub(super) const AUD: &str = "https://fhir.example.org/fhir";
/// A 32-byte HMAC secret for the HS256 tests.
pub(super) const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// The provider's RSA key (generated once: RSA key generation is slow in debug builds).
pub(super) fn rsa() -> &'static RS256KeyPair {
    static KEY: OnceLock<RS256KeyPair> = OnceLock::new();
    KEY.get_or_init(|| RS256KeyPair::generate(2048).unwrap())
}

/// An attacker's RSA key.
pub(super) fn rsa_attacker() -> &'static RS256KeyPair {
    static KEY: OnceLock<RS256KeyPair> = OnceLock::new();
    KEY.get_or_init(|| RS256KeyPair::generate(2048).unwrap())
}

pub(super) fn ec256() -> &'static ES256KeyPair {
    static KEY: OnceLock<ES256KeyPair> = OnceLock::new();
    KEY.get_or_init(ES256KeyPair::generate)
}

pub(super) fn ec384() -> &'static ES384KeyPair {
    static KEY: OnceLock<ES384KeyPair> = OnceLock::new();
    KEY.get_or_init(ES384KeyPair::generate)
}

pub(super) fn ed() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    KEY.get_or_init(Ed25519KeyPair::generate)
}

pub(super) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// JWK of an RSA key pair's public part.
pub(super) fn rsa_jwk(kp: &RS256KeyPair, kid: Option<&str>, alg: Option<&str>) -> Value {
    let c = kp.public_key().to_components();
    let mut jwk = json!({"kty": "RSA", "n": b64(c.n), "e": b64(c.e)});
    add_kid_alg(&mut jwk, kid, alg);
    jwk
}

pub(super) fn ec256_jwk(kid: Option<&str>, alg: Option<&str>) -> Value {
    let sec1 = ec256().public_key().public_key().to_bytes_uncompressed();
    ec_jwk("P-256", &sec1, kid, alg)
}

pub(super) fn ec384_jwk(kid: Option<&str>, alg: Option<&str>) -> Value {
    let sec1 = ec384().public_key().public_key().to_bytes_uncompressed();
    ec_jwk("P-384", &sec1, kid, alg)
}

fn ec_jwk(crv: &str, sec1: &[u8], kid: Option<&str>, alg: Option<&str>) -> Value {
    assert_eq!(sec1[0], 4);
    let len = (sec1.len() - 1) / 2;
    let mut jwk = json!({
        "kty": "EC", "crv": crv,
        "x": b64(&sec1[1..1 + len]), "y": b64(&sec1[1 + len..]),
    });
    add_kid_alg(&mut jwk, kid, alg);
    jwk
}

pub(super) fn ed_jwk(kid: Option<&str>, alg: Option<&str>) -> Value {
    let mut jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(ed().public_key().to_bytes())});
    add_kid_alg(&mut jwk, kid, alg);
    jwk
}

fn add_kid_alg(jwk: &mut Value, kid: Option<&str>, alg: Option<&str>) {
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    if let Some(alg) = alg {
        jwk["alg"] = json!(alg);
    }
}

/// A key set from JWKs, with every asymmetric algorithm allowed; asserts no warnings.
pub(super) fn keyset(keys: Vec<Value>) -> KeySet {
    let doc = json!({ "keys": keys }).to_string();
    let (set, warnings) = KeySet::from_jwks(doc.as_bytes(), Algorithm::ASYMMETRIC).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    set
}

/// The default test policy: RFC 9068 `at+jwt` only, 30 s skew, 1 day lifetime.
pub(super) fn policy() -> JwtPolicy {
    JwtPolicy {
        issuer: ISS.to_owned(),
        audiences: vec![AUD.to_owned()],
        algorithms: Algorithm::ASYMMETRIC.to_vec(),
        accepted_types: vec!["at+jwt".to_owned()],
        clock_skew_secs: 30,
        max_lifetime_secs: Some(86_400),
    }
}

/// Valid claims at [`NOW`].
pub(super) fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "user-1", "client_id": "app",
        "iat": NOW - 10, "exp": NOW + 300,
        "scope": "patient/Observation.rs openid", "patient": "123",
        "fhirUser": "Practitioner/9",
    })
}

/// jwt-simple claims serializing to exactly `payload`.
pub(super) fn jwt_claims(payload: Value) -> JWTClaims<Map<String, Value>> {
    let Value::Object(custom) = payload else {
        panic!("payload must be an object")
    };
    JWTClaims {
        issued_at: None,
        expires_at: None,
        invalid_before: None,
        issuer: None,
        subject: None,
        audiences: None::<Audiences>,
        jwt_id: None,
        nonce: None,
        custom,
    }
}

/// Header options with `typ`.
pub(super) fn typ(t: &str) -> HeaderOptions {
    HeaderOptions {
        signature_type: Some(t.to_owned()),
        content_type: None,
    }
}

/// RS256 token signed by the provider's key with kid `rsa-1`.
pub(super) fn rs256_token(payload: Value) -> String {
    rsa()
        .clone()
        .with_key_id("rsa-1")
        .sign_with_options(jwt_claims(payload), &typ("at+jwt"))
        .unwrap()
}

pub(super) fn es256_token(kid: &str, payload: Value) -> String {
    ES256KeyPair::from_bytes(&ec256().to_bytes())
        .unwrap()
        .with_key_id(kid)
        .sign_with_options(jwt_claims(payload), &typ("at+jwt"))
        .unwrap()
}

pub(super) fn es384_token(kid: &str, payload: Value) -> String {
    ES384KeyPair::from_bytes(&ec384().to_bytes())
        .unwrap()
        .with_key_id(kid)
        .sign_with_options(jwt_claims(payload), &typ("at+jwt"))
        .unwrap()
}

pub(super) fn ed_token(kid: &str, payload: Value) -> String {
    ed().clone()
        .with_key_id(kid)
        .sign_with_options(jwt_claims(payload), &typ("at+jwt"))
        .unwrap()
}

/// How a hand-crafted token is signed.
pub(super) enum Sig<'a> {
    /// Ed25519 with the provider's OKP key.
    Ed,
    /// Ed25519 with another key.
    EdWith(&'a Ed25519KeyPair),
    /// HMAC with the given secret and algorithm name (HS256/384/512).
    Hmac(&'a [u8], &'a str),
    /// Empty signature segment.
    Empty,
}

/// Builds a compact JWS from raw header and payload JSON text (so duplicates survive).
pub(super) fn craft(header: &str, payload: &str, sig: Sig<'_>) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    format!("{input}.{}", sign_input(&input, sig))
}

/// Signs an arbitrary signing input (`header.payload` segments as given).
pub(super) fn sign_input(input: &str, sig: Sig<'_>) -> String {
    match sig {
        Sig::Ed => sign_input(input, Sig::EdWith(ed())),
        Sig::EdWith(kp) => b64(kp.key_pair().as_ref().sk.sign(input.as_bytes(), None)),
        Sig::Hmac(secret, "HS256") => b64(hmac_tag::<Hmac<Sha256>>(secret, input)),
        Sig::Hmac(secret, "HS384") => b64(hmac_tag::<Hmac<Sha384>>(secret, input)),
        Sig::Hmac(secret, _) => b64(hmac_tag::<Hmac<Sha512>>(secret, input)),
        Sig::Empty => String::new(),
    }
}

fn hmac_tag<M: Mac + hmac::digest::KeyInit>(secret: &[u8], input: &str) -> Vec<u8> {
    let mut mac = <M as Mac>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A key set with the provider's Ed25519 key as `ed-1`.
pub(super) fn ed_keys() -> KeySet {
    keyset(vec![ed_jwk(Some("ed-1"), None)])
}

/// Header JSON text for an EdDSA token with kid `ed-1` plus `extra` members (`,"k":v`).
pub(super) fn ed_header(extra: &str) -> String {
    format!(r#"{{"alg":"EdDSA","kid":"ed-1","typ":"at+jwt"{extra}}}"#)
}

/// Verifies with the default policy and names at [`NOW`].
pub(super) fn check(token: &str, keys: &KeySet) -> Result<VerifiedToken, TokenError> {
    verify_jwt(token, &policy(), keys, &ClaimNames::default(), NOW)
}

#[test]
fn algorithm_names_round_trip() {
    for alg in Algorithm::ALL {
        assert_eq!(Algorithm::from_name(alg.name()), Some(*alg));
    }
    assert_eq!(Algorithm::from_name("none"), None);
    assert_eq!(Algorithm::from_name("rs256"), None);
    assert_eq!(Algorithm::from_name("ES512"), None);
    assert!(Algorithm::ASYMMETRIC.iter().all(|a| a.is_asymmetric()));
    assert!(!Algorithm::ASYMMETRIC.contains(&Algorithm::HS256));
    assert!(!Algorithm::HS512.is_asymmetric());
    assert_eq!(Algorithm::ASYMMETRIC.len(), 9);
}

#[test]
fn strict_json_refuses_duplicates_at_any_depth() {
    assert_eq!(
        strict_json::parse(br#"{"a":1,"a":2}"#),
        Err(StrictJsonError::Duplicate)
    );
    assert_eq!(
        strict_json::parse(br#"{"x":{"b":[{"c":1,"c":1}]}}"#),
        Err(StrictJsonError::Duplicate)
    );
    assert_eq!(
        strict_json::parse(br#"{"a":1} x"#),
        Err(StrictJsonError::Syntax)
    );
    assert_eq!(
        strict_json::parse(b"{\"a\":1,}"),
        Err(StrictJsonError::Syntax)
    );
    assert_eq!(
        strict_json::parse(br#"{"a":[1,2.5,"s",null,true],"b":{"c":-1}}"#).unwrap(),
        json!({"a":[1,2.5,"s",null,true],"b":{"c":-1}})
    );
    assert_eq!(strict_json::parse_object(b"[1]"), Ok(None));
}

#[test]
fn strict_json_handles_deep_nesting_without_panic() {
    let deep = "[".repeat(10_000);
    assert_eq!(
        strict_json::parse(deep.as_bytes()),
        Err(StrictJsonError::Syntax)
    );
}
