//! A memory bank: one embedding per training image, kept across steps and indexed by sample
//! id, as InsDis, CMC (`NCEAverage`) and Invariance Propagation (`MemoryBank_v1`) keep theirs
//! (algorithms.md §2.1, §4.1).

use burn::module::{Module, RunningState};
use burn::prelude::*;
use burn::tensor::{Distribution, IndexingUpdateOp};

use crate::error::ModelError;

/// `N × D` embeddings, one per sample id. A [`Module`] whose state is saved in checkpoints
/// with the rest of the model and never receives gradients.
///
/// ```
/// use burn::prelude::*;
/// use unmix_models::{MemoryBank, sample_ids};
///
/// let device = Device::flex();
/// let bank = MemoryBank::new(100, 8, &device).unwrap();
/// // Sample 3's new embedding, unit length: v ← normalize(0.5·v + 0.5·f).
/// let f = Tensor::<2>::from_data([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]], &device);
/// let bank = bank.update(sample_ids(&[3], &device), f, 0.5);
/// let row: Vec<f32> = bank.rows(&[3]).into_data().try_to_vec().unwrap();
/// let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
/// assert!((norm - 1.0).abs() < 1e-5);
/// ```
#[derive(Module, Debug)]
pub struct MemoryBank {
    /// One row per sample id.
    pub memory: RunningState<Tensor<2>>,
}

impl MemoryBank {
    /// `size` rows of dimension `dim`, drawn from `U(−s, s)` with `s = 1/sqrt(dim/3)`: the
    /// initialisation of CMC's `NCEAverage` and Invariance Propagation's `MemoryBank_v1` (rows
    /// are not normalised until their first update, as there).
    pub fn new(size: usize, dim: usize, device: &Device) -> Result<Self, ModelError> {
        if size == 0 {
            return Err(ModelError::zero("MemoryBank::new", "size"));
        }
        if dim == 0 {
            return Err(ModelError::zero("MemoryBank::new", "dim"));
        }
        let s = 1.0 / (dim as f64 / 3.0).sqrt();
        let memory = Tensor::<2>::random([size, dim], Distribution::Uniform(-s, s), device);
        Ok(Self {
            memory: RunningState::new(memory),
        })
    }

    /// Number of rows (sample ids).
    pub fn len(&self) -> usize {
        self.memory.value().dims()[0]
    }

    /// Whether the bank has no rows (never: [`MemoryBank::new`] refuses 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Embedding size.
    pub fn dim(&self) -> usize {
        self.memory.value().dims()[1]
    }

    /// The whole bank, `[N, D]`, without gradient.
    pub fn all(&self) -> Tensor<2> {
        self.memory.value().detach()
    }

    /// The rows of `ids`, `[B, D]`, without gradient.
    pub fn rows(&self, ids: &[usize]) -> Tensor<2> {
        let memory = self.all();
        memory.clone().select(0, sample_ids(ids, &memory.device()))
    }

    /// The momentum update of the rows of `ids` (unique within a call):
    /// `v ← normalize(m·v + (1−m)·f)`, with `f` the batch's embeddings `[B, D]` as the method
    /// computes them (detached here; the references pass L2-normalised features).
    pub fn update(self, ids: Tensor<1, Int>, features: Tensor<2>, momentum: f64) -> Self {
        let memory = self.all();
        let device = memory.device();
        let index = ids.to_device(&device);
        let old = memory.clone().select(0, index.clone());
        let features = features.detach().to_device(&device);
        let mixed = old.clone().mul_scalar(momentum) + features.mul_scalar(1.0 - momentum);
        let norm = mixed
            .clone()
            .powf_scalar(2.0)
            .sum_dim(1)
            .sqrt()
            .clamp_min(1e-12);
        let new = mixed.div(norm);
        // Adding the difference replaces the rows on every backend (`Assign` is optional).
        let memory = memory.select_assign(0, index, new - old, IndexingUpdateOp::Add);
        Self {
            memory: RunningState::new(memory.detach()),
        }
    }

