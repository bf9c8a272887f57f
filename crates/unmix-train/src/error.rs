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
    /// A report or one of its figures could not be made.
    #[error("{path}: {message}")]
    Report {
        /// The file being written or read.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The run directory cannot be used as asked (holds another run, is locked, has nothing
    /// to resume).
    #[error("{path}: {message}")]
    RunDir {
        /// The run directory.
        path: PathBuf,
        /// What is wrong and the ways out.
        message: String,
    },
    /// `--resume` with settings that would change the run.
    #[error(
        "{path}: the checkpoint was written with other settings: {}; resume with the \
         recorded config.toml, or start a new run",
        keys.join(", ")
    )]
    ChangedOnResume {
        /// The checkpoint.
        path: PathBuf,
        /// `key: recorded -> now`, one per difference.
        keys: Vec<String>,
    },
    /// The loss became NaN or infinite; the run stopped before checkpointing that epoch.
    #[error(
        "the loss is {loss} by step {step} (epoch {epoch}): training diverged; the last \
         finished checkpoint is kept"
    )]
    Diverged {
        /// The last step (0-based) of the window whose loss was read back not finite
        /// (`run.read_loss_every_steps`).
        step: u64,
        /// Its epoch (1-based).
        epoch: usize,
        /// The loss.
        loss: f64,
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
    /// The process exit code the `unmix` command uses for this error: 3 for a diverged run, 1
    /// for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            TrainError::Diverged { .. } => 3,
            _ => 1,
        }
    }

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

/// Names a library crate's setting error by its key in the config file: the library crates
/// name their own fields (`ResNetConfig.width`), the config file nests those types under
/// tables (`[model.backbone]`), and this is the one place that maps the first onto the second.
pub(crate) trait AtKey<T> {
    /// `table` is where the library type sits in the config (`model.backbone`,
    /// `data.augmentation`, `unmix`); other errors pass through unchanged.
    fn at(self, table: &str) -> Result<T, TrainError>;
}

fn setting_at(table: &str, field: &str, value: String, expected: &str) -> TrainError {
    TrainError::Value {
        key: format!("{table}.{field}"),
        value,
        expected: expected.to_string(),
    }
}

impl<T> AtKey<T> for Result<T, unmix_ops::OpsError> {
    fn at(self, table: &str) -> Result<T, TrainError> {
        self.map_err(|e| match e {
            unmix_ops::OpsError::Setting {
                field,
                value,
                expected,
                ..
            } => setting_at(table, field, value, expected),
        })
    }
}

impl<T> AtKey<T> for Result<T, unmix_models::ModelError> {
    fn at(self, table: &str) -> Result<T, TrainError> {
        self.map_err(|e| match e {
            unmix_models::ModelError::Setting {
                field,
                value,
                expected,
                ..
            } => setting_at(table, field, value, expected),
            other => TrainError::Model(other),
        })
    }
}

impl<T> AtKey<T> for Result<T, unmix_data::DataError> {
    fn at(self, table: &str) -> Result<T, TrainError> {
        self.map_err(|e| match e {
            unmix_data::DataError::Setting {
                field,
                value,
                expected,
                ..
            } => setting_at(table, field, value, expected),
            other => TrainError::Data(other),
        })
    }
}
