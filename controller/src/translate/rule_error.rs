//! Why a route rule cannot be served: the typed error translation's rule checks return, each
//! carrying the condition reason it becomes. A rule with an error is left out of the route; the
//! route is `Accepted=False` when no rule is left, else `PartiallyInvalid=True`, both with
//! [`RuleError::reason`] and the error as the message (prefixed with the rule's index).

use crate::model::route::FilterKind;
use crate::translate::reason::Reason;

/// A rule's problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// A filter type this kind of route does not support.
    #[error("filter {:?} is not supported", .0.as_str())]
    UnsupportedFilter(FilterKind),
    /// A filter without the settings its type names.
    #[error("filter {0} has no settings")]
    MissingSettings(FilterKind),
    /// A value Pylon cannot serve: a match, timeout, retry, redirect or rewrite setting.
    #[error("{0}")]
    UnsupportedValue(String),
    /// What the data plane's own validation refuses in this rule, its problems joined.
    #[error("{0}")]
    DataPlane(String),
}

impl RuleError {
    /// The condition reason this error becomes. The spec names one for a value or filter an
    /// implementation does not support; a rule the data plane would refuse is that too.
    pub fn reason(&self) -> Reason {
        match self {
            Self::UnsupportedFilter(_)
            | Self::MissingSettings(_)
            | Self::UnsupportedValue(_)
            | Self::DataPlane(_) => Reason::UnsupportedValue,
        }
    }
}

/// The model's and the converters' value checks say what is wrong in words.
impl From<String> for RuleError {
    fn from(message: String) -> Self {
        Self::UnsupportedValue(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_value_and_every_error_is_unsupported_value() {
        let errors = [
            (
                RuleError::UnsupportedFilter(FilterKind::from("Foo")),
                r#"filter "Foo" is not supported"#,
            ),
            (
                RuleError::MissingSettings(FilterKind::Cors),
                "filter CORS has no settings",
            ),
            (
                RuleError::from("retry code 99999".to_string()),
                "retry code 99999",
            ),
        ];
        for (e, message) in errors {
            assert_eq!(e.to_string(), message);
            assert_eq!(e.reason(), Reason::UnsupportedValue);
        }
    }
}
