use burn::Tensor;

use crate::normalize::l2_normalize;

/// BYOL's regression loss of predictions against targets (Grill et al. 2020, Eq. 2):
/// `2 − 2·mean_i cos(p_i, z_i)`. The target should be detached by the caller.
///
/// # Shapes
/// `prediction`, `target`: `[N, C]`; output `[1]`.
///
/// ```
/// use burn::prelude::*;
/// use unmix_losses::byol_regression;
///
/// let device = Device::flex();
/// let p = Tensor::<2>::from_floats([[3.0, 0.0], [1.0, 1.0]], &device);
/// let z = Tensor::<2>::from_floats([[0.0, 2.0], [2.0, 2.0]], &device);
/// // cos = 0 and 1: 2 − 2·mean(0, 1) = 1.
/// let loss: f32 = byol_regression(p, z).into_scalar();
/// assert!((loss - 1.0).abs() < 1e-6);
/// ```
pub fn byol_regression(prediction: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
    let cos = l2_normalize(prediction)
        .mul(l2_normalize(target))
        .sum_dim(1);
    let [n, _] = cos.dims();
    cos.reshape([n]).mean().mul_scalar(-2.0).add_scalar(2.0)
}

/// The symmetrised BYOL loss of two views (Eq. 2 + its swapped form `L̃`, as htdt's
/// `BYOL.forward`): the online prediction of view 0 regresses the target projection of view 1,
/// and the other way round.
///
/// ```
/// use burn::prelude::*;
/// use unmix_losses::{byol_loss, byol_regression};
///
/// let device = Device::flex();
/// let t = |rows: [[f32; 2]; 1]| Tensor::<2>::from_floats(rows, &device);
/// let (p0, z1, p1, z0) = (t([[1.0, 0.0]]), t([[0.0, 1.0]]), t([[1.0, 1.0]]), t([[1.0, 1.0]]));
/// // 2 (orthogonal) + 0 (parallel).
/// let loss: f32 = byol_loss(p0, z1, p1, z0).into_scalar();
/// assert!((loss - 2.0).abs() < 1e-6);
/// ```
pub fn byol_loss(
    prediction_0: Tensor<2>,
    target_1: Tensor<2>,
    prediction_1: Tensor<2>,
    target_0: Tensor<2>,
) -> Tensor<1> {
    byol_regression(prediction_0, target_1.detach())
        .add(byol_regression(prediction_1, target_0.detach()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fixed;
    use burn::prelude::*;

    #[test]
    fn known_vectors_by_hand() {
        let device = Device::flex();
        let p = Tensor::<2>::from_floats([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0]], &device);
        // Targets: same direction (cos 1), opposite (cos −1), orthogonal (cos 0):
        // 2 − 2·(1 − 1 + 0)/3 = 2.
        let z = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, -5.0], [1.0, -1.0]], &device);
        let l: f32 = byol_regression(p.clone(), z).into_scalar();
        assert!((l - 2.0).abs() < 1e-6, "{l}");
        let l: f32 = byol_regression(p.clone(), p).into_scalar();
        assert!(l.abs() < 1e-6, "{l}");
    }

    #[test]
    fn matches_the_htdt_reference() {
        // /tmp/ref/losses.py (PyTorch 2.15, float64):
        //   def nmse(p, z):  # htdt methods/byol.py::norm_mse_loss
        //       p = F.normalize(p, dim=-1); z = F.normalize(z, dim=-1)
        //       return 2 - 2 * (p * z).sum(dim=-1).mean()
        //   p0, z1, p1, z0 = fixed(3, 4, 0.4), fixed(3, 4, 0.9), fixed(3, 4, 1.7), fixed(3, 4, 2.3)
        //   nmse(p0, z1) + nmse(p1, z0)  # 4.07600988932255
        let d = Device::flex();
        let l: f32 = byol_loss(
            fixed(3, 4, 0.4, &d),
            fixed(3, 4, 0.9, &d),
            fixed(3, 4, 1.7, &d),
            fixed(3, 4, 2.3, &d),
        )
        .into_scalar();
        assert!((l as f64 - 4.07600988932255).abs() < 1e-5, "{l}");
    }
}
