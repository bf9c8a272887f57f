//! BYOL (Grill et al. 2020) with Un-Mix (algorithms.md §1.4.4): online encoder + predictor
//! regress an EMA target, `2 − 2·cos` in both directions; τ rises from 0.99 to 1 on a cosine
//! of training progress, per step.
//!
//! The mixture goes through the online and the target branch (`mix_branch = "both"`, htdt's
//! symmetric `model([x1, mixed])`, the README core code):
//! `λ·[ℓ(p1, z_m) + ℓ(p_m, z1)] + (1−λ)·[ℓ(p1, flip z_m) + ℓ(flip p_m, z1)]`.
//! The authors left open which branch should receive it (Un-Mix issue #8), so `online` (only
//! `ℓ(p_m, z1)` terms) and `target` (only `ℓ(p1, z_m)` terms) are selectable.

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use unmix_data::MultiViewBatch;
use unmix_losses::{byol_loss, byol_regression, unmix_combine};
use unmix_models::{Encoder, EncoderConfig, HeadConfig, ProjectionHead, momentum_update};
use unmix_ops::MixedBatch;

use crate::error::{AtKey, TrainError};
use crate::method::{
    Method, MomentumSchedule, ParamGroup, StepContext, StepOutput, ViewForward, beside,
    encode_views,
};

/// Which BYOL branch sees the Un-Mix mixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixBranch {
    /// Both, as htdt's symmetric loss on `[x1, mixed]` (the default).
    #[default]
    Both,
    /// Only the online branch: the mixture's prediction regresses view 1's target.
    Online,
    /// Only the target branch: view 1's prediction regresses the mixture's target.
    Target,
}

/// `[method]` with `kind = "byol"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ByolConfig {
    /// τ at the first step (0.99 on CIFAR in htdt and solo-learn; 0.996 on ImageNet).
    pub tau_base: f64,
    /// τ at the end (1.0).
    pub tau_end: f64,
    /// The predictor (htdt: Linear(emb, 1024)–BN–ReLU–Linear(1024, emb)); its input size is
    /// the projection head's output.
    pub predictor: HeadConfig,
    /// Which branch sees the mixture.
    pub mix_branch: MixBranch,
    /// The predictor's learning rate as a multiple of the scheduled one (1 in BYOL; SimSiam
    /// §4.3 and DirectPred, Tian et al. 2021 §5, train the predictor faster, which short runs
    /// at small batch need: docs/methods.md).
    pub predictor_lr_scale: f64,
    /// How the crops meet batch norm: `per_view` (htdt's BYOL passes each crop through both
    /// branches on its own) or `joint` (one `3N` batch).
    pub forward: ViewForward,
}

impl Default for ByolConfig {
    fn default() -> Self {
        Self {
            tau_base: 0.99,
            tau_end: 1.0,
            predictor: HeadConfig::Mlp {
                hidden_dim: 1024,
                out_dim: 64,
                hidden_bn: true,
                last_bn: false,
            },
            mix_branch: MixBranch::Both,
            predictor_lr_scale: 1.0,
            forward: ViewForward::PerView,
        }
    }
}

impl ByolConfig {
    /// Checks ranges and that the predictor maps the embedding back to its own size.
    pub fn validate(&self, encoder: &EncoderConfig) -> Result<(), TrainError> {
        for (key, t) in [
            ("method.tau_base", self.tau_base),
            ("method.tau_end", self.tau_end),
        ] {
            if !(0.0..=1.0).contains(&t) {
                return Err(TrainError::value(key, t, "expected a value in [0, 1]"));
            }
        }
        if !(self.predictor_lr_scale.is_finite() && self.predictor_lr_scale >= 0.0) {
            return Err(TrainError::value(
                "method.predictor_lr_scale",
                self.predictor_lr_scale,
                "expected a finite multiple >= 0 of the learning rate",
            ));
        }
        self.predictor.validate().at("method.predictor")?;
        let emb = encoder.head.out_dim();
        if self.predictor.out_dim() != emb {
            return Err(TrainError::value(
                "method.predictor.out_dim",
                self.predictor.out_dim(),
                &format!("expected the projection size model.head.out_dim = {emb}"),
            ));
        }
        Ok(())
    }

