//! Test keys, JWKS documents and tokens, signed with jwt-simple at the simulated clock's time.
#![allow(dead_code)]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

pub const ISSUER: &str = "https://idp.example.org";
pub const AUDIENCE: &str = "https://fhir.example.org/fhir";

/// Keys generated once per test binary.
pub struct Keys {
    pub rsa: RS256KeyPair,
    pub rsa2: RS256KeyPair,
    pub ec: ES256KeyPair,
    /// Not in any JWKS: an attacker's key.
    pub attacker: RS256KeyPair,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: RS256KeyPair::generate(2048).unwrap().with_key_id("rsa-1"),
        rsa2: RS256KeyPair::generate(2048).unwrap().with_key_id("rsa-2"),
        ec: ES256KeyPair::generate().with_key_id("ec-1"),
        attacker: RS256KeyPair::generate(2048).unwrap().with_key_id("rsa-1"),
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn rsa_jwk(key: &RS256KeyPair, kid: &str) -> Value {
    let c = key.public_key().to_components();
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&c.n), "e": b64(&c.e)})
}

pub fn ec_jwk(key: &ES256KeyPair, kid: &str) -> Value {
    let raw = key.key_pair().public_key().to_bytes_uncompressed();
    let (x, y) = raw[1..].split_at(32);
    json!({"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256", "x": b64(x), "y": b64(y)})
}

/// The JWKS with rsa-1 and ec-1 (the IdP's current keys).
pub fn jwks() -> String {
    let k = keys();
    json!({"keys": [rsa_jwk(&k.rsa, "rsa-1"), ec_jwk(&k.ec, "ec-1")]}).to_string()
}

/// The JWKS after rotation: rsa-2 added.
pub fn rotated_jwks() -> String {
    let k = keys();
    json!({"keys": [rsa_jwk(&k.rsa2, "rsa-2"), rsa_jwk(&k.rsa, "rsa-1"), ec_jwk(&k.ec, "ec-1")]})
        .to_string()
}

/// What goes into a test token.
#[derive(Clone)]
pub struct Spec {
    pub iss: String,
    pub aud: Value,
    pub sub: String,
    pub iat_offset: i64,
    pub exp_offset: Option<i64>,
    pub nbf_offset: Option<i64>,
    pub typ: String,
    pub claims: Map<String, Value>,
}

impl Spec {
    pub fn new() -> Spec {
        Spec {
            iss: ISSUER.into(),
            aud: json!(AUDIENCE),
            sub: "user-1".into(),
            iat_offset: 0,
            exp_offset: Some(300),
            nbf_offset: None,
            typ: "at+jwt".into(),
            claims: Map::new(),
        }
    }

    pub fn scope(mut self, scope: &str) -> Spec {
        self.claims.insert("scope".into(), json!(scope));
        self
    }

    pub fn claim(mut self, name: &str, value: Value) -> Spec {
        self.claims.insert(name.into(), value);
        self
    }

    pub fn patient(self, id: &str) -> Spec {
        self.claim("patient", json!(id))
    }
}

pub fn claims_at(spec: &Spec, now_s: u64) -> JWTClaims<Map<String, Value>> {
    let at = |off: i64| UnixTimeStamp::from_secs((now_s as i64 + off) as u64);
    let mut custom = spec.claims.clone();
    custom.insert("aud".into(), spec.aud.clone());
    custom.insert("client_id".into(), json!("test-app"));
    JWTClaims {
        issued_at: Some(at(spec.iat_offset)),
        expires_at: spec.exp_offset.map(at),
        invalid_before: spec.nbf_offset.map(at),
        issuer: Some(spec.iss.clone()),
        subject: Some(spec.sub.clone()),
        audiences: None,
        jwt_id: None,
        nonce: None,
        custom,
    }
}

pub fn options(spec: &Spec) -> HeaderOptions {
    HeaderOptions {
        signature_type: Some(spec.typ.clone()),
        ..Default::default()
    }
}

pub fn rs256(key: &RS256KeyPair, spec: &Spec, now_s: u64) -> String {
    key.sign_with_options(claims_at(spec, now_s), &options(spec))
        .unwrap()
}

pub fn es256(key: &ES256KeyPair, spec: &Spec, now_s: u64) -> String {
    key.sign_with_options(claims_at(spec, now_s), &options(spec))
        .unwrap()
}

/// A valid RS256 token from the IdP's current key.
pub fn token(spec: &Spec, now_s: u64) -> String {
    rs256(&keys().rsa, spec, now_s)
}

/// Replaces the header of a signed token (the signature no longer matches).
pub fn with_header(token: &str, header: Value) -> String {
    let mut parts = token.splitn(3, '.');
    let _ = parts.next();
    let payload = parts.next().unwrap();
    let sig = parts.next().unwrap();
    format!("{}.{payload}.{sig}", b64(header.to_string().as_bytes()))
}

/// Flips one bit in the signature.
pub fn tamper_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[10] ^= 1;
    format!("{head}.{}", b64(&bytes))
}

/// Replaces the payload keeping header and signature.
pub fn with_payload(token: &str, payload: Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64(payload.to_string().as_bytes()),
        parts[2]
    )
}

/// An HS256 token whose HMAC key is the RSA public key's DER bytes (alg confusion).
pub fn hs256_with_public_key(spec: &Spec, now_s: u64) -> String {
    let der = keys().rsa.public_key().to_der().unwrap();
    let key = HS256Key::from_bytes(&der).with_key_id("rsa-1");
    key.authenticate(claims_at(spec, now_s)).unwrap()
}

/// An unsigned token (`alg: none`).
pub fn alg_none(spec: &Spec, now_s: u64) -> String {
    let claims = serde_json::to_value(claims_at(spec, now_s)).unwrap();
    format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": spec.typ, "kid": "rsa-1"})
            .to_string()
            .as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}
