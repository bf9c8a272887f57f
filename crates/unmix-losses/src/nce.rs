//! The losses of the memory-bank methods (CMC, InsDis): noise-contrastive estimation with a
//! constant normaliser, and its softmax alternative (CMC `NCE/NCECriterion.py`,
//! `NCE/NCEAverage.py`; algorithms.md §2.4).
//!
//! The scores come from a [`MemoryBank`](../unmix_models/struct.MemoryBank.html): each sample's
//! embedding against `K + 1` bank rows, its own row in column 0 and `K` rows drawn uniformly
//! from the whole bank (which may include its own, as CMC's `AliasMethod` over uniform weights).

use burn::prelude::*;

/// CMC's `eps` in `NCECriterion`.
const EPS: f64 = 1e-7;

/// NCE (CMC Eq. 12, `NCECriterion`): `probs` `[B, K+1]` are the model's `P(i | v) =
/// exp(s/T) / Z`, column 0 the positive, the rest `K` noise samples from the uniform noise
/// distribution `Pn = 1/n_data`. With `m = K`:
/// `L = −(1/B) Σ_b [ log(P₀ / (P₀ + m·Pn + ε)) + Σ_k log(m·Pn / (P_k + m·Pn + ε)) ]`.
///
/// ```
/// use burn::prelude::*;
/// use unmix_losses::nce_loss;
///
/// let device = Device::flex();
/// // One sample, one noise sample, 10 images: m·Pn = 0.1.
/// let probs = Tensor::<2>::from_data([[0.1, 0.1]], &device);
/// let loss: f32 = nce_loss(probs, 10).into_scalar();
/// // −[log(0.1/0.2) + log(0.1/0.2)] = 2·ln 2 (ε aside).
/// assert!((loss - 2.0 * 2f32.ln()).abs() < 1e-5);
/// ```
pub fn nce_loss(probs: Tensor<2>, n_data: usize) -> Tensor<1> {
    let [b, columns] = probs.dims();
    let k = columns - 1;
    let m_pn = k as f64 / n_data as f64;
    let positive = probs.clone().narrow(1, 0, 1);
    let log_d1 = (positive.clone() / positive.add_scalar(m_pn + EPS)).log();
    let noise = probs.narrow(1, 1, k);
    let log_d0 = noise.add_scalar(m_pn + EPS).recip().mul_scalar(m_pn).log();
    (log_d1.sum() + log_d0.sum()).div_scalar(b as f64).neg()
}

/// CMC's constant normaliser `Z`, set once from the first batch and kept for the whole run:
/// the mean of `exp(s/T)` over that batch's `[B, K+1]` scores times the number of images
/// (`NCEAverage.forward`, `params[2]` / `params[3]`).
pub fn nce_normalizer(exp_scores: Tensor<2>, n_data: usize) -> f64 {
    exp_scores.mean().into_scalar::<f32>() as f64 * n_data as f64
}

/// The softmax alternative (`--softmax`, `NCESoftmaxLoss`): cross-entropy of the logits
/// `s/T` `[B, K+1]` with the positive in column 0.
pub fn nce_softmax_loss(logits: Tensor<2>) -> Tensor<1> {
    let [b, _] = logits.dims();
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    log_p.narrow(1, 0, 1).sum().div_scalar(b as f64).neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from CMC's own code on the same inputs (PyTorch 2.15, float64):
    //   x = torch.tensor([[0.02,0.001,0.0005,0.003],[0.5,0.0002,0.0001,0.0004]], dtype=torch.float64)
    //   NCECriterion(100)(x)  (its forward, eps 1e-7)                       -> 0.5712140752863865
    //   logits = torch.tensor([[2.0,1.0,-1.0,0.5],[0.1,0.3,0.2,-0.4]], dtype=torch.float64)
    //   F.cross_entropy(logits, torch.zeros(2, dtype=torch.long))          -> 0.9323054597602058
    #[test]
    fn nce_matches_cmcs_criterion() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(
            [[0.02, 0.001, 0.0005, 0.003], [0.5, 0.0002, 0.0001, 0.0004]],
            &device,
        );
        let loss: f32 = nce_loss(x, 100).into_scalar();
        assert!((loss as f64 - 0.5712140752863865).abs() < 1e-5, "{loss}");
    }

    #[test]
    fn softmax_alternative_is_cross_entropy_on_column_0() {
        let device = Device::flex();
        let logits =
            Tensor::<2>::from_data([[2.0, 1.0, -1.0, 0.5], [0.1, 0.3, 0.2, -0.4]], &device);
        let loss: f32 = nce_softmax_loss(logits).into_scalar();
        assert!((loss as f64 - 0.9323054597602058).abs() < 1e-5, "{loss}");
    }

    /// Z is the batch mean times the number of images: with every score equal to Z/N the
    /// model's probabilities are all 1/N, the noise distribution itself.
    #[test]
    fn normalizer_is_mean_times_n() {
        let device = Device::flex();
        let e = Tensor::<2>::from_data([[1.0, 2.0], [3.0, 6.0]], &device);
        assert!((nce_normalizer(e, 1000) - 3000.0).abs() < 1e-3);
    }

    /// The gradient pushes the positive's probability up and the noise's down.
    #[test]
    fn gradient_raises_the_positive_and_lowers_the_noise() {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::from_data([[0.01, 0.01, 0.01]], &device).require_grad();
        let grads = nce_loss(x.clone(), 50).backward();
        let g: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        assert!(g[0] < 0.0 && g[1] > 0.0 && g[2] > 0.0, "{g:?}");
    }
}
