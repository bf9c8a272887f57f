//! The weighted kNN monitor (InstDisc / the MoCo CIFAR demo, SPEC §5): cosine similarity to a
//! bank of training features, the `k` nearest vote with weights `exp(sim/t)`.

use burn::prelude::*;
use unmix_data::loader::eval_batches;
use unmix_data::{ImageSet, ViewTransform};
use unmix_losses::l2_normalize;

use super::FeatureKind;
use crate::method::{Method, beside};

/// Features of a whole set (L2-normalised unless said otherwise), `n × dim`, row-major, in set
/// order.
#[derive(Debug, Clone)]
pub struct FeatureBank {
    /// Row-major features.
    pub data: Vec<f32>,
    /// Feature size.
    pub dim: usize,
}

impl FeatureBank {
    /// Rows already computed (a memory bank), L2-normalised here.
    pub fn from_rows(rows: Tensor<2>) -> Self {
        let f = l2_normalize(rows.detach());
        let dim = f.dims()[1];
        Self {
            data: f.into_data().try_to_vec::<f32>().expect("f32 features"),
            dim,
        }
    }
}

/// L2-normalised features of every image of `set` (evaluation transform, model in evaluation
/// mode); the projection's for [`FeatureKind::MemoryBank`], whose queries live in the bank's
/// space.
pub fn extract<M: Method>(
    model: &M,
    set: &ImageSet,
    transform: &ViewTransform,
    kind: FeatureKind,
    device: &Device,
) -> FeatureBank {
    extract_features(model, set, transform, kind, true, device)
}

/// Features of every image of `set`, L2-normalised or as the model gives them.
pub fn extract_features<M: Method>(
    model: &M,
    set: &ImageSet,
    transform: &ViewTransform,
    kind: FeatureKind,
    normalize: bool,
    device: &Device,
) -> FeatureBank {
    let model = model.valid();
    let device = device.clone().without_autodiff();
    let features = |model: &M, batches: Vec<unmix_data::HostBatch>| {
        let mut data =
            Vec::with_capacity(batches.iter().map(|b| b.indices.len()).sum::<usize>() * 128);
        let mut dim = 0;
        for batch in batches {
            let images = batch.to_device(&device).views.remove(0);
            let (backbone, projection) = model.features(images);
            let f = match kind {
                FeatureKind::Backbone => backbone,
                FeatureKind::Projection | FeatureKind::MemoryBank => projection,
            };
            let f = if normalize { l2_normalize(f) } else { f };
            dim = f.dims()[1];
            data.extend(f.into_data().try_to_vec::<f32>().expect("f32 features"));
        }
        (data, dim)
    };
    // The second half of the batches on a second thread: in evaluation mode each batch's
    // features are its own (running statistics, no random draw), so the bank is the one a
    // single thread would build, and a CPU run keeps both cores busy.
    let mut first = eval_batches(set, transform, 256);
    let second = first.split_off(first.len().div_ceil(2));
    let other = model.clone();
    let features = &features;
    let ((mut data, dim_first), (rest, dim_second)) =
        beside(|| features(&model, first), move || features(&other, second));
    data.extend(rest);
    let dim = dim_first.max(dim_second);
    FeatureBank { data, dim }
}

/// Top-1 accuracy (in `[0, 1]`) of weighted kNN classification of `test` against `train`.
#[allow(clippy::too_many_arguments)]
pub fn weighted_knn(
    train: &FeatureBank,
    train_labels: &[u16],
    test: &FeatureBank,
    test_labels: &[u16],
    classes: usize,
    k: usize,
    t: f64,
    device: &Device,
) -> f64 {
    let device = device.clone().without_autodiff();
    let n_train = train_labels.len();
    let bank = Tensor::<2>::from_data(
        TensorData::new(train.data.clone(), [n_train, train.dim]),
        &device,
    )
    .transpose();
    let k = k.min(n_train);
    let mut correct = 0usize;
    let chunk = 512;
    let mut order: Vec<usize> = Vec::with_capacity(n_train);
    for start in (0..test_labels.len()).step_by(chunk) {
        let rows = chunk.min(test_labels.len() - start);
        let q = Tensor::<2>::from_data(
            TensorData::new(
                test.data[start * test.dim..(start + rows) * test.dim].to_vec(),
                [rows, test.dim],
            ),
            &device,
        );
        let sims = q
            .matmul(bank.clone())
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        for r in 0..rows {
            let s = &sims[r * n_train..(r + 1) * n_train];
            order.clear();
            order.extend(0..n_train);
            if k < n_train {
                order.select_nth_unstable_by(k - 1, |&a, &b| s[b].total_cmp(&s[a]));
            }
            let mut scores = vec![0f64; classes];
            for &j in &order[..k] {
                scores[train_labels[j] as usize] += (s[j] as f64 / t).exp();
            }
            let pred = scores
                .iter()
                .enumerate()
                .fold(0, |best, (c, &v)| if v > scores[best] { c } else { best });
            if pred == test_labels[start + r] as usize {
                correct += 1;
            }
        }
    }
    correct as f64 / test_labels.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_vote_worked_out_by_hand() {
        let device = Device::flex();
        // Train: three unit vectors at angles 0°, 10° (class 0) and 90° (class 1).
        let a = 10f32.to_radians();
        let train = FeatureBank {
            data: vec![1.0, 0.0, a.cos(), a.sin(), 0.0, 1.0],
            dim: 2,
        };
        let labels = [0u16, 0, 1];
        // Query at 60°: cos to the bank = 0.5, 0.643, 0.866. With k = 1 the 90° neighbour wins
        // (class 1); with k = 3 and t = 1: class 0 gets e^0.5 + e^0.643 = 3.55, class 1 gets
        // e^0.866 = 2.38, so class 0 wins; with t = 0.1 class 1 wins (e^8.66 > e^5 + e^6.43).
        let q = 60f32.to_radians();
        let test = FeatureBank {
            data: vec![q.cos(), q.sin()],
            dim: 2,
        };
        assert_eq!(
            weighted_knn(&train, &labels, &test, &[1], 2, 1, 1.0, &device),
            1.0
        );
        assert_eq!(
            weighted_knn(&train, &labels, &test, &[0], 2, 3, 1.0, &device),
            1.0
        );
        assert_eq!(
            weighted_knn(&train, &labels, &test, &[1], 2, 3, 0.1, &device),
            1.0
        );
        assert_eq!(
            weighted_knn(&train, &labels, &test, &[0], 2, 3, 0.1, &device),
            0.0
        );
    }

    #[test]
    fn memory_bank_rows_are_normalised_like_extracted_features() {
        let device = Device::flex();
        // Rows (3, 4) and (0, -2) -> (0.6, 0.8) and (0, -1).
        let bank =
            FeatureBank::from_rows(Tensor::<2>::from_data([[3.0, 4.0], [0.0, -2.0]], &device));
        assert_eq!(bank.dim, 2);
        for (got, want) in bank.data.iter().zip([0.6f32, 0.8, 0.0, -1.0]) {
            assert!((got - want).abs() < 1e-6, "{:?}", bank.data);
        }
    }
}
