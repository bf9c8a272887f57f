use burn::Tensor;
use burn::prelude::{Device, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::coefficients::{MixDraw, MixKind};
use crate::error::OpsError;
use crate::global_mix::global_mix;
use crate::region_mix::region_mix;

/// Un-Mix settings (`[unmix]` in a run config). Defaults are the CIFAR reference scripts'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnMixConfig {
    /// `false` trains the plain base method.
    pub enabled: bool,
    /// Probability of a global mixture; otherwise a region mixture (`--prob`, 0.5 on CIFAR; 0.0
    /// on ImageNet since the authors' 2022-08 change).
    pub p_global: f64,
    /// `λ ~ Beta(beta, beta)`; 1.0 (uniform) in every reference script.
    pub beta: f64,
}

impl Default for UnMixConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            p_global: 0.5,
            beta: 1.0,
        }
    }
}

impl UnMixConfig {
    /// Checks ranges; the error names the key and the expected range.
    pub fn validate(&self) -> Result<(), OpsError> {
        if !(0.0..=1.0).contains(&self.p_global) {
            return Err(OpsError::Setting {
                owner: "UnMixConfig",
                field: "p_global",
                value: self.p_global.to_string(),
                expected: "expected a probability in [0, 1]",
            });
        }
        if !(self.beta.is_finite() && self.beta > 0.0) {
            return Err(OpsError::Setting {
                owner: "UnMixConfig",
                field: "beta",
                value: self.beta.to_string(),
                expected: "expected a finite value > 0",
            });
        }
        Ok(())
    }
}

/// A mixed view 0 and what produced it.
#[derive(Debug, Clone)]
pub struct MixedBatch {
    /// The mixed images `[N, C, H, W]`.
    pub images: Tensor<4>,
    /// Share of sample `i` in `images[i]`: the drawn λ for a global mixture, the exact pixel
    /// share for a region mixture. `images[N-1-i]` holds `1-λ` of sample `i`.
    pub lambda: f64,
    /// Which mixture fired.
    pub kind: MixKind,
}

/// A mixed view 0 on the host, before its upload ([`UnMix::apply_host`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HostMixedBatch {
    /// The mixed images, row-major `[N, C, H, W]`.
    pub images: Vec<f32>,
    /// `[N, C, H, W]`.
    pub dims: [usize; 4],
    /// As [`MixedBatch::lambda`].
    pub lambda: f64,
    /// Which mixture fired.
    pub kind: MixKind,
}

impl HostMixedBatch {
    /// Copies the images to `device`.
    pub fn to_device(self, device: &Device) -> MixedBatch {
        MixedBatch {
            images: Tensor::from_data(TensorData::new(self.images, self.dims), device),
            lambda: self.lambda,
            kind: self.kind,
        }
    }
}

/// The per-step Un-Mix sampler: every step's decision is a pure function of `(seed, step)`, so a
/// resumed run draws exactly what an uninterrupted one would.
///
/// ```
/// use burn::prelude::*;
/// use unmix_ops::{MixKind, UnMix, UnMixConfig};
///
/// // Sample i of an 8-image batch holds the value i.
/// let device = Device::flex();
/// let x0 = Tensor::<1, Int>::arange(0..8, &device).float().reshape([8, 1, 1, 1]).repeat_dim(2, 4).repeat_dim(3, 4);
/// let unmix = UnMix::new(UnMixConfig { p_global: 1.0, ..UnMixConfig::default() }, 3).unwrap();
/// let mixed = unmix.apply(x0, 0);
/// assert_eq!(mixed.kind, MixKind::Global);
/// // A global mixture of sample 0 with its partner, sample 7: λ·0 + (1 − λ)·7.
/// let first: Vec<f32> = mixed.images.narrow(0, 0, 1).into_data().to_vec().unwrap();
/// assert!(first.iter().all(|v| (v - (1.0 - mixed.lambda as f32) * 7.0).abs() < 1e-5));
/// // The same step always draws the same mixture (resume is exact).
/// assert_eq!(unmix.draw(0, 4, 4).lambda, mixed.lambda);
/// ```
#[derive(Debug, Clone)]
pub struct UnMix {
    config: UnMixConfig,
    seed: u64,
}

impl UnMix {
    /// Validates `config` and builds the sampler.
    pub fn new(config: UnMixConfig, seed: u64) -> Result<Self, OpsError> {
        config.validate()?;
        Ok(Self { config, seed })
    }

