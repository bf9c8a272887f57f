//! Self-supervised pre-training with Un-Mix: methods, the training loop, kNN evaluation,
//! checkpoints (`../shared/SPEC.md` §2, §5, §7). The `unmix` command line is this crate's
//! binary (`src/bin/unmix/`).
//!
//! - [`Method`] ([`method`]): the trait every self-supervised method implements, and what it
//!   exchanges with the loop.
//! - [`methods`]: one file per method ([`methods::moco`] v1/v2 and the symmetric CIFAR-demo
//!   form, [`methods::simclr`], [`methods::byol`], [`methods::swav`],
//!   [`methods::invariance_propagation`], [`methods::insdis`] and [`methods::cmc`] with their
//!   memory banks) and the `[method]` table that builds one.
//! - [`TrainConfig`] ([`config`]): a whole run, composed of the tables of the crates below it
//!   (`[data]` from `unmix-data`, `[model]` from `unmix-models`, `[unmix]` from `unmix-ops`)
//!   and of this crate's `[method]`, `[optim]` and `[eval]`.
//! - [`optim`]: SGD, LARS and Adam, the learning-rate and momentum schedules, parameter groups.
//! - [`run`]: [`train`] a config (the loop, run directories, checkpoints, metrics, resume) and
//!   [`run::parity`], one recorded step for the PyTorch references.
//! - [`eval`]: the weighted kNN monitor, W-MSE's k-NN and linear protocols, and
//!   [`eval::evaluate_checkpoint`].
//! - [`report`]: each run's `report.md` with its plots, and runs side by side.
//! - [`device`]: `cpu|cuda|wgpu` names to a Burn [`burn::prelude::Device`].

pub mod config;
pub mod device;
mod error;
pub mod eval;
pub mod method;
pub mod methods;
pub mod optim;
pub mod report;
pub mod run;

pub use config::TrainConfig;
pub use error::TrainError;
pub use method::{Method, ParamGroup, StepContext, StepOutput, ViewSpec};
pub use run::{RunOptions, TrainOutcome, train};
