//! Running a config: claiming the run directory ([`run_dir`]), the loop
//! ([`train_loop`](self::train_method)), one step ([`train_step`]), checkpoints
//! ([`checkpoint`]), metrics ([`metrics`]) and the progress display. Generic over
//! [`Method`](crate::Method); nothing here knows which method it trains. [`backend_check`]
//! compares a backend with the CPU and trains each method a few steps on it; [`resnet_bench`]
//! times a ResNet-18 step and its layers.

pub mod backend_check;
pub mod checkpoint;
mod compute_pool;
pub mod export;
mod loss_window;
pub mod metrics;
mod online_probe;
pub mod parity;
mod prefetch;
mod progress;
pub mod resnet_bench;
mod run_dir;
mod step;
mod train_loop;

pub use compute_pool::on_compute_pool;

use std::path::PathBuf;
use std::sync::Arc;

use burn::backend::DispatchDevice;
use burn::prelude::*;
use unmix_data::{ImageSet, MultiViewLoader, ViewTransform};
use unmix_ops::{ImageMixture, UnMix};

use crate::config::TrainConfig;
use crate::device::parse_device;
use crate::error::{AtKey, TrainError};
use crate::method::Method;
use crate::methods::MethodTask;
use metrics::EpochRecord;
pub use run_dir::{Claim, RunDir};
pub use step::{StepOptim, train_step};

/// Options that are not part of the experiment.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides `run.device`.
    pub device: Option<String>,
    /// Continue from the run directory's latest checkpoint.
    pub resume: bool,
    /// Start afresh even if the run directory holds a run, moving that run aside first.
    pub overwrite: bool,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
    /// Stop after this many epochs in this invocation (to test resume); the schedule still
    /// spans `optim.epochs`.
    pub stop_after: Option<usize>,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The run directory.
    pub run_dir: PathBuf,
    /// kNN top-1 (%) of the encoder at random initialisation.
    pub knn_random_init: f64,
    /// kNN top-1 (%) after the last epoch run.
    pub knn_final: f64,
    /// One record per epoch, epoch 0 being the random initialisation.
    pub history: Vec<EpochRecord>,
    /// Wall-clock seconds of this invocation.
    pub seconds: f64,
    /// Training images.
    pub train_images: usize,
    /// Evaluation images.
    pub test_images: usize,
    /// The run's report (`report.md` and its figures); `None` when it could not be written,
    /// which is reported on standard error and does not fail the finished run.
    pub report: Option<crate::report::Report>,
}

/// Builds the configured method and trains it in `<run.out_dir>/<run.name>`.
pub fn train(config: &TrainConfig, options: &RunOptions) -> Result<TrainOutcome, TrainError> {
    config.validate()?;
    let claim = match (options.resume, options.overwrite) {
        (true, true) => {
            return Err(TrainError::value(
                "--resume --overwrite",
                "both",
                "expected at most one: resume the run or move it aside",
            ));
        }
        (true, false) => Claim::Resume,
        (false, true) => Claim::Overwrite,
        (false, false) => Claim::Fresh,
    };
    let run_dir = RunDir::claim(&config.run.out_dir, &config.run.name, claim)?;
    let device_spec = options.device.clone().unwrap_or(config.run.device.clone());
    let device = parse_device(&device_spec)?.autodiff();
    device.seed(config.run.seed);
    let sets = config.data.load()?;
    let train_images = sets.0.len();
    struct Train<'a>(
        &'a TrainConfig,
        &'a RunOptions,
        &'a Device,
        &'a RunDir,
        (ImageSet, ImageSet),
    );
    impl MethodTask for Train<'_> {
        type Output = TrainOutcome;
        fn run<M: Method>(self, model: M) -> Result<TrainOutcome, TrainError> {
            train_loop::train_method(model, self.0, self.1, self.2, self.3, self.4)
        }
    }
    // A resumed run's weights come from its checkpoint, not from `pretrained`.
    let mut model = config.model.clone();
    if options.resume {
        model.backbone.pretrained = None;
    }
    let build = || {
        config.method.build(
            &model,
            train_images,
            &device,
            Train(config, options, &device, &run_dir, sets),
        )
    };
    // On the CPU the kernels then split their loops from a pool worker, not from outside the
    // pool; GPU kernels do not run on rayon.
    if matches!(
        device.as_dispatch().clone().inner(),
        DispatchDevice::Flex(_)
    ) {
        on_compute_pool(build)
    } else {
        build()
    }
}

/// The loop's first batch of `epoch` on `device`, with its Un-Mix mixture when enabled: what
/// the parity record and the backend check replay.
pub(crate) fn first_batch(
    loader: &MultiViewLoader,
    unmix: &UnMix,
    config: &TrainConfig,
    device: &Device,
    epoch: usize,
) -> Result<(unmix_data::MultiViewBatch, Option<unmix_ops::MixedBatch>), TrainError> {
    let host = loader.epoch(epoch as u64, 0).next().ok_or_else(|| {
        TrainError::value(
            "optim.batch_size",
            config.optim.batch_size,
            "expected at most as many samples as the training set holds",
        )
    })?;
    let step = (epoch * loader.batches_per_epoch()) as u64;
    let mixed = host_mixture(unmix, &host, step).map(|m| m.to_device(device));
    Ok((host.to_device(device), mixed))
}

/// Step `step`'s Un-Mix mixture of view 0, made on the host before the upload (`None` when
/// Un-Mix is off): the device receives it as an input, like the views (`UnMix::apply_host` says
/// why).
pub(crate) fn host_mixture(
    unmix: &UnMix,
    host: &unmix_data::HostBatch,
    step: u64,
) -> Option<unmix_ops::HostMixedBatch> {
    (unmix.config().enabled).then(|| unmix.apply_host(&host.views[0], host.view_dims(0), step))
}

/// The run's multi-view loader (the method's crops of `train_set`) and its Un-Mix sampler, both
/// seeded by `run.seed`.
pub(crate) fn loader_and_unmix<M: Method>(
    model: &M,
    config: &TrainConfig,
    train_set: ImageSet,
) -> Result<(MultiViewLoader, UnMix), TrainError> {
    let seed = config.run.seed;
    let views = model
        .views()
        .iter()
        .map(|v| ViewTransform::new(v.apply(&config.data.augmentation)).at("data.augmentation"))
        .collect::<Result<Vec<_>, _>>()?;
    // The loader checks the batch against the image count; its `batch_size` is `optim.batch_size`
    // (its other argument it checks, `views`, comes from the method, never from the file).
    let loader = MultiViewLoader::new(
        Arc::new(train_set),
        views,
        config.optim.batch_size,
        config.data.num_workers,
        seed,
    )
    .at("optim")?;
    // The loader checks that the mixture fits the method's crops (one size for every view,
    // Cutout's mask inside the crop) and names `ImageMixtureConfig`'s fields: mapped here.
    let mixture = ImageMixture::new(config.data.image_mixture.clone()).at("data.image_mixture")?;
    let loader = loader
        .with_image_mixture(mixture)
        .at("data.image_mixture")?;
    Ok((loader, unmix_sampler(config)?))
}

/// The run's Un-Mix sampler, seeded by `run.seed`: step `s` always draws the same mixture.
pub(crate) fn unmix_sampler(config: &TrainConfig) -> Result<UnMix, TrainError> {
    UnMix::new(config.unmix.clone(), config.run.seed ^ 0xA11C_E5ED).at("unmix")
}