    /// The settings.
    pub fn config(&self) -> &UnMixConfig {
        &self.config
    }

    /// The decision of step `step` for `h × w` images.
    pub fn draw(&self, step: u64, h: usize, w: usize) -> MixDraw {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(step);
        MixDraw::sample(&mut rng, self.config.p_global, self.config.beta, h, w)
    }

    /// Mixes `x0` `[N, C, H, W]` with its batch reverse according to [`Self::draw`]`(step)`.
    ///
    /// On a GPU backend prefer [`Self::apply_host`] on the batch before its upload: with this
    /// mixture built on the device, Burn 0.22's wgpu backend trained InsDis and Invariance
    /// Propagation with gradients that drifted from the CPU's.
    pub fn apply(&self, x0: Tensor<4>, step: u64) -> MixedBatch {
        let [_, _, h, w] = x0.dims();
        Self::mix(x0, &self.draw(step, h, w))
    }

    /// [`Self::apply`] on the host: `x0` is a row-major `[N, C, H, W]` batch (`dims`) before its
    /// upload, and the result equals `apply`'s to the bit (test
    /// `host_and_device_mixtures_are_equal`).
    ///
    /// The training loop mixes here, so that the mixture reaches the device as an input like any
    /// view. Built on the device from view 0 (`apply`), the mixture made the wgpu backend's
    /// gradients drift from the CPU's under Burn 0.22's fusion for InsDis and Invariance
    /// Propagation (docs/benchmarks.md, "wgpu and the Un-Mix mixture"); uploaded, they agree.
    ///
    /// # Panics
    /// If `x0.len()` is not the product of `dims`.
    pub fn apply_host(&self, x0: &[f32], dims: [usize; 4], step: u64) -> HostMixedBatch {
        Self::mix_host(x0, dims, &self.draw(step, dims[2], dims[3]))
    }

    /// [`Self::mix`] on the host (see [`Self::apply_host`]).
    ///
    /// # Panics
    /// If `x0.len()` is not the product of `dims`.
    pub fn mix_host(x0: &[f32], dims: [usize; 4], draw: &MixDraw) -> HostMixedBatch {
        let [n, c, h, w] = dims;
        assert_eq!(
            x0.len(),
            n * c * h * w,
            "mix_host: {dims:?} and {} values",
            x0.len()
        );
        let sample = c * h * w;
        // The partner of sample i is sample n-1-i (`flip_batch`).
        let partner = |i: usize| &x0[(n - 1 - i) * sample..(n - i) * sample];
        match (draw.kind, draw.cut) {
            (MixKind::Region, Some(cut)) => {
                let mut images = x0.to_vec();
                for i in 0..n {
                    let from = partner(i);
                    for plane in 0..c {
                        for row in cut.row_start..cut.row_end {
                            let at = plane * h * w + row * w;
                            let cols = at + cut.col_start..at + cut.col_end;
                            images[i * sample..][cols.clone()].copy_from_slice(&from[cols]);
                        }
                    }
                }
                HostMixedBatch {
                    images,
                    dims,
                    // As `region_mix`: the exact share of each sample's own pixels.
                    lambda: draw.mixed_lambda(h, w),
                    kind: MixKind::Region,
                }
            }
            _ => {
                // As `global_mix`'s two scalar products and sum, in f32.
                let (own, other) = (draw.lambda as f32, (1.0 - draw.lambda) as f32);
                let mut images = Vec::with_capacity(x0.len());
                for i in 0..n {
                    let (a, b) = (&x0[i * sample..(i + 1) * sample], partner(i));
                    images.extend(a.iter().zip(b).map(|(a, b)| a * own + b * other));
                }
                HostMixedBatch {
                    images,
                    dims,
                    lambda: draw.lambda,
                    kind: MixKind::Global,
                }
            }
        }
    }

