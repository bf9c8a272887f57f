//! The self-supervised methods, one file each, and the one place a `[method]` table becomes a
//! concrete [`Method`](crate::Method): [`MethodConfig::build`]. Adding a method adds a file
//! here, a variant and its arms below, and nothing in the loop.

pub mod byol;
pub mod cmc;
pub mod insdis;
pub mod invariance_propagation;
pub mod moco;
pub mod simclr;
pub mod swav;

use serde::{Deserialize, Serialize};
use unmix_models::EncoderConfig;

use crate::error::TrainError;
pub use byol::{Byol, ByolConfig};
pub use cmc::{Cmc, CmcConfig};
pub use insdis::{InsDis, InsDisConfig};
pub use invariance_propagation::{
    InvariancePropagation, InvariancePropagationConfig, PropagationRamp,
};
pub use moco::{Moco, MocoConfig};
pub use simclr::{Simclr, SimclrConfig};
pub use swav::{Swav, SwavConfig};

/// `[method]`: the base method, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MethodConfig {
    /// MoCo v1/v2 (symmetric or asymmetric).
    Moco(MocoConfig),
    /// SimCLR.
    Simclr(SimclrConfig),
    /// BYOL.
    Byol(ByolConfig),
    /// SwAV.
    Swav(SwavConfig),
    /// Invariance Propagation (a memory-bank method: one view per image).
    InvariancePropagation(InvariancePropagationConfig),
    /// Instance discrimination with a memory bank and NCE (one view per image).
    Insdis(InsDisConfig),
    /// Contrastive Multiview Coding: two encoders on two channel groups, two memory banks.
    Cmc(CmcConfig),
}

/// Work to do with a built method, whatever its type: how the trainer and the evaluator get a
/// concrete [`Method`](crate::Method) from a config without naming any method.
pub trait MethodTask {
    /// What the task returns.
    type Output;
    /// Runs the task on the freshly built method.
    fn run<M: crate::Method>(self, method: M) -> Result<Self::Output, TrainError>;
}

impl MethodConfig {
    /// Builds the configured method on `device` for a training set of `train_images` samples
    /// (the size of a memory bank) and hands it to `task`. Adding a method adds one arm here
    /// and nothing in the trainer.
    pub fn build<T: MethodTask>(
        &self,
        encoder: &EncoderConfig,
        train_images: usize,
        device: &burn::prelude::Device,
        task: T,
    ) -> Result<T::Output, TrainError> {
        match self {
            MethodConfig::InvariancePropagation(m) => {
                task.run(m.init(encoder, train_images, device)?)
            }
            MethodConfig::Insdis(m) => task.run(m.init(encoder, train_images, device)?),
            MethodConfig::Cmc(m) => task.run(m.init(encoder, train_images, device)?),
            MethodConfig::Moco(m) => task.run(m.init(encoder, device)?),
            MethodConfig::Simclr(m) => task.run(m.init(encoder, device)?),
            MethodConfig::Byol(m) => task.run(m.init(encoder, device)?),
            MethodConfig::Swav(m) => task.run(m.init(encoder, device)?),
        }
    }

    /// Whether the method keeps a memory bank (`eval.features = "memory_bank"`).
    pub fn has_memory_bank(&self) -> bool {
        matches!(
            self,
            MethodConfig::InvariancePropagation(_) | MethodConfig::Insdis(_) | MethodConfig::Cmc(_)
        )
    }

    /// Checks the method's settings against the rest of the config.
    pub fn validate(&self, encoder: &EncoderConfig, batch_size: usize) -> Result<(), TrainError> {
        match self {
            MethodConfig::Moco(m) => m.validate(batch_size, encoder.backbone.bn_splits),
            MethodConfig::Simclr(m) => m.validate(),
            MethodConfig::Byol(m) => m.validate(encoder),
            MethodConfig::Swav(m) => m.validate(batch_size),
            MethodConfig::InvariancePropagation(m) => m.validate(),
            MethodConfig::Insdis(m) => m.validate(),
            MethodConfig::Cmc(m) => m.validate(encoder),
        }
    }
}
