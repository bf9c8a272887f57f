//! Which dataset a run trains on, and loading it: the `[data]` table of a run config.
//!
//! A new dataset is one variant of [`DatasetKind`], one arm of [`DataConfig::load`] and its
//! reader in its own file; nothing above this crate changes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cifar::{Cifar100Label, read_cifar10, read_cifar100};
use crate::error::DataError;
use crate::fashion_mnist::{self, Split};
use crate::{AugmentationConfig, ImageSet};

/// Which dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// The Fashion-MNIST subset embedded in `datasets/fashion-mnist`.
    FashionMnist,
    /// CIFAR-10 binary version (`cifar-10-batches-bin/`: `data_batch_1..5.bin`,
    /// `test_batch.bin`).
    Cifar10,
    /// CIFAR-100 binary version (`cifar-100-binary/`: `train.bin`, `test.bin`).
    Cifar100,
}

/// Which CIFAR-100 labels the evaluation scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cifar100Labels {
    /// The 100 classes (the published numbers).
    #[default]
    Fine,
    /// The 20 super-classes.
    Coarse,
}

/// The dataset of a run and how its crops are made.
///
/// ```
/// use unmix_data::{DataConfig, DatasetKind};
///
/// let data: DataConfig = toml::from_str(
///     "dataset = \"fashion_mnist\"\npath = \"datasets/fashion-mnist\"\ntrain_per_class = 10\n",
/// )
/// .unwrap();
/// assert_eq!(data.dataset, DatasetKind::FashionMnist);
/// assert_eq!(data.num_workers, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The dataset.
    pub dataset: DatasetKind,
    /// Its folder, relative to the working directory.
    pub path: PathBuf,
    /// Use only the first `n` training images of each class (all when absent).
    #[serde(default)]
    pub train_per_class: Option<usize>,
    /// Use only the first `n` test images of each class for evaluation (all when absent).
    #[serde(default)]
    pub test_per_class: Option<usize>,
    /// CIFAR-100 only: fine or coarse labels.
    #[serde(default)]
    pub cifar100_labels: Cifar100Labels,
    /// Threads that build batches ahead of the training step.
    #[serde(default = "one")]
    pub num_workers: usize,
    /// The augmentation of the training views.
    #[serde(default)]
    pub augmentation: AugmentationConfig,
    /// The dataset-level image mixture (`CMC_with_Image_Mixture`'s `--IM`), applied by the
    /// loader after the augmentation; off by default.
    #[serde(default)]
    pub image_mixture: unmix_ops::ImageMixtureConfig,
}

fn one() -> usize {
    1
}

impl DataConfig {
    /// The training and evaluation sets, each cut to its `*_per_class` (the first `n` images of
    /// each class, in file order).
    pub fn load(&self) -> Result<(ImageSet, ImageSet), DataError> {
        let dir = &self.path;
        let (train, test) = match self.dataset {
            DatasetKind::FashionMnist => (
                fashion_mnist::load(dir, Split::Train)?,
                fashion_mnist::load(dir, Split::Test)?,
            ),
            DatasetKind::Cifar10 => {
                let files: Vec<PathBuf> = (1..=5)
                    .map(|i| dir.join(format!("data_batch_{i}.bin")))
                    .collect();
                let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
                (
                    read_cifar10(&refs)?,
                    read_cifar10(&[&dir.join("test_batch.bin")])?,
                )
            }
            DatasetKind::Cifar100 => {
                let label = match self.cifar100_labels {
                    Cifar100Labels::Fine => Cifar100Label::Fine,
                    Cifar100Labels::Coarse => Cifar100Label::Coarse,
                };
                (
                    read_cifar100(&[&dir.join("train.bin")], label)?,
                    read_cifar100(&[&dir.join("test.bin")], label)?,
                )
            }
        };
        let cut = |set: ImageSet, per_class: Option<usize>| match per_class {
            Some(n) => {
                let idx = set.balanced_head(n);
                set.subset(&idx)
            }
            None => set,
        };
        Ok((
            cut(train, self.train_per_class),
            cut(test, self.test_per_class),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/fashion-mnist")
    }

    #[test]
    fn loads_the_embedded_set_cut_per_class() {
        let data = DataConfig {
            dataset: DatasetKind::FashionMnist,
            path: embedded(),
            train_per_class: Some(3),
            test_per_class: Some(2),
            cifar100_labels: Cifar100Labels::Fine,
            num_workers: 1,
            augmentation: AugmentationConfig::default(),
            image_mixture: Default::default(),
        };
        let (train, test) = data.load().unwrap();
        assert_eq!((train.len(), test.len()), (30, 20));
        let labels = train.labels.as_deref().unwrap();
        for class in 0..10u16 {
            assert_eq!(labels.iter().filter(|&&l| l == class).count(), 3);
        }
    }

    #[test]
    fn a_missing_folder_names_the_file() {
        let data: DataConfig =
            toml::from_str("dataset = \"cifar10\"\npath = \"/nonexistent/cifar\"\n").unwrap();
        let err = data.load().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cifar/data_batch_1.bin"), "{err}");
    }
}
