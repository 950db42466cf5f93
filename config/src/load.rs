//! Loading a [`Config`] from YAML or JSON text or a file, parsed then validated.

use std::path::Path;

use super::{Config, ValidationError, validate};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Syntax or type error; serde_yaml's message names the field path and position.
    #[error("parsing config: {0}")]
    Parse(String),
    #[error("invalid config: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ValidationError>),
}

/// Parses YAML or JSON (JSON is read by the YAML parser, which names field paths in errors)
/// and validates the result.
pub fn parse_str(text: &str) -> Result<Config, LoadError> {
    let config: Config = serde_yaml::from_str(text).map_err(|e| LoadError::Parse(e.to_string()))?;
    check(config)
}

/// Validates an already deserialised config (e.g. from the controller stream).
pub fn check(config: Config) -> Result<Config, LoadError> {
    let errors = validate(&config);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(LoadError::Invalid(errors))
    }
}

/// Reads and parses `path` (YAML or JSON).
pub fn load_file(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_str(&text)
}
