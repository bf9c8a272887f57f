//! A multi-view loader: each sample becomes `V` independently augmented views, batches are
//! built on worker threads and handed out in order.
//!
//! Reproducibility does not depend on thread timing: the epoch's order is a function of
//! `(seed, epoch)` and every random choice for a sample of `(seed, epoch, sample index)`.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use unmix_ops::{ImageMixture, SampleViews};

use crate::augment::{Rgb, ViewTransform};
use crate::error::DataError;
use crate::image_set::ImageSet;

/// A batch on the host: `V` views of the same `N` samples.
#[derive(Debug, Clone)]
pub struct HostBatch {
    /// One `[N, 3, S, S]` buffer per view (views may differ in size, for multi-crop).
    pub views: Vec<Vec<f32>>,
    /// Side of each view.
    pub view_sizes: Vec<usize>,
    /// Dataset index of each sample (memory-bank methods key on it).
    pub indices: Vec<usize>,
    /// Class of each sample, when the set is labelled (evaluation only).
    pub labels: Option<Vec<u16>>,
}

/// A batch on a device.
#[derive(Debug, Clone)]
pub struct MultiViewBatch {
    /// One `[N, 3, S, S]` tensor per view.
    pub views: Vec<Tensor<4>>,
    /// Dataset index of each sample.
    pub indices: Vec<usize>,
    /// Class of each sample, when known.
    pub labels: Option<Vec<u16>>,
}

impl HostBatch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The shape of view `v`, `[N, 3, S, S]`.
    pub fn view_dims(&self, v: usize) -> [usize; 4] {
        let side = self.view_sizes[v];
        [self.indices.len(), 3, side, side]
    }

    /// Copies the views to `device`.
    pub fn to_device(self, device: &Device) -> MultiViewBatch {
        let dims: Vec<[usize; 4]> = (0..self.views.len()).map(|v| self.view_dims(v)).collect();
        let views = self
            .views
            .into_iter()
            .zip(dims)
            .map(|(data, dims)| Tensor::from_data(TensorData::new(data, dims), device))
            .collect();
        MultiViewBatch {
            views,
            indices: self.indices,
            labels: self.labels,
        }
    }
}

/// The seeded generator of one sample in one epoch.
pub fn sample_rng(seed: u64, epoch: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((epoch << 32) | index as u64);
    rng
}

/// The order of an epoch: a seeded shuffle of `0..n`.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005E_ED0F_0DE4);
    rng.set_stream(epoch);
    let mut p: Vec<usize> = (0..n).collect();
    p.shuffle(&mut rng);
    p
}

/// Batches of augmented views over an [`ImageSet`].
///
/// ```
/// use std::sync::Arc;
/// use burn::prelude::*;
/// use unmix_data::{AugmentationConfig, ImageSet, MultiViewLoader, ViewTransform};
///
/// // Ten 12×12 grey images; two views of 8×8 crops; batches of 4 on 2 worker threads.
/// let set = ImageSet {
///     channels: 1,
///     height: 12,
///     width: 12,
///     pixels: (0..10 * 144).map(|i| (i % 251) as u8).collect(),
///     labels: None,
///     class_names: Vec::new(),
/// };
/// let view = ViewTransform::new(AugmentationConfig { crop_size: 8, ..AugmentationConfig::default() }).unwrap();
/// let loader = MultiViewLoader::new(Arc::new(set), vec![view.clone(), view], 4, 2, 0).unwrap();
/// assert_eq!(loader.batches_per_epoch(), 2); // the incomplete last batch is dropped
/// let batches: Vec<_> = loader.epoch(0, 0).collect();
/// let batch = batches[0].clone().to_device(&Device::flex());
/// assert_eq!(batch.views.len(), 2);
/// assert_eq!(batch.views[0].dims(), [4, 3, 8, 8]);
/// // Every random choice is a function of (seed, epoch, sample): the same epoch again gives
/// // the same batches, whatever the thread timing.
/// let again: Vec<_> = loader.epoch(0, 0).collect();
/// assert_eq!(batches[1].views, again[1].views);
/// ```
#[derive(Debug, Clone)]
pub struct MultiViewLoader {
    images: Arc<ImageSet>,
    views: Arc<Vec<ViewTransform>>,
    batch_size: usize,
    num_workers: usize,
    seed: u64,
    mixture: Option<Arc<ImageMixture>>,
}

