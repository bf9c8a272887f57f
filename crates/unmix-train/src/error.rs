use std::path::PathBuf;
use thiserror::Error;

/// Everything that can stop a run, each naming the file, key or value at fault.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The config file could not be parsed (unknown key, wrong type, bad TOML).
    #[error("{path}: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The parser's message, which names the key.
        message: String,
    },
    /// A config value is out of range.
    #[error("{key} = {value}: {expected}")]
    Value {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// The requested backend is unknown or not compiled in.
    #[error("{0}")]
    Device(String),
    /// A dataset problem.
    #[error(transparent)]
    Data(#[from] unmix_data::DataError),
    /// A model setting problem.
    #[error(transparent)]
    Model(#[from] unmix_models::ModelError),
    /// An Un-Mix setting problem.
    #[error(transparent)]
    Ops(#[from] unmix_ops::OpsError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A checkpoint is missing, incomplete or does not match the config.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The checkpoint.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn value(key: &str, value: impl ToString, expected: &str) -> Self {
        TrainError::Value {
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }
}
