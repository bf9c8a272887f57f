//! `[optim]`: the optimiser (Burn's SGD and Adam, or our [`LarsConfig`](lars::LarsConfig), all
//! as Burn `ModuleOptimizer`s so checkpoints save their state the same way), the learning-rate
//! and momentum schedules ([`schedule`]) and the per-group step ([`groups`]).

pub mod groups;
pub mod lars;
pub mod schedule;

pub use burn::optim::ModuleOptimizer;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, SgdConfig};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use lars::LarsConfig;

/// Learning-rate schedule (after any warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// `lr·½(1+cos(π·epoch/epochs))` per epoch, epochs counted from 0 (MoCo `--cos`, the CIFAR
    /// demo).
    Cosine,
    /// Cosine from `lr` to `min_lr` per step over the steps after warm-up (solo-learn's
    /// `warmup_cosine`, SwAV).
    CosineStep,
    /// `lr·gamma^k` after the `k`-th of `milestones` (MoCo v1: ×0.1 at 120 and 160; htdt:
    /// ×0.2 at E−50 and E−25).
    Step,
    /// Constant.
    Constant,
}

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// SGD with momentum and L2 weight decay (MoCo).
    Sgd,
    /// LARS: SGD with a layer-wise trust ratio (solo-learn SimCLR/BYOL/SwAV; SwAV's LARC).
    Lars,
    /// Adam with L2 weight decay added to the gradient (torch `Adam(weight_decay=…)`, the
    /// W-MSE/htdt code of SimCLR and BYOL).
    Adam,
}

/// Scaling of `lr` by the batch size, relative to `reference_batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrScaling {
    /// `lr` as written.
    None,
    /// `lr·batch/reference_batch` (Goyal et al.; SimCLR, BYOL, SwAV papers).
    Linear,
    /// `lr·sqrt(batch/reference_batch)` (SimCLR's small-batch LARS rule).
    Sqrt,
}

/// `[optim]`: optimiser, learning rate and its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Epochs.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Which optimiser.
    pub optimizer: OptimizerKind,
    /// Base learning rate (0.06 for batch 512 in the CIFAR demo), before `lr_scaling`.
    pub lr: f64,
    /// Batch-size scaling of `lr`, logged at the start of a run.
    pub lr_scaling: LrScaling,
    /// The batch size `lr` is quoted for (256).
    pub reference_batch: usize,
    /// SGD/LARS momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Schedule after warm-up.
    pub schedule: Schedule,
    /// Linear warm-up over this many epochs (solo-learn 10, SwAV CIFAR 5)...
    pub warmup_epochs: f64,
    /// ...plus this many steps (htdt: 500 iterations).
    pub warmup_steps: usize,
    /// Learning rate at the first warm-up step (solo-learn 3e-5; SwAV 0).
    pub warmup_start_lr: f64,
    /// Final learning rate of `cosine_step` (SwAV CIFAR 0.0006).
    pub min_lr: f64,
    /// Epochs at which `step` multiplies by `gamma`.
    pub milestones: Vec<usize>,
    /// Factor of `step`.
    pub gamma: f64,
    /// LARS trust coefficient η.
    pub lars_eta: f64,
    /// LARS: clip the adaptive rate to 1 relative to the learning rate.
    pub lars_clip: bool,
    /// LARS: no adaptation or decay for biases and norm parameters.
    pub lars_exclude_bias_and_norm: bool,
    /// Adam's β₁, β₂.
    pub adam_betas: [f64; 2],
    /// Adam's ε, added to `sqrt(v̂)`: PyTorch's 1e-8, which the references use (Burn's own
    /// default is 1e-5).
    pub adam_eps: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            epochs: 1000,
            batch_size: 512,
            optimizer: OptimizerKind::Sgd,
            lr: 0.06,
            lr_scaling: LrScaling::None,
            reference_batch: 256,
            momentum: 0.9,
            weight_decay: 5e-4,
            schedule: Schedule::Cosine,
            warmup_epochs: 0.0,
            warmup_steps: 0,
            warmup_start_lr: 0.0,
            min_lr: 0.0,
            milestones: Vec::new(),
            gamma: 0.1,
            lars_eta: 0.02,
            lars_clip: true,
            lars_exclude_bias_and_norm: true,
            adam_betas: [0.9, 0.999],
            adam_eps: 1e-8,
        }
    }
}

