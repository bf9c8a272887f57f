use burn::Tensor;

use crate::info_nce::info_nce;

/// `λ·mixed_term + (1-λ)·flipped_term`: the Un-Mix weighting of the two mixed terms (SPEC §1
/// step 4). With λ = 1 only the mixed term remains.
///
/// ```
/// use burn::prelude::*;
/// use unmix_losses::unmix_combine;
///
/// let device = Device::flex();
/// let (mixed, flipped) = (Tensor::<1>::from_floats([4.0], &device), Tensor::from_floats([8.0], &device));
/// let loss: f32 = unmix_combine(mixed, flipped, 0.25).into_scalar();
/// assert_eq!(loss, 0.25 * 4.0 + 0.75 * 8.0);
/// ```
pub fn unmix_combine(mixed_term: Tensor<1>, flipped_term: Tensor<1>, lambda: f64) -> Tensor<1> {
    mixed_term
        .mul_scalar(lambda)
        .add(flipped_term.mul_scalar(1.0 - lambda))
}

/// The Un-Mix InfoNCE terms for mixed queries `λ·L(q_m, k) + (1-λ)·L(flip(q_m), k)`.
///
/// `query_mixed[i]` holds λ of sample `i`, so its positive is `key[i]`; `flip(query_mixed)[i]`
/// holds `1-λ` of sample `i`. The flip is taken on the embeddings of one forward pass, which is
/// exact under batch norm (algorithms.md §1.4.1). The negatives are the same queue as for the
/// clean queries.
///
/// # Shapes
/// `query_mixed`, `key`: `[N, C]`, `queue`: `[K, C]`, all L2-normalised; output `[1]`.
///
/// ```
/// use burn::prelude::*;
/// use unmix_losses::{info_nce, mixed_info_nce};
///
/// let device = Device::flex();
/// let q = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
/// let k = Tensor::<2>::from_floats([[0.6, 0.8], [0.8, 0.6]], &device);
/// let queue = Tensor::<2>::from_floats([[0.0, 1.0]], &device);
/// let at = |lambda| -> f32 { mixed_info_nce(q.clone(), k.clone(), queue.clone(), 0.2, lambda).into_scalar() };
/// // λ = 1: the mixed queries' own term; λ = 0: the term of the batch-flipped queries.
/// let direct: f32 = info_nce(q.clone(), k.clone(), queue.clone(), 0.2).into_scalar();
/// let reverse: f32 = info_nce(q.clone().flip([0]), k.clone(), queue.clone(), 0.2).into_scalar();
/// assert!((at(1.0) - direct).abs() < 1e-6 && (at(0.0) - reverse).abs() < 1e-6);
/// assert!((at(0.3) - (0.3 * direct + 0.7 * reverse)).abs() < 1e-5);
/// ```
pub fn mixed_info_nce(
    query_mixed: Tensor<2>,
    key: Tensor<2>,
    queue: Tensor<2>,
    temperature: f64,
    lambda: f64,
) -> Tensor<1> {
    let flipped = query_mixed.clone().flip([0]);
    let direct = info_nce(query_mixed, key.clone(), queue.clone(), temperature);
    let reverse = info_nce(flipped, key, queue, temperature);
    unmix_combine(direct, reverse, lambda)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l2_normalize;
    use burn::prelude::*;

    #[test]
    fn lambda_one_equals_the_plain_term_and_lambda_zero_the_flipped_one() {
        let device = Device::flex();
        device.seed(3);
        let r = |n| {
            l2_normalize(Tensor::<2>::random(
                [n, 8],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            ))
        };
        let (q, k, queue) = (r(6), r(6), r(16));
        let plain: f32 = info_nce(q.clone(), k.clone(), queue.clone(), 0.1).into_scalar();
        let mixed: f32 =
            mixed_info_nce(q.clone(), k.clone(), queue.clone(), 0.1, 1.0).into_scalar();
        assert!((plain - mixed).abs() < 1e-6);
        let flipped: f32 =
            info_nce(q.clone().flip([0]), k.clone(), queue.clone(), 0.1).into_scalar();
        let mixed0: f32 =
            mixed_info_nce(q.clone(), k.clone(), queue.clone(), 0.1, 0.0).into_scalar();
        assert!((flipped - mixed0).abs() < 1e-6);
        let m: f32 = mixed_info_nce(q, k, queue, 0.1, 0.3).into_scalar();
        assert!((m - (0.3 * plain + 0.7 * flipped)).abs() < 1e-5);
    }
}
