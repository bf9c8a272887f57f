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
