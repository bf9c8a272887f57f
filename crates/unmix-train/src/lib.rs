//! Self-supervised pre-training with Un-Mix: methods, the training loop, kNN evaluation,
//! checkpoints and the `unmix` command line (`../shared/SPEC.md` §2, §5, §7).
//!
//! - [`config`]: the TOML run configuration, with the papers' defaults.
//! - [`device`]: `--device cpu|cuda|wgpu` to a Burn [`burn::prelude::Device`].
//! - [`method`]: the [`Method`] trait every self-supervised method implements; [`moco`] is MoCo
//!   v1/v2 with the symmetric CIFAR-demo form.
//! - [`trainer`]: the loop (Un-Mix step, SGD with cosine LR, progress bar, metrics CSV,
//!   checkpoints, resume); [`checkpoint`]: atomic checkpoints; [`knn`]: the weighted kNN
//!   monitor; [`schedule`]: learning-rate schedules.
//! - [`bench`]: timing of training steps per backend.
//! - [`cli`]: `unmix train|eval|cut-fashion-mnist`.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod device;
mod error;
pub mod knn;
pub mod method;
pub mod metrics;
pub mod moco;
pub mod schedule;
pub mod trainer;

pub use config::TrainConfig;
pub use error::TrainError;
pub use method::{Method, StepContext, StepOutput};
