use burn::module::{Flag, Module, Param, RunningState};
use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::module::batch_norm;

use crate::fused_batch_norm::batch_norm_train_fused;

/// Configuration of [`SplitBatchNorm`].
#[derive(Debug, Clone)]
pub struct SplitBatchNormConfig {
    /// Channels.
    pub num_features: usize,
    /// Number of sub-batches with their own statistics (1 = plain batch norm).
    pub num_splits: usize,
    /// Added to the variance.
    pub epsilon: f64,
    /// Running-statistics momentum (PyTorch convention: weight of the new batch).
    pub momentum: f64,
}

impl SplitBatchNormConfig {
    /// PyTorch's defaults (ε 1e-5, momentum 0.1).
    pub fn new(num_features: usize, num_splits: usize) -> Self {
        Self {
            num_features,
            num_splits: num_splits.max(1),
            epsilon: 1e-5,
            momentum: 0.1,
        }
    }

    /// Builds the layer: γ = 1, β = 0, running mean 0, running variance 1.
    pub fn init(&self, device: &Device) -> SplitBatchNorm {
        let c = self.num_features;
        SplitBatchNorm {
            gamma: Initializer::Ones.init([c], device),
            beta: Initializer::Zeros.init([c], device),
            training: Param::from_bool(true),
            running_mean: RunningState::new(Tensor::zeros([c], device)),
            running_var: RunningState::new(Tensor::ones([c], device)),
            num_splits: self.num_splits,
            epsilon: self.epsilon,
            momentum: self.momentum,
        }
    }
}

/// Batch norm whose training statistics are computed over `num_splits` sub-batches, as the
/// `SplitBatchNorm` of the MoCo CIFAR demo that the Un-Mix CIFAR code uses (it imitates the
/// per-GPU statistics of multi-GPU training on one device).
///
/// Sample `i` belongs to split `i mod num_splits` (the reference reshapes `[N, C, H, W]` to
/// `[N/S, S·C, H, W]`), so a batch reversal maps split `s` to split `S-1-s` and flipping the
/// embeddings of a mixed batch stays exact. Running statistics are the average over splits, the
/// variance unbiased as in PyTorch. In evaluation mode it is plain batch norm.
#[derive(Module, Debug)]
pub struct SplitBatchNorm {
    /// Scale γ.
    pub gamma: Param<Tensor<1>>,
    /// Shift β.
    pub beta: Param<Tensor<1>>,
    /// Training behaviour (batch statistics) when enabled.
    pub training: Param<Flag>,
    /// Running mean.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (unbiased) variance.
    pub running_var: RunningState<Tensor<1>>,
    /// Number of splits.
    pub num_splits: usize,
    /// Added to the variance.
    pub epsilon: f64,
    /// Running-statistics momentum.
    pub momentum: f64,
}

impl SplitBatchNorm {
    /// `[N, C, H, W]` → `[N, C, H, W]`. In training mode `N` must be a multiple of the number
    /// of splits.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        if self.training.is_enabled() {
            self.forward_train(input)
        } else {
            let device = input.device();
            batch_norm(
                input,
                self.gamma.val(),
                self.beta.val(),
                self.running_mean.value().to_device(&device),
                self.running_var.value().to_device(&device),
                self.epsilon,
            )
        }
    }

    fn forward_train(&self, input: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = input.dims();
        let s = self.num_splits;
        assert!(
            n % s == 0,
            "split batch norm: batch {n} is not a multiple of {s} splits"
        );
        let grouped = input.reshape([n / s, s * c, h, w]);
        let out = batch_norm_train_fused(
            grouped,
            self.gamma.val().repeat_dim(0, s),
            self.beta.val().repeat_dim(0, s),
            self.epsilon,
        );
        // Per-split statistics averaged over splits; Burn returns the biased variance.
        let count = ((n / s) * h * w) as f64;
        let unbias = if count > 1.0 {
            count / (count - 1.0)
        } else {
            1.0
        };
        let mean = out.mean.detach().reshape([s, c]).mean_dim(0).reshape([c]);
        let var = out
            .variance
            .detach()
            .reshape([s, c])
            .mean_dim(0)
            .reshape([c])
            .mul_scalar(unbias);
        let device = mean.device();
        let m = self.momentum;
        let rm = self.running_mean.value_sync().to_device(&device);
        let rv = self.running_var.value_sync().to_device(&device);
        self.running_mean
            .update(rm.mul_scalar(1.0 - m).add(mean.mul_scalar(m)).detach());
        self.running_var
            .update(rv.mul_scalar(1.0 - m).add(var.mul_scalar(m)).detach());
        out.output.reshape([n, c, h, w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(t: Tensor<4>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn one_split_normalises_each_channel_over_the_batch() {
        let device = Device::flex().autodiff();
        let bn = SplitBatchNormConfig::new(1, 1).init(&device);
        let x = Tensor::<4>::from_floats([[[[1.0, 3.0]]], [[[5.0, 7.0]]]], &device);
        // mean 4, biased var 5: (x-4)/sqrt(5+1e-5)
        let y = data(bn.forward(x));
        let e = [-3.0, -1.0, 1.0, 3.0].map(|v: f64| (v / (5.0f64 + 1e-5).sqrt()) as f32);
        for (a, b) in y.iter().zip(e) {
            assert!((a - b).abs() < 1e-5);
        }
        // running mean 0.9·0 + 0.1·4, running var 0.9·1 + 0.1·(20/3)
        let _ = bn.valid();
        let rm = bn
            .running_mean
            .value()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()[0];
        let rv = bn
            .running_var
            .value()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()[0];
        assert!((rm - 0.4).abs() < 1e-6);
        assert!((rv - (0.9 + 2.0 / 3.0)).abs() < 1e-5);
    }

    #[test]
    fn splits_use_samples_i_mod_s_and_commute_with_batch_reversal() {
        let device = Device::flex().autodiff();
        let bn = SplitBatchNormConfig::new(1, 2).init(&device);
        // Samples 0 and 2 form split 0 ({0, 4}), samples 1 and 3 split 1 ({10, 30}).
        let x = Tensor::<4>::from_floats([[[[0.0]]], [[[10.0]]], [[[4.0]]], [[[30.0]]]], &device);
        let y = data(bn.forward(x.clone()));
        let k = |v: f64, var: f64| (v / (var + 1e-5).sqrt()) as f32;
        let e = [k(-2.0, 4.0), k(-10.0, 100.0), k(2.0, 4.0), k(10.0, 100.0)];
        for (a, b) in y.iter().zip(e) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let flipped = data(bn.forward(x.flip([0])).flip([0]));
        for (a, b) in y.iter().zip(flipped) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
