//! Offline linear evaluation on precomputed features, W-MSE's recipe (`htdt/self-supervised`,
//! `eval/sgd.py::eval_sgd`; algorithms.md §6.1): the backbone's features of every training and
//! test image computed once, without augmentation, by the frozen encoder in evaluation mode (so
//! its batch-norm statistics do not move), then a linear layer (PyTorch's default
//! initialisation) trained on them with cross-entropy and Adam (lr 1e-2 decayed exponentially
//! per epoch to 1e-6 over 500 epochs, L2 weight decay 5e-6, PyTorch's β and ε), batches of 1,000
//! in a fresh random order every epoch; top-1 and top-5 on the test features.
//!
//! The reference reshapes its permutation to `[-1, 1000]` and so needs a training set that 1,000
//! divides; here a last, smaller batch takes the remainder.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::wmse_knn::RawFeatures;

/// W-MSE's linear-evaluation settings (`eval_sgd`'s defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearProbeConfig {
    /// Epochs over the training features.
    pub epochs: usize,
    /// Features per step.
    pub batch_size: usize,
    /// Learning rate of the first epoch.
    pub lr_start: f64,
    /// Learning rate the exponential decay reaches after `epochs` epochs.
    pub lr_end: f64,
    /// L2 weight decay added to the gradient (torch `Adam(weight_decay=…)`).
    pub weight_decay: f64,
}

impl Default for LinearProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 500,
            batch_size: 1000,
            lr_start: 1e-2,
            lr_end: 1e-6,
            weight_decay: 5e-6,
        }
    }
}

/// Test accuracies (in `[0, 1]`) of a trained linear probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearProbeScores {
    /// Top-1.
    pub top1: f64,
    /// Top-5 (top-`classes` when there are fewer than 5 classes).
    pub top5: f64,
}

fn rows(features: &RawFeatures<'_>, ids: &[usize], device: &Device) -> Tensor<2> {
    let mut data = Vec::with_capacity(ids.len() * features.dim);
    for &i in ids {
        data.extend_from_slice(&features.data[i * features.dim..(i + 1) * features.dim]);
    }
    Tensor::from_data(TensorData::new(data, [ids.len(), features.dim]), device)
}

/// How many rows of `logits` `[N, classes]` rank their label first, and within the first `top`.
pub(crate) fn top_hits(logits: Tensor<2>, labels: &[u16], top: usize) -> (usize, usize) {
    let best = logits
        .argsort_descending(1)
        .narrow(1, 0, top)
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .expect("class ids");
    let (mut top1, mut topk) = (0, 0);
    for (ranked, &label) in best.chunks(top).zip(labels) {
        top1 += usize::from(ranked[0] == label as i64);
        topk += usize::from(ranked.contains(&(label as i64)));
    }
    (top1, topk)
}

