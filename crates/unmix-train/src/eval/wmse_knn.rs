//! The W-MSE / htdt "k-NN" protocol (`htdt/self-supervised`, `eval/knn.py::eval_knn`;
//! algorithms.md §6.2): the `k` (5) nearest training images by Euclidean distance between
//! un-normalised backbone features, a plain majority vote, ties between classes to the smallest
//! label (`labels.unique(return_counts=True)` then `argmax`, whose first maximum is the smallest
//! label). A different protocol from the weighted kNN monitor ([`super::knn`]): its numbers are
//! reported under their own name.
//!
//! Distances are computed on the device for a block of queries against a block of the training
//! features at a time, keeping each query's `k` best on the host, so memory stays bounded by the
//! block sizes whatever the number of training images (`torch.cdist` holds the whole
//! `[N_test, N_train]` matrix).

use burn::prelude::*;

/// Queries per block.
const QUERY_BLOCK: usize = 512;
/// Training features per block.
const BANK_BLOCK: usize = 8192;

/// Features of a set, row-major, not normalised.
#[derive(Debug, Clone)]
pub struct RawFeatures<'a> {
    /// Row-major `[n, dim]` values.
    pub data: &'a [f32],
    /// Feature size.
    pub dim: usize,
}

impl RawFeatures<'_> {
    fn len(&self) -> usize {
        self.data.len() / self.dim.max(1)
    }

    /// Rows `start..start + n` on `device`, and their squared norms `[1, n]`.
    fn block(&self, start: usize, n: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let rows = Tensor::<2>::from_data(
            TensorData::new(
                self.data[start * self.dim..(start + n) * self.dim].to_vec(),
                [n, self.dim],
            ),
            device,
        );
        let norms = rows.clone().powi_scalar(2).sum_dim(1).transpose();
        (rows, norms)
    }
}

