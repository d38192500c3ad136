//! Configuration-time errors of the rule layer. Every error names the rule and, where it applies,
//! the field (`match` or `expression`) and the problem; none of them ever carries request data.

use thiserror::Error;

/// Which CEL field of a rule an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The optional `match` condition.
    Match,
    /// The `expression` that must hold.
    Expression,
}

impl Field {
    /// The JSON key of the field.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Match => "match",
            Field::Expression => "expression",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule that cannot be compiled. `Display` is the message for operators; `code()` is stable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuleError {
    /// A rule without a name (rules are identified by name in denials and audit records).
    #[error("rules[{index}]: `name` must not be empty")]
    EmptyName {
        /// Position of the rule in the list.
        index: usize,
    },
    /// A name outside the allowed alphabet or too long.
    #[error("rules[{index}]: name {name:?} is invalid: use 1-{max} characters from A-Z a-z 0-9 . _ : - starting with a letter or digit", max = super::MAX_NAME_LEN)]
    InvalidName {
        /// Position of the rule in the list.
        index: usize,
        /// The offending name.
        name: String,
    },
    /// Two rules with the same name.
    #[error("rule '{rule}': duplicate rule name")]
    DuplicateName {
        /// The repeated name.
        rule: String,
    },
    /// CEL that does not parse.
    #[error("rule '{rule}': `{field}` does not parse: {message}")]
    Parse {
        /// The rule.
        rule: String,
        /// The field.
        field: Field,
        /// The parser's message.
        message: String,
    },
    /// An expression longer than the limit, or nested too deeply.
    #[error("rule '{rule}': `{field}` is too large: {reason}")]
    TooComplex {
        /// The rule.
        rule: String,
        /// The field.
        field: Field,
        /// What limit was passed.
        reason: String,
    },
    /// A top-level identifier that is not one of the documented variables.
    #[error("rule '{rule}': `{field}` references unknown variable '{name}' (known: {known})")]
    UnknownVariable {
        /// The rule.
        rule: String,
        /// The field.
        field: Field,
        /// The identifier.
        name: String,
        /// The variables available in this rule's phase.
        known: String,
    },
    /// A function that is neither a CEL builtin supported here nor one of fhirgate's.
    #[error("rule '{rule}': `{field}` calls unknown function '{name}'")]
    UnknownFunction {
        /// The rule.
        rule: String,
        /// The field.
        field: Field,
        /// The function name.
        name: String,
    },
    /// A function called with the wrong number of arguments or in the wrong form.
    #[error("rule '{rule}': `{field}`: {function}() {problem}")]
    BadCall {
        /// The rule.
        rule: String,
        /// The field.
        field: Field,
        /// The function name.
        function: String,
        /// What is wrong, e.g. "takes 2 arguments, got 1".
        problem: String,
    },
    /// A literal argument that can never work (an invalid scope or CIDR, ...).
    #[error("rule '{rule}': `{field}`: {function}(): {problem}")]
    BadLiteral {
        /// The rule.
        rule: String,
        /// The field.
        field: Field,
        /// The function name.
        function: String,
        /// What is wrong.
        problem: String,
    },
    /// A construct that is known not to be a boolean where a boolean is required.
    #[error("rule '{rule}': `{field}`: {problem}")]
    NotBool {
        /// The rule.
        rule: String,
        /// The field.
        field: Field,
        /// What is wrong.
        problem: String,
    },
    /// CEL syntax that this interpreter does not support (message literals, optional syntax).
    #[error("rule '{rule}': `{field}` uses unsupported syntax: {what}")]
    Unsupported {
        /// The rule.
        rule: String,
        /// The field.
        field: Field,
        /// The construct.
        what: String,
    },
    /// A bad `stepUp` block.
    #[error("rule '{rule}': stepUp: {problem}")]
    StepUp {
        /// The rule.
        rule: String,
        /// What is wrong.
        problem: String,
    },
    /// An effect used in the wrong phase (`allow`/`redact` are response-only).
    #[error("rule '{rule}': {problem}")]
    Effect {
        /// The rule.
        rule: String,
        /// What is wrong.
        problem: String,
    },
    /// A bad `message` or `description`.
    #[error("rule '{rule}': {problem}")]
    Text {
        /// The rule.
        rule: String,
        /// What is wrong.
        problem: String,
    },
}

impl RuleError {
    /// Stable identifier for logs and tooling.
    pub fn code(&self) -> &'static str {
        match self {
            RuleError::EmptyName { .. } => "rule_empty_name",
            RuleError::InvalidName { .. } => "rule_invalid_name",
            RuleError::DuplicateName { .. } => "rule_duplicate_name",
            RuleError::Parse { .. } => "rule_parse_error",
            RuleError::TooComplex { .. } => "rule_too_complex",
            RuleError::UnknownVariable { .. } => "rule_unknown_variable",
            RuleError::UnknownFunction { .. } => "rule_unknown_function",
            RuleError::BadCall { .. } => "rule_bad_call",
            RuleError::BadLiteral { .. } => "rule_bad_literal",
            RuleError::NotBool { .. } => "rule_not_bool",
            RuleError::Unsupported { .. } => "rule_unsupported_syntax",
            RuleError::StepUp { .. } => "rule_bad_step_up",
            RuleError::Effect { .. } => "rule_bad_effect",
            RuleError::Text { .. } => "rule_bad_text",
        }
    }

    /// The name of the rule the error is about (`None` for a rule without a usable name).
    pub fn rule(&self) -> Option<&str> {
        match self {
            RuleError::EmptyName { .. } | RuleError::InvalidName { .. } => None,
            RuleError::DuplicateName { rule }
            | RuleError::Parse { rule, .. }
            | RuleError::TooComplex { rule, .. }
            | RuleError::UnknownVariable { rule, .. }
            | RuleError::UnknownFunction { rule, .. }
            | RuleError::BadCall { rule, .. }
            | RuleError::BadLiteral { rule, .. }
            | RuleError::NotBool { rule, .. }
            | RuleError::Unsupported { rule, .. }
            | RuleError::StepUp { rule, .. }
            | RuleError::Effect { rule, .. }
            | RuleError::Text { rule, .. } => Some(rule),
        }
    }
}
