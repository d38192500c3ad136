//! The proof type [`VerifiedToken`] and the claim names it reads.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::binding::{BindingKind, Confirmation};
use super::error::{MalformedReason, TokenError};

/// Which claims carry the SMART scopes and launch context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// Scope claims, first present wins: a space-separated string or an array of strings.
    pub scope: Vec<String>,
    /// Patient launch context claim.
    pub patient: String,
    /// `fhirUser` claim.
    pub fhir_user: String,
}

impl Default for ClaimNames {
    /// `["scope", "scp"]`, `"patient"`, `"fhirUser"`.
    fn default() -> Self {
        ClaimNames {
            scope: vec!["scope".to_owned(), "scp".to_owned()],
            patient: "patient".to_owned(),
            fhir_user: "fhirUser".to_owned(),
        }
    }
}

/// How the token was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A JWS verified locally against the provider's keys.
    Jwt,
    /// A token accepted by RFC 7662 introspection.
    Opaque,
}

impl TokenKind {
    /// `"jwt"` or `"opaque"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Jwt => "jwt",
            TokenKind::Opaque => "opaque",
        }
    }
}

/// A token whose signature (or introspection) and claims were checked.
///
/// Only the token module builds it (see the module docs); decision code takes this type,
/// never raw claims. `Debug` prints no claim values.
#[derive(Clone, PartialEq)]
pub struct VerifiedToken {
    kind: TokenKind,
    issuer: String,
    subject: Option<String>,
    client_id: Option<String>,
    scopes: Vec<String>,
    patient: Option<String>,
    fhir_user: Option<String>,
    expires_at: u64,
    claims: Map<String, Value>,
    /// The sender binding from `cnf` (derived from `claims`, never stored apart from them).
    confirmation: Confirmation,
    /// The CEL `token` variable, built the first time the rules read it: the token caches keep
    /// this token, so every later request with it reuses the value.
    rules_value: RulesValue,
}

/// [`VerifiedToken::rules_value`], once built. Derived from the other fields, so it takes no
/// part in equality and prints nothing.
#[derive(Clone, Default)]
struct RulesValue(std::cell::OnceCell<cel_interpreter::Value>);

impl PartialEq for RulesValue {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The shared-cache form (private, so that deserialization is not a public constructor).
#[derive(Serialize, Deserialize)]
struct CacheForm {
    kind: TokenKind,
    issuer: String,
    subject: Option<String>,
    client_id: Option<String>,
    scopes: Vec<String>,
    patient: Option<String>,
    fhir_user: Option<String>,
    expires_at: u64,
    claims: Map<String, Value>,
}

/// Version prefix of [`VerifiedToken::to_cache_bytes`].
const CACHE_MAGIC: &[u8] = b"fgvt1:";

impl VerifiedToken {
    /// Builds the token from checked claims. Fails when a scope, launch-context or client claim
    /// has the wrong JSON type.
    pub(super) fn from_checked_claims(
        kind: TokenKind,
        issuer: String,
        expires_at: u64,
        claims: Map<String, Value>,
        names: &ClaimNames,
    ) -> Result<Self, TokenError> {
        let bad = TokenError::Malformed(MalformedReason::ClaimType);
        let scopes = match names.scope.iter().find_map(|n| claims.get(n)) {
            None => Vec::new(),
            Some(v) => scopes_of(v).ok_or(bad.clone())?,
        };
        let subject = opt_string(&claims, "sub")?;
        let patient = opt_string(&claims, &names.patient)?;
        let fhir_user = opt_string(&claims, &names.fhir_user)?;
        let confirmation = Confirmation::from_claims(&claims)?;
        let mut client_id = None;
        for name in ["client_id", "azp", "cid"] {
            if let Some(id) = opt_string(&claims, name)? {
                client_id = Some(id);
                break;
            }
        }
        Ok(VerifiedToken {
            kind,
            issuer,
            subject,
            client_id,
            scopes,
            patient,
            fhir_user,
            expires_at,
            claims,
            confirmation,
            rules_value: RulesValue::default(),
        })
    }

    /// POLICY TOOLING ONLY: builds a token from arbitrary claims WITHOUT any verification.
    ///
    /// Used by the policy test runner to evaluate rules against example tokens. Never call it
    /// on request data. Lenient: claims of the wrong type are ignored; a missing `exp` gives
    /// `u64::MAX`, a missing `iss` the empty string.
    pub fn for_policy_test(
        kind: TokenKind,
        claims: Map<String, Value>,
        names: &ClaimNames,
    ) -> Self {
        let string = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let scopes = names
            .scope
            .iter()
            .find_map(|n| claims.get(n))
            .and_then(scopes_of)
            .unwrap_or_default();
        let client_id = ["client_id", "azp", "cid"].iter().find_map(|n| string(n));
        let confirmation = Confirmation::from_claims(&claims).unwrap_or_default();
        VerifiedToken {
            kind,
            issuer: string("iss").unwrap_or_default(),
            subject: string("sub"),
            client_id,
            scopes,
            patient: string(&names.patient),
            fhir_user: string(&names.fhir_user),
            expires_at: claims
                .get("exp")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX),
            claims,
            confirmation,
            rules_value: RulesValue::default(),
        }
    }

