//! Plugin configuration: parsed once in `on_configure`, validated, and compiled into [`Config`]
//! (every duration parsed, every key set loaded, every CEL rule compiled). A bad configuration is
//! a [`ConfigError`] naming the offending key; the filter then refuses to start.

pub mod audit;
mod consent;
mod duration;
mod locate;
pub mod raw;
mod sender;
#[cfg(test)]
mod tests;

use std::rc::Rc;

use base64::Engine as _;

pub use duration::{parse_millis, Duration};
use raw::{OneOrMany, RawConfig, RawIntrospection, RawProvider, RawRemoteJwks};

use crate::consent::ConsentPolicy;
use crate::rules::RuleSet;
use crate::token::{Algorithm, ClaimNames, JwtPolicy, KeySet, SenderPolicy};

/// A configuration problem, naming the key (a JSON path such as `providers[0].clockSkew`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration at `{key}`: {reason}")]
pub struct ConfigError {
    /// JSON path of the offending key.
    pub key: String,
    /// Why it was rejected.
    pub reason: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// The compiled, validated configuration.
#[derive(Debug)]
pub struct Config {
    /// FHIR base path without a trailing slash (`""` for the root).
    pub base_path: String,
    /// Largest request body buffered for a decision; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Largest upstream response buffered for a response check; larger ones get 502.
    pub max_response_bytes: usize,
    /// Whether `[base]/metadata` and `[base]/.well-known/smart-configuration` need no token.
    pub public_discovery: bool,
    /// `fhir.publicBaseUrl`, normalized without a trailing `/`: the base of DPoP `htu` values.
    pub public_base_url: Option<String>,
    /// Token issuers in configuration order.
    pub providers: Vec<Provider>,
    /// Claim names for scopes, patient and fhirUser.
    pub claim_names: ClaimNames,
    /// Whether SMART scopes and the patient compartment are enforced.
    pub smart_enforce: bool,
    /// `smart.narrowSearches`: a patient-scoped type search naming no patient gets the launch
    /// patient added for the upstream (with `Prefer: handling=strict`) instead of a 403.
    pub narrow_searches: bool,
    /// Compiled CEL rules.
    pub rules: RuleSet,
    /// Identity forwarding to upstream.
    pub forward: Forward,
    /// `realm` in `WWW-Authenticate`.
    pub realm: String,
    /// Verified-token cache: entries per worker.
    pub cache_max_entries: usize,
    /// Verified-token cache: slots in the cross-worker shared cache (0 disables it).
    pub shared_cache_slots: usize,
    /// DPoP `jti` replay cache: slots in shared data.
    pub replay_slots: usize,
    /// Seconds in `Retry-After` on 503.
    pub retry_after_secs: u64,
    /// Audit record options, access-log data and the optional collector.
    pub audit: audit::Audit,
    /// Consent by security labels.
    pub consent: ConsentPolicy,
}

/// One token issuer, compiled.
#[derive(Debug)]
pub struct Provider {
    /// Operator-chosen name (used in logs, metrics and shared-data keys).
    pub name: String,
    /// JWT checks for this issuer.
    pub policy: JwtPolicy,
    /// Where verification keys come from; `None` for an introspection-only provider.
    pub keys: Option<KeySource>,
    /// RFC 7662 introspection, when configured.
    pub introspection: Option<Introspection>,
    /// DPoP and certificate-bound tokens (`senderConstraint`).
    pub sender: SenderPolicy,
}

impl Provider {
    /// Whether this provider introspects JWTs too, after their signature check
    /// (`introspection.mode: always`).
    pub fn introspects_jwts(&self) -> bool {
        self.introspection
            .as_ref()
            .is_some_and(|i| i.mode == IntrospectionMode::Always)
    }
}

/// Where a provider's keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// Keys given in the configuration (and/or an explicit HMAC secret).
    Inline(Rc<KeySet>),
    /// Keys fetched through an Envoy cluster.
    Remote(RemoteJwks),
}

