use std::path::PathBuf;

use thiserror::Error;

/// Invalid model settings.
#[derive(Debug, Error, PartialEq)]
pub enum ModelError {
    /// A field of a config (`ResNetConfig`, `HeadConfig`) or an argument of a constructor
    /// (`Prototypes::new`) is out of range. The message names it as this crate spells it; an
    /// application that reads the config from a file can map `owner` and `field` onto its own
    /// key.
    #[error("{owner}.{field} = {value}: {expected}")]
    Setting {
        /// The type (or constructor) the value was given to.
        owner: &'static str,
        /// The field or argument.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// A weights file could not be written, read, or matched to the configured network.
    #[error("{}: {message}", path.display())]
    Weights {
        /// The file.
        path: PathBuf,
        /// What went wrong, naming the tensors concerned.
        message: String,
    },
}

impl ModelError {
    pub(crate) fn zero(owner: &'static str, field: &'static str) -> Self {
        ModelError::Setting {
            owner,
            field,
            value: "0".into(),
            expected: "expected a positive value",
        }
    }
}
