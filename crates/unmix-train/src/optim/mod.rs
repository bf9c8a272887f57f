//! `[optim]`: the optimiser (Burn's SGD and Adam, or our [`LarsConfig`](lars::LarsConfig), all
//! as Burn `ModuleOptimizer`s so checkpoints save their state the same way), the learning-rate
//! and momentum schedules ([`schedule`]) and the per-group step ([`groups`]).

pub mod groups;
pub mod lars;
pub mod schedule;

pub use burn::optim::ModuleOptimizer;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, SgdConfig};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use lars::LarsConfig;

/// `[optim.schedule]`: the learning-rate schedule after any warm-up, tagged by `kind`; each
/// carries only its own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// `lr·½(1+cos(π·epoch/epochs))` per epoch (MoCo `--cos`, the CIFAR demo).
    Cosine {
        /// The number the first epoch gets in the formula: 0 (MoCo's `main_moco.py`, whose
        /// loop starts at epoch 0: the first epoch runs at `lr`) or 1 (the CIFAR demo
        /// `unmix_c10.py`, whose loop starts at 1: the first epoch already runs at
        /// `lr·½(1+cos(π/epochs))` and the last at 0).
        #[serde(default)]
        first_epoch: u32,
    },
    /// Cosine from `lr` to `min_lr` per step over the steps after warm-up (solo-learn's
    /// `warmup_cosine`, SwAV).
    CosineStep {
        /// The final learning rate (SwAV CIFAR 0.0006).
        #[serde(default)]
        min_lr: f64,
    },
    /// `lr·gamma^k` after the `k`-th of `milestones` (MoCo v1: ×0.1 at 120 and 160; htdt:
    /// ×0.2 at E−50 and E−25).
    Step {
        /// Epochs at which the rate is multiplied by `gamma`.
        milestones: Vec<usize>,
        /// The factor.
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// Constant.
    Constant {},
}

fn default_gamma() -> f64 {
    0.1
}

fn default_momentum() -> f64 {
    0.9
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}

fn default_eps() -> f64 {
    1e-8
}

fn default_eta() -> f64 {
    0.02
}

fn yes() -> bool {
    true
}

/// `[optim.optimizer]`: the optimiser, tagged by `kind`; each carries only its own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// SGD with momentum (no dampening, as torch) and L2 weight decay (MoCo).
    Sgd {
        /// Momentum.
        #[serde(default = "default_momentum")]
        momentum: f64,
    },
    /// LARS: SGD with a layer-wise trust ratio (solo-learn SimCLR/BYOL/SwAV; SwAV's LARC).
    Lars {
        /// Momentum.
        #[serde(default = "default_momentum")]
        momentum: f64,
        /// Trust coefficient η.
        #[serde(default = "default_eta")]
        eta: f64,
        /// Clip the adaptive rate to 1 relative to the learning rate (LARC).
        #[serde(default = "yes")]
        clip: bool,
        /// No adaptation or decay for biases and norm parameters.
        #[serde(default = "yes")]
        exclude_bias_and_norm: bool,
    },
    /// Adam with L2 weight decay added to the gradient (torch `Adam(weight_decay=…)`, the
    /// W-MSE/htdt code of SimCLR and BYOL).
    Adam {
        /// β₁, β₂.
        #[serde(default = "default_betas")]
        betas: [f64; 2],
        /// ε, added to `sqrt(v̂)`: PyTorch's 1e-8, which the references use (Burn's own default
        /// is 1e-5).
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// AdamW: Adam with decoupled weight decay (Burn's `AdamW`).
    Adamw {
        /// β₁, β₂.
        #[serde(default = "default_betas")]
        betas: [f64; 2],
        /// ε (PyTorch's 1e-8 by default).
        #[serde(default = "default_eps")]
        eps: f64,
    },
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

/// `[optim]`: the settings every optimiser shares (epochs, batch, learning rate and its
/// scaling, weight decay, warm-up), the optimiser (`[optim.optimizer]`) and the schedule
/// (`[optim.schedule]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Epochs.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Base learning rate (0.06 for batch 512 in the CIFAR demo), before `lr_scaling`.
    pub lr: f64,
    /// Batch-size scaling of `lr`, logged at the start of a run.
    pub lr_scaling: LrScaling,
    /// The batch size `lr` is quoted for (256).
    pub reference_batch: usize,
    /// Weight decay: L2 added to the gradient for SGD, LARS and Adam; decoupled for AdamW.
    pub weight_decay: f64,
    /// Linear warm-up over this many epochs of steps (solo-learn 10, SwAV CIFAR 5), as SwAV's
    /// `np.linspace(warmup_start_lr, lr, n)` and solo-learn's `LinearWarmupCosineAnnealingLR`:
    /// the rate is reached on the last warm-up step, `n − 1`. Not with `warmup_steps`.
    pub warmup_epochs: f64,
    /// Linear warm-up over this many steps, as htdt's `lr·k/n` (500 iterations): the rate is
    /// reached on step `n`, the first after the warm-up. Not with `warmup_epochs`.
    pub warmup_steps: usize,
    /// Learning rate at the first warm-up step (solo-learn 3e-5; SwAV 0).
    pub warmup_start_lr: f64,
    /// The optimiser.
    pub optimizer: OptimizerConfig,
    /// The schedule after warm-up.
    pub schedule: ScheduleConfig,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            epochs: 1000,
            batch_size: 512,
            lr: 0.06,
            lr_scaling: LrScaling::None,
            reference_batch: 256,
            weight_decay: 5e-4,
            warmup_epochs: 0.0,
            warmup_steps: 0,
            warmup_start_lr: 0.0,
            optimizer: OptimizerConfig::Sgd {
                momentum: default_momentum(),
            },
            schedule: ScheduleConfig::Cosine { first_epoch: 0 },
        }
    }
}

