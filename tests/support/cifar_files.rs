//! CIFAR binary files of real images, for the tests that run the CIFAR configs: CIFAR cannot
//! be downloaded here, so Fashion-MNIST images are written in CIFAR's exact binary layout
//! (28×28 zero-padded to 32×32, grey copied to R, G and B; the reader is checked against the
//! format in `unmix-data`'s tests). Included by `configs_run.rs` and `learns.rs`.

use std::path::{Path, PathBuf};

use unmix_data::ImageSet;
use unmix_data::cifar::{write_cifar10, write_cifar100};
use unmix_data::fashion_mnist::{self, Split};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Real images in CIFAR's shape: `per_class` of each Fashion-MNIST class.
pub fn cifar_shaped(split: Split, per_class: usize) -> ImageSet {
    let set = fashion_mnist::load(&root().join("datasets/fashion-mnist"), split).unwrap();
    let idx = set.balanced_head(per_class);
    set.subset(&idx).pad_to(32).to_rgb()
}

/// `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`.
pub fn write_cifar10_dir(dir: &Path, train: &ImageSet, test: &ImageSet) {
    std::fs::create_dir_all(dir).unwrap();
    let per_file = train.len() / 5;
    for i in 0..5 {
        let idx: Vec<usize> = (i * per_file..(i + 1) * per_file).collect();
        write_cifar10(
            &dir.join(format!("data_batch_{}.bin", i + 1)),
            &train.subset(&idx),
        )
        .unwrap();
    }
    write_cifar10(&dir.join("test_batch.bin"), test).unwrap();
}

/// `train.bin` and `test.bin`. Fashion-MNIST class c becomes fine label 10·c + 3 and coarse
/// label 2·c, so fine and coarse runs see different label bytes.
#[allow(dead_code)] // learns.rs uses CIFAR-10 only
pub fn write_cifar100_dir(dir: &Path, train: &ImageSet, test: &ImageSet) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, set) in [("train.bin", train), ("test.bin", test)] {
        let classes = set.labels.clone().unwrap();
        let fine = ImageSet {
            labels: Some(classes.iter().map(|c| 10 * c + 3).collect()),
            ..set.clone()
        };
        let coarse: Vec<u16> = classes.iter().map(|c| 2 * c).collect();
        write_cifar100(&dir.join(name), &fine, &coarse).unwrap();
    }
}
