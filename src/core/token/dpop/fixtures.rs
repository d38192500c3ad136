//! Test keys and DPoP proofs signed with the primitives' own signers (p256, p384,
//! ed25519-compact, the `rsa` crate), independent of the code under test.

use std::sync::OnceLock;

use ::rsa::pkcs1v15::Pkcs1v15Sign;
use ::rsa::rand_core::OsRng;
use ::rsa::traits::PublicKeyParts;
use ::rsa::{Pss, RsaPrivateKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Unix seconds used as "now" by the DPoP tests.
pub(crate) const NOW_S: u64 = 1_700_000_000;
/// The access token the proofs accompany.
pub(crate) const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
/// The request URI the proofs name.
pub(crate) const HTU: &str = "https://fhir.example.org/fhir/Patient/123";

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of [`TOKEN`].
pub(crate) fn token_hash() -> [u8; 32] {
    Sha256::digest(TOKEN.as_bytes()).into()
}

fn rsa_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut OsRng, 2048).unwrap())
}

/// A client's proof key.
pub(crate) enum TestKey {
    Es256(p256::ecdsa::SigningKey),
    Es384(p384::ecdsa::SigningKey),
    EdDsa(ed25519_compact::KeyPair),
    Rs256,
    Ps256,
}

impl TestKey {
    /// A P-256 key from a seed byte (distinct seeds, distinct keys).
    pub(crate) fn es256(seed: u8) -> TestKey {
        let mut bytes = [seed.max(1); 32];
        bytes[0] = 0x11;
        TestKey::Es256(p256::ecdsa::SigningKey::from_slice(&bytes).unwrap())
    }

    pub(crate) fn es384(seed: u8) -> TestKey {
        let mut bytes = [seed.max(1); 48];
        bytes[0] = 0x22;
        TestKey::Es384(p384::ecdsa::SigningKey::from_slice(&bytes).unwrap())
    }

    pub(crate) fn eddsa(seed: u8) -> TestKey {
        TestKey::EdDsa(ed25519_compact::KeyPair::from_seed(
            ed25519_compact::Seed::new([seed; 32]),
        ))
    }

    pub(crate) fn alg(&self) -> &'static str {
        match self {
            TestKey::Es256(_) => "ES256",
            TestKey::Es384(_) => "ES384",
            TestKey::EdDsa(_) => "EdDSA",
            TestKey::Rs256 => "RS256",
            TestKey::Ps256 => "PS256",
        }
    }

    /// The public JWK.
    pub(crate) fn jwk(&self) -> Value {
        match self {
            TestKey::Es256(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                json!({"kty": "EC", "crv": "P-256", "x": b64(p.x().unwrap()), "y": b64(p.y().unwrap())})
            }
            TestKey::Es384(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                json!({"kty": "EC", "crv": "P-384", "x": b64(p.x().unwrap()), "y": b64(p.y().unwrap())})
            }
            TestKey::EdDsa(k) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.pk.as_ref())}),
            TestKey::Rs256 | TestKey::Ps256 => {
                let k = rsa_key();
                json!({"kty": "RSA", "n": b64(&k.n().to_bytes_be()), "e": b64(&k.e().to_bytes_be())})
            }
        }
    }

    /// The JWK with its private part (`d`), as a careless client might send it.
    pub(crate) fn private_jwk(&self) -> Value {
        let mut jwk = self.jwk();
        let d = match self {
            TestKey::Es256(k) => b64(&k.to_bytes()),
            TestKey::Es384(k) => b64(&k.to_bytes()),
            TestKey::EdDsa(k) => b64(k.sk.seed().as_ref()),
            TestKey::Rs256 | TestKey::Ps256 => {
                use ::rsa::traits::PrivateKeyParts;
                b64(&rsa_key().d().to_bytes_be())
            }
        };
        jwk["d"] = json!(d);
        jwk
    }

    /// The RFC 7638 thumbprint of the public JWK, computed here independently.
    pub(crate) fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = match jwk["kty"].as_str().unwrap() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                jwk["crv"].as_str().unwrap(),
                jwk["x"].as_str().unwrap(),
                jwk["y"].as_str().unwrap()
            ),
            "OKP" => format!(
                r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
                jwk["crv"].as_str().unwrap(),
                jwk["x"].as_str().unwrap()
            ),
            _ => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                jwk["e"].as_str().unwrap(),
                jwk["n"].as_str().unwrap()
            ),
        };
        b64(&Sha256::digest(canonical.as_bytes()))
    }

    /// Signs a JWS signing input.
    pub(crate) fn sign(&self, input: &[u8]) -> Vec<u8> {
        match self {
            TestKey::Es256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(input);
                sig.to_bytes().to_vec()
            }
            TestKey::Es384(k) => {
                let sig: p384::ecdsa::Signature = k.sign(input);
                sig.to_bytes().to_vec()
            }
            TestKey::EdDsa(k) => k.sk.sign(input, None).to_vec(),
            TestKey::Rs256 => rsa_key()
                .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input))
                .unwrap(),
            TestKey::Ps256 => rsa_key()
                .sign_with_rng(&mut OsRng, Pss::new::<Sha256>(), &Sha256::digest(input))
                .unwrap(),
        }
    }

    /// The standard proof header for this key.
    pub(crate) fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()})
    }

    /// A valid proof for `method` on `htu` at `iat_s`, with this `jti`, for [`TOKEN`].
    pub(crate) fn proof(&self, method: &str, htu: &str, iat_s: u64, jti: &str) -> String {
        self.proof_with(&self.header(), &claims(method, htu, iat_s, jti))
    }

    /// A proof with the given header and claims, signed by this key.
    pub(crate) fn proof_with(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        format!("{input}.{}", b64(&self.sign(input.as_bytes())))
    }
}

/// The claims of a proof for [`TOKEN`].
pub(crate) fn claims(method: &str, htu: &str, iat_s: u64, jti: &str) -> Value {
    json!({
        "htm": method,
        "htu": htu,
        "iat": iat_s,
        "jti": jti,
        "ath": b64(&token_hash()),
    })
}

/// `claims` with one member replaced (or removed with `Value::Null`).
pub(crate) fn with_claim(mut claims: Value, name: &str, value: Value) -> Value {
    let map: &mut Map<String, Value> = claims.as_object_mut().unwrap();
    if value.is_null() {
        map.remove(name);
    } else {
        map.insert(name.to_owned(), value);
    }
    claims
}
