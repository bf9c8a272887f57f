//! SimCLR (Chen et al. 2020) with Un-Mix as the README core code (algorithms.md §1.4.4):
//! `L = nt_xent(x0, x1) + λ·nt_xent(x1, mixed) + (1−λ)·nt_xent(x1, flip(mixed))`.
//!
//! The three crops go through the encoder as one `3N` batch (batch norm over all of them, as
//! the SwAV Un-Mix code does), and `flip(mixed)` is the batch flip of the mixture's embeddings.

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use unmix_data::MultiViewBatch;
use unmix_losses::{nt_xent, unmix_combine};
use unmix_models::{Encoder, EncoderConfig};
use unmix_ops::MixedBatch;

use crate::error::TrainError;
use crate::method::{Method, StepContext, StepOutput, views_and_mixture};

/// `[method]` with `kind = "simclr"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimclrConfig {
    /// NT-Xent temperature τ: 0.5 in the htdt/W-MSE code the Un-Mix authors used, 0.2 in
    /// solo-learn.
    pub temperature: f64,
}

impl Default for SimclrConfig {
    fn default() -> Self {
        Self { temperature: 0.5 }
    }
}

impl SimclrConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            return Err(TrainError::value(
                "method.temperature",
                self.temperature,
                "expected > 0",
            ));
        }
        Ok(())
    }

    /// Builds the method.
    pub fn init(&self, encoder: &EncoderConfig, device: &Device) -> Result<Simclr, TrainError> {
        Ok(Simclr {
            encoder: encoder.init(device)?,
            temperature: self.temperature,
        })
    }
}

/// SimCLR: one encoder (backbone + projection head) shared by both views.
#[derive(Module, Debug)]
pub struct Simclr {
    /// The encoder.
    pub encoder: Encoder,
    /// NT-Xent temperature.
    pub temperature: f64,
}

impl Method for Simclr {
    type StepState = ();

    fn forward_train(
        &self,
        batch: &MultiViewBatch,
        mixed: Option<&MixedBatch>,
        _ctx: &StepContext,
    ) -> StepOutput<()> {
        let n = batch.indices.len();
        let z = self.encoder.forward(views_and_mixture(batch, mixed));
        let (z0, z1) = (z.clone().narrow(0, 0, n), z.clone().narrow(0, n, n));
        let plain = nt_xent(z0, z1.clone(), self.temperature);
        let mixed = mixed.map(|m| {
            let zm = z.narrow(0, 2 * n, n);
            let direct = nt_xent(z1.clone(), zm.clone(), self.temperature);
            let reverse = nt_xent(z1, zm.flip([0]), self.temperature);
            unmix_combine(direct, reverse, m.lambda)
        });
        StepOutput::with_unmix(plain, mixed, ())
    }

    fn features(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.encoder.forward_features(images)
    }
}