/// A remote JWKS endpoint reached by HTTP callout.
#[derive(Debug, Clone)]
pub struct RemoteJwks {
    /// Envoy cluster name.
    pub cluster: String,
    /// `:authority` of the callout.
    pub authority: String,
    /// Path of the JWKS document.
    pub path: String,
    /// Regular refresh period.
    pub refresh_ms: u64,
    /// Callout timeout.
    pub timeout_ms: u64,
    /// How long the last good key set keeps serving while the IdP fails.
    pub max_staleness_ms: u64,
    /// Least time between two refetches caused by an unknown `kid`.
    pub min_refetch_interval_ms: u64,
    /// Explicit HMAC secret added to every fetched key set.
    pub hmac_secret: Option<Vec<u8>>,
}

/// When introspection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectionMode {
    /// Only tokens that are not JWS compact serializations.
    Opaque,
    /// Every token, JWTs after their signature check (revocation within `cacheTtl`).
    Always,
}

/// How fhirgate authenticates to the introspection endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic` (RFC 6749 §2.3.1).
    Basic,
    /// `client_secret_post`.
    Post,
}

/// RFC 7662 introspection settings.
#[derive(Debug, Clone)]
pub struct Introspection {
    /// Envoy cluster name.
    pub cluster: String,
    /// `:authority` of the callout.
    pub authority: String,
    /// Path of the introspection endpoint.
    pub path: String,
    /// fhirgate's client id at the IdP.
    pub client_id: String,
    /// fhirgate's client secret at the IdP (never logged).
    pub client_secret: String,
    /// Which tokens are introspected.
    pub mode: IntrospectionMode,
    /// Client authentication method.
    pub auth: ClientAuth,
    /// How long an active answer is reused (never past the token's `exp`).
    pub cache_ttl_ms: u64,
    /// How long an inactive answer is reused.
    pub negative_cache_ttl_ms: u64,
    /// Callout timeout.
    pub timeout_ms: u64,
}

/// Where a forwarded identity header takes its value from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// `sub`.
    Subject,
    /// `iss`.
    Issuer,
    /// `client_id` / `azp`.
    ClientId,
    /// The patient launch context.
    Patient,
    /// The `fhirUser` claim.
    FhirUser,
    /// Granted scopes, space separated.
    Scopes,
    /// HMAC-SHA256 of `sub` under `forward.pseudonymSecret`, base64url.
    Pseudonym,
    /// A string (or number/bool) claim by name.
    Claim(String),
}

/// What upstream receives on allow.
#[derive(Debug, Clone, Default)]
pub struct Forward {
    /// Drop `Authorization` before forwarding.
    pub remove_authorization: bool,
    /// Identity headers set from verified claims.
    pub headers: Vec<(String, IdentitySource)>,
    /// Key for pseudonymous subjects.
    pub pseudonym_key: Option<Vec<u8>>,
}

/// Prefix of headers fhirgate owns; incoming ones are always removed.
pub const OWNED_HEADER_PREFIX: &str = "x-fhirgate-";

const DEFAULT_TYPES: [&str; 3] = ["at+jwt", "application/at+jwt", "JWT"];

