//! LARS (You et al. 2017), the layer-wise adaptive rate of solo-learn's `LARS` and of SwAV's
//! `LARC` wrapper: per parameter tensor, the update is scaled by the trust ratio
//! `η·‖w‖ / (‖∇w‖ + wd·‖w‖ + ε)` (clipped to `1` relative to the learning rate when `clip`),
//! weight decay is added to the gradient before the scaling, then plain SGD with momentum
//! applies. Bias and batch-norm parameters (the rank-1 tensors, solo-learn's
//! `exclude_bias_n_norm`) can be left out of both the scaling and the weight decay.
//!
//! Burn's `optim` has no LARS, hence this file; it plugs into Burn's `ModuleOptimizer` (state
//! saving and loading included) as any Burn optimiser.

use burn::optim::momentum::{Momentum, MomentumConfig};
use burn::optim::{ModuleOptimizer, Optimizer, SgdState};
use burn::prelude::*;

/// Settings of [`Lars`].
#[derive(Debug, Clone, PartialEq)]
pub struct LarsConfig {
    /// SGD momentum (0.9).
    pub momentum: f64,
    /// Weight decay, added to the gradient of adapted tensors before the trust ratio.
    pub weight_decay: f64,
    /// Trust coefficient η (solo-learn 0.02; SwAV's LARC 0.001).
    pub eta: f64,
    /// Clip the adaptive rate: `min(ratio / lr, 1)` (solo-learn `clip_lr`; LARC `clip`).
    pub clip: bool,
    /// Leave rank-1 tensors (biases, norm scales and shifts) without adaptation and decay.
    pub exclude_bias_and_norm: bool,
    /// ε in the denominator (1e-8).
    pub eps: f64,
}

impl LarsConfig {
    /// The optimiser, ready for Burn's `ModuleOptimizer`.
    pub fn build(&self) -> Lars {
        Lars {
            config: self.clone(),
            momentum: Momentum::new(&MomentumConfig {
                momentum: self.momentum,
                dampening: 0.0,
                nesterov: false,
            }),
        }
    }

    /// A whole-module optimiser.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.build())
    }
}

/// The LARS optimiser (one tensor at a time).
#[derive(Clone)]
pub struct Lars {
    config: LarsConfig,
    momentum: Momentum,
}

impl Lars {
    /// The trust-ratio-scaled gradient (with weight decay) of one tensor, before momentum.
    pub fn adapt<const D: usize>(&self, lr: f64, param: Tensor<D>, grad: Tensor<D>) -> Tensor<D> {
        let c = &self.config;
        if D == 1 && c.exclude_bias_and_norm {
            return grad;
        }
        let norm = |t: Tensor<D>| {
            let n = t.shape().num_elements();
            t.reshape([n]).powf_scalar(2.0).sum().sqrt()
        };
        let (p_norm, g_norm) = (norm(param.clone()), norm(grad.clone()));
        let mut ratio = p_norm.clone().mul_scalar(c.eta).div(
            g_norm
                .clone()
                .add(p_norm.clone().mul_scalar(c.weight_decay))
                .add_scalar(c.eps),
        );
        if c.clip {
            // At lr 0 (the first warm-up step) solo-learn's `min(ratio / lr, 1)` is `min(inf, 1)`
            // = 1; dividing would give that too, except 0/0 for a zero tensor.
            ratio = if lr > 0.0 {
                ratio.div_scalar(lr).clamp_max(1.0)
            } else {
                ratio.ones_like()
            };
        }
        // Zero weights or zero gradients: the gradient is left as it is, without decay. Chosen
        // with a mask, not multiplied in, so a NaN ratio of an inactive tensor cannot leak.
        let active = p_norm.greater_elem(0.0).bool_and(g_norm.greater_elem(0.0));
        let scale = ratio.ones_like().mask_where(active.clone(), ratio);
        let decay = active.float().mul_scalar(c.weight_decay).reshape([1; D]);
        grad.add(param.mul(decay)).mul(scale.reshape([1; D]))
    }
}

