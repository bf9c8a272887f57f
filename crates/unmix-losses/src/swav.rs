use burn::Tensor;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

/// Sinkhorn-Knopp codes of SwAV (Caron et al. 2020, Eq. 3; `distributed_sinkhorn` on one
/// process): `Q = exp(scores/ε)ᵀ`, normalised to sum 1, then `iterations` rounds of "each
/// prototype gets mass `1/K`" and "each sample gets mass `1/B`", returned as `[B, K]` rows that
/// each sum to 1. No gradient flows through the codes.
///
/// The global maximum is subtracted before `exp` (a common factor the first normalisation
/// removes) so `ε = 0.05` cannot overflow `f32`.
///
/// # Shapes
/// `scores`: `[B, K]` (prototype scores of the samples, plus any queued ones); output `[B, K]`.
///
/// ```
/// use burn::prelude::*;
/// use unmix_losses::sinkhorn;
///
/// // Equal scores: every sample spreads evenly over the 2 prototypes.
/// let device = Device::flex();
/// let codes = sinkhorn(Tensor::<2>::zeros([4, 2], &device), 0.05, 3);
/// let values = codes.into_data().to_vec::<f32>().unwrap();
/// assert!(values.iter().all(|v| (v - 0.5).abs() < 1e-6));
/// ```
pub fn sinkhorn(scores: Tensor<2>, epsilon: f64, iterations: usize) -> Tensor<2> {
    let scores = scores.detach();
    let [b, k] = scores.dims();
    let max = scores.clone().max();
    let mut q = scores
        .sub(max.unsqueeze())
        .div_scalar(epsilon)
        .exp()
        .transpose(); // [K, B]
    let total = q.clone().sum();
    q = q.div(total.unsqueeze());
    for _ in 0..iterations {
        q = q.clone().div(q.sum_dim(1)).div_scalar(k as f64);
        q = q.clone().div(q.sum_dim(0)).div_scalar(b as f64);
    }
    q.mul_scalar(b as f64).transpose()
}

/// One swapped-prediction term `ℓ(z_t, q_s) = −mean_b Σ_k q_s log softmax(z_t·C / T)`
/// (Caron et al. 2020, Eq. 2): the code `assignment` of one crop predicted from the prototype
/// `scores` of another.
///
/// # Shapes
/// `assignment`, `scores`: `[B, K]`; output `[1]`.
///
/// ```
/// use burn::prelude::*;
/// use unmix_losses::swapped_prediction;
///
/// // A one-hot code predicted from equal scores over 2 prototypes: −ln ½.
/// let device = Device::flex();
/// let code = Tensor::<2>::from_floats([[1.0, 0.0]], &device);
/// let loss: f32 = swapped_prediction(code, Tensor::zeros([1, 2], &device), 0.1).into_scalar();
/// assert!((loss - 2f32.ln()).abs() < 1e-6);
/// ```
pub fn swapped_prediction(assignment: Tensor<2>, scores: Tensor<2>, temperature: f64) -> Tensor<1> {
    let [b, _] = scores.dims();
    assignment
        .detach()
        .mul(log_softmax(scores.div_scalar(temperature), 1))
        .sum_dim(1)
        .reshape([b])
        .mean()
        .neg()
}

/// SwAV's multi-crop loss (`main_swav.py`): for each crop with a code, the mean over every
/// *other* crop of the swapped prediction of that code, averaged over the coded crops.
///
/// `scores[v]` are the prototype scores of crop `v`; `codes` pairs a crop index with its
/// Sinkhorn code (the large crops, `crops_for_assign`).
///
/// ```
/// use burn::prelude::*;
/// use unmix_losses::{swapped_prediction, swav_loss};
///
/// let device = Device::flex();
/// let s0 = Tensor::<2>::from_floats([[2.0, 0.0], [0.0, 1.0]], &device);
/// let s1 = Tensor::<2>::from_floats([[1.0, 1.0], [0.0, 3.0]], &device);
/// let q0 = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
/// let q1 = Tensor::<2>::from_floats([[0.5, 0.5], [0.0, 1.0]], &device);
/// let loss: f32 = swav_loss(&[s0.clone(), s1.clone()], &[(0, q0.clone()), (1, q1.clone())], 0.1)
///     .into_scalar();
/// // Two crops, both coded: the mean of "crop 1 predicts q0" and "crop 0 predicts q1".
/// let a: f32 = swapped_prediction(q0, s1, 0.1).into_scalar();
/// let b: f32 = swapped_prediction(q1, s0, 0.1).into_scalar();
/// assert!((loss - (a + b) / 2.0).abs() < 1e-5);
/// ```
pub fn swav_loss(
    scores: &[Tensor<2>],
    codes: &[(usize, Tensor<2>)],
    temperature: f64,
) -> Tensor<1> {
    let others = (scores.len() - 1).max(1) as f64;
    let per_code: Vec<Tensor<1>> = codes
        .iter()
        .map(|(crop, q)| {
            let terms: Vec<Tensor<1>> = scores
                .iter()
                .enumerate()
                .filter(|(v, _)| v != crop)
                .map(|(_, s)| swapped_prediction(q.clone(), s.clone(), temperature))
                .collect();
            Tensor::cat(terms, 0).sum().div_scalar(others)
        })
        .collect();
    let n = per_code.len() as f64;
    Tensor::cat(per_code, 0).sum().div_scalar(n)
}

