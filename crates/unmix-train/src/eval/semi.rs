//! Semi-supervised fine-tuning on a fraction of the labels (algorithms.md §6.3), SwAV's
//! `eval_semisup.py` as the Un-Mix repo runs it: the whole network learns, the trunk and the
//! new linear head (PyTorch's default initialisation) at their own rates — 1% of the labels:
//! 0.02 and 5; 10%: 0.01 and 0.2 — SGD momentum 0.9, no weight decay, 20 epochs, ×0.2 at
//! epochs 12 and 16, batch 256 (32 per GPU × 8), a random-resized crop (area 0.08–1) and a
//! flip; run by [`super::classifier`].
//!
//! The labelled images: [`balanced_subset`], the same share of every class drawn with a seed
//! (SimCLR's ImageNet lists, `imagenet_subsets/{1,10}percent.txt`, are such a draw, stored; they
//! name ImageNet files, which none of the datasets here has), or a list file of training-image
//! indices, one per line, in the same spirit ([`read_subset_list`]).

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::classifier::{ClassifierRecipe, EpochSchedule, HeadInit};
use crate::error::TrainError;

/// The share of labels the references fine-tune with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelShare {
    /// 1% of the labels.
    OnePercent,
    /// 10% of the labels.
    TenPercent,
}

impl LabelShare {
    /// The fraction.
    pub fn fraction(self) -> f64 {
        match self {
            LabelShare::OnePercent => 0.01,
            LabelShare::TenPercent => 0.1,
        }
    }
}

/// The recipe for `share` (trunk and head rates from SwAV's README for each share).
pub fn recipe(share: LabelShare) -> ClassifierRecipe {
    let (trunk_lr, head_lr) = match share {
        LabelShare::OnePercent => (0.02, 5.0),
        LabelShare::TenPercent => (0.01, 0.2),
    };
    ClassifierRecipe {
        epochs: 20,
        batch_size: 256,
        head_lr,
        trunk_lr,
        momentum: 0.9,
        weight_decay: 0.0,
        schedule: EpochSchedule::Steps {
            milestones: vec![12, 16],
            gamma: 0.2,
        },
        head_init: HeadInit::TorchDefault,
        crop_scale: [0.08, 1.0],
    }
}

/// Indices of `fraction` of each class's images (rounded, at least one per class that has
/// images), drawn with `seed`, in increasing order.
///
/// ```
/// use unmix_train::eval::semi::balanced_subset;
///
/// let labels: Vec<u16> = (0..1000).map(|i| (i % 10) as u16).collect();
/// let ids = balanced_subset(&labels, 10, 0.1, 7);
/// assert_eq!(ids.len(), 100);
/// assert!((0..10).all(|c| ids.iter().filter(|&&i| labels[i] == c).count() == 10));
/// assert_eq!(ids, balanced_subset(&labels, 10, 0.1, 7)); // the same for the same seed
/// ```
pub fn balanced_subset(labels: &[u16], classes: usize, fraction: f64, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5E_41_5B);
    let mut chosen = Vec::new();
    for class in 0..classes {
        let mut members: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == class)
            .collect();
        if members.is_empty() {
            continue;
        }
        members.shuffle(&mut rng);
        let take = ((members.len() as f64 * fraction).round() as usize).clamp(1, members.len());
        chosen.extend_from_slice(&members[..take]);
    }
    chosen.sort_unstable();
    chosen
}

/// The training-image indices of a list file: one index per line, blank lines and lines
/// starting with `#` ignored; an index that is not a number or not below `len` is an error
/// naming the file and the line.
pub fn read_subset_list(path: &Path, len: usize) -> Result<Vec<usize>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<usize>() {
            Ok(i) if i < len => ids.push(i),
            _ => {
                return Err(TrainError::Config {
                    path: path.to_path_buf(),
                    message: format!(
                        "line {}: {line:?} is not a training-image index below {len}",
                        n + 1
                    ),
                });
            }
        }
    }
    if ids.is_empty() {
        return Err(TrainError::Config {
            path: path.to_path_buf(),
            message: "no image index in the file".into(),
        });
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subset_is_balanced_seeded_and_rounds_per_class() {
        // Classes of 95, 100 and 3 images: 10% rounds to 10, 10 and at least 1.
        let mut labels = vec![0u16; 95];
        labels.extend(vec![1u16; 100]);
        labels.extend(vec![2u16; 3]);
        let a = balanced_subset(&labels, 3, 0.1, 1);
        let count = |ids: &[usize], c: u16| ids.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!([count(&a, 0), count(&a, 1), count(&a, 2)], [10, 10, 1]);
        assert_eq!(a, balanced_subset(&labels, 3, 0.1, 1));
        assert_ne!(a, balanced_subset(&labels, 3, 0.1, 2));
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
    }

    #[test]
    fn a_list_file_is_read_and_its_errors_name_the_line() {
        let dir = std::env::temp_dir().join(format!("unmix-semi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.txt");
        std::fs::write(&good, "# 1% of ten images\n3\n\n7\n").unwrap();
        assert_eq!(read_subset_list(&good, 10).unwrap(), vec![3, 7]);
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, "3\nn01440764_10026.JPEG\n").unwrap();
        let err = read_subset_list(&bad, 10).unwrap_err().to_string();
        assert!(err.contains("bad.txt") && err.contains("line 2"), "{err}");
        std::fs::write(&bad, "12\n").unwrap();
        let err = read_subset_list(&bad, 10).unwrap_err().to_string();
        assert!(err.contains("below 10"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
