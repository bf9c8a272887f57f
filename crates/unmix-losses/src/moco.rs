use burn::Tensor;

use crate::info_nce::info_nce;
use crate::unmix::mixed_info_nce;

/// The MoCo objective of the Un-Mix CIFAR demo (algorithms.md §1.4.1), plain or with Un-Mix.
///
/// - Asymmetric: `L(q1,k2) [+ λ·L(qm,k2) + (1-λ)·L(flip(qm),k2)]`.
/// - Symmetric: `L(q1,k2) + L(q2,k1) [+ λ·L(qm,k2) + (1-λ)·L(flip(qm),k2)
///   + λ·L(qm,k1) + (1-λ)·L(flip(qm),k1)]`, where both mixed halves use the mixture of view 0.
///
/// Terms are summed, not averaged, as in the reference.
///
/// ```
/// use burn::prelude::*;
/// use unmix_losses::{MocoEmbeddings, MocoLoss, info_nce};
///
/// let device = Device::flex();
/// let q1 = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
/// let k2 = Tensor::<2>::from_floats([[0.6, 0.8], [0.8, 0.6]], &device);
/// let queue = Tensor::<2>::from_floats([[0.0, 1.0], [1.0, 0.0]], &device);
/// let loss = MocoLoss { temperature: 0.2, symmetric: false };
/// let emb = MocoEmbeddings { q1: q1.clone(), k2: k2.clone(), swapped: None, mixed: None };
/// let terms = loss.forward(emb, queue.clone());
/// // Asymmetric, without a mixture: MoCo's InfoNCE of q1 against k2 and the queue.
/// let plain: f32 = info_nce(q1, k2, queue, 0.2).into_scalar();
/// assert!(terms.mixed.is_none());
/// assert!((terms.total.into_scalar::<f32>() - plain).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MocoLoss {
    /// Softmax temperature T.
    pub temperature: f64,
    /// Symmetric form (both views serve as queries).
    pub symmetric: bool,
}

/// The loss and its parts, for logging.
#[derive(Debug, Clone)]
pub struct MocoLossTerms {
    /// What to minimise.
    pub total: Tensor<1>,
    /// The base method's own terms.
    pub plain: Tensor<1>,
    /// The Un-Mix terms, when a mixture was given.
    pub mixed: Option<Tensor<1>>,
}

/// Embeddings of one MoCo step, all L2-normalised `[N, C]`.
#[derive(Debug, Clone)]
pub struct MocoEmbeddings {
    /// Queries of view 0.
    pub q1: Tensor<2>,
    /// Keys of view 1.
    pub k2: Tensor<2>,
    /// Queries of view 1 and keys of view 0 (symmetric form only).
    pub swapped: Option<(Tensor<2>, Tensor<2>)>,
    /// Queries of the mixture of view 0 and its λ.
    pub mixed: Option<(Tensor<2>, f64)>,
}

impl MocoLoss {
    /// Computes the loss against the `[K, C]` queue of negatives.
    ///
    /// # Panics
    /// If `symmetric` is set and `emb.swapped` is missing.
    pub fn forward(&self, emb: MocoEmbeddings, queue: Tensor<2>) -> MocoLossTerms {
        let t = self.temperature;
        let mut plain = info_nce(emb.q1, emb.k2.clone(), queue.clone(), t);
        let k1 = if self.symmetric {
            let (q2, k1) = emb.swapped.expect("symmetric MoCo needs q2 and k1");
            plain = plain.add(info_nce(q2, k1.clone(), queue.clone(), t));
            Some(k1)
        } else {
            None
        };
        let mixed = emb.mixed.map(|(qm, lambda)| {
            let mut m = mixed_info_nce(qm.clone(), emb.k2, queue.clone(), t, lambda);
            if let Some(k1) = k1 {
                m = m.add(mixed_info_nce(qm, k1, queue, t, lambda));
            }
            m
        });
        let total = match &mixed {
            Some(m) => plain.clone().add(m.clone()),
            None => plain.clone(),
        };
        MocoLossTerms {
            total,
            plain,
            mixed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{info_nce, l2_normalize};
    use burn::prelude::*;

    fn r(n: usize, device: &Device) -> Tensor<2> {
        l2_normalize(Tensor::<2>::random(
            [n, 4],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        ))
    }

    #[test]
    fn mixed_terms_with_lambda_one_equal_the_plain_terms() {
        let device = Device::flex();
        device.seed(5);
        let (q1, k2, q2, k1, queue) = (
            r(4, &device),
            r(4, &device),
            r(4, &device),
            r(4, &device),
            r(8, &device),
        );
        for symmetric in [false, true] {
            let loss = MocoLoss {
                temperature: 0.1,
                symmetric,
            };
            let emb = MocoEmbeddings {
                q1: q1.clone(),
                k2: k2.clone(),
                swapped: Some((q2.clone(), k1.clone())),
                mixed: Some((q1.clone(), 1.0)),
            };
            let terms = loss.forward(emb, queue.clone());
            let plain: f32 = terms.plain.into_scalar();
            let mixed: f32 = terms.mixed.unwrap().into_scalar();
            let total: f32 = terms.total.into_scalar();
            if symmetric {
                // λ=1: the mixed half is L(q1,k2) + L(q1,k1), not L(q2,k1).
                let e: f32 = info_nce(q1.clone(), k2.clone(), queue.clone(), 0.1)
                    .add(info_nce(q1.clone(), k1.clone(), queue.clone(), 0.1))
                    .into_scalar();
                assert!((mixed - e).abs() < 1e-5);
            } else {
                assert!((mixed - plain).abs() < 1e-6);
            }
            assert!((total - plain - mixed).abs() < 1e-5);
        }
    }
}