impl Config {
    /// Parses and validates the plugin configuration JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let raw = <RawConfig as serde::Deserialize>::deserialize(&mut de).map_err(|e| {
            let path = locate::error_path(bytes, &e);
            let key = if path == "." {
                "(root)".to_string()
            } else {
                path
            };
            ConfigError::new(key, strip_position(&e.to_string()))
        })?;
        de.end()
            .map_err(|_| ConfigError::new("(root)", "trailing characters after the JSON object"))?;
        Config::try_from(raw)
    }

    /// The provider whose `issuer` equals `iss`.
    pub fn provider_by_issuer(&self, iss: &str) -> Option<(usize, &Provider)> {
        self.providers
            .iter()
            .enumerate()
            .find(|(_, p)| p.policy.issuer == iss)
    }

    /// The first provider with introspection (for opaque tokens).
    pub fn introspection_provider(&self) -> Option<(usize, &Provider)> {
        self.providers
            .iter()
            .enumerate()
            .find(|(_, p)| p.introspection.is_some())
    }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_string(),
        None => message.to_string(),
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let base_path = base_path(raw.fhir.base_path.as_deref().unwrap_or("/fhir"))?;
        let max_body_bytes = raw.fhir.max_body_bytes.unwrap_or(1 << 20);
        if !(1024..=64 << 20).contains(&max_body_bytes) {
            return Err(ConfigError::new(
                "fhir.maxBodyBytes",
                "must be between 1024 and 67108864",
            ));
        }
        let max_response_bytes = raw.fhir.max_response_bytes.unwrap_or(8 << 20);
        if !(1024..=256 << 20).contains(&max_response_bytes) {
            return Err(ConfigError::new(
                "fhir.maxResponseBytes",
                "must be between 1024 and 268435456",
            ));
        }
        if raw.providers.is_empty() {
            return Err(ConfigError::new(
                "providers",
                "at least one provider is required",
            ));
        }
        let mut providers: Vec<Provider> = Vec::with_capacity(raw.providers.len());
        for (i, p) in raw.providers.iter().enumerate() {
            let key = format!("providers[{i}]");
            let provider = provider(&key, p)?;
            if providers.iter().any(|q| q.name == provider.name) {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    "duplicate provider name",
                ));
            }
            if providers
                .iter()
                .any(|q| q.policy.issuer == provider.policy.issuer)
            {
                return Err(ConfigError::new(
                    format!("{key}.issuer"),
                    "two providers with the same issuer (the provider is chosen by `iss`)",
                ));
            }
            providers.push(provider);
        }
        let claim_names = claim_names(raw.claims)?;
        let rules =
            RuleSet::compile(&raw.rules).map_err(|e| ConfigError::new("rules", e.to_string()))?;
        let forward = forward(raw.forward)?;
        let audit = audit::audit(raw.audit, forward.pseudonym_key.as_deref())?;
        let realm = raw.realm.unwrap_or_else(|| "fhirgate".to_string());
        if realm.is_empty()
            || realm
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(ConfigError::new(
                "realm",
                "must be non-empty without quotes, backslashes or control characters",
            ));
        }
        let cache = raw.cache.unwrap_or(raw::RawCache {
            max_entries: None,
            shared_slots: None,
            replay_slots: None,
        });
        let cache_max_entries = cache.max_entries.unwrap_or(10_000);
        if !(1..=1_000_000).contains(&cache_max_entries) {
            return Err(ConfigError::new(
                "cache.maxEntries",
                "must be between 1 and 1000000",
            ));
        }
        let shared_cache_slots = cache.shared_slots.unwrap_or(4096);
        if shared_cache_slots > 1_000_000 {
            return Err(ConfigError::new(
                "cache.sharedSlots",
                "must be at most 1000000",
            ));
        }
        let replay_slots = sender::replay_slots(cache.replay_slots)?;
        let public_base_url = sender::public_base_url(raw.fhir.public_base_url.as_deref())?;
        let retry_after_secs = secs(raw.retry_after, defaults::RETRY_AFTER).max(1);
        let consent = consent::consent(raw.consent)?;
        Ok(Config {
            base_path,
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            max_response_bytes: usize::try_from(max_response_bytes).unwrap_or(usize::MAX),
            public_discovery: raw.fhir.public_discovery.unwrap_or(true),
            public_base_url,
            providers,
            claim_names,
            smart_enforce: raw.smart.as_ref().and_then(|s| s.enforce).unwrap_or(true),
            narrow_searches: raw
                .smart
                .as_ref()
                .and_then(|s| s.narrow_searches)
                .unwrap_or(true),
            rules,
            forward,
            realm,
            cache_max_entries,
            shared_cache_slots,
            replay_slots,
            retry_after_secs,
            audit,
            consent,
        })
    }
}