impl MultiViewLoader {
    /// `views[v]` builds view `v` of every sample. Incomplete last batches are dropped.
    pub fn new(
        images: Arc<ImageSet>,
        views: Vec<ViewTransform>,
        batch_size: usize,
        num_workers: usize,
        seed: u64,
    ) -> Result<Self, DataError> {
        if batch_size == 0 || batch_size > images.len() {
            return Err(DataError::Setting {
                owner: "MultiViewLoader::new",
                field: "batch_size",
                value: batch_size.to_string(),
                expected: "expected 1 <= batch_size <= number of training images",
            });
        }
        if views.is_empty() {
            return Err(DataError::Setting {
                owner: "MultiViewLoader::new",
                field: "views",
                value: "0".into(),
                expected: "expected at least one view",
            });
        }
        Ok(Self {
            images,
            views: Arc::new(views),
            batch_size,
            num_workers: num_workers.max(1),
            seed,
            mixture: None,
        })
    }

    /// Applies the dataset-level image mixture ([`ImageMixture`], `CMC_with_Image_Mixture`) to
    /// every sample: partners are other images of this loader's set, each freshly augmented by
    /// the same view transforms, drawn from the sample's own generator (so batches stay a
    /// function of `(seed, epoch, sample)`). Every view of a sample gets the same partner, λ and
    /// box, so the views must share one size (multi-crop cannot be mixed). A disabled mixture
    /// changes nothing and is accepted with any views.
    ///
    /// Errors name the mixture's own fields (`ImageMixtureConfig.enabled` for views of
    /// several sizes, `ImageMixtureConfig.mask_size` for a Cutout mask that cannot fit), so an
    /// application can map them onto its config keys.
    pub fn with_image_mixture(mut self, mixture: ImageMixture) -> Result<Self, DataError> {
        if !mixture.config().enabled {
            self.mixture = None;
            return Ok(self);
        }
        let sizes: Vec<usize> = self.views.iter().map(|t| t.config().crop_size).collect();
        if sizes.iter().any(|&s| s != sizes[0]) {
            return Err(DataError::Setting {
                owner: "ImageMixtureConfig",
                field: "enabled",
                value: format!("true (views of sizes {sizes:?})"),
                expected: "expected views of one size: every view of a sample is mixed with the same box",
            });
        }
        mixture.check_side(sizes[0]).map_err(|e| match e {
            unmix_ops::OpsError::Setting {
                owner,
                field,
                value,
                expected,
            } => DataError::Setting {
                owner,
                field,
                value,
                expected,
            },
        })?;
        self.mixture = Some(Arc::new(mixture));
        Ok(self)
    }

    /// Every view of image `i`, augmented with draws from `rng`, into `out[v]`.
    fn augment_into(&self, i: usize, rng: &mut ChaCha8Rng, out: &mut [&mut [f32]]) {
        let img = &self.images;
        let rgb = Rgb::from_u8(img.image(i), img.channels, img.height, img.width);
        for (t, buf) in self.views.iter().zip(out.iter_mut()) {
            t.augment(&rgb, rng, buf);
        }
    }

    /// Every view of image `i` in buffers of its own (a mixture partner).
    fn augment_views(&self, i: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
        let mut views: Vec<Vec<f32>> = self
            .views
            .iter()
            .map(|t| vec![0f32; t.output_len()])
            .collect();
        let mut out: Vec<&mut [f32]> = views.iter_mut().map(Vec::as_mut_slice).collect();
        self.augment_into(i, rng, &mut out);
        views
    }

