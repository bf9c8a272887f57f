//! The optimiser of `[optim]`: Burn's SGD and Adam, or our [`LarsConfig`](crate::lars::LarsConfig),
//! all as Burn `ModuleOptimizer`s so checkpoints save their state the same way.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};

use crate::config::{OptimConfig, OptimizerKind};
use crate::lars::LarsConfig;

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
