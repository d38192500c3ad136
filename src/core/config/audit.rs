//! The `audit` block: what the audit record says about the subject, where purpose of use comes
//! from, what counts as break-the-glass, the access-log decision data, and the optional batched
//! copy of the records to an audit collector.

use serde::Deserialize;

use super::duration::Duration;

use super::{callout_target, decode_secret, defaults, millis, ConfigError};

/// `audit` as written in the plugin configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAudit {
    /// `plain`, `pseudonym` or `omit`.
    pub subject: Option<String>,
    /// Base64url key for `subject: pseudonym`.
    pub pseudonym_secret: Option<String>,
    /// Claim (or introspection member) holding the purpose of use.
    pub purpose_of_use_claim: Option<String>,
    /// Purpose-of-use codes that mean break-the-glass.
    pub break_the_glass_purposes: Option<Vec<String>>,
    /// Set the decision data in Envoy's filter state for the access log.
    pub access_log: Option<bool>,
    /// Batched shipping to an audit collector.
    pub collector: Option<RawCollector>,
}

/// `audit.collector` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCollector {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub batch_size: Option<usize>,
    pub flush_interval: Option<Duration>,
    pub max_queue: Option<usize>,
    pub max_queue_bytes: Option<usize>,
    pub timeout: Option<Duration>,
    pub max_in_flight: Option<usize>,
}

/// How the audit record names the token's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectMode {
    /// The `sub` claim as is (`subject`).
    Plain,
    /// base64url(HMAC-SHA256(key, `iss` ‖ 0x00 ‖ `sub`)) (`subjectPseudonym`).
    Pseudonym(Vec<u8>),
    /// Neither.
    Omit,
}

/// The compiled `audit` block.
#[derive(Debug, Clone)]
pub struct Audit {
    /// How the subject appears in records and in the access-log data.
    pub subject: SubjectMode,
    /// Claim holding the purpose of use.
    pub purpose_of_use_claim: String,
    /// Codes (the part after `|` of `system|code`) that set `breakTheGlass`.
    pub break_the_glass_purposes: Vec<String>,
    /// Whether the decision data is set in Envoy's filter state.
    pub access_log: bool,
    /// The collector, when records are also shipped.
    pub collector: Option<Collector>,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            subject: SubjectMode::Plain,
            purpose_of_use_claim: "purpose_of_use".to_string(),
            break_the_glass_purposes: vec!["BTG".to_string(), "ETREAT".to_string()],
            access_log: false,
            collector: None,
        }
    }
}

/// Where and how audit records are shipped in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collector {
    /// Envoy cluster of the collector.
    pub cluster: String,
    /// `:authority` of the POST.
    pub authority: String,
    /// Path of the POST.
    pub path: String,
    /// Records per batch (a batch is sent as soon as it is full).
    pub batch_size: usize,
    /// Longest a record waits before a partial batch is sent.
    pub flush_interval_ms: u64,
    /// Records queued per worker at most; newer records are dropped beyond.
    pub max_queue: usize,
    /// Bytes queued per worker at most; newer records are dropped beyond.
    pub max_queue_bytes: usize,
    /// Callout timeout.
    pub timeout_ms: u64,
    /// Batches in flight per worker at most.
    pub max_in_flight: usize,
}

fn bounded(
    key: &str,
    value: Option<usize>,
    default: usize,
    range: (usize, usize),
) -> Result<usize, ConfigError> {
    let v = value.unwrap_or(default);
    if v < range.0 || v > range.1 {
        return Err(ConfigError::new(
            key,
            format!("must be between {} and {}", range.0, range.1),
        ));
    }
    Ok(v)
}

fn collector(c: &RawCollector) -> Result<Collector, ConfigError> {
    let key = "audit.collector";
    callout_target(key, &c.cluster, &c.authority, &c.path)?;
    let flush_interval_ms = millis(c.flush_interval, defaults::AUDIT_FLUSH_INTERVAL);
    if !(100..=60_000).contains(&flush_interval_ms) {
        return Err(ConfigError::new(
            "audit.collector.flushInterval",
            "must be between 100ms and 60s",
        ));
    }
    let timeout_ms = millis(c.timeout, defaults::CALLOUT_TIMEOUT);
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(ConfigError::new(
            "audit.collector.timeout",
            "must be between 1ms and 60s",
        ));
    }
    let batch_size = bounded("audit.collector.batchSize", c.batch_size, 100, (1, 10_000))?;
    let max_queue = bounded(
        "audit.collector.maxQueue",
        c.max_queue,
        10_000,
        (1, 1_000_000),
    )?;
    let max_queue_bytes = bounded(
        "audit.collector.maxQueueBytes",
        c.max_queue_bytes,
        8 << 20,
        (64 << 10, 256 << 20),
    )?;
    let max_in_flight = bounded("audit.collector.maxInFlight", c.max_in_flight, 2, (1, 64))?;
    Ok(Collector {
        cluster: c.cluster.clone(),
        authority: c.authority.clone(),
        path: c.path.clone(),
        batch_size,
        flush_interval_ms,
        max_queue,
        max_queue_bytes,
        timeout_ms,
        max_in_flight,
    })
}

/// A purpose-of-use code: `code` or `system|code`, visible ASCII without quotes or spaces.
pub fn valid_purpose(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/|-#".contains(&b))
}

/// Compiles the `audit` block. `forward_key` is `forward.pseudonymSecret`, which the audit key
/// must differ from (the two pseudonyms must not be linkable).
pub fn audit(raw: Option<RawAudit>, forward_key: Option<&[u8]>) -> Result<Audit, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Audit::default());
    };
    let mut out = Audit::default();
    let secret = match &raw.pseudonym_secret {
        Some(s) => Some(decode_secret("audit.pseudonymSecret".into(), s)?),
        None => None,
    };
    out.subject = match (raw.subject.as_deref().unwrap_or("plain"), secret) {
        ("pseudonym", Some(key)) => {
            if forward_key == Some(key.as_slice()) {
                return Err(ConfigError::new(
                    "audit.pseudonymSecret",
                    "must differ from `forward.pseudonymSecret`",
                ));
            }
            SubjectMode::Pseudonym(key)
        }
        ("pseudonym", None) => {
            return Err(ConfigError::new(
                "audit.pseudonymSecret",
                "required with `subject: pseudonym`",
            ))
        }
        (_, Some(_)) => {
            return Err(ConfigError::new(
                "audit.pseudonymSecret",
                "only used with `subject: pseudonym`",
            ))
        }
        ("plain", _) => SubjectMode::Plain,
        ("omit", _) => SubjectMode::Omit,
        _ => {
            return Err(ConfigError::new(
                "audit.subject",
                "must be `plain`, `pseudonym` or `omit`",
            ))
        }
    };
    if let Some(claim) = raw.purpose_of_use_claim {
        if claim.trim().is_empty() {
            return Err(ConfigError::new(
                "audit.purposeOfUseClaim",
                "must not be empty",
            ));
        }
        out.purpose_of_use_claim = claim;
    }
    if let Some(codes) = raw.break_the_glass_purposes {
        for (i, code) in codes.iter().enumerate() {
            if !valid_purpose(code) || code.contains('|') {
                return Err(ConfigError::new(
                    format!("audit.breakTheGlassPurposes[{i}]"),
                    "must be a code such as `BTG` (letters, digits, `._:/-#`)",
                ));
            }
        }
        out.break_the_glass_purposes = codes;
    }
    out.access_log = raw.access_log.unwrap_or(false);
    out.collector = match &raw.collector {
        Some(c) => Some(collector(c)?),
        None => None,
    };
    Ok(out)
}