    /// Restores a token written by [`Self::to_cache_bytes`] (the shared data of this plugin,
    /// written only by fhirgate workers). `None` when the bytes are not in that form. The
    /// binding is derived again from the stored claims, so an entry can never lose it.
    pub fn from_cache_bytes(bytes: &[u8]) -> Option<Self> {
        let body = bytes.strip_prefix(CACHE_MAGIC)?;
        let f: CacheForm = serde_json::from_slice(body).ok()?;
        let confirmation = Confirmation::from_claims(&f.claims).ok()?;
        Some(VerifiedToken {
            kind: f.kind,
            issuer: f.issuer,
            subject: f.subject,
            client_id: f.client_id,
            scopes: f.scopes,
            patient: f.patient,
            fhir_user: f.fhir_user,
            expires_at: f.expires_at,
            claims: f.claims,
            confirmation,
            rules_value: RulesValue::default(),
        })
    }

    /// Serializes the token for the shared cache (versioned; read back by [`Self::from_cache_bytes`]).
    pub fn to_cache_bytes(&self) -> Vec<u8> {
        let form = CacheForm {
            kind: self.kind,
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            client_id: self.client_id.clone(),
            scopes: self.scopes.clone(),
            patient: self.patient.clone(),
            fhir_user: self.fhir_user.clone(),
            expires_at: self.expires_at,
            claims: self.claims.clone(),
        };
        let mut out = CACHE_MAGIC.to_vec();
        // Serializing plain strings, numbers and maps cannot fail; an empty body would
        // simply not parse back.
        if let Ok(body) = serde_json::to_vec(&form) {
            out.extend_from_slice(&body);
        }
        out
    }

    /// How the token was verified.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// `iss` (for opaque tokens: the response's `iss`, else the provider issuer, else empty).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `sub`, when present.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The client: `client_id`, else `azp`, else `cid`.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// Granted scopes from the first present scope claim.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Patient launch context, when present.
    pub fn patient(&self) -> Option<&str> {
        self.patient.as_deref()
    }

    /// `fhirUser`, when present.
    pub fn fhir_user(&self) -> Option<&str> {
        self.fhir_user.as_deref()
    }

    /// `exp` in unix seconds; `u64::MAX` when unknown (introspection without `exp`).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Every claim (or introspection member).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The sender binding (`cnf.jkt`, `cnf["x5t#S256"]`); empty for a bearer token.
    pub fn confirmation(&self) -> &Confirmation {
        &self.confirmation
    }

    /// How the token is bound to its sender (`none`, `dpop`, `mtls`).
    pub fn binding_kind(&self) -> BindingKind {
        self.confirmation.kind()
    }

    /// [`VerifiedToken::to_cel_value`] as a CEL value, built once per token (then a cheap
    /// reference-counted copy).
    pub fn rules_value(&self) -> cel_interpreter::Value {
        self.rules_value
            .0
            .get_or_init(|| crate::rules::json_to_cel(&self.to_cel_value()))
            .clone()
    }

    /// The CEL `token` object: `{kind, issuer, subject, clientId, scopes, patient?, fhirUser?,
    /// claims}`. `subject` and `clientId` are `""` when absent; `patient` and `fhirUser` keys
    /// are absent when the token has no such claim.
    pub fn to_cel_value(&self) -> Value {
        let mut v = json!({
            "kind": self.kind.as_str(),
            "issuer": self.issuer,
            "subject": self.subject.as_deref().unwrap_or(""),
            "clientId": self.client_id.as_deref().unwrap_or(""),
            "scopes": self.scopes,
            "claims": Value::Object(self.claims.clone()),
        });
        if let Value::Object(map) = &mut v {
            if let Some(p) = &self.patient {
                map.insert("patient".to_owned(), Value::String(p.clone()));
            }
            if let Some(u) = &self.fhir_user {
                map.insert("fhirUser".to_owned(), Value::String(u.clone()));
            }
        }
        v
    }
}

impl std::fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes.len())
            .finish_non_exhaustive()
    }
}

/// Scopes from a claim value: a space-separated string or an array of strings.
fn scopes_of(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    }
}

/// An optional string claim; present with another type is malformed.
fn opt_string(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::Malformed(MalformedReason::ClaimType)),
    }
}
