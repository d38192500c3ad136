//! Denials and the HTTP answers fhirgate makes itself (contract §3): status, `WWW-Authenticate`
//! with the RFC 6750 / RFC 9470 error attribute, and a FHIR OperationOutcome. Nothing here ever
//! carries a token or PHI: descriptions are fixed texts chosen by the code, plus rule messages
//! written by the operator.

use serde_json::json;

/// Why a request is refused, with what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyKind {
    /// No bearer token at all: 401, `Bearer realm` without an error.
    NoCredentials,
    /// The Authorization header is malformed: 400 `invalid_request`.
    InvalidRequest,
    /// The token is not acceptable: 401 `invalid_token` (`expired` selects the OperationOutcome code).
    InvalidToken {
        /// The token's `exp` has passed.
        expired: bool,
    },
    /// A DPoP proof is missing, invalid or replayed (RFC 9449 §7.1): 401
    /// `DPoP error="invalid_dpop_proof"` with the accepted `algs`.
    InvalidDpopProof {
        /// Accepted proof algorithms, space separated.
        algs: String,
    },
    /// A DPoP-bound token used the wrong way (as a bearer token, with another key) or an unbound
    /// token where DPoP is required: 401 `DPoP error="invalid_token"` with the accepted `algs`.
    DpopInvalidToken {
        /// Accepted proof algorithms, space separated.
        algs: String,
    },
    /// A SMART scope is missing: 403 `insufficient_scope` naming the scope that would allow it.
    InsufficientScope {
        /// The scope that would have allowed the request.
        scope: String,
    },
    /// Step-up authentication needed (RFC 9470): 401 `insufficient_user_authentication`.
    StepUp {
        /// Space-separated ACR values the client should request.
        acr_values: String,
        /// Maximum authentication age in seconds, if required.
        max_age: Option<u64>,
    },
    /// Patient context, compartment or a rule denies: 403 `forbidden`.
    Forbidden,
    /// The FHIR request itself is malformed or ambiguous: 400 `invalid`.
    BadRequest,
    /// Not a FHIR path this filter serves: 404 `not-found`.
    NotFound,
    /// The body is over the configured bound: 413 `too-costly`.
    TooLarge,
    /// Keys or introspection unavailable: 503 with Retry-After, `transient`.
    Unavailable,
    /// The upstream response needed a check it could not get (not FHIR JSON, compressed,
    /// too large): 502 `exception`.
    BadGateway,
}

/// A decision to refuse a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// What the client is told.
    pub kind: DenyKind,
    /// Stable reason code for audit and metrics (e.g. `token.expired`, `smart.insufficient_scope`).
    pub reason: String,
    /// A short description safe to show the client (no token, no PHI).
    pub description: String,
    /// The CEL rule that denied, if any.
    pub rule: Option<String>,
}

impl Denial {
    /// Builds a denial.
    pub fn new(kind: DenyKind, reason: impl Into<String>, description: impl Into<String>) -> Self {
        Denial {
            kind,
            reason: reason.into(),
            description: description.into(),
            rule: None,
        }
    }

    /// The HTTP status for this denial.
    pub fn status(&self) -> u16 {
        match self.kind {
            DenyKind::NoCredentials
            | DenyKind::InvalidToken { .. }
            | DenyKind::InvalidDpopProof { .. }
            | DenyKind::DpopInvalidToken { .. }
            | DenyKind::StepUp { .. } => 401,
            DenyKind::InvalidRequest | DenyKind::BadRequest => 400,
            DenyKind::InsufficientScope { .. } | DenyKind::Forbidden => 403,
            DenyKind::NotFound => 404,
            DenyKind::TooLarge => 413,
            DenyKind::Unavailable => 503,
            DenyKind::BadGateway => 502,
        }
    }

    /// The OperationOutcome `issue[0].code`.
    pub fn issue_code(&self) -> &'static str {
        match self.kind {
            DenyKind::NoCredentials | DenyKind::StepUp { .. } => "login",
            DenyKind::InvalidToken { expired: true } => "expired",
            DenyKind::InvalidToken { expired: false } => "login",
            DenyKind::InvalidDpopProof { .. } | DenyKind::DpopInvalidToken { .. } => "login",
            DenyKind::InvalidRequest | DenyKind::BadRequest => "invalid",
            DenyKind::InsufficientScope { .. } | DenyKind::Forbidden => "forbidden",
            DenyKind::NotFound => "not-found",
            DenyKind::TooLarge => "too-costly",
            DenyKind::Unavailable => "transient",
            DenyKind::BadGateway => "exception",
        }
    }

    /// The local reply Envoy sends for this denial.
    pub fn to_reply(&self, realm: &str, retry_after_secs: u64) -> LocalReply {
        let mut headers = vec![(
            "content-type".to_string(),
            "application/fhir+json".to_string(),
        )];
        headers.push(("cache-control".to_string(), "no-store".to_string()));
        if let Some(challenge) = self.challenge(realm) {
            headers.push(("www-authenticate".to_string(), challenge));
        }
        if self.kind == DenyKind::Unavailable {
            headers.push(("retry-after".to_string(), retry_after_secs.to_string()));
        }
        let body = json!({
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "error",
                "code": self.issue_code(),
                "details": { "text": self.reason },
                "diagnostics": self.description,
            }]
        });
        LocalReply {
            status: self.status(),
            headers,
            body: body.to_string().into_bytes(),
        }
    }

    fn challenge(&self, realm: &str) -> Option<String> {
        let desc = quote(&self.description);
        match &self.kind {
            DenyKind::NoCredentials => Some(format!("Bearer realm=\"{realm}\"")),
            DenyKind::InvalidRequest => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{desc}\""
            )),
            DenyKind::InvalidToken { .. } => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{desc}\""
            )),
            DenyKind::InvalidDpopProof { algs } => Some(format!(
                "DPoP realm=\"{realm}\", error=\"invalid_dpop_proof\", error_description=\"{desc}\", algs=\"{}\"",
                quote(algs)
            )),
            DenyKind::DpopInvalidToken { algs } => Some(format!(
                "DPoP realm=\"{realm}\", error=\"invalid_token\", error_description=\"{desc}\", algs=\"{}\"",
                quote(algs)
            )),
            DenyKind::InsufficientScope { scope } => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{desc}\", scope=\"{}\"",
                quote(scope)
            )),
            DenyKind::StepUp {
                acr_values,
                max_age,
            } => {
                let mut c = format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_user_authentication\", error_description=\"{desc}\", acr_values=\"{}\"",
                    quote(acr_values)
                );
                if let Some(age) = max_age {
                    c.push_str(&format!(", max_age=\"{age}\""));
                }
                Some(c)
            }
            _ => None,
        }
    }
}