    /// Applies a given decision to `x0`.
    pub fn mix(x0: Tensor<4>, draw: &MixDraw) -> MixedBatch {
        match (draw.kind, draw.cut) {
            (MixKind::Region, Some(cut)) => {
                let (images, lambda) = region_mix(x0, cut);
                MixedBatch {
                    images,
                    lambda,
                    kind: MixKind::Region,
                }
            }
            _ => MixedBatch {
                images: global_mix(x0, draw.lambda),
                lambda: draw.lambda,
                kind: MixKind::Global,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_seed_gives_fixed_output_and_steps_differ() {
        let device = Device::flex();
        device.seed(1);
        let x = Tensor::<4>::random([4, 3, 8, 8], burn::tensor::Distribution::Default, &device);
        let a = UnMix::new(UnMixConfig::default(), 42).unwrap();
        let b = UnMix::new(UnMixConfig::default(), 42).unwrap();
        for step in 0..20 {
            let (ma, mb) = (a.apply(x.clone(), step), b.apply(x.clone(), step));
            assert_eq!(ma.images.to_data(), mb.images.to_data());
            assert_eq!((ma.lambda, ma.kind), (mb.lambda, mb.kind));
        }
        let lams: Vec<f64> = (0..20).map(|s| a.draw(s, 8, 8).lambda).collect();
        assert!(lams.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn host_and_device_mixtures_are_equal() {
        let device = Device::flex();
        device.seed(5);
        let dims = [5, 3, 7, 6];
        let x = Tensor::<4>::random(dims, burn::tensor::Distribution::Default, &device);
        let host = x.to_data().try_to_vec::<f32>().unwrap();
        let unmix = UnMix::new(UnMixConfig::default(), 11).unwrap();
        let mut kinds = Vec::new();
        for step in 0..16 {
            let on_device = unmix.apply(x.clone(), step);
            let on_host = unmix.apply_host(&host, dims, step);
            assert_eq!(
                (on_host.lambda, on_host.kind),
                (on_device.lambda, on_device.kind)
            );
            let expected = on_device.images.into_data().try_to_vec::<f32>().unwrap();
            assert_eq!(on_host.images, expected, "step {step}");
            let uploaded = on_host.to_device(&device);
            assert_eq!(uploaded.images.dims(), dims);
            kinds.push(uploaded.kind);
        }
        // Both kinds were compared, and a region mixture that pastes something.
        assert!(kinds.contains(&MixKind::Global) && kinds.contains(&MixKind::Region));
        assert!((0..16).any(|s| unmix.draw(s, 7, 6).cut.is_some_and(|c| c.area() > 0)));
    }

    #[test]
    fn lambda_has_beta_1_1_moments_and_kinds_follow_p_global() {
        let unmix = UnMix::new(UnMixConfig::default(), 9).unwrap();
        let n = 20_000;
        let draws: Vec<MixDraw> = (0..n).map(|s| unmix.draw(s, 32, 32)).collect();
        let mean = draws.iter().map(|d| d.lambda).sum::<f64>() / n as f64;
        let var = draws.iter().map(|d| (d.lambda - mean).powi(2)).sum::<f64>() / n as f64;
        // Beta(1,1) = U(0,1): mean 1/2, variance 1/12. Standard errors ≈ 0.002 and 0.0006.
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.004, "variance {var}");
        let global = draws.iter().filter(|d| d.kind == MixKind::Global).count();
        let share = global as f64 / n as f64;
        assert!((share - 0.5).abs() < 0.02, "global share {share}");
        let region_only = UnMix::new(
            UnMixConfig {
                p_global: 0.0,
                ..Default::default()
            },
            9,
        )
        .unwrap();
        assert!((0..200).all(|s| region_only.draw(s, 8, 8).kind == MixKind::Region));
    }

    #[test]
    fn invalid_settings_are_rejected_with_the_key() {
        let bad = UnMixConfig {
            p_global: 1.5,
            ..Default::default()
        };
        let err = UnMix::new(bad, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "UnMixConfig.p_global = 1.5: expected a probability in [0, 1]"
        );
        let bad = UnMixConfig {
            beta: 0.0,
            ..Default::default()
        };
        assert_eq!(
            UnMix::new(bad, 0).unwrap_err(),
            OpsError::Setting {
                owner: "UnMixConfig",
                field: "beta",
                value: "0".into(),
                expected: "expected a finite value > 0",
            }
        );
    }

    #[test]
    fn global_draw_with_lambda_one_is_identity() {
        let device = Device::flex();
        let x = Tensor::<4>::random([3, 1, 4, 4], burn::tensor::Distribution::Default, &device);
        let draw = MixDraw {
            kind: MixKind::Global,
            lambda: 1.0,
            cut: None,
        };
        let m = UnMix::mix(x.clone(), &draw);
        assert_eq!(m.images.to_data(), x.to_data());
        assert_eq!(m.lambda, 1.0);
    }
}
