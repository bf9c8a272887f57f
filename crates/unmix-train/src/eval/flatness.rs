//! Flatness of the instance-discrimination predictions (the Un-Mix paper's Figure 3: a model
//! trained with mixtures predicts with less confidence, a flatter distribution over instances).
//!
//! On `N` held-out images, two views each (the run's training augmentation, seeded), every
//! image's first view is classified among the `N` second views: `p_i = softmax_j(q_i · k_j / t)`
//! with `q`, `k` the L2-normalised projections of the encoder in evaluation mode — the same
//! prediction for every method, so checkpoints of different methods compare. Reported: the mean
//! entropy of `p_i` (nats, and over its maximum `ln N`), the mean largest probability with its
//! histogram, the mean sorted probabilities at ranks 1–10, and how often the largest is the
//! image's own view.

use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use unmix_data::{ImageSet, MultiViewLoader, ViewTransform};
use unmix_losses::l2_normalize;

use crate::method::Method;

/// Settings of the flatness protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatnessConfig {
    /// Held-out images taken, the instances predicted among (the first `images` of a seeded
    /// shuffle of the test set, fewer if it is smaller).
    pub images: usize,
    /// Softmax temperature (0.1: the MoCo CIFAR demo's, which the Un-Mix CIFAR code trains at).
    pub temperature: f64,
    /// Bins of the largest-probability histogram over `[0, 1]`.
    pub bins: usize,
    /// Sorted probabilities reported (ranks 1..=top).
    pub top: usize,
}

impl Default for FlatnessConfig {
    fn default() -> Self {
        Self {
            images: 1000,
            temperature: 0.1,
            bins: 10,
            top: 10,
        }
    }
}

/// What [`flatness_of_logits`] measured; every figure is a mean over the images.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Flatness {
    /// Images (= instances) predicted among.
    pub images: usize,
    /// Entropy of a prediction, in nats.
    pub entropy: f64,
    /// Entropy over its maximum, `ln N`: 1 for a uniform prediction, 0 for a certain one.
    pub relative_entropy: f64,
    /// The largest probability of a prediction.
    pub max_probability: f64,
    /// Fraction of images whose largest probability falls in each of `bins` equal bins of
    /// `[0, 1]` (the last bin includes 1).
    pub max_probability_histogram: Vec<f64>,
    /// Mean probability at rank 1, 2, … after sorting each prediction in decreasing order.
    pub sorted_probabilities: Vec<f64>,
    /// Fraction of images whose largest probability is their own second view.
    pub instance_top1: f64,
}

/// Flatness of the row-wise softmax of `logits` `[N, N]`, whose diagonal holds each row's own
/// instance.
pub fn flatness_of_logits(logits: Tensor<2>, bins: usize, top: usize) -> Flatness {
    let [n, m] = logits.dims();
    assert_eq!(n, m, "one column per instance");
    let p = softmax(logits, 1);
    // p·ln p with 0·ln 0 = 0.
    let plogp = p.clone().mul(p.clone().clamp_min(1e-30).log());
    let entropy: Vec<f32> = plogp
        .sum_dim(1)
        .neg()
        .into_data()
        .try_to_vec()
        .expect("f32");
    let rows: Vec<f32> = p.into_data().try_to_vec().expect("f32");
    let top = top.min(n);
    let mut sorted = vec![0f64; top];
    let mut histogram = vec![0f64; bins.max(1)];
    let (mut max_sum, mut hits) = (0f64, 0usize);
    for (i, row) in rows.chunks_exact(n).enumerate() {
        let (arg, max) =
            row.iter().enumerate().fold(
                (0, f32::MIN),
                |best, (j, &v)| if v > best.1 { (j, v) } else { best },
            );
        hits += usize::from(arg == i);
        max_sum += max as f64;
        let bin = ((max as f64 * histogram.len() as f64) as usize).min(histogram.len() - 1);
        histogram[bin] += 1.0;
        let mut desc = row.to_vec();
        desc.sort_by(|a, b| b.total_cmp(a));
        for (s, v) in sorted.iter_mut().zip(desc) {
            *s += v as f64;
        }
    }
    let nf = n as f64;
    let entropy = entropy.iter().map(|&h| h as f64).sum::<f64>() / nf;
    Flatness {
        images: n,
        entropy,
        relative_entropy: if n > 1 { entropy / nf.ln() } else { 0.0 },
        max_probability: max_sum / nf,
        max_probability_histogram: histogram.into_iter().map(|c| c / nf).collect(),
        sorted_probabilities: sorted.into_iter().map(|s| s / nf).collect(),
        instance_top1: hits as f64 / nf,
    }
}