fn base_path(path: &str) -> Result<String, ConfigError> {
    let bad = !path.starts_with('/')
        || path.contains("//")
        || path.split('/').any(|s| s == "." || s == "..")
        || path.chars().any(|c| {
            matches!(c, '%' | '?' | '#' | ';' | '\\') || c.is_whitespace() || c.is_control()
        });
    if bad {
        return Err(ConfigError::new(
            "fhir.basePath",
            "must be an absolute path like \"/fhir\" without `%`, `?`, `#`, `;`, `.`/`..` segments",
        ));
    }
    Ok(path.trim_end_matches('/').to_string())
}

/// A configured duration, or its default, in milliseconds.
fn millis(value: Option<Duration>, default: Duration) -> u64 {
    value.unwrap_or(default).as_millis()
}

/// A configured duration, or its default, in whole seconds (rounded up).
fn secs(value: Option<Duration>, default: Duration) -> u64 {
    value.unwrap_or(default).as_secs_ceil()
}

/// The defaults of every duration in the configuration (README, Configuration reference).
pub mod defaults {
    use super::Duration;

    /// `retryAfter`.
    pub const RETRY_AFTER: Duration = Duration::from_secs(5);
    /// `providers[].clockSkew`.
    pub const CLOCK_SKEW: Duration = Duration::from_secs(30);
    /// `providers[].maxLifetime`.
    pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
    /// `providers[].jwks.remote.refresh`.
    pub const JWKS_REFRESH: Duration = Duration::from_secs(300);
    /// `providers[].jwks.remote.timeout` and `audit.collector.timeout`.
    pub const CALLOUT_TIMEOUT: Duration = Duration::from_secs(2);
    /// `providers[].jwks.remote.maxStaleness`.
    pub const JWKS_MAX_STALENESS: Duration = Duration::from_secs(24 * 3600);
    /// `providers[].jwks.remote.minRefetchInterval`.
    pub const JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);
    /// `providers[].introspection.cacheTtl`.
    pub const INTROSPECTION_CACHE_TTL: Duration = Duration::from_secs(60);
    /// `providers[].introspection.negativeCacheTtl`.
    pub const INTROSPECTION_NEGATIVE_TTL: Duration = Duration::from_secs(10);
    /// `providers[].introspection.timeout`.
    pub const INTROSPECTION_TIMEOUT: Duration = Duration::from_secs(1);
    /// `audit.collector.flushInterval`.
    pub const AUDIT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
    /// `providers[].senderConstraint.dpopMaxAge`.
    pub const DPOP_MAX_AGE: Duration = Duration::from_secs(60);
}

fn non_empty(key: String, value: &str) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::new(key, "must not be empty"));
    }
    Ok(value.to_string())
}

fn decode_secret(key: String, value: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| ConfigError::new(key.clone(), "must be base64url"))?;
    if bytes.len() < 32 {
        return Err(ConfigError::new(key, "must decode to at least 32 bytes"));
    }
    Ok(bytes)
}

