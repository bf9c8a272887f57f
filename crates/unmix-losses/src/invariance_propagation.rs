//! The two losses of Invariance Propagation (Wang et al., NeurIPS 2020; the reference's
//! `objective.py::InvariancePropagationLoss`, algorithms.md §4.1), on cosine similarities to a
//! memory bank. `S = exp(cos/t)`; the background is each sample's `n_background` most similar
//! bank rows (usually including its own); the positives are the hardest `n_pos` of the
//! propagated neighbours.

use burn::prelude::*;

/// The reference's `1e-7` inside the logarithm.
const EPS: f64 = 1e-7;

/// `L_ins = −mean log( S_self / Σ S_background + ε )` (instance discrimination against hard
/// negatives). `self_cos` `[B]`, `background_cos` `[B, n_background]`, temperature `t`.
pub fn hard_negative_instance_loss(
    self_cos: Tensor<1>,
    background_cos: Tensor<2>,
    t: f64,
) -> Tensor<1> {
    let own = self_cos.div_scalar(t).exp();
    let background = background_cos
        .div_scalar(t)
        .exp()
        .sum_dim(1)
        .squeeze_dim::<1>(1);
    (own / background).add_scalar(EPS).log().mean().neg()
}

/// `L_inv = −mean log( Σ S_positive / (Σ S_background − S_self) + ε )` with `exclusive` (the
/// reference's default), or over `Σ S_background` without. `positive_cos` `[B, n_pos]`.
pub fn propagation_loss(
    positive_cos: Tensor<2>,
    background_cos: Tensor<2>,
    self_cos: Tensor<1>,
    t: f64,
    exclusive: bool,
) -> Tensor<1> {
    let positive = positive_cos
        .div_scalar(t)
        .exp()
        .sum_dim(1)
        .squeeze_dim::<1>(1);
    let mut denominator = background_cos
        .div_scalar(t)
        .exp()
        .sum_dim(1)
        .squeeze_dim::<1>(1);
    if exclusive {
        denominator = denominator - self_cos.div_scalar(t).exp();
    }
    (positive / denominator).add_scalar(EPS).log().mean().neg()
}

/// The `n_pos` hardest positives among the propagated candidates `[B, M]`: the least similar
/// (`hard`, the reference's default) or the most similar, as cosines `[B, min(n_pos, M)]`
/// that keep their gradient (selected on detached values, gathered from the originals).
pub fn select_positives(candidate_cos: Tensor<2>, n_pos: usize, hard: bool) -> Tensor<2> {
    let [_, m] = candidate_cos.dims();
    let n = n_pos.min(m);
    let key = candidate_cos.clone().detach();
    let key = if hard { key.neg() } else { key };
    let (_, at) = key.topk_with_indices(n, 1);
    candidate_cos.gather(1, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from the reference's formulas on the same inputs (PyTorch, float64):
    //   t = 0.2; e = lambda x: torch.exp(x / t)
    //   self_cos = [0.9, 0.3]; bg = [[0.95, 0.9, 0.5, 0.1], [0.6, 0.3, 0.2, -0.1]]
    //   pos = [[0.5, 0.1], [0.2, -0.1]]
    //   lossA = -(e(self_cos) / e(bg).sum(1) + 1e-7).log().mean()              -> 1.359692844152207
    //   bex = e(bg).sum(1) - e(self_cos)
    //   lossB = -(e(pos).sum(1) / bex + 1e-7).log().mean()                    -> 2.0939317174772554
    //   non-exclusive: -(e(pos).sum(1) / (bex + e(self_cos)) + 1e-7).log().mean() -> 2.445521419997349
    fn inputs(device: &Device) -> (Tensor<1>, Tensor<2>, Tensor<2>) {
        (
            Tensor::from_data([0.9, 0.3], device),
            Tensor::from_data([[0.95, 0.9, 0.5, 0.1], [0.6, 0.3, 0.2, -0.1]], device),
            Tensor::from_data([[0.5, 0.1], [0.2, -0.1]], device),
        )
    }

    #[test]
    fn losses_match_the_reference_formulas() {
        let device = Device::flex();
        let (own, background, positive) = inputs(&device);
        let a: f32 =
            hard_negative_instance_loss(own.clone(), background.clone(), 0.2).into_scalar();
        assert!((a as f64 - 1.359692844152207).abs() < 1e-5, "{a}");
        let b: f32 = propagation_loss(positive.clone(), background.clone(), own.clone(), 0.2, true)
            .into_scalar();
        assert!((b as f64 - 2.0939317174772554).abs() < 1e-5, "{b}");
        let b: f32 = propagation_loss(positive, background, own, 0.2, false).into_scalar();
        assert!((b as f64 - 2.445521419997349).abs() < 1e-5, "{b}");
    }

    #[test]
    fn positives_are_the_least_similar_candidates_when_hard() {
        let device = Device::flex();
        let c = Tensor::<2>::from_data([[0.5, -0.2, 0.9, 0.1]], &device);
        let hard: Vec<f32> = select_positives(c.clone(), 2, true)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(hard, vec![-0.2, 0.1]);
        let easy: Vec<f32> = select_positives(c.clone(), 2, false)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(easy, vec![0.9, 0.5]);
        assert_eq!(select_positives(c, 10, true).dims(), [1, 4]);
    }
}
