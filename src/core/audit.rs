//! One audit record per decision, modelled on FHIR AuditEvent / IHE BALP, written as a JSON log
//! line under a fixed prefix. It never carries a token, a secret, or search values other than the
//! patient reference: it names the interaction, the resource type and id, the identities, and the
//! stable reason code.

mod policy;
pub mod ship;

use serde::Serialize;

use crate::decision::{Decision, RequestInfo};
use crate::outcome::Denial;
use crate::response::ResponseSummary;
use crate::token::{TokenKind, VerifiedToken};

/// Prefix of every audit log line, so log shippers can route them.
pub const AUDIT_PREFIX: &str = "fhirgate.audit ";

/// Whether the request was allowed (went upstream) or denied (answered by the filter).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// The request went upstream (its response may still have been filtered).
    Allow,
    /// The filter answered (or replaced the response with) a denial.
    Deny,
}

impl AuditOutcome {
    /// `allow` or `deny`, as in the record and the metric names.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Allow => "allow",
            AuditOutcome::Deny => "deny",
        }
    }
}

/// One decision, ready to be logged.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// RFC 3339 UTC time of the decision.
    pub time: String,
    /// `x-request-id` of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `allow` or `deny`.
    pub outcome: AuditOutcome,
    /// HTTP status the filter answered (0 when the request went upstream).
    pub status: u16,
    /// Stable reason code (`allow`, `token.expired`, `smart.insufficient_scope`, …).
    pub reason: String,
    /// The CEL rule that denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// HTTP method.
    pub method: String,
    /// FHIR interaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interaction: Option<String>,
    /// FHIR resource type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// FHIR resource id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Patient launch context of the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// Token subject (`audit.subject: plain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Pairwise pseudonym of the subject (`audit.subject: pseudonym`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_pseudonym: Option<String>,
    /// OAuth client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Token issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `jwt` or `opaque`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_kind: Option<&'static str>,
    /// How the token is bound to its sender (`none`, `dpop`, `mtls`, `dpop+mtls`, from its
    /// `cnf`): on an allowed request the binding was proven. Never the key or the certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<&'static str>,
    /// Downstream peer.
    pub source: String,
    /// Purpose of use from the token (`audit.purposeOfUseClaim`), valid codes only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub purpose_of_use: Vec<String>,
    /// Rules of effect `flag` that fired (e.g. break-the-glass).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Whether a break-the-glass rule fired.
    pub break_the_glass: bool,
    /// The search was narrowed to the launch patient (`smart.narrowSearches`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub narrowed: bool,
    /// Resources withheld from the response.
    pub withheld: u32,
    /// What the response check withheld (by cause, label codes, rules) and redacted.
    #[serde(flatten)]
    pub response: ResponseSummary,
}

impl AuditRecord {
    fn base(now_ms: u64, info: &RequestInfo, token: Option<&VerifiedToken>) -> Self {
        AuditRecord {
            time: rfc3339(now_ms),
            request_id: info.request_id.clone(),
            outcome: AuditOutcome::Allow,
            status: 0,
            reason: "allow".to_string(),
            rule: None,
            method: info.method.clone(),
            interaction: None,
            resource_type: None,
            resource_id: None,
            patient: token.and_then(|t| t.patient().map(str::to_string)),
            subject: token
                .and_then(|t| t.subject().map(str::to_string))
                .filter(|s| !s.is_empty()),
            subject_pseudonym: None,
            client_id: token.and_then(|t| t.client_id().map(str::to_string)),
            issuer: token.map(|t| t.issuer().to_string()),
            token_kind: token.map(|t| match t.kind() {
                TokenKind::Jwt => "jwt",
                TokenKind::Opaque => "opaque",
            }),
            binding: token.map(|t| t.binding_kind().as_str()),
            source: info.source_address.clone(),
            purpose_of_use: Vec::new(),
            flags: Vec::new(),
            break_the_glass: false,
            narrowed: false,
            withheld: 0,
            response: ResponseSummary::default(),
        }
    }

    /// The record of a decision made by [`crate::decision::decide`].
    pub fn new(
        now_ms: u64,
        info: &RequestInfo,
        token: Option<&VerifiedToken>,
        decision: &Decision,
        withheld: u32,
    ) -> Self {
        let mut record = AuditRecord::base(now_ms, info, token);
        if let Some(fhir) = &decision.fhir {
            record.interaction = Some(fhir.interaction.as_str().to_string());
            record.resource_type = fhir.resource_type.clone();
            record.resource_id = fhir.id.clone();
        }
        record.break_the_glass = decision
            .flags
            .iter()
            .any(|f| f.contains("break-the-glass") || f.contains("btg"));
        record.flags = decision.flags.clone();
        record.narrowed = decision.narrowed.is_some();
        record.withheld = withheld;
        if let Some(denial) = &decision.denial {
            record.set_denial(denial);
        }
        record
    }

    /// The record of a request refused before (or without) a full decision.
    pub fn denied(
        now_ms: u64,
        info: &RequestInfo,
        token: Option<&VerifiedToken>,
        denial: &Denial,
    ) -> Self {
        let mut record = AuditRecord::base(now_ms, info, token);
        record.set_denial(denial);
        record
    }

    /// The record of a public discovery request (capabilities, SMART configuration).
    pub fn public(now_ms: u64, info: &RequestInfo) -> Self {
        let mut record = AuditRecord::base(now_ms, info, None);
        record.reason = "public.discovery".to_string();
        record.interaction = Some("capabilities".to_string());
        record
    }

    fn set_denial(&mut self, denial: &Denial) {
        self.outcome = AuditOutcome::Deny;
        self.status = denial.status();
        self.reason = denial.reason.clone();
        self.rule = denial.rule.clone();
    }

    /// The record as one JSON object (what the collector receives, one per line).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// The log line: the audit prefix and the record as one JSON object.
    pub fn to_log_line(&self) -> String {
        format!("{AUDIT_PREFIX}{}", self.to_json())
    }

    /// Counter name for this record's decision and reason.
    pub fn metric_name(&self) -> String {
        crate::metrics::decision(self.outcome.as_str(), &self.reason)
    }
}

/// Formats Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn rfc3339(now_ms: u64) -> String {
    let secs = now_ms / 1000;
    let millis = now_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's civil calendar algorithm.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn formats_time() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_435_200_123), "2026-11-23T12:00:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