    /// Builds the online network, its predictor and the target copy.
    pub fn init(&self, encoder: &EncoderConfig, device: &Device) -> Result<Byol, TrainError> {
        let online = encoder.init(device)?;
        let target = momentum_update(encoder.init(device)?.no_grad(), &online, 0.0);
        Ok(Byol {
            predictor: self.predictor.init(encoder.head.out_dim(), device)?,
            online,
            target,
            tau_base: self.tau_base,
            tau_end: self.tau_end,
            mix_branch: self.mix_branch,
            predictor_lr_scale: self.predictor_lr_scale,
            forward: self.forward,
        })
    }
}

/// BYOL: online encoder and predictor, target encoder (EMA, no gradient).
#[derive(Module, Debug)]
pub struct Byol {
    /// Online backbone + projector.
    pub online: Encoder,
    /// Online predictor.
    pub predictor: ProjectionHead,
    /// Target backbone + projector.
    pub target: Encoder,
    /// τ at the start.
    pub tau_base: f64,
    /// τ at the end.
    pub tau_end: f64,
    /// Which branch sees the mixture.
    #[module(skip)]
    pub mix_branch: MixBranch,
    /// The predictor's learning-rate multiple.
    #[module(skip)]
    pub predictor_lr_scale: f64,
    /// How the crops meet batch norm.
    #[module(skip)]
    pub forward: ViewForward,
}

impl Method for Byol {
    type StepState = ();

    fn forward_train(
        &self,
        batch: &MultiViewBatch,
        mixed: Option<&MixedBatch>,
        _ctx: &StepContext,
    ) -> StepOutput<()> {
        // The target network's pass (no gradient, no random draw) runs on a second thread beside
        // the online one's, so that a CPU run keeps both cores busy; same results as in turn.
        let (p, z): (Vec<Tensor<2>>, Vec<Tensor<2>>) = beside(
            || {
                encode_views(self.forward, batch, mixed, |x| {
                    self.predictor.forward(self.online.forward(x))
                })
            },
            || {
                encode_views(self.forward, batch, mixed, |x| {
                    self.target.forward(x.detach()).detach()
                })
            },
        );
        let plain = byol_loss(p[0].clone(), z[1].clone(), p[1].clone(), z[0].clone());
        let mixed = mixed.map(|m| {
            let (p1, z1, pm, zm) = (p[1].clone(), z[1].clone(), p[2].clone(), z[2].clone());
            let term = |pm: Tensor<2>, zm: Tensor<2>| match self.mix_branch {
                MixBranch::Online => byol_regression(pm, z1.clone()),
                MixBranch::Target => byol_regression(p1.clone(), zm),
                MixBranch::Both => byol_loss(p1.clone(), zm, pm, z1.clone()),
            };
            let direct = term(pm.clone(), zm.clone());
            let reverse = term(pm.flip([0]), zm.flip([0]));
            unmix_combine(direct, reverse, m.lambda)
        });
        StepOutput::with_unmix(plain, mixed, ())
    }

    fn momentum(&self) -> Option<MomentumSchedule> {
        Some(MomentumSchedule {
            base: self.tau_base,
            end: self.tau_end,
        })
    }

    fn momentum_update(mut self, tau: f64) -> Self {
        self.target = momentum_update(self.target, &self.online, tau);
        self
    }

    fn param_groups(&self, _ctx: &StepContext) -> Vec<ParamGroup> {
        if self.predictor_lr_scale == 1.0 {
            Vec::new()
        } else {
            vec![ParamGroup::of(&self.predictor, self.predictor_lr_scale)]
        }
    }

    fn features(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.online.forward_features(images)
    }

    fn backbones(&self) -> Vec<(&'static str, &unmix_models::ResNet)> {
        vec![("backbone", &self.online.backbone)]
    }
}
