//! The token binding model: the `cnf` (confirmation) claim of a JWT or an introspection answer
//! (RFC 7800), as far as fhirgate enforces it: `jkt`, the RFC 7638 thumbprint of a DPoP key
//! (RFC 9449 §6), and `x5t#S256`, the SHA-256 thumbprint of a client certificate (RFC 8705 §3.1).
//!
//! A confirmation fhirgate cannot enforce (another member such as `jwk` or `kid`, an empty `cnf`,
//! a value of the wrong type or length) makes the whole token unacceptable: ignoring it would
//! downgrade a sender-constrained token to a bearer token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::error::TokenError;

/// How a token is bound to its sender, as its `cnf` says. Unbound tokens (the common case)
/// carry no allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confirmation(Option<Box<Bound>>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Bound {
    /// `cnf.jkt`: base64url SHA-256 JWK thumbprint of the DPoP key (43 characters).
    jkt: Option<String>,
    /// `cnf["x5t#S256"]`: SHA-256 of the DER client certificate.
    x5t_s256: Option<[u8; 32]>,
}

/// The kind of binding, for audit records and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    /// A bearer token (no `cnf`).
    None,
    /// Bound to a DPoP key (`cnf.jkt`).
    Dpop,
    /// Bound to a client certificate (`cnf["x5t#S256"]`).
    Mtls,
    /// Bound to both (each binding is checked).
    DpopMtls,
}

impl BindingKind {
    /// `none`, `dpop`, `mtls` or `dpop+mtls`.
    pub fn as_str(self) -> &'static str {
        match self {
            BindingKind::None => "none",
            BindingKind::Dpop => "dpop",
            BindingKind::Mtls => "mtls",
            BindingKind::DpopMtls => "dpop+mtls",
        }
    }
}

impl Confirmation {
    /// Reads `cnf` from the claims (or introspection members). Absent: an unbound token.
    pub(crate) fn from_claims(claims: &Map<String, Value>) -> Result<Self, TokenError> {
        let Some(cnf) = claims.get("cnf") else {
            return Ok(Confirmation::default());
        };
        let bad = TokenError::BadConfirmation;
        let members = cnf.as_object().ok_or(bad.clone())?;
        if members.is_empty() || members.keys().any(|k| k != "jkt" && k != "x5t#S256") {
            return Err(bad);
        }
        let jkt = match members.get("jkt") {
            None => None,
            Some(v) => {
                let text = v.as_str().ok_or(bad.clone())?;
                thumbprint_bytes(text).ok_or(bad.clone())?;
                Some(text.to_owned())
            }
        };
        let x5t_s256 = match members.get("x5t#S256") {
            None => None,
            Some(v) => Some(v.as_str().and_then(thumbprint_bytes).ok_or(bad)?),
        };
        Ok(Confirmation(Some(Box::new(Bound { jkt, x5t_s256 }))))
    }

    /// The DPoP key thumbprint the token is bound to.
    pub fn jkt(&self) -> Option<&str> {
        self.0.as_ref().and_then(|b| b.jkt.as_deref())
    }

    /// The certificate thumbprint the token is bound to.
    pub fn x5t_s256(&self) -> Option<&[u8; 32]> {
        self.0.as_ref().and_then(|b| b.x5t_s256.as_ref())
    }

    /// What the token is bound to.
    pub fn kind(&self) -> BindingKind {
        match (self.jkt().is_some(), self.x5t_s256().is_some()) {
            (false, false) => BindingKind::None,
            (true, false) => BindingKind::Dpop,
            (false, true) => BindingKind::Mtls,
            (true, true) => BindingKind::DpopMtls,
        }
    }
}

/// A SHA-256 thumbprint in canonical unpadded base64url (exactly 43 characters, 32 bytes).
fn thumbprint_bytes(text: &str) -> Option<[u8; 32]> {
    if text.len() != 43 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    <[u8; 32]>::try_from(bytes.as_slice()).ok()
}
