//! Unit tests of token handling, grouped by subject; this file holds the shared fixtures (keys
//! generated once, JWK and token builders).

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jwt_simple::prelude::{
    Audiences, ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ECDSAP384KeyPairLike,
    ECDSAP384PublicKeyLike, ES256KeyPair, ES384KeyPair, Ed25519KeyPair, EdDSAKeyPairLike,
    EdDSAPublicKeyLike, HeaderOptions, JWTClaims, NoCustomClaims, RS256KeyPair, RSAKeyPairLike,
    VerificationOptions,
};
use serde_json::{json, Map, Value};
use sha2::{Sha256, Sha384, Sha512};
use std::sync::OnceLock;

mod algorithms;
mod binding;
mod cache;
mod claims;
mod extract;
mod format;
mod host_signatures;
mod introspection;
mod keys;
mod signatures;
mod verified_token;

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

pub(super) fn ec_jwk(crv: &str, sec1: &[u8], kid: Option<&str>, alg: Option<&str>) -> Value {
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

pub(super) fn add_kid_alg(jwk: &mut Value, kid: Option<&str>, alg: Option<&str>) {
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

pub(super) fn hmac_tag<M: Mac + hmac::digest::KeyInit>(secret: &[u8], input: &str) -> Vec<u8> {
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

pub(super) fn rsa_keys() -> KeySet {
    keyset(vec![rsa_jwk(rsa(), Some("rsa-1"), Some("RS256"))])
}

pub(super) fn payload() -> String {
    claims().to_string()
}

pub(super) fn malformed(reason: MalformedReason) -> TokenError {
    TokenError::Malformed(reason)
}

/// A 64-byte secret: long enough for HS512.
pub(super) const LONG_SECRET: &[u8] =
    b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

pub(super) fn ec_keys() -> KeySet {
    keyset(vec![
        ec256_jwk(Some("ec-256"), None),
        ec384_jwk(Some("ec-384"), None),
    ])
}

pub(super) fn hmac_setup() -> (KeySet, JwtPolicy) {
    let algs = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
    let keys = KeySet::empty()
        .with_hmac_secret(LONG_SECRET, &algs)
        .unwrap();
    let mut p = policy();
    p.algorithms.extend(algs);
    (keys, p)
}

pub(super) fn verify_with(
    token: &str,
    keys: &KeySet,
    p: &JwtPolicy,
) -> Result<VerifiedToken, TokenError> {
    verify_jwt(token, p, keys, &ClaimNames::default(), NOW)
}

/// Replaces the signature segment by `sig` (raw bytes).
pub(super) fn with_signature(token: &str, sig: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", b64(sig))
}

pub(super) fn signature_of(token: &str) -> Vec<u8> {
    base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        token.rsplit_once('.').unwrap().1,
    )
    .unwrap()
}

/// Flips one bit of the signature (`at` modulo its length).
pub(super) fn tamper_signature(token: &str, at: usize) -> String {
    let mut sig = signature_of(token);
    let i = at % sig.len();
    sig[i] ^= 0x04;
    with_signature(token, &sig)
}

/// Replaces the payload, keeping header and signature.
pub(super) fn swap_payload(token: &str, payload: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(payload.to_string()), parts[2])
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of a raw `r || s` signature.
pub(super) fn der(raw: &[u8]) -> Vec<u8> {
    pub(super) fn int(bytes: &[u8]) -> Vec<u8> {
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let mut v = bytes[start..].to_vec();
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    if body.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend(body);
    out
}

/// Whether jwt-simple itself accepts `token` with the provider's key for `alg` at [`NOW`].
pub(super) fn jwt_simple_accepts(token: &str, alg: Algorithm) -> bool {
    let options = Some(VerificationOptions {
        artificial_time: Some(jwt_simple::prelude::UnixTimeStamp::from_secs(NOW)),
        ..VerificationOptions::default()
    });
    match alg {
        Algorithm::ES256 => ec256()
            .public_key()
            .verify_token::<NoCustomClaims>(token, options)
            .is_ok(),
        Algorithm::ES384 => ec384()
            .public_key()
            .verify_token::<NoCustomClaims>(token, options)
            .is_ok(),
        _ => ed()
            .public_key()
            .verify_token::<NoCustomClaims>(token, options)
            .is_ok(),
    }
}

pub(super) fn assert_ec_refused(crv: &str, x: &[u8], y: &[u8], why: &str) {
    let jwk = json!({"kty": "EC", "crv": crv, "kid": "bad", "x": b64(x), "y": b64(y)});
    let doc = json!({ "keys": [jwk] }).to_string();
    let (set, warnings) = KeySet::from_jwks(doc.as_bytes(), Algorithm::ASYMMETRIC).unwrap();
    assert!(set.is_empty(), "{why}");
    assert_eq!(warnings.len(), 1, "{why}");
    assert!(
        warnings[0].contains("not on the curve"),
        "{why}: {warnings:?}"
    );
}

pub(super) fn rsa_keys_unbound() -> KeySet {
    keyset(vec![rsa_jwk(rsa(), Some("rsa-1"), None)])
}

pub(super) fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

pub(super) fn ed_check(payload: Value) -> Result<VerifiedToken, TokenError> {
    check(&ed_token("ed-1", payload), &ed_keys())
}

pub(super) fn typ_result(
    header_typ: Option<&str>,
    accepted: &[&str],
) -> Result<VerifiedToken, TokenError> {
    let extra = header_typ
        .map(|t| format!(r#","typ":"{t}""#))
        .unwrap_or_default();
    let header = format!(r#"{{"alg":"EdDSA","kid":"ed-1"{extra}}}"#);
    let token = craft(&header, &claims().to_string(), Sig::Ed);
    let mut p = policy();
    p.accepted_types = accepted.iter().map(|s| s.to_string()).collect();
    verify_jwt(&token, &p, &ed_keys(), &ClaimNames::default(), NOW)
}

pub(super) fn load(keys: Vec<Value>, allowed: &[Algorithm]) -> (KeySet, Vec<String>) {
    let doc = json!({ "keys": keys }).to_string();
    KeySet::from_jwks(doc.as_bytes(), allowed).unwrap()
}

pub(super) fn load_one(jwk: Value) -> (KeySet, Vec<String>) {
    load(vec![jwk], Algorithm::ASYMMETRIC)
}

pub(super) fn assert_skipped(jwk: Value, why: &str) {
    let (set, warnings) = load_one(jwk);
    assert!(set.is_empty(), "{why}: key should be skipped");
    assert_eq!(warnings.len(), 1, "{why}: {warnings:?}");
    assert!(warnings[0].contains("skipped"), "{why}: {warnings:?}");
}

/// A compact JWS of exactly `len` bytes, from `make(pad, extra)`: `pad` lengthens the payload and
/// `extra` (0 to 8) the header. Base64url skips one length in four, so the payload's padding alone
/// cannot always land on `len`: the longest padding that fits is found first, then both are tried
/// just below it.
pub(crate) fn of_exact_length(len: usize, make: impl Fn(usize, usize) -> String) -> String {
    let (mut lo, mut hi) = (0, len);
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if make(mid, 0).len() <= len {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0..=8)
        .flat_map(|extra| (lo.saturating_sub(8)..=lo).map(move |pad| (pad, extra)))
        .map(|(pad, extra)| make(pad, extra))
        .find(|t| t.len() == len)
        .unwrap_or_else(|| panic!("no token of exactly {len} bytes"))
}
