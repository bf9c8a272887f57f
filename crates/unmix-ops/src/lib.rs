//! Un-Mix image mixtures for Burn (Shen et al., AAAI 2022, §3 and `../shared/SPEC.md` §1).
//!
//! One training step draws one mixing decision for the whole batch ([`MixDraw`]): a uniform
//! `r` that picks a global or a region mixture and `λ ~ Beta(β, β)`. The partner of sample `i`
//! is sample `N-1-i` ([`flip_batch`]). [`global_mix`] blends the batch with its reverse,
//! [`region_mix`] pastes one CutMix box from the reverse and reports the exact share of pixels
//! left to each sample. [`UnMix`] ties them together behind a seeded, per-step sampler.
//!
//! [`ImageMixture`] is the older, dataset-level operator (`CMC_with_Image_Mixture`): an
//! augmentation applied per sample by the loader, with partners drawn from the whole dataset.
//!
//! ```
//! use burn::prelude::*;
//! use unmix_ops::{UnMix, UnMixConfig};
//!
//! let device = Device::flex();
//! let x0 = Tensor::<4>::ones([4, 3, 8, 8], &device);
//! let unmix = UnMix::new(UnMixConfig::default(), 7).unwrap();
//! let mixed = unmix.apply(x0.clone(), 0);
//! assert_eq!(mixed.images.dims(), [4, 3, 8, 8]);
//! assert!((0.0..=1.0).contains(&mixed.lambda));
//! ```

mod coefficients;
mod error;
mod flip;
mod global_mix;
mod image_mixture;
mod region_mix;
mod unmix;

pub use coefficients::{MixDraw, MixKind};
pub use error::OpsError;
pub use flip::flip_batch;
pub use global_mix::global_mix;
pub use image_mixture::{
    ImageMixture, ImageMixtureConfig, ImageMixtureKind, MixtureEvent, SampleViews,
};
pub use region_mix::{CutBox, bbox_at, rand_bbox, region_mix};
pub use unmix::{HostMixedBatch, MixedBatch, UnMix, UnMixConfig};
