//! The CIFAR-10 and CIFAR-100 binary versions (`cs.toronto.edu/~kriz/cifar.html`).
//!
//! A CIFAR-10 record is `<1 byte label><3072 bytes>`; a CIFAR-100 record is `<1 byte coarse
//! label><1 byte fine label><3072 bytes>`. The pixels are channel-major: 1024 red bytes (32 rows
//! of 32), then green, then blue.

use std::path::Path;

use crate::error::DataError;
use crate::image_set::ImageSet;

const PIXELS: usize = 3 * 32 * 32;

/// CIFAR-10 class names, in `batches.meta.txt` order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Which CIFAR-100 label to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar100Label {
    /// The 20 super-classes.
    Coarse,
    /// The 100 classes (the SSL convention for kNN and linear evaluation).
    Fine,
}

/// Reads CIFAR-10 binary batch files (e.g. `data_batch_1.bin` … `data_batch_5.bin`) into one set.
pub fn read_cifar10(files: &[&Path]) -> Result<ImageSet, DataError> {
    read_records(
        files,
        1,
        0,
        10,
        CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
    )
}

/// Reads CIFAR-100 binary files (`train.bin`, `test.bin`) with the chosen label.
pub fn read_cifar100(files: &[&Path], label: Cifar100Label) -> Result<ImageSet, DataError> {
    let (offset, classes) = match label {
        Cifar100Label::Coarse => (0, 20),
        Cifar100Label::Fine => (1, 100),
    };
    let names = (0..classes).map(|c| c.to_string()).collect();
    read_records(files, 2, offset, classes, names)
}

fn read_records(
    files: &[&Path],
    label_bytes: usize,
    label_offset: usize,
    classes: usize,
    class_names: Vec<String>,
) -> Result<ImageSet, DataError> {
    let record = label_bytes + PIXELS;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for &path in files {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(DataError::format(
                path,
                format!(
                    "{} bytes is not a whole number of {record}-byte CIFAR records",
                    bytes.len()
                ),
            ));
        }
        for (r, rec) in bytes.chunks_exact(record).enumerate() {
            let label = rec[label_offset] as usize;
            if label >= classes {
                return Err(DataError::format(
                    path,
                    format!("record {r}: label {label}, expected < {classes}"),
                ));
            }
            labels.push(label as u16);
            pixels.extend_from_slice(&rec[label_bytes..]);
        }
    }
    Ok(ImageSet {
        channels: 3,
        height: 32,
        width: 32,
        pixels,
        labels: Some(labels),
        class_names,
    })
}

/// Writes a 32×32 RGB set labelled 0..10 as one CIFAR-10 binary file.
pub fn write_cifar10(path: &Path, set: &ImageSet) -> Result<(), DataError> {
    write_records(path, set, 10, |out, _, label| out.push(label as u8))
}

/// Writes a 32×32 RGB set as one CIFAR-100 binary file: the set's labels are the fine labels
/// (0..100) and `coarse[i]` is image i's super-class (0..20).
pub fn write_cifar100(path: &Path, set: &ImageSet, coarse: &[u16]) -> Result<(), DataError> {
    if coarse.len() != set.len() {
        return Err(DataError::format(
            path,
            format!("{} coarse labels for {} images", coarse.len(), set.len()),
        ));
    }
    if let Some(c) = coarse.iter().find(|&&c| c >= 20) {
        return Err(DataError::format(
            path,
            format!("coarse label {c}, expected 0..20"),
        ));
    }
    write_records(path, set, 100, |out, i, fine| {
        out.extend_from_slice(&[coarse[i] as u8, fine as u8])
    })
}

/// `<label bytes><3072 pixel bytes>` per image; `label_bytes(out, i, label)` appends image i's
/// label bytes. Labels must be below `classes`.
fn write_records(
    path: &Path,
    set: &ImageSet,
    classes: u16,
    label_bytes: impl Fn(&mut Vec<u8>, usize, u16),
) -> Result<(), DataError> {
    let labels = set
        .labels
        .as_ref()
        .ok_or_else(|| DataError::format(path, "CIFAR records need labels; the set has none"))?;
    if (set.channels, set.height, set.width) != (3, 32, 32) {
        return Err(DataError::format(
            path,
            format!(
                "CIFAR images are 3×32×32, the set is {}×{}×{}",
                set.channels, set.height, set.width
            ),
        ));
    }
    if let Some(l) = labels.iter().find(|&&l| l >= classes) {
        return Err(DataError::format(
            path,
            format!("label {l}, expected 0..{classes}"),
        ));
    }
    let mut out = Vec::with_capacity(set.len() * (PIXELS + 2));
    for (i, &label) in labels.iter().enumerate() {
        label_bytes(&mut out, i, label);
        out.extend_from_slice(set.image(i));
    }
    std::fs::write(path, out).map_err(|e| DataError::io(path, e))
}
