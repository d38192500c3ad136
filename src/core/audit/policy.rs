//! The operator's `audit` choices applied to a record: how the subject appears, purpose of use
//! from the configured claim (valid codes only, bounded), and the break-the-glass flag.

use super::AuditRecord;
use crate::config::audit::{valid_purpose, Audit, SubjectMode};
use crate::forward::pseudonym;
use crate::token::VerifiedToken;

/// Most purpose-of-use values kept in one record.
pub const MAX_PURPOSES: usize = 8;

/// Purpose-of-use values of `token` under `claim`: a space-separated string or an array of
/// strings; values that are not valid codes are left out, at most [`MAX_PURPOSES`] kept.
pub fn purposes_of_use(token: &VerifiedToken, claim: &str) -> Vec<String> {
    let values: Vec<&str> = match token.claims().get(claim) {
        Some(serde_json::Value::String(s)) => s.split_ascii_whitespace().collect(),
        Some(serde_json::Value::Array(list)) => {
            list.iter().filter_map(serde_json::Value::as_str).collect()
        }
        _ => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if out.len() == MAX_PURPOSES {
            break;
        }
        if valid_purpose(v) && !out.iter().any(|o| o == v) {
            out.push(v.to_string());
        }
    }
    out
}

/// The code of a `system|code` value (the value itself without `|`).
fn code(value: &str) -> &str {
    value.rsplit('|').next().unwrap_or(value)
}

impl AuditRecord {
    /// Applies the `audit` options: subject mode, purpose of use and break-the-glass.
    pub fn apply_policy(&mut self, audit: &Audit, token: Option<&VerifiedToken>) {
        match &audit.subject {
            SubjectMode::Plain => {}
            SubjectMode::Pseudonym(key) => {
                self.subject_pseudonym = self
                    .subject
                    .take()
                    .zip(self.issuer.as_deref())
                    .and_then(|(sub, iss)| pseudonym(key, iss, &sub));
            }
            SubjectMode::Omit => self.subject = None,
        }
        if let Some(token) = token {
            self.purpose_of_use = purposes_of_use(token, &audit.purpose_of_use_claim);
        }
        let emergency = self.purpose_of_use.iter().any(|p| {
            audit
                .break_the_glass_purposes
                .iter()
                .any(|b| b.eq_ignore_ascii_case(code(p)))
        });
        self.break_the_glass |= emergency;
    }

    /// The subject as this record shows it: plain, pseudonym, or nothing.
    pub fn shown_subject(&self) -> Option<&str> {
        self.subject
            .as_deref()
            .or(self.subject_pseudonym.as_deref())
    }
}