    /// The `k` rows most similar to each query by dot product, without forming the whole
    /// `[B, N]` matrix: the bank is scanned `chunk_rows` rows at a time and each chunk's top
    /// `k` merged. Returns the ids `[B, k]` (most similar first) and the similarities `[B, k]`
    /// recomputed from `queries`, so gradients flow to the queries (not to the bank).
    pub fn top_similar(
        &self,
        queries: Tensor<2>,
        k: usize,
        chunk_rows: usize,
    ) -> (Tensor<2, Int>, Tensor<2>) {
        let memory = self.all();
        let [n, _] = memory.dims();
        let k = k.min(n);
        let chunk_rows = chunk_rows.max(k).max(1);
        let q = queries.clone().detach();
        let mut best: Option<(Tensor<2>, Tensor<2, Int>)> = None;
        for start in (0..n).step_by(chunk_rows) {
            let rows = chunk_rows.min(n - start);
            let chunk = memory.clone().narrow(0, start, rows);
            let sims = q.clone().matmul(chunk.transpose());
            let (values, ids) = sims.topk_with_indices(k.min(rows), 1);
            let ids = ids.add_scalar(start as i64);
            best = Some(match best {
                None => (values, ids),
                Some((bv, bi)) => {
                    let values = Tensor::cat(vec![bv, values], 1);
                    let ids = Tensor::cat(vec![bi, ids], 1);
                    let (values, at) = values.topk_with_indices(k, 1);
                    (values, ids.gather(1, at))
                }
            });
        }
        let (_, ids) = best.expect("the bank has rows");
        let sims = self.dot_rows(queries, ids.clone());
        (ids, sims)
    }

    /// `queries[b] · bank[ids[b, j]]` for `ids` `[B, J]`: `[B, J]`, differentiable in the
    /// queries only (CMC's `bmm` of the selected, detached memory rows).
    pub fn dot_rows(&self, queries: Tensor<2>, ids: Tensor<2, Int>) -> Tensor<2> {
        let [b, j] = ids.dims();
        let picked = self
            .all()
            .select(0, ids.reshape([b * j]))
            .reshape([b, j, self.dim()]);
        (picked * queries.unsqueeze_dim::<3>(1))
            .sum_dim(2)
            .reshape([b, j])
    }

    /// The ids NCE scores each sample against, `[B, K+1]` row-major: the sample's own id in
    /// column 0, then `k` ids drawn uniformly from the whole bank (own id possible), as CMC's
    /// `AliasMethod` over uniform weights.
    pub fn contrast_ids<R: rand::Rng + ?Sized>(
        &self,
        own: &[usize],
        k: usize,
        rng: &mut R,
    ) -> Tensor<2, Int> {
        contrast_ids(self.len(), own, k, rng, &self.all().device())
    }
}

/// [`MemoryBank::contrast_ids`] for a bank of `n` rows on `device`, without the bank (what a
/// record of the draw needs).
pub fn contrast_ids<R: rand::Rng + ?Sized>(
    n: usize,
    own: &[usize],
    k: usize,
    rng: &mut R,
    device: &Device,
) -> Tensor<2, Int> {
    let mut ids = Vec::with_capacity(own.len() * (k + 1));
    for &i in own {
        ids.push(i as i64);
        ids.extend((0..k).map(|_| rng.random_range(0..n) as i64));
    }
    Tensor::from_data(TensorData::new(ids, [own.len(), k + 1]), device)
}

