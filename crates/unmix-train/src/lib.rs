//! Self-supervised pre-training with Un-Mix: methods, the training loop, kNN evaluation,
//! checkpoints and the `unmix` command line (`../shared/SPEC.md` §2, §5, §7).
//!
//! - [`config`]: the TOML run configuration, with the papers' defaults.
//! - [`device`]: `--device cpu|cuda|wgpu` to a Burn [`burn::prelude::Device`].
//! - [`method`]: the [`Method`] trait every self-supervised method implements, one file each:
//!   [`moco`] (v1/v2, symmetric CIFAR-demo form), [`simclr`], [`byol`], [`swav`].
//! - [`trainer`]: the loop (Un-Mix step, optimiser, progress bar, metrics CSV, checkpoints,
//!   resume); [`optim`]: SGD, [`lars`] and Adam from `[optim]`; [`schedule`]: warm-up, cosine
//!   and step learning rates and the momentum τ schedule; [`checkpoint`]: atomic checkpoints;
//!   [`knn`]: the weighted kNN monitor.
//! - [`bench`]: timing of training steps per backend; [`parity`]: one recorded training step
//!   for the PyTorch references' step-level comparison.
//! - [`cli`]: `unmix train|eval|cut-fashion-mnist`.

pub mod bench;
pub mod byol;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod device;
mod error;
pub mod knn;
pub mod lars;
pub mod method;
pub mod metrics;
pub mod moco;
pub mod optim;
pub mod parity;
pub mod schedule;
pub mod simclr;
pub mod swav;
pub mod trainer;

pub use config::TrainConfig;
pub use error::TrainError;
pub use method::{Method, ParamGroup, StepContext, StepOutput, ViewSpec};
