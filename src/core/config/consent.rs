//! The `consent` block: the built-in security-label check (see [`crate::consent`]).

use super::{non_empty, raw, ConfigError};
use crate::consent::{parse_label, ConsentPolicy, MAX_LABELS};

/// Validates the `consent` block; defaults when absent.
pub(super) fn consent(raw: Option<raw::RawConsent>) -> Result<ConsentPolicy, ConfigError> {
    let mut policy = ConsentPolicy::default();
    let Some(raw) = raw else { return Ok(policy) };
    policy.enforce = raw.enforce.unwrap_or(true);
    if let Some(claim) = raw.claim {
        policy.claim = non_empty("consent.claim".into(), &claim)?;
    }
    if let Some(labels) = raw.labels {
        if labels.len() > MAX_LABELS {
            return Err(ConfigError::new(
                "consent.labels",
                format!("at most {MAX_LABELS} labels"),
            ));
        }
        policy.labels = Vec::with_capacity(labels.len());
        for (i, text) in labels.iter().enumerate() {
            let key = format!("consent.labels[{i}]");
            let label = parse_label(text).ok_or_else(|| {
                ConfigError::new(
                    key.clone(),
                    "must be `system|code` (both non-empty, no spaces)",
                )
            })?;
            if policy.labels.contains(&label) {
                return Err(ConfigError::new(key, "duplicate label"));
            }
            policy.labels.push(label);
        }
    }
    Ok(policy)
}
