use std::path::PathBuf;
use thiserror::Error;

/// Errors reading or checking a dataset. Each names the file and what was expected.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's bytes do not follow its format.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
    /// The file's SHA-256 differs from the recorded sum.
    #[error("{path}: sha256 {actual}, expected {expected} (file corrupt or replaced)")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Recorded sum.
        expected: String,
        /// Sum of the file.
        actual: String,
    },
    /// A field of a config (`AugmentationConfig`) or an argument of a constructor
    /// (`MultiViewLoader::new`) is out of range. The message names it as this crate spells it;
    /// an application that reads the config from a file can map `owner` and `field` onto its
    /// own key.
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
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}