    /// Full batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.images.len() / self.batch_size
    }

    /// Samples per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Builds one batch of the given samples (used by the workers; public for tests).
    pub fn build_batch(&self, epoch: u64, indices: &[usize]) -> HostBatch {
        let views: Vec<Vec<f32>> = self
            .views
            .iter()
            .map(|t| vec![0f32; indices.len() * t.output_len()])
            .collect();
        let mut views = views;
        let img = &self.images;
        for (row, &i) in indices.iter().enumerate() {
            let mut rng = sample_rng(self.seed, epoch, i);
            let Some(mixture) = &self.mixture else {
                // No mixture: augment straight into the batch, no per-sample buffers.
                let mut out: Vec<&mut [f32]> = views
                    .iter_mut()
                    .zip(self.views.iter())
                    .map(|(buf, t)| {
                        let len = t.output_len();
                        &mut buf[row * len..(row + 1) * len]
                    })
                    .collect();
                self.augment_into(i, &mut rng, &mut out);
                continue;
            };
            let side = self.views[0].config().crop_size;
            let mut mixed = SampleViews {
                views: self.augment_views(i, &mut rng),
                side,
            };
            let mut fetch = |j: usize, rng: &mut ChaCha8Rng| SampleViews {
                views: self.augment_views(j, rng),
                side,
            };
            mixture.apply(&mut mixed, img.len(), &mut rng, &mut fetch);
            for (view, buf) in mixed.views.iter().zip(views.iter_mut()) {
                let len = view.len();
                buf[row * len..(row + 1) * len].copy_from_slice(view);
            }
        }
        HostBatch {
            views,
            view_sizes: self.views.iter().map(|t| t.config().crop_size).collect(),
            indices: indices.to_vec(),
            labels: img
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
        }
    }

    /// The batches of `epoch`, starting at batch `skip` (to resume mid-epoch), built ahead on
    /// the worker threads.
    pub fn epoch(&self, epoch: u64, skip: usize) -> EpochIter {
        let order = Arc::new(epoch_order(self.images.len(), self.seed, epoch));
        let total = self.batches_per_epoch();
        let mut receivers = Vec::new();
        let mut handles = Vec::new();
        for w in 0..self.num_workers {
            let (tx, rx): (SyncSender<HostBatch>, Receiver<HostBatch>) = sync_channel(2);
            let loader = self.clone();
            let order = order.clone();
            handles.push(std::thread::spawn(move || {
                let bs = loader.batch_size;
                let mut b = skip + w;
                while b < total {
                    let batch = loader.build_batch(epoch, &order[b * bs..(b + 1) * bs]);
                    if tx.send(batch).is_err() {
                        return;
                    }
                    b += loader.num_workers;
                }
            }));
            receivers.push(rx);
        }
        EpochIter {
            receivers,
            handles,
            next: skip,
            skip,
            total,
        }
    }
}

/// The batches of one epoch, in order.
pub struct EpochIter {
    receivers: Vec<Receiver<HostBatch>>,
    handles: Vec<JoinHandle<()>>,
    next: usize,
    skip: usize,
    total: usize,
}

impl Iterator for EpochIter {
    type Item = HostBatch;

    fn next(&mut self) -> Option<HostBatch> {
        if self.next >= self.total {
            return None;
        }
        let w = (self.next - self.skip) % self.receivers.len();
        self.next += 1;
        self.receivers[w].recv().ok()
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Dropping the receivers makes blocked workers fail their send and exit.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Sequential, unaugmented batches (resized and normalised) for evaluation.
pub fn eval_batches(
    images: &ImageSet,
    transform: &ViewTransform,
    batch_size: usize,
) -> Vec<HostBatch> {
    let len = transform.output_len();
    (0..images.len())
        .step_by(batch_size.max(1))
        .map(|start| {
            let idx: Vec<usize> = (start..(start + batch_size).min(images.len())).collect();
            let mut buf = vec![0f32; idx.len() * len];
            for (row, &i) in idx.iter().enumerate() {
                let rgb = Rgb::from_u8(
                    images.image(i),
                    images.channels,
                    images.height,
                    images.width,
                );
                transform.evaluate(&rgb, &mut buf[row * len..(row + 1) * len]);
            }
            HostBatch {
                views: vec![buf],
                view_sizes: vec![transform.config().crop_size],
                labels: images
                    .labels
                    .as_ref()
                    .map(|l| idx.iter().map(|&i| l[i]).collect()),
                indices: idx,
            }
        })
        .collect()
}
