use thiserror::Error;

/// Invalid model settings.
#[derive(Debug, Error, PartialEq)]
pub enum ModelError {
    /// A size that must be positive was zero.
    #[error("model.{key} = 0: expected a positive value")]
    Zero {
        /// The config key.
        key: &'static str,
    },
    /// The number of stages does not match a ResNet.
    #[error("model.layers = {0:?}: expected four stage depths, each >= 1")]
    Layers(Vec<usize>),
}
