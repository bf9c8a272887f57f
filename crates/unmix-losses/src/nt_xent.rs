use burn::Tensor;
use burn::tensor::activation::log_softmax;

use crate::normalize::l2_normalize;

/// SimCLR's NT-Xent (Chen et al. 2020, Eq. 1) over the `2N` embeddings of two views, in the
/// two-block form of the htdt code the Un-Mix authors built on (algorithms.md §1.4.4): for row
/// `i` of view `a`, the positive is row `i` of view `b`, and the `2N − 2` other rows of both
/// views are negatives. The loss is the mean of both directions, which equals solo-learn's mean
/// over all `2N` anchors.
///
/// Embeddings are L2-normalised here. `a[i]`'s positive being `b[i]` is what makes the Un-Mix
/// call `nt_xent(x1, mixed)` pair each mixture with the view of its λ-share (and
/// `nt_xent(x1, flip(mixed))` with its `1−λ` share).
///
/// # Shapes
/// `a`, `b`: `[N, C]`; output `[1]`.
///
/// ```
/// use burn::prelude::*;
/// use unmix_losses::nt_xent;
///
/// // Two orthogonal samples, each view equal to the other: row 0 of `a` sees logits
/// // [1, 0] against `b` and [masked, 0] against `a`, so the loss is ln(e + 2) − 1 (T = 1).
/// let device = Device::flex();
/// let a = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
/// let loss: f32 = nt_xent(a.clone(), a, 1.0).into_scalar();
/// assert!((loss - ((1f32.exp() + 2.0).ln() - 1.0)).abs() < 1e-5);
/// ```
pub fn nt_xent(a: Tensor<2>, b: Tensor<2>, temperature: f64) -> Tensor<1> {
    let (a, b) = (l2_normalize(a), l2_normalize(b));
    let [n, _] = a.dims();
    // Self-similarities are removed by a large negative logit, as `- 1e9 * eye` in htdt.
    let self_mask = Tensor::<2>::eye(n, &a.device()).mul_scalar(1e9);
    let direction = |x: Tensor<2>, y: Tensor<2>| {
        let cross = x.clone().matmul(y.transpose()).div_scalar(temperature);
        let own = x
            .clone()
            .matmul(x.transpose())
            .div_scalar(temperature)
            .sub(self_mask.clone());
        let logits = Tensor::cat(vec![cross, own], 1);
        // Targets are the diagonal of the first block.
        let eye = Tensor::<2>::eye(n, &logits.device());
        log_softmax(logits, 1)
            .narrow(1, 0, n)
            .mul(eye)
            .sum_dim(1)
            .reshape([n])
            .mean()
            .neg()
    };
    direction(a.clone(), b.clone())
        .add(direction(b, a))
        .div_scalar(2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fixed;
    use burn::prelude::*;

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    /// `sin(α·j + 0.3)` reshaped to `[n, d]`, as `fixed` in the reference snippet.

    #[test]
    fn collinear_and_orthogonal_embeddings_by_hand() {
        let device = Device::flex();
        // Collinear: b = a = [e1, e2], τ = 1. Row logits: positive 1, other view 0, own
        // other 0 (self masked): ln(e + 2) − 1.
        let a = Tensor::<2>::from_floats([[2.0, 0.0], [0.0, 3.0]], &device);
        let l = scalar(nt_xent(a.clone(), a, 1.0));
        assert!((l - ((1f64.exp() + 2.0).ln() - 1.0)).abs() < 1e-5, "{l}");
        // Orthogonal: every logit 0, three candidates per row: ln 3, whatever τ.
        let a = Tensor::<2>::from_floats([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], &device);
        let b = Tensor::<2>::from_floats([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]], &device);
        let l = scalar(nt_xent(a, b, 0.5));
        assert!((l - 3f64.ln()).abs() < 1e-5, "{l}");
    }

    #[test]
    fn matches_the_htdt_reference() {
        // /tmp/ref/losses.py (PyTorch 2.15, float64):
        //   def nt_xent(x0, x1, tau):  # htdt methods/contrastive.py, norm=True
        //       n = x0.shape[0]; t = torch.arange(n); eye = torch.eye(n) * 1e9
        //       x0 = F.normalize(x0, dim=1); x1 = F.normalize(x1, dim=1)
        //       l00 = x0 @ x0.t() / tau - eye; l11 = x1 @ x1.t() / tau - eye
        //       l01 = x0 @ x1.t() / tau; l10 = x1 @ x0.t() / tau
        //       return (F.cross_entropy(torch.cat([l01, l00], 1), t)
        //               + F.cross_entropy(torch.cat([l10, l11], 1), t)) / 2
        //   fixed = lambda n, d, a: torch.sin(a * torch.arange(n * d) + 0.3).reshape(n, d)
        //   nt_xent(fixed(4, 3, 0.7), fixed(4, 3, 1.3), 0.5)  # 2.3003279780389363
        //   ... τ = 0.2                                        # 4.2784671351846155
        let device = Device::flex();
        let (a, b) = (fixed(4, 3, 0.7, &device), fixed(4, 3, 1.3, &device));
        let l = scalar(nt_xent(a.clone(), b.clone(), 0.5));
        assert!((l - 2.3003279780389363).abs() < 1e-5, "{l}");
        let l = scalar(nt_xent(a.clone(), b.clone(), 0.2));
        assert!((l - 4.2784671351846155).abs() < 1e-4, "{l}");
        // Symmetric in its arguments.
        let r = scalar(nt_xent(b, a, 0.2));
        assert!((l - r).abs() < 1e-5);
    }
}