/// The flatness of `model`'s instance discrimination on held-out `images`, two views each by
/// `augmentation` (the run's), drawn with `seed`.
pub(crate) fn flatness<M: Method>(
    model: &M,
    images: &ImageSet,
    augmentation: &ViewTransform,
    config: &FlatnessConfig,
    seed: u64,
    device: &Device,
) -> Flatness {
    let model = model.valid();
    let device = device.clone().without_autodiff();
    let n = config.images.min(images.len());
    // One batch of `n` images: the loader's seeded shuffle picks them and draws both views.
    let loader = MultiViewLoader::new(
        Arc::new(images.clone()),
        vec![augmentation.clone(); 2],
        n,
        1,
        seed,
    )
    .expect("1 <= n <= the set's size, two views");
    let batch = loader
        .epoch(0, 0)
        .next()
        .expect("one batch")
        .to_device(&device);
    let project = |view: Tensor<4>| {
        let parts: Vec<Tensor<2>> = (0..n)
            .step_by(256)
            .map(|s| l2_normalize(model.features(view.clone().narrow(0, s, 256.min(n - s))).1))
            .collect();
        Tensor::cat(parts, 0)
    };
    let q = project(batch.views[0].clone());
    let k = project(batch.views[1].clone());
    let logits = q.matmul(k.transpose()).div_scalar(config.temperature);
    flatness_of_logits(logits, config.bins, config.top)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    #[test]
    fn a_uniform_prediction_is_flattest_and_a_one_hot_one_is_sharpest() {
        let device = Device::flex();
        let n = 8;
        // Equal logits: p = 1/8 everywhere; entropy ln 8, relative 1, every max in bin 1 of 10.
        let uniform = flatness_of_logits(Tensor::zeros([n, n], &device), 10, 3);
        close(uniform.entropy, (n as f64).ln());
        close(uniform.relative_entropy, 1.0);
        close(uniform.max_probability, 0.125);
        assert_eq!(uniform.max_probability_histogram[1], 1.0);
        for p in &uniform.sorted_probabilities {
            close(*p, 0.125);
        }
        // The argmax of a tie is the first column: only row 0 finds itself.
        close(uniform.instance_top1, 1.0 / 8.0);

        // A large logit on the diagonal: one-hot on the own instance.
        let eye = Tensor::<2>::eye(n, &device).mul_scalar(100.0);
        let sharp = flatness_of_logits(eye, 10, 3);
        close(sharp.entropy, 0.0);
        close(sharp.max_probability, 1.0);
        assert_eq!(
            sharp.max_probability_histogram[9], 1.0,
            "1 falls in the last bin"
        );
        close(sharp.sorted_probabilities[0], 1.0);
        close(sharp.sorted_probabilities[1], 0.0);
        close(sharp.instance_top1, 1.0);
    }

    #[test]
    fn two_equal_candidates_give_ln_2() {
        // Row i puts logit 10 on columns i and i+1 (mod 4): p = 1/2, 1/2 (up to e^-10).
        let device = Device::flex();
        let mut v = vec![0f32; 16];
        for i in 0..4 {
            v[i * 4 + i] = 10.0;
            v[i * 4 + (i + 1) % 4] = 10.0;
        }
        let logits = Tensor::<1>::from_floats(v.as_slice(), &device).reshape([4, 4]);
        let f = flatness_of_logits(logits, 4, 2);
        assert!((f.entropy - 2f64.ln()).abs() < 1e-3, "{}", f.entropy);
        assert!((f.max_probability - 0.5).abs() < 1e-3);
        // 0.5 lands in bin 2 of 4 ([0.5, 0.75)) — or bin 1 if rounding puts it just below.
        assert_eq!(
            f.max_probability_histogram[1] + f.max_probability_histogram[2],
            1.0
        );
        // Ties go to the first column: rows 0–2 find themselves, row 3 picks column 0.
        close(f.instance_top1, 0.75);
    }
}
