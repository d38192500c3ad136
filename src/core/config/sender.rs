//! `providers[].senderConstraint`, `fhir.publicBaseUrl` and `cache.replaySlots` (contract §5),
//! validated and compiled.

use super::raw::RawSenderConstraint;
use super::{defaults, millis, ConfigError};
use crate::token::dpop::htu;
use crate::token::sender::{ConstraintMode, SenderPolicy, DEFAULT_DPOP_ALGORITHMS};
use crate::token::Algorithm;

/// Default number of replay-cache slots (each holds up to 32 proofs).
pub const DEFAULT_REPLAY_SLOTS: usize = 2048;
/// Most replay-cache slots accepted.
pub const MAX_REPLAY_SLOTS: usize = 262_144;

/// Compiles a provider's `senderConstraint` (`key` is the provider's path, `providers[i]`).
pub(super) fn sender_policy(
    key: &str,
    raw: Option<&RawSenderConstraint>,
) -> Result<SenderPolicy, ConfigError> {
    let Some(raw) = raw else {
        return Ok(SenderPolicy::default());
    };
    let key = format!("{key}.senderConstraint");
    let dpop = mode(&format!("{key}.dpop"), raw.dpop.as_deref())?;
    let mtls = mode(&format!("{key}.mtls"), raw.mtls.as_deref())?;
    let dpop_algorithms = match &raw.dpop_algorithms {
        None => DEFAULT_DPOP_ALGORITHMS.to_vec(),
        Some(names) => algorithms(&format!("{key}.dpopAlgorithms"), names)?,
    };
    let max_age_key = format!("{key}.dpopMaxAge");
    let dpop_max_age_ms = millis(raw.dpop_max_age, defaults::DPOP_MAX_AGE);
    if !(1_000..=300_000).contains(&dpop_max_age_ms) {
        return Err(ConfigError::new(max_age_key, "must be between 1s and 5m"));
    }
    Ok(SenderPolicy {
        dpop,
        dpop_algorithms,
        dpop_max_age_ms,
        mtls,
    })
}

fn mode(key: &str, value: Option<&str>) -> Result<ConstraintMode, ConfigError> {
    match value.unwrap_or("allowed") {
        "off" => Ok(ConstraintMode::Off),
        "allowed" => Ok(ConstraintMode::Allowed),
        "required" => Ok(ConstraintMode::Required),
        _ => Err(ConfigError::new(
            key,
            "must be `off`, `allowed` or `required`",
        )),
    }
}

fn algorithms(key: &str, names: &[String]) -> Result<Vec<Algorithm>, ConfigError> {
    if names.is_empty() {
        return Err(ConfigError::new(key, "must list at least one algorithm"));
    }
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let item = format!("{key}[{i}]");
        let alg = Algorithm::from_name(name).ok_or_else(|| {
            ConfigError::new(item.clone(), format!("unsupported algorithm `{name}`"))
        })?;
        if !alg.is_asymmetric() {
            return Err(ConfigError::new(
                item,
                "DPoP proofs are signed with asymmetric keys only",
            ));
        }
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    Ok(out)
}

/// Compiles `fhir.publicBaseUrl` into its normalized form (no trailing `/`).
pub(super) fn public_base_url(raw: Option<&str>) -> Result<Option<String>, ConfigError> {
    let Some(url) = raw else {
        return Ok(None);
    };
    htu::normalize_base(url).map(Some).ok_or_else(|| {
        ConfigError::new(
            "fhir.publicBaseUrl",
            "must be an absolute http(s) URL without user information, query or fragment, e.g. \"https://fhir.example.org/fhir\"",
        )
    })
}

/// Validates `cache.replaySlots`.
pub(super) fn replay_slots(raw: Option<usize>) -> Result<usize, ConfigError> {
    let slots = raw.unwrap_or(DEFAULT_REPLAY_SLOTS);
    if !(1..=MAX_REPLAY_SLOTS).contains(&slots) {
        return Err(ConfigError::new(
            "cache.replaySlots",
            format!("must be between 1 and {MAX_REPLAY_SLOTS}"),
        ));
    }
    Ok(slots)
}

#[cfg(test)]
mod tests;
