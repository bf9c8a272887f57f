//! Invariance Propagation's kNN graph over the memory bank (the reference's
//! `memory_bank.neigh`, `update_nn` and `propagate` in `objective.py`; algorithms.md §4.1).

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// `k` neighbour ids per sample id. Rows start at id 0 everywhere, as the reference's
/// `torch.zeros(n, k, dtype=long)`, and a row changes only when its sample is in a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighbourGraph {
    k: usize,
    table: Vec<usize>,
}

impl NeighbourGraph {
    /// A graph of `size` samples with `k` neighbours each.
    pub fn new(size: usize, k: usize) -> Result<Self, ModelError> {
        if size == 0 {
            return Err(ModelError::zero("NeighbourGraph::new", "size"));
        }
        if k == 0 {
            return Err(ModelError::zero("NeighbourGraph::new", "k"));
        }
        Ok(Self {
            k,
            table: vec![0; size * k],
        })
    }

    /// Neighbours per sample.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The neighbours of sample `id`.
    pub fn neighbours(&self, id: usize) -> &[usize] {
        &self.table[id * self.k..(id + 1) * self.k]
    }

    /// `update_nn`: for each sample `ids[b]`, its new neighbours are the first `k` of
    /// `background[b]` (bank ids, most similar first, at least `k + 1` of them) with its own id
    /// replaced by the `(k+1)`-th, so a sample is never its own neighbour.
    pub fn update(&mut self, ids: &[usize], background: &[Vec<usize>]) {
        let k = self.k;
        for (&id, row) in ids.iter().zip(background) {
            let backup = row[k];
            for (slot, &n) in self.table[id * k..(id + 1) * k].iter_mut().zip(row) {
                *slot = if n == id { backup } else { n };
            }
        }
    }

    /// `propagate`: the candidate positives of each sample, layer by layer: its `k`
    /// neighbours, then the `k` neighbours of each of those, and so on for `layers` layers
    /// (`k + k² + … + k^layers` ids; duplicates and the sample itself are kept, as there).
    pub fn propagate(&self, ids: &[usize], layers: usize) -> Vec<Vec<usize>> {
        ids.iter()
            .map(|&id| {
                let mut out = self.neighbours(id).to_vec();
                let mut layer_start = 0;
                for _ in 1..layers {
                    let layer_end = out.len();
                    for at in layer_start..layer_end {
                        let node = out[at];
                        out.extend_from_slice(self.neighbours(node));
                    }
                    layer_start = layer_end;
                }
                out
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked by hand on 5 samples, k = 2: the background of sample 3 is [3, 1, 4, 0] (itself
    /// first): its own id is replaced by the third, so its neighbours are [4, 1]; sample 1's
    /// background [2, 0, 1] has no self in the first two: [2, 0].
    #[test]
    fn update_excludes_the_sample_itself() {
        let mut g = NeighbourGraph::new(5, 2).unwrap();
        g.update(&[3, 1], &[vec![3, 1, 4, 0], vec![2, 0, 1]]);
        assert_eq!(g.neighbours(3), &[4, 1]);
        assert_eq!(g.neighbours(1), &[2, 0]);
        // Untouched rows keep the reference's zeros.
        assert_eq!(g.neighbours(2), &[0, 0]);
    }

    /// Three layers with k = 2: 2 + 4 + 8 = 14 candidates in the reference's order.
    #[test]
    fn propagation_walks_layer_by_layer() {
        let mut g = NeighbourGraph::new(6, 2).unwrap();
        // 0 → [1, 2], 1 → [3, 4], 2 → [5, 0], 3 → [0, 0], 4 → [1, 1], 5 → [2, 3]
        let rows = [[1, 2], [3, 4], [5, 0], [0, 0], [1, 1], [2, 3]];
        for (id, row) in rows.iter().enumerate() {
            // A background whose first k entries are the row and whose (k+1)-th is unused.
            g.update(&[id], &[vec![row[0], row[1], 99]]);
        }
        let c = g.propagate(&[0], 3);
        assert_eq!(
            c[0],
            vec![1, 2, 3, 4, 5, 0, 0, 0, 1, 1, 2, 3, 1, 2],
            "layer 1: [1, 2]; layer 2: N(1) N(2); layer 3: N(3) N(4) N(5) N(0)"
        );
        assert_eq!(g.propagate(&[4], 1), vec![vec![1, 1]]);
    }
}