fn provider(key: &str, p: &RawProvider) -> Result<Provider, ConfigError> {
    let name = non_empty(format!("{key}.name"), &p.name)?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ConfigError::new(
            format!("{key}.name"),
            "use letters, digits, `-`, `_`, `.`",
        ));
    }
    let issuer = non_empty(format!("{key}.issuer"), &p.issuer)?;
    if p.audiences.is_empty() || p.audiences.iter().any(|a| a.trim().is_empty()) {
        return Err(ConfigError::new(
            format!("{key}.audiences"),
            "at least one non-empty audience is required",
        ));
    }
    let hmac_secret = match &p.hmac_secret {
        Some(s) => Some(decode_secret(format!("{key}.hmacSecret"), s)?),
        None => None,
    };
    let algorithms = algorithms(key, p.algorithms.as_deref(), hmac_secret.is_some())?;
    let accepted_types = match &p.accepted_types {
        Some(types) if types.is_empty() || types.iter().any(|t| t.trim().is_empty()) => {
            return Err(ConfigError::new(
                format!("{key}.acceptedTypes"),
                "must list at least one non-empty `typ`",
            ))
        }
        Some(types) => types.clone(),
        None => DEFAULT_TYPES.iter().map(|t| t.to_string()).collect(),
    };
    let clock_skew_secs = secs(p.clock_skew, defaults::CLOCK_SKEW);
    if clock_skew_secs > 300 {
        return Err(ConfigError::new(
            format!("{key}.clockSkew"),
            "must be at most 5m",
        ));
    }
    let max_lifetime_secs = secs(p.max_lifetime, defaults::MAX_LIFETIME);
    if max_lifetime_secs == 0 {
        return Err(ConfigError::new(
            format!("{key}.maxLifetime"),
            "must be positive",
        ));
    }
    let policy = JwtPolicy {
        issuer,
        audiences: p.audiences.clone(),
        algorithms: algorithms.clone(),
        accepted_types,
        clock_skew_secs,
        max_lifetime_secs: Some(max_lifetime_secs),
    };
    let keys = match &p.jwks {
        None if hmac_secret.is_some() => Some(KeySource::Inline(Rc::new(
            KeySet::empty()
                .with_hmac_secret(hmac_secret.as_deref().unwrap_or_default(), &algorithms)
                .map_err(|e| ConfigError::new(format!("{key}.hmacSecret"), e.to_string()))?,
        ))),
        None => None,
        Some(jwks) => Some(key_source(key, jwks, &algorithms, hmac_secret.as_deref())?),
    };
    let introspection = match &p.introspection {
        Some(i) => Some(introspection(&format!("{key}.introspection"), i)?),
        None => None,
    };
    if keys.is_none() && introspection.is_none() {
        return Err(ConfigError::new(
            format!("{key}.jwks"),
            "a provider needs `jwks` (or `hmacSecret`) or `introspection`",
        ));
    }
    if keys.is_none() && introspection.as_ref().map(|i| i.mode) == Some(IntrospectionMode::Always) {
        return Err(ConfigError::new(
            format!("{key}.introspection.mode"),
            "`always` needs `jwks` to check the JWT signature first",
        ));
    }
    let sender = sender::sender_policy(key, p.sender_constraint.as_ref())?;
    Ok(Provider {
        name,
        policy,
        keys,
        introspection,
        sender,
    })
}

fn algorithms(
    key: &str,
    names: Option<&[String]>,
    has_secret: bool,
) -> Result<Vec<Algorithm>, ConfigError> {
    let key = format!("{key}.algorithms");
    let Some(names) = names else {
        return Ok(Algorithm::ASYMMETRIC.to_vec());
    };
    if names.is_empty() {
        return Err(ConfigError::new(key, "must list at least one algorithm"));
    }
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if name.eq_ignore_ascii_case("none") {
            return Err(ConfigError::new(
                format!("{key}[{i}]"),
                "`none` is never accepted",
            ));
        }
        let alg = Algorithm::from_name(name).ok_or_else(|| {
            ConfigError::new(
                format!("{key}[{i}]"),
                format!("unsupported algorithm `{name}`"),
            )
        })?;
        if !alg.is_asymmetric() && !has_secret {
            return Err(ConfigError::new(
                format!("{key}[{i}]"),
                "HMAC algorithms need an explicit `hmacSecret` for this provider",
            ));
        }
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    Ok(out)
}