/// Sample ids as the `[B]` index tensor [`MemoryBank::update`] and the other bank lookups take.
pub fn sample_ids(ids: &[usize], device: &Device) -> Tensor<1, Int> {
    let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let n = ids.len();
    Tensor::from_data(TensorData::new(ids, [n]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn initialised_as_the_references_within_their_bound() {
        let device = Device::flex();
        let bank = MemoryBank::new(500, 12, &device).unwrap();
        let s = 1.0 / (12f32 / 3.0).sqrt(); // 0.5
        let v = values(bank.all());
        assert!(v.iter().all(|x| x.abs() <= s));
        // U(−s, s): mean 0, variance s²/3 = 0.0833.
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - s * s / 3.0).abs() < 0.005, "{var}");
        assert_eq!(
            MemoryBank::new(0, 12, &device).unwrap_err().to_string(),
            "MemoryBank::new.size = 0: expected a positive value"
        );
    }

    /// Worked by hand: row 1 = (1, 0), f = (0, 1), m = 0.5: 0.5·(1, 0) + 0.5·(0, 1) = (0.5, 0.5),
    /// normalised (0.7071, 0.7071). Rows not in the batch do not move.
    #[test]
    fn momentum_update_of_the_batch_rows_only() {
        let device = Device::flex();
        let mut bank = MemoryBank::new(3, 2, &device).unwrap();
        bank.memory = RunningState::new(Tensor::from_data(
            [[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]],
            &device,
        ));
        let bank = bank.update(
            sample_ids(&[1], &device),
            Tensor::from_data([[0.0, 1.0]], &device),
            0.5,
        );
        let v = values(bank.all());
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let want = [0.0, 1.0, h, h, 0.6, 0.8];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
    }

    /// Chunked top-k equals sorting the full similarity matrix, whatever the chunk size.
    #[test]
    fn chunked_top_k_matches_the_full_matrix() {
        let device = Device::flex();
        let bank = MemoryBank::new(53, 6, &device).unwrap();
        let q = Tensor::<2>::random([4, 6], Distribution::Normal(0.0, 1.0), &device);
        let full = values(q.clone().matmul(bank.all().transpose()));
        for chunk in [1, 5, 7, 53, 100] {
            let (ids, sims) = bank.top_similar(q.clone(), 5, chunk);
            let ids: Vec<i64> = ids
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap();
            let sims = values(sims);
            for r in 0..4 {
                let mut order: Vec<usize> = (0..53).collect();
                order.sort_by(|&a, &b| full[r * 53 + b].total_cmp(&full[r * 53 + a]));
                for j in 0..5 {
                    assert_eq!(ids[r * 5 + j] as usize, order[j], "chunk {chunk} row {r}");
                    let want = full[r * 53 + order[j]];
                    assert!((sims[r * 5 + j] - want).abs() < 1e-5, "chunk {chunk}");
                }
            }
        }
    }

    /// The similarities carry gradients to the queries: d(sum sims)/dq = sum of the picked rows.
    #[test]
    fn top_k_similarities_differentiate_to_the_queries() {
        let device = Device::flex().autodiff();
        let bank = MemoryBank::new(10, 3, &device).unwrap();
        let q = Tensor::<2>::random([2, 3], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let (ids, sims) = bank.top_similar(q.clone(), 3, 4);
        let grads = sims.sum().backward();
        let g = values(q.grad(&grads).unwrap());
        let ids: Vec<i64> = ids
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        let memory = values(bank.all());
        for r in 0..2 {
            for d in 0..3 {
                let want: f32 = (0..3)
                    .map(|j| memory[ids[r * 3 + j] as usize * 3 + d])
                    .sum();
                assert!((g[r * 3 + d] - want).abs() < 1e-5);
            }
        }
    }

    /// Column 0 is the sample's own id; the others are uniform over the bank; `dot_rows` is the
    /// dot product with those rows.
    #[test]
    fn contrast_ids_and_their_scores() {
        use rand::SeedableRng;
        let device = Device::flex();
        let bank = MemoryBank::new(20, 3, &device).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let ids = bank.contrast_ids(&[4, 17], 400, &mut rng);
        assert_eq!(ids.dims(), [2, 401]);
        let flat: Vec<i64> = ids
            .clone()
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        assert_eq!((flat[0], flat[401]), (4, 17));
        let mut seen = [0usize; 20];
        for &i in flat.iter().skip(1).take(400) {
            seen[i as usize] += 1;
        }
        // 400 uniform draws over 20 ids: every id appears (P(miss) = 20·0.95^400 ≈ 2e-8).
        assert!(seen.iter().all(|&c| c > 0), "{seen:?}");
        let q = Tensor::<2>::from_data([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]], &device);
        let scores = values(bank.dot_rows(q, ids));
        let memory = values(bank.all());
        assert!((scores[0] - memory[4 * 3]).abs() < 1e-6);
        assert!((scores[401] - 2.0 * memory[17 * 3 + 2]).abs() < 1e-6);
    }

    /// The bank is module state: it survives a record round trip (what checkpoints store).
    #[test]
    fn the_bank_is_saved_with_the_module_record() {
        let device = Device::flex();
        let bank = MemoryBank::new(7, 4, &device).unwrap();
        let bank = bank.update(
            sample_ids(&[2, 5], &device),
            Tensor::ones([2, 4], &device),
            0.5,
        );
        let saved = values(bank.all());
        let fresh = MemoryBank::new(7, 4, &device).unwrap();
        let loaded = fresh.load_record(bank.into_record());
        assert_eq!(values(loaded.all()), saved);
    }
}
