//! The plugin configuration exactly as operators write it (contract §1): plain serde structs with
//! `deny_unknown_fields`. Nothing here is trusted; `Config::from_json` validates and compiles it.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::duration::Duration;

use crate::rules::RuleConfig;

/// Top level of the plugin configuration JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig {
    /// FHIR endpoint settings.
    #[serde(default)]
    pub fhir: RawFhir,
    /// Token issuers; at least one.
    pub providers: Vec<RawProvider>,
    /// Which claims carry scopes, the patient and fhirUser.
    #[serde(default)]
    pub claims: Option<RawClaims>,
    /// SMART-on-FHIR enforcement switch.
    #[serde(default)]
    pub smart: Option<RawSmart>,
    /// CEL rules (request phase).
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// What upstream receives on allow.
    #[serde(default)]
    pub forward: Option<RawForward>,
    /// Realm for `WWW-Authenticate`.
    #[serde(default)]
    pub realm: Option<String>,
    /// Verified-token cache sizes.
    #[serde(default)]
    pub cache: Option<RawCache>,
    /// `Retry-After` sent with 503 answers.
    #[serde(default)]
    pub retry_after: Option<Duration>,
    /// Audit record options and the optional collector.
    #[serde(default)]
    pub audit: Option<super::audit::RawAudit>,
    /// Consent by security labels.
    #[serde(default)]
    pub consent: Option<RawConsent>,
}

/// `consent` block: which security labels need the token's consent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConsent {
    /// Run the built-in label check (default true).
    pub enforce: Option<bool>,
    /// Claim holding the consented codes (default `consent`).
    pub claim: Option<String>,
    /// Labels as `system|code` (default: the HL7 sensitivity and confidentiality codes).
    pub labels: Option<Vec<String>>,
}

/// `fhir` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFhir {
    /// Path prefix of the FHIR base, e.g. `/fhir`.
    pub base_path: Option<String>,
    /// Largest request body buffered for a decision (bundles, form searches).
    pub max_body_bytes: Option<u64>,
    /// Largest upstream response buffered when it must be checked.
    pub max_response_bytes: Option<u64>,
    /// Serve `[base]/metadata` and `[base]/.well-known/smart-configuration` without a token.
    pub public_discovery: Option<bool>,
    /// Public URL of the FHIR base (DPoP `htu`), for proxies behind a TLS-terminating balancer.
    pub public_base_url: Option<String>,
}

/// One token issuer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawProvider {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks: Option<RawJwks>,
    pub algorithms: Option<Vec<String>>,
    pub accepted_types: Option<Vec<String>>,
    pub clock_skew: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    /// Base64url HMAC secret; only with it are HS256/384/512 accepted.
    pub hmac_secret: Option<String>,
    pub introspection: Option<RawIntrospection>,
    /// DPoP and certificate-bound tokens (contract §5).
    pub sender_constraint: Option<RawSenderConstraint>,
}

/// `providers[].senderConstraint`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSenderConstraint {
    /// `off`, `allowed` (default) or `required`.
    pub dpop: Option<String>,
    /// Accepted DPoP proof algorithms (asymmetric only).
    pub dpop_algorithms: Option<Vec<String>>,
    /// How far a proof's `iat` may be from now (1s … 5m, default 60s).
    pub dpop_max_age: Option<Duration>,
    /// `off`, `allowed` (default) or `required`.
    pub mtls: Option<String>,
}

/// Where a provider's keys come from: exactly one of `inline` and `remote`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawJwks {
    pub inline: Option<serde_json::Value>,
    pub remote: Option<RawRemoteJwks>,
}

/// A JWKS fetched by HTTP callout through an Envoy cluster.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRemoteJwks {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub refresh: Option<Duration>,
    pub timeout: Option<Duration>,
    pub max_staleness: Option<Duration>,
    pub min_refetch_interval: Option<Duration>,
}

/// RFC 7662 token introspection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawIntrospection {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub client_id: String,
    pub client_secret: String,
    pub mode: Option<String>,
    pub auth_method: Option<String>,
    pub cache_ttl: Option<Duration>,
    pub negative_cache_ttl: Option<Duration>,
    pub timeout: Option<Duration>,
}

/// Claim names; `scope` may be one name or a list tried in order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawClaims {
    pub scope: Option<OneOrMany>,
    pub patient: Option<String>,
    pub fhir_user: Option<String>,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `smart` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSmart {
    pub enforce: Option<bool>,
    /// Add the launch patient to patient-scoped searches that name none (default true).
    pub narrow_searches: Option<bool>,
}

/// `forward` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawForward {
    pub remove_authorization: Option<bool>,
    /// Header name -> identity source (`subject`, `issuer`, `clientId`, `patient`, `fhirUser`,
    /// `scopes`, `pseudonym`, or `claims.<name>`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Base64url key for the pairwise pseudonymous subject (HMAC-SHA256 of `sub`).
    pub pseudonym_secret: Option<String>,
}

/// `cache` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCache {
    pub max_entries: Option<usize>,
    pub shared_slots: Option<usize>,
    /// Slots of the DPoP `jti` replay cache in shared data.
    pub replay_slots: Option<usize>,
}