fn key_source(
    key: &str,
    jwks: &raw::RawJwks,
    algorithms: &[Algorithm],
    hmac_secret: Option<&[u8]>,
) -> Result<KeySource, ConfigError> {
    match (&jwks.inline, &jwks.remote) {
        (Some(inline), None) => {
            let bytes = serde_json::to_vec(inline)
                .map_err(|_| ConfigError::new(format!("{key}.jwks.inline"), "not a JSON object"))?;
            let (mut set, warnings) = KeySet::from_jwks(&bytes, algorithms)
                .map_err(|e| ConfigError::new(format!("{key}.jwks.inline"), e.to_string()))?;
            if let Some(secret) = hmac_secret {
                set = set
                    .with_hmac_secret(secret, algorithms)
                    .map_err(|e| ConfigError::new(format!("{key}.hmacSecret"), e.to_string()))?;
            }
            if set.is_empty() {
                let why = if warnings.is_empty() {
                    "no usable key".to_string()
                } else {
                    format!("no usable key ({})", warnings.join("; "))
                };
                return Err(ConfigError::new(format!("{key}.jwks.inline"), why));
            }
            Ok(KeySource::Inline(Rc::new(set)))
        }
        (None, Some(remote)) => Ok(KeySource::Remote(remote_jwks(
            &format!("{key}.jwks.remote"),
            remote,
            hmac_secret,
        )?)),
        _ => Err(ConfigError::new(
            format!("{key}.jwks"),
            "give exactly one of `inline` and `remote`",
        )),
    }
}

fn callout_target(
    key: &str,
    cluster: &str,
    authority: &str,
    path: &str,
) -> Result<(), ConfigError> {
    non_empty(format!("{key}.cluster"), cluster)?;
    non_empty(format!("{key}.authority"), authority)?;
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::new(
            format!("{key}.path"),
            "must be an absolute path",
        ));
    }
    Ok(())
}

fn remote_jwks(
    key: &str,
    r: &RawRemoteJwks,
    hmac_secret: Option<&[u8]>,
) -> Result<RemoteJwks, ConfigError> {
    callout_target(key, &r.cluster, &r.authority, &r.path)?;
    let refresh_ms = millis(r.refresh, defaults::JWKS_REFRESH);
    if refresh_ms < 1000 {
        return Err(ConfigError::new(
            format!("{key}.refresh"),
            "must be at least 1s",
        ));
    }
    let timeout_ms = millis(r.timeout, defaults::CALLOUT_TIMEOUT);
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(ConfigError::new(
            format!("{key}.timeout"),
            "must be between 1ms and 60s",
        ));
    }
    let max_staleness_ms = millis(r.max_staleness, defaults::JWKS_MAX_STALENESS);
    if max_staleness_ms < refresh_ms {
        return Err(ConfigError::new(
            format!("{key}.maxStaleness"),
            "must be at least `refresh`",
        ));
    }
    let min_refetch_interval_ms = millis(r.min_refetch_interval, defaults::JWKS_MIN_REFETCH);
    Ok(RemoteJwks {
        cluster: r.cluster.clone(),
        authority: r.authority.clone(),
        path: r.path.clone(),
        refresh_ms,
        timeout_ms,
        max_staleness_ms,
        min_refetch_interval_ms,
        hmac_secret: hmac_secret.map(|s| s.to_vec()),
    })
}

