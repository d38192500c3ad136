//! Identity forwarding (contract §4): the headers upstream receives on allow, taken from the
//! verified token only. Incoming `x-fhirgate-*` headers are removed by the engine before this.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{Forward, IdentitySource};
use crate::token::VerifiedToken;

/// The pairwise pseudonymous subject: base64url(HMAC-SHA256(key, issuer ‖ 0x00 ‖ sub)).
///
/// The issuer is mixed in so the same `sub` at two issuers gives two pseudonyms.
pub fn pseudonym(key: &[u8], issuer: &str, subject: &str) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(issuer.as_bytes());
    mac.update(&[0]);
    mac.update(subject.as_bytes());
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Header values must be visible ASCII and spaces only; anything else is not forwarded.
fn header_safe(value: &str) -> bool {
    !value.is_empty() && value.len() <= 4096 && value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The identity headers to set for `token`. A header whose source is absent or not a safe
/// header value is left unset (it was already removed from the incoming request).
pub fn identity_headers(forward: &Forward, token: &VerifiedToken) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(forward.headers.len());
    for (name, source) in &forward.headers {
        let value = match source {
            IdentitySource::Subject => token.subject().map(str::to_string),
            IdentitySource::Issuer => Some(token.issuer().to_string()),
            IdentitySource::ClientId => token.client_id().map(str::to_string),
            IdentitySource::Patient => token.patient().map(str::to_string),
            IdentitySource::FhirUser => token.fhir_user().map(str::to_string),
            IdentitySource::Scopes => Some(token.scopes().join(" ")),
            IdentitySource::Pseudonym => forward
                .pseudonym_key
                .as_deref()
                .zip(token.subject())
                .and_then(|(key, sub)| pseudonym(key, token.issuer(), sub)),
            IdentitySource::Claim(claim) => match token.claims().get(claim) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
                _ => None,
            },
        };
        if let Some(value) = value.filter(|v| header_safe(v)) {
            out.push((name.clone(), value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn pseudonym_is_stable_keyed_and_issuer_bound() {
        let a = pseudonym(&[7; 32], "https://idp", "alice").unwrap();
        assert_eq!(a, pseudonym(&[7; 32], "https://idp", "alice").unwrap());
        assert_ne!(a, pseudonym(&[8; 32], "https://idp", "alice").unwrap());
        assert_ne!(a, pseudonym(&[7; 32], "https://other", "alice").unwrap());
        assert_ne!(a, pseudonym(&[7; 32], "https://idp", "bob").unwrap());
        assert!(!a.contains("alice"));
        assert_eq!(a.len(), 43);
        // Known answer, computed outside the filter from the README's formula:
        // printf 'https://idp\0alice' | openssl dgst -sha256 -mac HMAC \
        //   -macopt hexkey:0707…07 (32 bytes) -binary | basenc --base64url | tr -d =
        assert_eq!(a, "av9Am5AlKM_MyRzY6K3VD_J6Ty1C9Tte5sN9Jjpz7h4");
    }

    #[test]
    fn unsafe_values_are_not_forwarded() {
        assert!(header_safe("Patient/123"));
        assert!(!header_safe("a\r\nx-injected: 1"));
        assert!(!header_safe(""));
        assert!(!header_safe("é"));
    }
}
