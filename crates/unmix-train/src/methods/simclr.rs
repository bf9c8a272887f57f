//! SimCLR (Chen et al. 2020) with Un-Mix as the README core code (algorithms.md §1.4.4):
//! `L = nt_xent(x0, x1) + λ·nt_xent(x1, mixed) + (1−λ)·nt_xent(x1, flip(mixed))`.
//!
//! By default (`forward = "per_view"`) the batch norm of each term sees what the htdt code the
//! authors used shows it: the backbone runs on each crop on its own
//! (`[self.model(x) for x in samples]`) and the head on the concatenation of the term's two
//! crops, so the plain term's head statistics are over `[x0, x1]` and the mixed terms' over
//! `[x1, mixed]`. `flip(mixed)` is the batch flip of the mixture's embeddings, exact because
//! batch statistics do not depend on order. `forward = "joint"` passes all three crops as one
//! `3N` batch instead (as the SwAV Un-Mix code does).

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use unmix_data::MultiViewBatch;
use unmix_losses::{nt_xent, unmix_combine};
use unmix_models::{Encoder, EncoderConfig};
use unmix_ops::MixedBatch;

use crate::error::TrainError;
use crate::method::{Method, StepContext, StepOutput, ViewForward, encode_views};

/// `[method]` with `kind = "simclr"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimclrConfig {
    /// NT-Xent temperature τ: 0.5 in the htdt/W-MSE code the Un-Mix authors used, 0.2 in
    /// solo-learn.
    pub temperature: f64,
    /// How the crops meet batch norm: `per_view` (the references) or `joint`.
    pub forward: ViewForward,
}

impl Default for SimclrConfig {
    fn default() -> Self {
        Self {
            temperature: 0.5,
            forward: ViewForward::PerView,
        }
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
            forward: self.forward,
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
    /// How the crops meet batch norm.
    #[module(skip)]
    pub forward: ViewForward,
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
        let t = self.temperature;
        let head = |a: Tensor<2>, b: Tensor<2>| {
            let z = self.encoder.head.forward(Tensor::cat(vec![a, b], 0));
            (z.clone().narrow(0, 0, n), z.narrow(0, n, n))
        };
        let h = encode_views(self.forward, batch, mixed, |x| {
            self.encoder.backbone.forward(x)
        });
        let (plain, mixed_pair) = match self.forward {
            ViewForward::PerView => {
                let (z0, z1) = head(h[0].clone(), h[1].clone());
                let pair = mixed.map(|_| head(h[1].clone(), h[2].clone()));
                (nt_xent(z0, z1, t), pair)
            }
            ViewForward::Joint => {
                let z = self.encoder.head.forward(Tensor::cat(h, 0));
                let part = |i: usize| z.clone().narrow(0, i * n, n);
                let pair = mixed.map(|_| (part(1), part(2)));
                (nt_xent(part(0), part(1), t), pair)
            }
        };
        let mixed = mixed.zip(mixed_pair).map(|(m, (z1, zm))| {
            let direct = nt_xent(z1.clone(), zm.clone(), t);
            let reverse = nt_xent(z1, zm.flip([0]), t);
            unmix_combine(direct, reverse, m.lambda)
        });
        StepOutput::with_unmix(plain, mixed, ())
    }

    fn features(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.encoder.forward_features(images)
    }

    fn backbones(&self) -> Vec<(&'static str, &unmix_models::ResNet)> {
        vec![("backbone", &self.encoder.backbone)]
    }
}