/// Top-1 accuracy (in `[0, 1]`) of the `k`-NN majority vote of `test` against `train`.
///
/// ```
/// use burn::prelude::*;
/// use unmix_train::eval::wmse_knn::{RawFeatures, majority_knn};
///
/// // Class 0 near the origin, class 1 near (10, 0); a query at (9, 0) has 3 of its 5 nearest
/// // in class 1.
/// let train = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 10.0, 0.0, 11.0, 0.0, 10.0, 1.0];
/// let labels = [0u16, 0, 0, 1, 1, 1];
/// let test = [9.0f32, 0.0];
/// let device = Device::flex();
/// let acc = majority_knn(
///     RawFeatures { data: &train, dim: 2 },
///     &labels,
///     RawFeatures { data: &test, dim: 2 },
///     &[1],
///     2,
///     5,
///     &device,
/// );
/// assert_eq!(acc, 1.0);
/// ```
pub fn majority_knn(
    train: RawFeatures<'_>,
    train_labels: &[u16],
    test: RawFeatures<'_>,
    test_labels: &[u16],
    classes: usize,
    k: usize,
    device: &Device,
) -> f64 {
    let device = device.clone().without_autodiff();
    let (n_train, n_test) = (train.len(), test.len());
    let k = k.min(n_train);
    let mut correct = 0usize;
    for q_start in (0..n_test).step_by(QUERY_BLOCK) {
        let q_n = QUERY_BLOCK.min(n_test - q_start);
        let (queries, q_norms) = test.block(q_start, q_n, &device);
        let q_norms = q_norms.transpose();
        // Each query's k best (squared distance, training index) so far, sorted ascending.
        let mut best: Vec<Vec<(f32, usize)>> = vec![Vec::with_capacity(k + 1); q_n];
        for b_start in (0..n_train).step_by(BANK_BLOCK) {
            let b_n = BANK_BLOCK.min(n_train - b_start);
            let (bank, b_norms) = train.block(b_start, b_n, &device);
            // |q − b|² = |q|² + |b|² − 2 q·b.
            let d = q_norms.clone() + b_norms
                - queries.clone().matmul(bank.transpose()).mul_scalar(2.0);
            let d = d.into_data().try_to_vec::<f32>().expect("f32 distances");
            for (r, kept) in best.iter_mut().enumerate() {
                for (j, &v) in d[r * b_n..(r + 1) * b_n].iter().enumerate() {
                    if kept.len() < k || v < kept[k - 1].0 {
                        let at = kept.partition_point(|&(w, _)| w <= v);
                        kept.insert(at, (v, b_start + j));
                        kept.truncate(k);
                    }
                }
            }
        }
        for (r, kept) in best.iter().enumerate() {
            let mut votes = vec![0usize; classes];
            for &(_, j) in kept {
                votes[train_labels[j] as usize] += 1;
            }
            // The first maximum: ties go to the smallest label.
            let pred = (0..classes).fold(0, |b, c| if votes[c] > votes[b] { c } else { b });
            if pred == test_labels[q_start + r] as usize {
                correct += 1;
            }
        }
    }
    correct as f64 / n_test.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_vote_euclidean_and_ties_worked_by_hand() {
        let device = Device::flex();
        // Train on a line: x = 0, 1, 2 (class 2), 3, 4 (class 0), 10 (class 1).
        let train = [0.0f32, 1.0, 2.0, 3.0, 4.0, 10.0];
        let labels = [2u16, 2, 2, 0, 0, 1];
        let f = |d: &[f32]| RawFeatures {
            data: d.to_vec().leak(),
            dim: 1,
        };
        // Query 3.2, k 1: nearest is 3 (class 0).
        assert_eq!(
            majority_knn(f(&train), &labels, f(&[3.2]), &[0], 3, 1, &device),
            1.0
        );
        // Query 3.2, k 5: 3, 4, 2, 1, 0 -> class 2 (3 votes) beats class 0 (2).
        assert_eq!(
            majority_knn(f(&train), &labels, f(&[3.2]), &[2], 3, 5, &device),
            1.0
        );
        // Query 2.6, k 2: 3 and 2 -> one vote each for classes 0 and 2: the smallest label, 0.
        assert_eq!(
            majority_knn(f(&train), &labels, f(&[2.6]), &[0], 3, 2, &device),
            1.0
        );
        // Euclidean, not cosine: (10, 0) and (1, 0) point the same way, the query (9, 0) is
        // nearest to (10, 0).
        let train2 = [1.0f32, 0.0, 10.0, 0.0];
        let g = |d: &[f32]| RawFeatures {
            data: d.to_vec().leak(),
            dim: 2,
        };
        assert_eq!(
            majority_knn(g(&train2), &[0, 1], g(&[9.0, 0.0]), &[1], 2, 1, &device),
            1.0
        );
    }

    #[test]
    fn blocks_give_the_answer_of_one_pass() {
        // More training rows than one block and more queries than one block, on an integer
        // grid (32 × 32 × 9, spacing 1): a query a quarter step from grid point i has i as its
        // nearest neighbour (0.0625 against 0.5625 for the next), so the 1-NN vote is exact only
        // if the blocks are merged right; labels vary between neighbours.
        let device = Device::flex();
        let n = BANK_BLOCK + 37;
        let point = |i: usize| [(i % 32) as f32, ((i / 32) % 32) as f32, (i / 1024) as f32];
        let train: Vec<f32> = (0..n).flat_map(point).collect();
        let labels: Vec<u16> = (0..n).map(|i| (i % 3) as u16).collect();
        let picks: Vec<usize> = (0..QUERY_BLOCK + 5).map(|i| (i * 17) % n).collect();
        let test: Vec<f32> = picks
            .iter()
            .flat_map(|&i| {
                let [x, y, z] = point(i);
                [x + 0.25, y, z]
            })
            .collect();
        let test_labels: Vec<u16> = picks.iter().map(|&i| labels[i]).collect();
        let raw = |data| RawFeatures { data, dim: 3 };
        let acc = majority_knn(
            raw(&train),
            &labels,
            raw(&test),
            &test_labels,
            3,
            1,
            &device,
        );
        assert_eq!(acc, 1.0);
        // And a label off by one everywhere scores 0.
        let wrong: Vec<u16> = test_labels.iter().map(|l| (l + 1) % 3).collect();
        let acc = majority_knn(raw(&train), &labels, raw(&test), &wrong, 3, 1, &device);
        assert_eq!(acc, 0.0);
    }
}
