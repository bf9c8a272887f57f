//! Invariance Propagation's kNN graph over the memory bank (the reference's
//! `memory_bank.neigh`, `update_nn` and `propagate` in `objective.py`; algorithms.md §4.1).

use burn::module::{Module, RunningState};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;

use crate::error::ModelError;

/// `k` neighbour ids per sample id, kept on the device beside the memory bank and saved in
/// checkpoints with the model. Rows start at id 0 everywhere, as the reference's
/// `torch.zeros(n, k, dtype=long)`, and a row changes only when its sample is in a batch.
///
/// The table is a float tensor because Burn's [`RunningState`] (what a checkpoint saves) holds
/// float tensors; ids are exact in `f32` up to 2²⁴ = 16,777,216 samples, which
/// [`NeighbourGraph::new`] checks.
///
/// ```
/// use burn::prelude::*;
/// use unmix_models::NeighbourGraph;
///
/// let device = Device::flex();
/// let graph = NeighbourGraph::new(5, 2, &device).unwrap();
/// // Sample 3's most similar bank rows are [3, 1, 4, ...]: itself first, so its neighbours
/// // are the next two.
/// let ids = Tensor::<1, Int>::from_data([3], &device);
/// let background = Tensor::<2, Int>::from_data([[3, 1, 4]], &device);
/// let graph = graph.update(ids.clone(), background);
/// let n: Vec<i64> = graph.neighbours(ids).into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
/// assert_eq!(n, vec![4, 1]);
/// ```
#[derive(Module, Debug)]
pub struct NeighbourGraph {
    /// `[N, k]` neighbour ids, stored as floats.
    pub table: RunningState<Tensor<2>>,
}

/// The largest sample count whose ids `f32` holds exactly.
const MAX_SAMPLES: usize = 1 << 24;

impl NeighbourGraph {
    /// A graph of `size` samples with `k` neighbours each, all pointing at id 0.
    pub fn new(size: usize, k: usize, device: &Device) -> Result<Self, ModelError> {
        if size == 0 {
            return Err(ModelError::zero("NeighbourGraph::new", "size"));
        }
        if k == 0 {
            return Err(ModelError::zero("NeighbourGraph::new", "k"));
        }
        if size > MAX_SAMPLES {
            return Err(ModelError::Setting {
                owner: "NeighbourGraph::new",
                field: "size",
                value: size.to_string(),
                expected: "expected at most 16,777,216 samples (ids are stored exactly as f32)",
            });
        }
        Ok(Self {
            table: RunningState::new(Tensor::zeros([size, k], device)),
        })
    }

    /// Neighbours per sample.
    pub fn k(&self) -> usize {
        self.table.value().dims()[1]
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.table.value().dims()[0]
    }

    /// Whether the graph has no samples (never: [`NeighbourGraph::new`] refuses 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The neighbours of each id, `[B, k]`.
    pub fn neighbours(&self, ids: Tensor<1, Int>) -> Tensor<2, Int> {
        self.table.value().select(0, ids).int()
    }

    /// `update_nn`: for each sample `ids[b]` (unique within a call), its new neighbours are
    /// the first `k` of `background[b]` (bank ids, most similar first, at least `k + 1` of
    /// them) with its own id replaced by the `(k+1)`-th, so a sample is never its own
    /// neighbour.
    pub fn update(self, ids: Tensor<1, Int>, background: Tensor<2, Int>) -> Self {
        let table = self.table.value();
        let [b, _] = background.dims();
        let k = self.k();
        let first = background.clone().narrow(1, 0, k);
        let backup = background.narrow(1, k, 1).expand([b, k]);
        let own = ids.clone().unsqueeze_dim::<2>(1).expand([b, k]);
        let rows = first.clone().mask_where(first.equal(own), backup).float();
        let old = table.clone().select(0, ids.clone());
        // Adding the difference replaces the rows on every backend (`Assign` is optional).
        let table = table.select_assign(0, ids, rows - old, IndexingUpdateOp::Add);
        Self {
            table: RunningState::new(table.detach()),
        }
    }

    /// `propagate`: the candidate positives of each sample, layer by layer: its `k`
    /// neighbours, then the `k` neighbours of each of those, and so on for `layers` layers
    /// (`k + k² + … + k^layers` ids per row, `[B, ·]`; duplicates and the sample itself are
    /// kept, as there).
    pub fn propagate(&self, ids: Tensor<1, Int>, layers: usize) -> Tensor<2, Int> {
        let table = self.table.value();
        let k = self.k();
        let mut layer = self.neighbours(ids);
        let mut out = vec![layer.clone()];
        for _ in 1..layers {
            let [b, w] = layer.dims();
            layer = table
                .clone()
                .select(0, layer.reshape([b * w]))
                .int()
                .reshape([b, w * k]);
            out.push(layer.clone());
        }
        Tensor::cat(out, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[i64], device: &Device) -> Tensor<1, Int> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
    }

    fn rows(t: Tensor<2, Int>) -> Vec<Vec<i64>> {
        let [_, w] = t.dims();
        let v: Vec<i64> = t.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
        v.chunks(w).map(|c| c.to_vec()).collect()
    }

    /// Worked by hand on 5 samples, k = 2: the background of sample 3 is [3, 1, 4] (itself
    /// first): its own id is replaced by the third, so its neighbours are [4, 1]; sample 1's
    /// background [2, 0, 1] has no self in the first two: [2, 0].
    #[test]
    fn update_excludes_the_sample_itself() {
        let device = Device::flex();
        let g = NeighbourGraph::new(5, 2, &device).unwrap();
        let background = Tensor::<2, Int>::from_data([[3, 1, 4], [2, 0, 1]], &device);
        let g = g.update(ids(&[3, 1], &device), background);
        let n = rows(g.neighbours(ids(&[3, 1, 2], &device)));
        // Untouched rows keep the reference's zeros.
        assert_eq!(n, vec![vec![4, 1], vec![2, 0], vec![0, 0]]);
    }

    /// Three layers with k = 2: 2 + 4 + 8 = 14 candidates in the reference's order.
    #[test]
    fn propagation_walks_layer_by_layer() {
        let device = Device::flex();
        let mut g = NeighbourGraph::new(6, 2, &device).unwrap();
        // 0 → [1, 2], 1 → [3, 4], 2 → [5, 0], 3 → [0, 0], 4 → [1, 1], 5 → [2, 3]
        let table = [[1, 2], [3, 4], [5, 0], [0, 0], [1, 1], [2, 3]];
        for (id, row) in table.iter().enumerate() {
            // A background whose first k entries are the row and whose (k+1)-th is unused.
            let background = Tensor::<2, Int>::from_data([[row[0], row[1], 99]], &device);
            g = g.update(ids(&[id as i64], &device), background);
        }
        assert_eq!(
            rows(g.propagate(ids(&[0], &device), 3)),
            vec![vec![1, 2, 3, 4, 5, 0, 0, 0, 1, 1, 2, 3, 1, 2]],
            "layer 1: [1, 2]; layer 2: N(1) N(2); layer 3: N(3) N(4) N(5) N(0)"
        );
        assert_eq!(rows(g.propagate(ids(&[4], &device), 1)), vec![vec![1, 1]]);
    }

    #[test]
    fn refuses_empty_and_oversized_graphs() {
        let device = Device::flex();
        for (size, k, field) in [(0, 4, "size"), (5, 0, "k"), (MAX_SAMPLES + 1, 1, "size")] {
            let e = NeighbourGraph::new(size, k, &device)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("NeighbourGraph::new.{field} = ")),
                "{e}"
            );
        }
    }
}
