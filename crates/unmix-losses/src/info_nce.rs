use burn::Tensor;
use burn::tensor::activation::log_softmax;

/// InfoNCE of MoCo (He et al. 2020, Eq. 1): for each query, cross-entropy of the positive
/// logit `q·k₊/T` against it and the negatives `q·queue/T`, averaged over the batch.
///
/// # Shapes
/// - `query`, `key`: `[N, C]`, L2-normalised; row `i` of `key` is the positive of query `i`.
/// - `queue`: `[K, C]` negatives, L2-normalised.
/// - output: `[1]`.
///
/// ```
/// use burn::prelude::*;
/// use unmix_losses::info_nce;
///
/// // One query, its key and one negative all equal: logits [1/T, 1/T], loss ln 2.
/// let device = Device::flex();
/// let q = Tensor::<2>::from_floats([[1.0, 0.0]], &device);
/// let loss: f32 = info_nce(q.clone(), q.clone(), q, 0.5).into_scalar();
/// assert!((loss - 2f32.ln()).abs() < 1e-6);
/// ```
pub fn info_nce(query: Tensor<2>, key: Tensor<2>, queue: Tensor<2>, temperature: f64) -> Tensor<1> {
    let positive = query.clone().mul(key).sum_dim(1); // [N, 1]
    let negatives = query.matmul(queue.transpose()); // [N, K]
    let logits = Tensor::cat(vec![positive, negatives], 1).div_scalar(temperature);
    // The positive is class 0.
    let [n, _] = logits.dims();
    log_softmax(logits, 1)
        .narrow(1, 0, 1)
        .reshape([n])
        .mean()
        .neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l2_normalize;
    use burn::prelude::*;

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    #[test]
    fn values_worked_out_by_hand() {
        let device = Device::flex();
        let q = Tensor::<2>::from_floats([[1.0, 0.0]], &device);
        let queue = Tensor::<2>::from_floats([[0.0, 1.0]], &device);
        // logits [1, 0]: -log(e / (e + 1)) = ln(1 + e^-1)
        let l = scalar(info_nce(q.clone(), q.clone(), queue.clone(), 1.0));
        assert!((l - (1.0 + (-1.0f64).exp()).ln()).abs() < 1e-6);
        // T = 0.5: logits [2, 0] → ln(1 + e^-2)
        let l = scalar(info_nce(q.clone(), q.clone(), queue, 0.5));
        assert!((l - (1.0 + (-2.0f64).exp()).ln()).abs() < 1e-6);
        // Two queries, two negatives: q1=(1,0), k1=(0.6,0.8), q2=(0,1), k2=(0,1),
        // queue rows (1,0) and (-1,0), T=1.
        //   q1 logits [0.6, 1, -1]: -0.6 + ln(e^0.6 + e + e^-1)
        //   q2 logits [1, 0, 0]:    -1 + ln(e + 2)
        let q = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
        let k = Tensor::<2>::from_floats([[0.6, 0.8], [0.0, 1.0]], &device);
        let queue = Tensor::<2>::from_floats([[1.0, 0.0], [-1.0, 0.0]], &device);
        let e = std::f64::consts::E;
        let l1 = -0.6 + (0.6f64.exp() + e + 1.0 / e).ln();
        let l2 = -1.0 + (e + 2.0).ln();
        let l = scalar(info_nce(q, k, queue, 1.0));
        assert!((l - (l1 + l2) / 2.0).abs() < 1e-6, "{l}");
    }

    #[test]
    fn finite_difference_gradient_check() {
        let device = Device::flex().autodiff();
        let raw = [[0.3f32, -0.2, 0.9], [-0.5, 0.4, 0.1]];
        let key = l2_normalize(Tensor::<2>::from_floats(
            [[0.2, 0.1, 0.7], [-0.1, 0.9, 0.3]],
            &device,
        ));
        let queue = l2_normalize(Tensor::<2>::from_floats(
            [[1.0, 0.0, 0.0], [0.0, -1.0, 0.5], [0.3, 0.3, -0.9]],
            &device,
        ));
        let loss_of = |x: Tensor<2>| info_nce(l2_normalize(x), key.clone(), queue.clone(), 0.2);
        let x = Tensor::<2>::from_floats(raw, &device).require_grad();
        let grads = loss_of(x.clone()).backward();
        let analytic = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let eps = 1e-3f32;
        for idx in 0..6 {
            let mut plus = raw;
            let mut minus = raw;
            plus[idx / 3][idx % 3] += eps;
            minus[idx / 3][idx % 3] -= eps;
            let f = |v| scalar(loss_of(Tensor::<2>::from_floats(v, &device))) as f32;
            let numeric = (f(plus) - f(minus)) / (2.0 * eps);
            assert!(
                (numeric - analytic[idx]).abs() < 2e-3,
                "d/dx[{idx}]: numeric {numeric} vs autodiff {}",
                analytic[idx]
            );
        }
    }
}
