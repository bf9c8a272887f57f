//! Datasets, augmentations and a seeded multi-view loader for self-supervised learning
//! (`../shared/SPEC.md` §4).
//!
//! - Formats: [`idx`] (MNIST/Fashion-MNIST IDX, gzip or raw), [`cifar`] (CIFAR-10/100 binary).
//! - [`DataConfig`]: the `[data]` table of a run (which dataset, where, how much of it) and
//!   loading its training and evaluation sets.
//! - [`ImageSet`]: an in-memory `u8` image set with optional labels, the common currency.
//! - [`fashion_mnist`]: the Fashion-MNIST subset embedded in the repository, checked against
//!   its SHA-256 sums.
//! - [`augment`]: torchvision-semantics augmentations and the MoCo CIFAR recipe
//!   ([`AugmentationConfig`]); [`pil`]: the same steps byte for byte as Pillow computes them
//!   on the references' 8-bit images (`pixel_arithmetic = "pil_u8"`); [`color_space`]: CMC's
//!   Lab and YCbCr views.
//! - [`loader`]: [`MultiViewLoader`] turns an image set into batches of `V` augmented views on
//!   worker threads; every random choice is a function of `(seed, epoch, sample)`, so a run is
//!   reproducible whatever the thread timing.

pub mod augment;
pub mod checksum;
pub mod cifar;
pub mod color_space;
mod dataset;
mod error;
pub mod fashion_mnist;
pub mod idx;
mod image_set;
pub mod loader;
pub mod pil;

pub use augment::{AugmentationConfig, ColorOrder, PixelArithmetic, ViewTransform};
pub use color_space::ColorSpace;
pub use dataset::{Cifar100Labels, DataConfig, DatasetKind};
pub use error::DataError;
pub use image_set::ImageSet;
pub use loader::{EpochIter, HostBatch, MultiViewBatch, MultiViewLoader};