impl OptimConfig {
    /// Checks values that parse but make no sense; errors name the `optim.*` key.
    pub fn validate(&self) -> Result<(), TrainError> {
        let o = self;
        if o.epochs == 0 {
            return Err(TrainError::value("optim.epochs", 0, "expected at least 1"));
        }
        if o.batch_size < 2 {
            return Err(TrainError::value(
                "optim.batch_size",
                o.batch_size,
                "expected at least 2",
            ));
        }
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(TrainError::value(
                "optim.lr",
                o.lr,
                "expected a finite value > 0",
            ));
        }
        if !(0.0..1.0).contains(&o.momentum) {
            return Err(TrainError::value(
                "optim.momentum",
                o.momentum,
                "expected a value in [0, 1)",
            ));
        }
        if o.weight_decay.is_nan() || o.weight_decay < 0.0 {
            return Err(TrainError::value(
                "optim.weight_decay",
                o.weight_decay,
                "expected >= 0",
            ));
        }
        let positive = |key: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(TrainError::value(key, v, "expected a finite value > 0"))
            }
        };
        let non_negative = |key: &'static str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(TrainError::value(key, v, "expected a finite value >= 0"))
            }
        };
        positive("optim.reference_batch", o.reference_batch as f64)?;
        positive("optim.gamma", o.gamma)?;
        positive("optim.lars_eta", o.lars_eta)?;
        non_negative("optim.warmup_epochs", o.warmup_epochs)?;
        non_negative("optim.warmup_start_lr", o.warmup_start_lr)?;
        non_negative("optim.min_lr", o.min_lr)?;
        positive("optim.adam_eps", o.adam_eps)?;
        if o.adam_betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return Err(TrainError::value(
                "optim.adam_betas",
                format!("{:?}", o.adam_betas),
                "expected two values in [0, 1)",
            ));
        }
        Ok(())
    }
}

/// One line that says which optimiser runs at which learning rate, for the start of a run.
pub(crate) fn describe(o: &OptimConfig) -> String {
    let scaling = match o.lr_scaling {
        LrScaling::None => "no batch-size scaling".to_string(),
        LrScaling::Linear => format!("linear scaling, x{}/{}", o.batch_size, o.reference_batch),
        LrScaling::Sqrt => format!(
            "sqrt scaling, x sqrt({}/{})",
            o.batch_size, o.reference_batch
        ),
    };
    format!(
        "optimizer {:?}: lr {} ({scaling}) -> {:.6}, schedule {:?}",
        o.optimizer,
        o.lr,
        schedule::scaled_lr(o),
        o.schedule
    )
}

/// Builds the configured optimiser.
pub fn build_optimizer(o: &OptimConfig) -> ModuleOptimizer {
    let decay = (o.weight_decay > 0.0).then_some(WeightDecayConfig {
        penalty: o.weight_decay as f32,
    });
    match o.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum(Some(MomentumConfig {
                momentum: o.momentum,
                // Burn's default dampening is 0.1; torch's SGD has none.
                dampening: 0.0,
                nesterov: false,
            }))
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::Lars => LarsConfig {
            momentum: o.momentum,
            weight_decay: o.weight_decay,
            eta: o.lars_eta,
            clip: o.lars_clip,
            exclude_bias_and_norm: o.lars_exclude_bias_and_norm,
            eps: 1e-8,
        }
        .init(),
        // Burn's Adam adds `penalty·w` to the gradient: torch `Adam(weight_decay=…)`, the L2
        // form of the W-MSE/htdt code (not AdamW).
        OptimizerKind::Adam => AdamConfig::new()
            .with_beta_1(o.adam_betas[0] as f32)
            .with_beta_2(o.adam_betas[1] as f32)
            .with_epsilon(o.adam_eps as f32)
            .with_weight_decay(decay)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::optim::GradientsParams;
    use burn::prelude::*;

    #[derive(burn::module::Module, Debug)]
    struct One {
        w: Param<Tensor<1>>,
    }

    /// Adam's first step moves a weight by `lr·ĝ/(|ĝ|+ε)` (bias corrections cancel). With a
    /// gradient of 1e-6 that is `lr·0.99` at PyTorch's ε = 1e-8 and `lr·0.09` at Burn's default
    /// 1e-5, so the step tells which ε the built optimiser uses.
    #[test]
    fn adam_uses_pytorchs_epsilon() {
        let device = Device::flex().autodiff();
        let model = One {
            w: Param::from_tensor(Tensor::zeros([1], &device)),
        };
        let loss = model.w.val().mul_scalar(1e-6).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let config = OptimConfig {
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            ..OptimConfig::default()
        };
        let mut optim = build_optimizer(&config);
        let model = optim.step(0.1, model, grads);
        let moved: f32 = model.w.val().into_scalar();
        let expected = -0.1 * 1e-6 / (1e-6 + 1e-8);
        assert!(
            (moved as f64 - expected).abs() < 1e-4,
            "{moved} vs {expected}"
        );
    }
}