/// Keeps a value safe inside a quoted-string of `WWW-Authenticate` (RFC 6750 §3 limits the
/// character set of error descriptions to printable ASCII without `"` and `\`).
fn quote(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '"' || c == '\\' || !(' '..='~').contains(&c) {
                '\''
            } else {
                c
            }
        })
        .collect()
}

/// An HTTP response made by the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Response headers (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn header<'a>(reply: &'a LocalReply, name: &str) -> Option<&'a str> {
        reply
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn no_credentials_has_no_error_attribute() {
        let r = Denial::new(DenyKind::NoCredentials, "token.missing", "no bearer token")
            .to_reply("fhir", 5);
        assert_eq!(r.status, 401);
        assert_eq!(
            header(&r, "www-authenticate"),
            Some("Bearer realm=\"fhir\"")
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["issue"][0]["code"], "login");
        assert_eq!(header(&r, "content-type"), Some("application/fhir+json"));
    }

    #[test]
    fn each_kind_maps_per_contract() {
        let cases = [
            (
                DenyKind::InvalidRequest,
                400,
                "invalid",
                Some("invalid_request"),
            ),
            (
                DenyKind::InvalidToken { expired: false },
                401,
                "login",
                Some("invalid_token"),
            ),
            (
                DenyKind::InvalidToken { expired: true },
                401,
                "expired",
                Some("invalid_token"),
            ),
            (
                DenyKind::InsufficientScope {
                    scope: "patient/Observation.rs".into(),
                },
                403,
                "forbidden",
                Some("insufficient_scope"),
            ),
            (DenyKind::Forbidden, 403, "forbidden", None),
            (DenyKind::Unavailable, 503, "transient", None),
            (DenyKind::TooLarge, 413, "too-costly", None),
        ];
        for (kind, status, code, error) in cases {
            let r = Denial::new(kind, "x", "d").to_reply("fhirgate", 7);
            assert_eq!(r.status, status);
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["issue"][0]["code"], code);
            match error {
                Some(e) => assert!(header(&r, "www-authenticate")
                    .unwrap()
                    .contains(&format!("error=\"{e}\""))),
                None => assert_eq!(header(&r, "www-authenticate"), None),
            }
        }
    }

    #[test]
    fn unavailable_has_retry_after_and_scope_is_named() {
        let r = Denial::new(
            DenyKind::Unavailable,
            "jwks.unavailable",
            "keys unavailable",
        )
        .to_reply("f", 9);
        assert_eq!(header(&r, "retry-after"), Some("9"));
        let r = Denial::new(
            DenyKind::InsufficientScope {
                scope: "patient/Observation.rs".into(),
            },
            "smart.insufficient_scope",
            "scope",
        )
        .to_reply("f", 9);
        assert!(header(&r, "www-authenticate")
            .unwrap()
            .ends_with("scope=\"patient/Observation.rs\""));
    }

    #[test]
    fn dpop_denials_challenge_with_the_dpop_scheme() {
        let algs = "ES256 EdDSA".to_string();
        for (kind, error) in [
            (
                DenyKind::InvalidDpopProof { algs: algs.clone() },
                "invalid_dpop_proof",
            ),
            (
                DenyKind::DpopInvalidToken { algs: algs.clone() },
                "invalid_token",
            ),
        ] {
            let r = Denial::new(kind, "dpop.x", "The DPoP proof is malformed").to_reply("f", 5);
            assert_eq!(r.status, 401);
            let c = header(&r, "www-authenticate").unwrap();
            assert_eq!(
                c,
                format!(
                    "DPoP realm=\"f\", error=\"{error}\", error_description=\"The DPoP proof is malformed\", algs=\"ES256 EdDSA\""
                )
            );
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["issue"][0]["code"], "login");
            assert_eq!(header(&r, "retry-after"), None);
        }
    }

    #[test]
    fn step_up_carries_acr_values() {
        let r = Denial::new(
            DenyKind::StepUp {
                acr_values: "urn:mfa".into(),
                max_age: Some(300),
            },
            "rule.step_up",
            "stronger authentication required",
        )
        .to_reply("f", 1);
        assert_eq!(r.status, 401);
        let c = header(&r, "www-authenticate").unwrap();
        assert!(c.contains("error=\"insufficient_user_authentication\""));
        assert!(c.contains("acr_values=\"urn:mfa\""));
        assert!(c.contains("max_age=\"300\""));
    }

    #[test]
    fn quotes_cannot_break_the_challenge() {
        let r = Denial::new(DenyKind::InvalidRequest, "x", "a\"b\\c\nd").to_reply("f", 1);
        assert!(header(&r, "www-authenticate")
            .unwrap()
            .contains("error_description=\"a'b'c'd\""));
    }
}
