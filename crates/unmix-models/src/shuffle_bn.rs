use burn::prelude::*;
use rand_shim::shuffle;

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

    /// A random shuffle of `n` samples from a 64-bit seed (splitmix64 Fisher–Yates).
    pub fn random(n: usize, seed: u64) -> Self {
        Self::from_permutation(shuffle(n, seed))
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

mod rand_shim {
    /// Fisher–Yates with a splitmix64 stream: dependency-free and identical on every platform.
    pub fn shuffle(n: usize, seed: u64) -> Vec<usize> {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            p.swap(i, j);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unshuffle_inverts_shuffle() {
        let device = Device::flex();
        let x = Tensor::<2>::from_floats([[0.0], [1.0], [2.0], [3.0], [4.0]], &device);
        let s = ShuffleBn::random(5, 17);
        let shuffled = s.shuffle(x.clone());
        assert_ne!(shuffled.to_data(), x.to_data());
        assert_eq!(s.unshuffle(shuffled).to_data(), x.to_data());
    }
}