fn introspection(key: &str, i: &RawIntrospection) -> Result<Introspection, ConfigError> {
    callout_target(key, &i.cluster, &i.authority, &i.path)?;
    let client_id = non_empty(format!("{key}.clientId"), &i.client_id)?;
    let client_secret = non_empty(format!("{key}.clientSecret"), &i.client_secret)?;
    let mode = match i.mode.as_deref().unwrap_or("opaque") {
        "opaque" => IntrospectionMode::Opaque,
        "always" => IntrospectionMode::Always,
        _ => {
            return Err(ConfigError::new(
                format!("{key}.mode"),
                "must be `opaque` or `always`",
            ))
        }
    };
    let auth = match i.auth_method.as_deref().unwrap_or("client_secret_basic") {
        "client_secret_basic" => ClientAuth::Basic,
        "client_secret_post" => ClientAuth::Post,
        _ => {
            return Err(ConfigError::new(
                format!("{key}.authMethod"),
                "must be `client_secret_basic` or `client_secret_post`",
            ))
        }
    };
    let cache_ttl_ms = millis(i.cache_ttl, defaults::INTROSPECTION_CACHE_TTL);
    if cache_ttl_ms > 3_600_000 {
        return Err(ConfigError::new(
            format!("{key}.cacheTtl"),
            "must be at most 1h",
        ));
    }
    let negative_cache_ttl_ms = millis(i.negative_cache_ttl, defaults::INTROSPECTION_NEGATIVE_TTL);
    if negative_cache_ttl_ms > 300_000 {
        return Err(ConfigError::new(
            format!("{key}.negativeCacheTtl"),
            "must be at most 5m",
        ));
    }
    let timeout_ms = millis(i.timeout, defaults::INTROSPECTION_TIMEOUT);
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(ConfigError::new(
            format!("{key}.timeout"),
            "must be between 1ms and 60s",
        ));
    }
    Ok(Introspection {
        cluster: i.cluster.clone(),
        authority: i.authority.clone(),
        path: i.path.clone(),
        client_id,
        client_secret,
        mode,
        auth,
        cache_ttl_ms,
        negative_cache_ttl_ms,
        timeout_ms,
    })
}

fn claim_names(raw: Option<raw::RawClaims>) -> Result<ClaimNames, ConfigError> {
    let mut names = ClaimNames::default();
    let Some(raw) = raw else { return Ok(names) };
    if let Some(scope) = raw.scope {
        names.scope = match scope {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(list) => list,
        };
        if names.scope.is_empty() || names.scope.iter().any(|s| s.is_empty()) {
            return Err(ConfigError::new(
                "claims.scope",
                "must name at least one claim",
            ));
        }
    }
    if let Some(patient) = raw.patient {
        names.patient = non_empty("claims.patient".into(), &patient)?;
    }
    if let Some(fhir_user) = raw.fhir_user {
        names.fhir_user = non_empty("claims.fhirUser".into(), &fhir_user)?;
    }
    Ok(names)
}

/// Headers that identity forwarding must never set.
const RESERVED_HEADERS: [&str; 11] = [
    "authorization",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "cookie",
    "x-forwarded-for",
    "x-request-id",
];

fn forward(raw: Option<raw::RawForward>) -> Result<Forward, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Forward::default());
    };
    let pseudonym_key = match &raw.pseudonym_secret {
        Some(s) => Some(decode_secret("forward.pseudonymSecret".into(), s)?),
        None => None,
    };
    let mut headers = Vec::new();
    for (name, source) in &raw.headers {
        let key = format!("forward.headers.{name}");
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_name || RESERVED_HEADERS.contains(&name.as_str()) {
            return Err(ConfigError::new(
                key,
                "header names must be lowercase `a-z0-9-` and not a reserved header",
            ));
        }
        let source = match source.as_str() {
            "subject" => IdentitySource::Subject,
            "issuer" => IdentitySource::Issuer,
            "clientId" => IdentitySource::ClientId,
            "patient" => IdentitySource::Patient,
            "fhirUser" => IdentitySource::FhirUser,
            "scopes" => IdentitySource::Scopes,
            "pseudonym" if pseudonym_key.is_some() => IdentitySource::Pseudonym,
            "pseudonym" => {
                return Err(ConfigError::new(key, "`pseudonym` needs `forward.pseudonymSecret`"))
            }
            other => match other.strip_prefix("claims.") {
                Some(claim) if !claim.is_empty() => IdentitySource::Claim(claim.to_string()),
                _ => {
                    return Err(ConfigError::new(
                        key,
                        "use subject, issuer, clientId, patient, fhirUser, scopes, pseudonym or claims.<name>",
                    ))
                }
            },
        };
        headers.push((name.clone(), source));
    }
    Ok(Forward {
        remove_authorization: raw.remove_authorization.unwrap_or(false),
        headers,
        pseudonym_key,
    })
}