impl Optimizer for Lars {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let grad = self.adapt(lr, tensor.clone(), grad);
        let (grad, momentum) = self
            .momentum
            .transform(grad, state.and_then(|s| s.momentum));
        (
            tensor.sub(grad.mul_scalar(lr)),
            Some(SgdState::new(Some(momentum))),
        )
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.map(|m| m.to_device(device));
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn lars(eta: f64, wd: f64, clip: bool) -> Lars {
        LarsConfig {
            momentum: 0.9,
            weight_decay: wd,
            eta,
            clip,
            exclude_bias_and_norm: true,
            eps: 1e-8,
        }
        .build()
    }

    #[test]
    fn trust_ratio_on_a_known_tensor() {
        let device = Device::flex();
        // w = [[3, 4]] (‖w‖ = 5), g = [[0, 2]] (‖g‖ = 2), wd 0.1, η 0.02:
        // ratio = 0.02·5 / (2 + 0.1·5) = 0.04; adapted = (g + 0.1·w)·0.04
        //       = [0.3, 2.4]·0.04 = [0.012, 0.096].
        let w = Tensor::<2>::from_floats([[3.0, 4.0]], &device);
        let g = Tensor::<2>::from_floats([[0.0, 2.0]], &device);
        let got = values(lars(0.02, 0.1, false).adapt(0.5, w.clone(), g.clone()));
        assert!((got[0] - 0.012).abs() < 1e-7 && (got[1] - 0.096).abs() < 1e-7);
        // Clipped against lr 0.5: min(0.04 / 0.5, 1) = 0.08 → [0.024, 0.192].
        let got = values(lars(0.02, 0.1, true).adapt(0.5, w.clone(), g.clone()));
        assert!((got[0] - 0.024).abs() < 1e-7 && (got[1] - 0.192).abs() < 1e-6);
        // With a small lr the clip caps the ratio at 1: the decayed gradient itself.
        let got = values(lars(0.02, 0.1, true).adapt(0.001, w.clone(), g.clone()));
        assert!((got[0] - 0.3).abs() < 1e-6 && (got[1] - 2.4).abs() < 1e-6);
        // Rank-1 tensors (bias, BN) are excluded: the raw gradient.
        let b = Tensor::<1>::from_floats([3.0, 4.0], &device);
        let gb = Tensor::<1>::from_floats([0.0, 2.0], &device);
        assert_eq!(
            values(lars(0.02, 0.1, false).adapt(0.5, b, gb)),
            vec![0.0, 2.0]
        );
        // Zero weights: gradient unchanged, no decay.
        let z = Tensor::<2>::zeros([1, 2], &device);
        assert_eq!(
            values(lars(0.02, 0.1, false).adapt(0.5, z.clone(), g.clone())),
            vec![0.0, 2.0]
        );
        // ...also at lr 0 with clipping (the first warm-up step), where the ratio 0/0 is NaN:
        // it once leaked into every zero-initialised bias when biases were not excluded.
        assert_eq!(
            values(lars(0.02, 0.1, true).adapt(0.0, z, g.clone())),
            vec![0.0, 2.0]
        );
        // An active tensor at lr 0: solo-learn's min(ratio / 0, 1) = 1, the decayed gradient.
        let got = values(lars(0.02, 0.1, true).adapt(0.0, w, g));
        assert!((got[0] - 0.3).abs() < 1e-6 && (got[1] - 2.4).abs() < 1e-6);
    }

    #[test]
    fn step_applies_momentum_sgd_to_the_adapted_gradient() {
        let device = Device::flex();
        let opt = lars(0.02, 0.1, false);
        let w = Tensor::<2>::from_floats([[3.0, 4.0]], &device);
        let g = Tensor::<2>::from_floats([[0.0, 2.0]], &device);
        let (w1, state) = opt.step(0.5, w, g.clone(), None);
        // w − 0.5·[0.012, 0.096] = [2.994, 3.952].
        let v = values(w1.clone());
        assert!((v[0] - 2.994).abs() < 1e-6 && (v[1] - 3.952).abs() < 1e-6);
        // Second step: velocity = 0.9·v₀ + adapted(w1, g).
        let adapted = values(opt.adapt(0.5, w1.clone(), g.clone()));
        let (w2, _) = opt.step(0.5, w1, g, state);
        let v2 = values(w2);
        let want0 = 2.994 - 0.5 * (0.9 * 0.012 + adapted[0]);
        let want1 = 3.952 - 0.5 * (0.9 * 0.096 + adapted[1]);
        assert!((v2[0] - want0).abs() < 1e-5 && (v2[1] - want1).abs() < 1e-5);
    }
}