/// Trains a linear classifier on `train` (seeded by `seed`) and scores it on `test`.
///
/// ```
/// use burn::prelude::*;
/// use unmix_train::eval::linear::{LinearProbeConfig, linear_probe};
/// use unmix_train::eval::wmse_knn::RawFeatures;
///
/// // Two classes on either side of x = 0.
/// let train = [-2.0f32, 1.0, -1.0, -1.0, 1.0, 0.5, 2.0, -1.0];
/// let config = LinearProbeConfig { epochs: 200, batch_size: 4, lr_start: 0.1, ..Default::default() };
/// let scores = linear_probe(
///     RawFeatures { data: &train, dim: 2 }, &[0, 0, 1, 1],
///     RawFeatures { data: &[-3.0, 0.0, 3.0, 0.0], dim: 2 }, &[0, 1],
///     2, &config, 0, &Device::flex(),
/// );
/// assert_eq!(scores.top1, 1.0);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn linear_probe(
    train: RawFeatures<'_>,
    train_labels: &[u16],
    test: RawFeatures<'_>,
    test_labels: &[u16],
    classes: usize,
    config: &LinearProbeConfig,
    seed: u64,
    device: &Device,
) -> LinearProbeScores {
    let device = device.clone().without_autodiff().autodiff();
    device.seed(seed);
    let mut clf: Linear = LinearConfig::new(train.dim, classes).init(&device);
    let mut optim = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(Some(WeightDecayConfig::new(config.weight_decay as f32)))
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    // `ExponentialLR(gamma)` with `gamma = (lr_end / lr_start)^(1 / epochs)`, stepped per epoch.
    let gamma = (config.lr_end / config.lr_start).powf(1.0 / config.epochs as f64);
    let n = train_labels.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x11_4E_A7);
    for epoch in 0..config.epochs {
        let lr = config.lr_start * gamma.powi(epoch as i32);
        order.shuffle(&mut rng);
        for batch in order.chunks(config.batch_size) {
            let x = rows(&train, batch, &device);
            let y = Tensor::<1, Int>::from_data(
                TensorData::new(
                    batch.iter().map(|&i| train_labels[i] as i64).collect(),
                    [batch.len()],
                ),
                &device,
            );
            let loss = loss_fn.forward(clf.forward(x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &clf);
            clf = optim.step(lr, clf, grads);
        }
    }
    let clf = clf.valid();
    let eval_device = device.clone().without_autodiff();
    let top = 5.min(classes);
    let (mut top1, mut top5) = (0usize, 0usize);
    let all: Vec<usize> = (0..test_labels.len()).collect();
    for block in all.chunks(4096) {
        let logits = clf.forward(rows(&test, block, &eval_device));
        let labels: Vec<u16> = block.iter().map(|&i| test_labels[i]).collect();
        let (hits1, hits5) = top_hits(logits, &labels, top);
        top1 += hits1;
        top5 += hits5;
    }
    let m = test_labels.len().max(1) as f64;
    LinearProbeScores {
        top1: top1 as f64 / m,
        top5: top5 as f64 / m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Ten Gaussian blobs in 16 dimensions (σ 0.3 around means 3 apart): linearly separable up
    /// to a vanishing tail, so a trained probe is right on almost every test point, and a probe
    /// that does not train (one epoch at a tiny rate) is not.
    #[test]
    fn separable_features_are_learned() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let means: Vec<Vec<f32>> = (0..10)
            .map(|_| (0..16).map(|_| rng.random_range(-3.0..3.0)).collect())
            .collect();
        let mut sample = |per: usize| {
            let mut x = Vec::new();
            let mut y = Vec::new();
            for (c, m) in means.iter().enumerate() {
                for _ in 0..per {
                    x.extend(
                        m.iter()
                            .map(|v| v + 0.3 * (rng.random::<f32>() - 0.5) * 3.4),
                    );
                    y.push(c as u16);
                }
            }
            (x, y)
        };
        let (xtr, ytr) = sample(100);
        let (xte, yte) = sample(50);
        let f = |data| RawFeatures { data, dim: 16 };
        let device = Device::flex();
        let config = LinearProbeConfig {
            epochs: 100,
            batch_size: 100,
            ..Default::default()
        };
        let s = linear_probe(f(&xtr), &ytr, f(&xte), &yte, 10, &config, 0, &device);
        assert!(s.top1 >= 0.95, "{s:?}");
        assert!(s.top5 >= s.top1);
        let untrained = LinearProbeConfig {
            epochs: 1,
            lr_start: 1e-7,
            lr_end: 1e-7,
            ..config
        };
        let s0 = linear_probe(f(&xtr), &ytr, f(&xte), &yte, 10, &untrained, 0, &device);
        assert!(s0.top1 < 0.5, "{s0:?}");
    }

    #[test]
    fn top5_counts_the_label_among_the_five_best() {
        // Trained to read class c from a one-hot feature on c; tested on 0.6·e_c + 0.4·e_{c+1}
        // labelled c+1: class c scores highest, c+1 second, so top-1 is 0 and top-5 is 1.
        let onehot = |c: usize, w: f32, v: &mut Vec<f32>| v[c % 10] += w;
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut xt = Vec::new();
        let mut yt = Vec::new();
        for c in 0..10usize {
            let mut v = vec![0.0f32; 10];
            onehot(c, 5.0, &mut v);
            x.extend(v);
            y.push(c as u16);
            let mut t = vec![0.0f32; 10];
            onehot(c, 3.0, &mut t);
            onehot(c + 1, 2.0, &mut t);
            xt.extend(t);
            yt.push(((c + 1) % 10) as u16);
        }
        let f = |data| RawFeatures { data, dim: 10 };
        let config = LinearProbeConfig {
            epochs: 300,
            batch_size: 10,
            lr_start: 0.05,
            ..Default::default()
        };
        let s = linear_probe(f(&x), &y, f(&xt), &yt, 10, &config, 1, &Device::flex());
        assert_eq!((s.top1, s.top5), (0.0, 1.0), "{s:?}");
    }
}
