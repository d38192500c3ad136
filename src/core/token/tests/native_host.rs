//! The tests' stand-in for Envoy's `verify_signature` (BoringSSL), shared by the core unit
//! tests (`host_signatures.rs`) and the harness (`tests/harness`): the `rsa`, `p256` and
//! `p384` crates parse the DER SubjectPublicKeyInfo the filter sends (a key they cannot parse is
//! Envoy's `BadArgument`: `Unavailable`) and verify with the key's default scheme, as
//! `EVP_DigestVerify` does: PKCS #1 v1.5 for RSA, a DER signature for ECDSA.

// The includer has `HostSignature` and `SignatureCheck` in scope.
use super::{HostSignature, SignatureCheck};
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use rsa::pkcs8::DecodePublicKey as _;
use sha2::{Digest as _, Sha256, Sha384, Sha512};

pub fn verify(check: &SignatureCheck<'_>) -> HostSignature {
    let verdict = |ok: bool| {
        if ok {
            HostSignature::Valid
        } else {
            HostSignature::Invalid
        }
    };
    let digest = match check.hash {
        "sha256" => Sha256::digest(check.text).to_vec(),
        "sha384" => Sha384::digest(check.text).to_vec(),
        "sha512" => Sha512::digest(check.text).to_vec(),
        _ => return HostSignature::Invalid,
    };
    if let Ok(key) = rsa::RsaPublicKey::from_public_key_der(check.public_key_der) {
        let scheme = match check.hash {
            "sha256" => rsa::Pkcs1v15Sign::new::<Sha256>(),
            "sha384" => rsa::Pkcs1v15Sign::new::<Sha384>(),
            _ => rsa::Pkcs1v15Sign::new::<Sha512>(),
        };
        return verdict(key.verify(scheme, &digest, check.signature).is_ok());
    }
    if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(check.public_key_der) {
        return verdict(
            p256::ecdsa::Signature::from_der(check.signature)
                .is_ok_and(|sig| key.verify_prehash(&digest, &sig).is_ok()),
        );
    }
    if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(check.public_key_der) {
        return verdict(
            p384::ecdsa::Signature::from_der(check.signature)
                .is_ok_and(|sig| key.verify_prehash(&digest, &sig).is_ok()),
        );
    }
    HostSignature::Unavailable
}
