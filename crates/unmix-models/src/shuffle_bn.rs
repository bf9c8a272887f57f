use burn::prelude::*;
use rand::Rng;
use rand::seq::SliceRandom;

/// Shuffle-BN (MoCo §3.3): the key encoder sees the batch in a random order so that batch
/// statistics cannot leak which sample is the positive; outputs are put back in order.
///
/// On one device this matters with split batch norm, where the shuffle changes which samples
/// share statistics.
#[derive(Debug, Clone)]
pub struct ShuffleBn {
    forward: Vec<i64>,
    inverse: Vec<i64>,
}

impl ShuffleBn {
    /// A shuffle given by `perm` (`perm[j]` = the sample put at position `j`).
    ///
    /// # Panics
    /// If `perm` is not a permutation of `0..perm.len()`.
    pub fn from_permutation(perm: Vec<usize>) -> Self {
        let mut inverse = vec![usize::MAX; perm.len()];
        for (j, &i) in perm.iter().enumerate() {
            assert!(
                i < perm.len() && inverse[i] == usize::MAX,
                "not a permutation"
            );
            inverse[i] = j;
        }
        Self {
            forward: perm.into_iter().map(|i| i as i64).collect(),
            inverse: inverse.into_iter().map(|i| i as i64).collect(),
        }
    }

    /// A uniformly random shuffle of `n` samples.
    pub fn random<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Self {
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(rng);
        Self::from_permutation(perm)
    }

    /// The permutation: position `j` of the shuffled batch holds sample `permutation()[j]`.
    pub fn permutation(&self) -> Vec<usize> {
        self.forward.iter().map(|&i| i as usize).collect()
    }

    /// Reorders a batch `[N, ...]`.
    pub fn shuffle<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let idx = index_tensor(&self.forward, &x.device());
        x.select(0, idx)
    }

    /// Undoes [`Self::shuffle`].
    pub fn unshuffle<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let idx = index_tensor(&self.inverse, &x.device());
        x.select(0, idx)
    }
}

fn index_tensor(idx: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(idx.to_vec(), [idx.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn unshuffle_inverts_shuffle() {
        let device = Device::flex();
        let x = Tensor::<2>::from_floats([[0.0], [1.0], [2.0], [3.0], [4.0]], &device);
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let s = ShuffleBn::random(5, &mut rng);
        let shuffled = s.shuffle(x.clone());
        assert_ne!(shuffled.to_data(), x.to_data());
        assert_eq!(s.unshuffle(shuffled).to_data(), x.to_data());
    }
}
