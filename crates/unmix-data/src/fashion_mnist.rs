//! Fashion-MNIST (Xiao et al. 2017, MIT licence), as embedded in `datasets/fashion-mnist/`: a
//! class-balanced 10,000-image train subset and the full 10,000-image test set, in the original
//! gzip IDX format. Every file is checked against its SHA-256 sum before use.

use std::path::Path;

use crate::checksum::verify_sha256;
use crate::error::DataError;
use crate::idx::{IdxArray, read_idx, write_idx};
use crate::image_set::ImageSet;

/// Class names, by label.
pub const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Mean and standard deviation of the training pixels in `[0, 1]` (all 60,000 images).
pub const MEAN_STD: (f32, f32) = (0.2860, 0.3530);

/// The embedded files and their SHA-256 sums (also listed in `datasets/README.md`).
pub const FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "63e1fe8ce2e1ba4378a3c26f69005bfeeaa6d752c2e71599308c4bbff7464218",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "869cdda6754839fd74bca538e25e19f5bb4bc51e4f5438f08397fd5fd6e2772c",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    ),
];

/// Which split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The 10,000-image train subset.
    Train,
    /// The 10,000-image test set.
    Test,
}

/// Loads a split from `dir`, verifying the checksums of its two files.
pub fn load(dir: &Path, split: Split) -> Result<ImageSet, DataError> {
    let (images, labels) = match split {
        Split::Train => (FILES[0], FILES[1]),
        Split::Test => (FILES[2], FILES[3]),
    };
    for (name, sha) in [images, labels] {
        verify_sha256(&dir.join(name), sha)?;
    }
    read_pair(&dir.join(images.0), &dir.join(labels.0))
}

/// Reads an IDX image file and its label file into a grey [`ImageSet`], without checksums.
pub fn read_pair(images: &Path, labels: &Path) -> Result<ImageSet, DataError> {
    let img = read_idx(images)?;
    let lab = read_idx(labels)?;
    if img.dims.len() != 3 {
        return Err(DataError::format(
            images,
            format!("expected [N, rows, cols] images, found dims {:?}", img.dims),
        ));
    }
    if lab.dims.len() != 1 || lab.dims[0] != img.dims[0] {
        return Err(DataError::format(
            labels,
            format!("expected {} labels, found dims {:?}", img.dims[0], lab.dims),
        ));
    }
    if let Some(bad) = lab.data.iter().find(|&&l| l as usize >= CLASSES.len()) {
        return Err(DataError::format(
            labels,
            format!("label {bad}, expected < 10"),
        ));
    }
    Ok(ImageSet {
        channels: 1,
        height: img.dims[1],
        width: img.dims[2],
        pixels: img.data,
        labels: Some(lab.data.iter().map(|&l| l as u16).collect()),
        class_names: CLASSES.iter().map(|s| s.to_string()).collect(),
    })
}

/// Cuts the embedded set from the Debian package's files in `source`: the first
/// `per_class` training images of each class in file order, and the test set as is.
/// Returns the written paths.
pub fn cut(
    source: &Path,
    out: &Path,
    per_class: usize,
) -> Result<Vec<std::path::PathBuf>, DataError> {
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let train = read_pair(&source.join(FILES[0].0), &source.join(FILES[1].0))?;
    let keep = train.balanced_head(per_class);
    let subset = train.subset(&keep);
    let n = subset.len();
    let images = IdxArray {
        dims: vec![n, subset.height, subset.width],
        data: subset.pixels,
    };
    let labels = IdxArray {
        dims: vec![n],
        data: subset.labels.unwrap().iter().map(|&l| l as u8).collect(),
    };
    let mut written = Vec::new();
    for (name, array) in [(FILES[0].0, images), (FILES[1].0, labels)] {
        let p = out.join(name);
        write_idx(&p, &array, true)?;
        written.push(p);
    }
    for (name, _) in &FILES[2..] {
        let p = out.join(name);
        std::fs::copy(source.join(name), &p).map_err(|e| DataError::io(&p, e))?;
        written.push(p);
    }
    Ok(written)
}