impl OptimConfig {
    /// Checks values that parse but make no sense; errors name the `optim.*` key.
    pub fn validate(&self) -> Result<(), TrainError> {
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
        if self.epochs == 0 {
            return Err(TrainError::value("optim.epochs", 0, "expected at least 1"));
        }
        if self.batch_size < 2 {
            return Err(TrainError::value(
                "optim.batch_size",
                self.batch_size,
                "expected at least 2",
            ));
        }
        positive("optim.lr", self.lr)?;
        non_negative("optim.weight_decay", self.weight_decay)?;
        positive("optim.reference_batch", self.reference_batch as f64)?;
        non_negative("optim.warmup_epochs", self.warmup_epochs)?;
        if self.warmup_epochs > 0.0 && self.warmup_steps > 0 {
            return Err(TrainError::value(
                "optim.warmup_steps",
                self.warmup_steps,
                "expected 0 when optim.warmup_epochs is set: the two follow different references \
                 (htdt's lr·k/n; SwAV's and solo-learn's linspace), set one of them",
            ));
        }
        non_negative("optim.warmup_start_lr", self.warmup_start_lr)?;
        let momentum = |key: &'static str, m: f64| {
            if (0.0..1.0).contains(&m) {
                Ok(())
            } else {
                Err(TrainError::value(key, m, "expected a value in [0, 1)"))
            }
        };
        match &self.optimizer {
            OptimizerConfig::Sgd { momentum: m } => momentum("optim.optimizer.momentum", *m)?,
            OptimizerConfig::Lars {
                momentum: m, eta, ..
            } => {
                momentum("optim.optimizer.momentum", *m)?;
                positive("optim.optimizer.eta", *eta)?;
            }
            OptimizerConfig::Adam { betas, eps } | OptimizerConfig::Adamw { betas, eps } => {
                positive("optim.optimizer.eps", *eps)?;
                if betas.iter().any(|b| !(0.0..1.0).contains(b)) {
                    return Err(TrainError::value(
                        "optim.optimizer.betas",
                        format!("{betas:?}"),
                        "expected two values in [0, 1)",
                    ));
                }
            }
        }
        match &self.schedule {
            ScheduleConfig::CosineStep { min_lr } => {
                non_negative("optim.schedule.min_lr", *min_lr)?
            }
            ScheduleConfig::Step { milestones, gamma } => {
                positive("optim.schedule.gamma", *gamma)?;
                if !milestones.is_sorted() {
                    return Err(TrainError::value(
                        "optim.schedule.milestones",
                        format!("{milestones:?}"),
                        "expected epochs in increasing order",
                    ));
                }
            }
            ScheduleConfig::Cosine { first_epoch } => {
                if *first_epoch > 1 {
                    return Err(TrainError::value(
                        "optim.schedule.first_epoch",
                        first_epoch,
                        "expected 0 (MoCo's main_moco.py) or 1 (the CIFAR demo)",
                    ));
                }
            }
            ScheduleConfig::Constant {} => {}
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
        OptimizerConfig::Sgd { momentum } => SgdConfig::new()
            .with_momentum(Some(MomentumConfig {
                momentum,
                // Burn's default dampening is 0.1; torch's SGD has none.
                dampening: 0.0,
                nesterov: false,
            }))
            .with_weight_decay(decay)
            .init(),
        OptimizerConfig::Lars {
            momentum,
            eta,
            clip,
            exclude_bias_and_norm,
        } => LarsConfig {
            momentum,
            weight_decay: o.weight_decay,
            eta,
            clip,
            exclude_bias_and_norm,
            eps: 1e-8,
        }
        .init(),
        // Burn's Adam adds `penalty·w` to the gradient: torch `Adam(weight_decay=…)`, the L2
        // form of the W-MSE/htdt code (not AdamW).
        OptimizerConfig::Adam { betas, eps } => AdamConfig::new()
            .with_beta_1(betas[0] as f32)
            .with_beta_2(betas[1] as f32)
            .with_epsilon(eps as f32)
            .with_weight_decay(decay)
            .init(),
        // Decoupled decay: `w ← w − lr·wd·w` beside the Adam step (torch `AdamW`).
        OptimizerConfig::Adamw { betas, eps } => AdamWConfig::new()
            .with_beta_1(betas[0] as f32)
            .with_beta_2(betas[1] as f32)
            .with_epsilon(eps as f32)
            .with_weight_decay(o.weight_decay as f32)
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
            optimizer: toml::from_str("kind = \"adam\"").unwrap(),
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

#[cfg(test)]
mod config_tests {
    use super::*;

    fn parse(text: &str) -> Result<OptimConfig, String> {
        toml::from_str::<OptimConfig>(text).map_err(|e| e.to_string())
    }

    /// Each optimiser and schedule takes its own settings only: another's is an error that
    /// names it.
    #[test]
    fn tagged_tables_take_only_their_own_settings() {
        let o = parse("[optimizer]\nkind = \"lars\"\neta = 0.001\n[schedule]\nkind = \"step\"\nmilestones = [3]\n")
            .unwrap();
        assert!(
            matches!(o.optimizer, OptimizerConfig::Lars { eta, clip: true, .. } if eta == 0.001)
        );
        assert_eq!(
            o.schedule,
            ScheduleConfig::Step {
                milestones: vec![3],
                gamma: 0.1
            }
        );
        for (text, key) in [
            ("[optimizer]\nkind = \"sgd\"\neta = 0.02\n", "eta"),
            ("[optimizer]\nkind = \"adam\"\nmomentum = 0.9\n", "momentum"),
            ("[schedule]\nkind = \"cosine\"\nmin_lr = 0.1\n", "min_lr"),
            ("[schedule]\nkind = \"constant\"\ngamma = 0.1\n", "gamma"),
            ("[optimizer]\nkind = \"rmsprop\"\n", "rmsprop"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
        let bad = OptimConfig {
            schedule: ScheduleConfig::Step {
                milestones: vec![5, 3],
                gamma: 0.1,
            },
            ..OptimConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("optim.schedule.milestones"), "{err}");
    }

    /// AdamW decays the weight beside the Adam step: with a zero gradient only the decay moves
    /// it, `w ← w·(1 − lr·wd)`; Adam's L2 decay would pass `wd·w` through the adaptive step.
    #[test]
    fn adamw_decays_decoupled() {
        use burn::module::Param;
        use burn::optim::GradientsParams;
        use burn::prelude::*;
        #[derive(burn::module::Module, Debug)]
        struct One {
            w: Param<Tensor<1>>,
        }
        let device = Device::flex().autodiff();
        let model = One {
            w: Param::from_tensor(Tensor::ones([1], &device)),
        };
        let loss = model.w.val().mul_scalar(0.0).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let config = OptimConfig {
            optimizer: toml::from_str("kind = \"adamw\"").unwrap(),
            weight_decay: 0.5,
            ..OptimConfig::default()
        };
        let mut optim = build_optimizer(&config);
        let model = optim.step(0.1, model, grads);
        let w: f32 = model.w.val().into_scalar();
        assert!((w - 0.95).abs() < 1e-6, "{w}");
    }
}
