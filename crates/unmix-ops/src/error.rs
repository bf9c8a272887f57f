use thiserror::Error;

/// Invalid mixture settings.
#[derive(Debug, Error, PartialEq)]
pub enum OpsError {
    /// `p_global` must be a probability.
    #[error("unmix.p_global = {0}: expected a probability in [0, 1]")]
    PGlobal(f64),
    /// `beta` parameterises `Beta(β, β)` and must be positive and finite.
    #[error("unmix.beta = {0}: expected a finite value > 0")]
    Beta(f64),
}
