//! DPoP keys and proofs for the harness tests, signed with `p256` (ES256), and certificate
//! bindings.
#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::tokens::Spec;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The URI the simulated proxy is addressed with for `path` on a plaintext connection.
pub fn htu(path: &str) -> String {
    format!("http://fhir.example.org{path}")
}

/// A client's DPoP key (P-256).
pub struct DpopKey(p256::ecdsa::SigningKey);

impl DpopKey {
    /// A key from a seed byte: distinct seeds, distinct keys.
    pub fn new(seed: u8) -> DpopKey {
        let mut bytes = [seed.max(1); 32];
        bytes[0] = 0x42;
        DpopKey(p256::ecdsa::SigningKey::from_slice(&bytes).unwrap())
    }

    pub fn jwk(&self) -> Value {
        let p = self.0.verifying_key().to_encoded_point(false);
        json!({"kty": "EC", "crv": "P-256", "x": b64(p.x().unwrap()), "y": b64(p.y().unwrap())})
    }

    /// The JWK with its private scalar `d`.
    pub fn private_jwk(&self) -> Value {
        let mut jwk = self.jwk();
        jwk["d"] = json!(b64(&self.0.to_bytes()));
        jwk
    }

    /// RFC 7638 thumbprint (what the IdP puts in `cnf.jkt`).
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        b64(&Sha256::digest(canonical.as_bytes()))
    }

    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()})
    }

    /// A valid proof for `token` on `method htu` at `iat` (unix seconds) with this `jti`.
    pub fn proof(&self, token: &str, method: &str, htu: &str, iat: u64, jti: &str) -> String {
        self.proof_with(&self.header(), &claims(token, method, htu, iat, jti))
    }

    /// A proof with this header and these claims, signed with this key.
    pub fn proof_with(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let sig: p256::ecdsa::Signature = self.0.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }
}

pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// The claims of a proof for `token`.
pub fn claims(token: &str, method: &str, htu: &str, iat: u64, jti: &str) -> Value {
    json!({
        "htm": method,
        "htu": htu,
        "iat": iat,
        "jti": jti,
        "ath": b64(&Sha256::digest(token.as_bytes())),
    })
}

/// A token spec bound to `key` (`cnf.jkt`).
pub fn bound_to(spec: Spec, key: &DpopKey) -> Spec {
    spec.claim("cnf", json!({"jkt": key.thumbprint()}))
}

/// A token spec bound to the client certificate `der` (`cnf["x5t#S256"]`).
pub fn bound_to_cert(spec: Spec, der: &[u8]) -> Spec {
    spec.claim("cnf", json!({"x5t#S256": b64(&Sha256::digest(der))}))
}

use super::tokens::{jwks, AUDIENCE, ISSUER};
use super::Outcome;

/// The issuer of the introspection-only provider of [`config`].
pub const OPAQUE_ISSUER: &str = "https://opaque.example.org";

/// A configuration with the JWT provider `main` (inline keys, `sender` as its
/// `senderConstraint`) and an introspection-only provider `opaque`, plus `top` merged in.
pub fn config(sender: Value, top: Value) -> String {
    let mut v = json!({
        "providers": [
            {
                "name": "main",
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "jwks": {"inline": serde_json::from_str::<Value>(&jwks()).unwrap()},
                "clockSkew": "30s",
                "senderConstraint": sender.clone()
            },
            {
                "name": "opaque",
                "issuer": OPAQUE_ISSUER,
                "audiences": [AUDIENCE],
                "introspection": {
                    "cluster": "idp", "authority": "idp.example.org", "path": "/introspect",
                    "clientId": "fhirgate", "clientSecret": "s", "cacheTtl": "60s"
                },
                "senderConstraint": sender
            }
        ],
        "smart": {"enforce": false},
        "consent": {"enforce": false},
        "retryAfter": "3s"
    });
    if let (Some(v), Some(top)) = (v.as_object_mut(), top.as_object()) {
        for (k, x) in top {
            v.insert(k.clone(), x.clone());
        }
    }
    v.to_string()
}

/// The reason code in a denial's OperationOutcome.
pub fn reason(out: &Outcome) -> String {
    out.body_json()["issue"][0]["details"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// 401 `DPoP error="<error>"` with `algs`, OperationOutcome `login`, reason `reason`.
pub fn assert_dpop_challenge(out: &Outcome, error: &str, why: &str) {
    assert_eq!(out.status(), 401, "{}", out.text());
    let challenge = out.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with(&format!("DPoP realm=\"fhirgate\", error=\"{error}\"")),
        "{challenge}"
    );
    assert!(
        challenge.contains("algs=\"ES256 ES384 RS256 PS256 EdDSA\""),
        "{challenge}"
    );
    assert_eq!(out.issue_code(), "login", "{}", out.text());
    assert_eq!(reason(out), why, "{}", out.text());
}

/// 401 `Bearer error="invalid_token"`, OperationOutcome `login`, reason `why`.
pub fn assert_bearer_invalid_token(out: &Outcome, why: &str) {
    assert_eq!(out.status(), 401, "{}", out.text());
    let challenge = out.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=\"fhirgate\", error=\"invalid_token\""),
        "{challenge}"
    );
    assert_eq!(out.issue_code(), "login", "{}", out.text());
    assert_eq!(reason(out), why, "{}", out.text());
}