/// How the Un-Mix reverse term of SwAV is formed (algorithms.md §1.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwavReverse {
    /// As `UnMix_SwAV/main_swav_unmix.py` computes it: only the mixture's code is flipped, so
    /// the prediction `ℓ(p_mix, q_x1)` appears unflipped in both terms.
    #[default]
    Code,
    /// As the authors' formula (issue #7) states: the mixture's code and its prediction are both
    /// flipped in the reverse term.
    Formula,
}

/// The two Un-Mix SwAV terms between the mixture and view 1 (the 2-crop `swav_loss` calls of
/// the reference on `[mix, x1]`):
/// - direct: `½[ℓ(p_x1, q_mix) + ℓ(p_mix, q_x1)]`;
/// - reverse, [`SwavReverse::Code`]: `½[ℓ(p_x1, flip q_mix) + ℓ(p_mix, q_x1)]`;
/// - reverse, [`SwavReverse::Formula`]: `½[ℓ(p_x1, flip q_mix) + ℓ(flip p_mix, q_x1)]`.
///
/// Flipping the code equals running Sinkhorn on the flipped scores, since Sinkhorn commutes with
/// a permutation of the batch.
///
/// ```
/// use burn::prelude::*;
/// use unmix_losses::{SwavReverse, swav_unmix_terms};
///
/// // With equal scores every prediction is −ln ½, whatever the codes: both terms are ln 2.
/// let device = Device::flex();
/// let scores = Tensor::<2>::zeros([2, 2], &device);
/// let code = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
/// let (direct, reverse) = swav_unmix_terms(
///     (scores.clone(), code.clone()),
///     (scores, code),
///     0.1,
///     SwavReverse::Code,
/// );
/// for term in [direct, reverse] {
///     assert!((term.into_scalar::<f32>() - 2f32.ln()).abs() < 1e-6);
/// }
/// ```
pub fn swav_unmix_terms(
    (scores_mix, code_mix): (Tensor<2>, Tensor<2>),
    (scores_x1, code_x1): (Tensor<2>, Tensor<2>),
    temperature: f64,
    reverse: SwavReverse,
) -> (Tensor<1>, Tensor<1>) {
    let l = |q: Tensor<2>, p: Tensor<2>| swapped_prediction(q, p, temperature);
    let x1_from_mix = l(code_mix.clone(), scores_x1.clone());
    let mix_from_x1 = l(code_x1.clone(), scores_mix.clone());
    let direct = x1_from_mix.add(mix_from_x1.clone()).div_scalar(2.0);
    let x1_from_flip = l(code_mix.flip([0]), scores_x1);
    let second = match reverse {
        SwavReverse::Code => mix_from_x1,
        SwavReverse::Formula => l(code_x1, scores_mix.flip([0])),
    };
    (direct, x1_from_flip.add(second).div_scalar(2.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fixed;
    use burn::prelude::*;

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    // /tmp/ref/losses.py (PyTorch 2.15, float64), SwAV's `distributed_sinkhorn` on one process:
    //   @torch.no_grad()
    //   def sinkhorn(out, eps, iters):
    //       Q = torch.exp(out / eps).t(); B = Q.shape[1]; K = Q.shape[0]
    //       Q /= torch.sum(Q)
    //       for _ in range(iters):
    //           Q /= torch.sum(Q, dim=1, keepdim=True); Q /= K
    //           Q /= torch.sum(Q, dim=0, keepdim=True); Q /= B
    //       Q *= B
    //       return Q.t()
    //   sinkhorn(fixed(4, 3, 0.45), 0.05, 3); sinkhorn(fixed(4, 3, 0.45), 0.5, 3)
    const SINKHORN_EPS_005: [f32; 12] = [
        1e-6, 0.080757, 0.919242, 0.277385, 0.722493, 0.000122, 0.994846, 0.005154, 0.0, 0.039573,
        0.439803, 0.520623,
    ];
    const SINKHORN_EPS_05: [f32; 12] = [
        0.116528, 0.32962, 0.553851, 0.391677, 0.391778, 0.216545, 0.558476, 0.299902, 0.141622,
        0.269834, 0.312047, 0.418119,
    ];

    #[test]
    fn sinkhorn_matches_the_reference_and_its_marginals() {
        let device = Device::flex();
        let s = fixed(4, 3, 0.45, &device);
        for (eps, want) in [(0.05, SINKHORN_EPS_005), (0.5, SINKHORN_EPS_05)] {
            let q = sinkhorn(s.clone(), eps, 3);
            let got = values(q.clone());
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 2e-5, "ε {eps}: {got:?}");
            }
            // Every sample's code sums to 1 (the last normalisation is over samples)...
            for r in values(q.clone().sum_dim(1)) {
                assert!((r - 1.0).abs() < 1e-5);
            }
            // ...and prototypes get about B/K each (exact in the limit of iterations).
            let q = sinkhorn(s.clone(), eps, 200);
            for c in values(q.sum_dim(0)) {
                assert!((c - 4.0 / 3.0).abs() < 1e-3, "{c}");
            }
        }
    }

    #[test]
    fn sinkhorn_of_a_clear_assignment_picks_it() {
        let device = Device::flex();
        // Two samples, two prototypes, each sample close to its own prototype.
        let s = Tensor::<2>::from_floats([[0.9, 0.1], [0.2, 0.8]], &device);
        let q = values(sinkhorn(s, 0.05, 3));
        assert!(q[0] > 0.99 && q[3] > 0.99, "{q:?}");
    }

    #[test]
    fn swav_loss_matches_the_reference() {
        // /tmp/ref/losses.py:
        //   def swav(scores, assign, T, eps, iters):  # main_swav.py loss loop, no queue
        //       loss = 0
        //       for i, crop_id in enumerate(assign):
        //           q = sinkhorn(scores[crop_id].detach(), eps, iters); sub = 0
        //           for v in [v for v in range(len(scores)) if v != crop_id]:
        //               sub -= torch.mean(torch.sum(q * F.log_softmax(scores[v] / T, dim=1), dim=1))
        //           loss += sub / (len(scores) - 1)
        //       return loss / len(assign)
        //   swav([s0, s1], [0, 1], 0.1, 0.05, 3)      # 2.729064991810362
        //   swav([s0, s1, s2], [0, 1], 0.1, 0.05, 3)  # 5.260268735364957
        let d = Device::flex();
        let s = [
            fixed(4, 3, 0.45, &d),
            fixed(4, 3, 1.1, &d),
            fixed(4, 3, 2.9, &d),
        ];
        let codes: Vec<(usize, Tensor<2>)> = (0..2)
            .map(|i| (i, sinkhorn(s[i].clone(), 0.05, 3)))
            .collect();
        let two: f32 = swav_loss(&s[..2], &codes, 0.1).into_scalar();
        assert!((two as f64 - 2.729064991810362).abs() < 1e-4, "{two}");
        let three: f32 = swav_loss(&s, &codes, 0.1).into_scalar();
        assert!((three as f64 - 5.260268735364957).abs() < 1e-4, "{three}");
    }

    #[test]
    fn unmix_terms_with_identity_mixture_and_flip_variants() {
        let d = Device::flex();
        let (s0, s1) = (fixed(4, 3, 0.45, &d), fixed(4, 3, 1.1, &d));
        let (q0, q1) = (sinkhorn(s0.clone(), 0.05, 3), sinkhorn(s1.clone(), 0.05, 3));
        let plain: f32 = swav_loss(
            &[s0.clone(), s1.clone()],
            &[(0, q0.clone()), (1, q1.clone())],
            0.1,
        )
        .into_scalar();
        for reverse in [SwavReverse::Code, SwavReverse::Formula] {
            let (direct, rev) = swav_unmix_terms(
                (s0.clone(), q0.clone()),
                (s1.clone(), q1.clone()),
                0.1,
                reverse,
            );
            // The mixture of λ = 1 is view 0: the direct term is the plain 2-crop loss.
            let direct: f32 = direct.into_scalar();
            assert!((direct - plain).abs() < 1e-5);
            // The reverse term flips the code (and, by formula, the prediction).
            let want_second = match reverse {
                SwavReverse::Code => swapped_prediction(q1.clone(), s0.clone(), 0.1),
                SwavReverse::Formula => swapped_prediction(q1.clone(), s0.clone().flip([0]), 0.1),
            };
            let want: f32 = swapped_prediction(q0.clone().flip([0]), s1.clone(), 0.1)
                .add(want_second)
                .div_scalar(2.0)
                .into_scalar();
            let rev: f32 = rev.into_scalar();
            assert!((rev - want).abs() < 1e-6);
        }
    }
}
