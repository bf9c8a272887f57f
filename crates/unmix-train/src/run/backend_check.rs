//! Does a backend compute what the CPU computes, and can every method train on it?
//!
//! Two checks, used by `unmix check-backend` (the GPU run kit's first step, on a machine without
//! a Rust toolchain) and by the `wgpu` tests (`tests/backends.rs`, on Mesa's software Vulkan
//! driver in CI):
//!
//! - [`forward_against_cpu`]: ResNet-18 (CIFAR stem) with a linear head, built once on the CPU
//!   backend and copied to the device, forward in training mode (batch statistics, as a step
//!   sees them) on the same images: the largest difference of the outputs and their scale.
//! - [`fixed_batch_losses`]: a configured method, built on the CPU and copied to the device,
//!   trained for a few steps on one batch (the loop's first, with its mixture) exactly as the
//!   loop steps ([`train_step`]), at the schedule's base learning rate. Run on the CPU and on the
//!   device, the two loss sequences must agree step by step (forward, backward, optimiser,
//!   momentum and bank updates all took part), and for the methods without a queue of past keys
//!   the loss must fall. MoCo's does not on a repeated batch, by design: each step enqueues the
//!   batch's own keys, which come back as negatives that match the next step's positives.

use burn::prelude::*;
use unmix_data::ImageSet;
use unmix_models::{EncoderConfig, HeadConfig, ResNetConfig};

use crate::TrainConfig;
use crate::error::TrainError;
use crate::method::{Method, StepContext, param_ids};
use crate::methods::{MethodConfig, MethodTask};
use crate::optim::build_optimizer;
use crate::optim::schedule::scaled_lr;
use crate::run::{first_batch, loader_and_unmix, train_step};

/// Largest forward difference accepted, relative to the output's scale: f32 kernels that
/// reduce in another order differ by 1e-6–1e-5 of the scale; a wrong kernel by far more.
pub const FORWARD_TOLERANCE: f32 = 1e-3;

/// Largest difference accepted between the device's and the CPU's loss at each step, relative
/// to the loss (or to 1 below 1): rounding differences grow over the steps, but stay far below.
pub const STEP_TOLERANCE: f64 = 1e-2;

/// The device's ResNet forward against the CPU's.
#[derive(Debug, Clone, Copy)]
pub struct ForwardComparison {
    /// Largest absolute difference between the two outputs.
    pub max_abs_diff: f32,
    /// Largest absolute value of the CPU's output (the scale the difference is read against).
    pub max_abs: f32,
}

impl ForwardComparison {
    /// The difference relative to the output's scale.
    pub fn relative(&self) -> f32 {
        self.max_abs_diff / self.max_abs.max(f32::MIN_POSITIVE)
    }

    /// Within [`FORWARD_TOLERANCE`].
    pub fn passed(&self) -> bool {
        self.relative() <= FORWARD_TOLERANCE
    }
}

/// A method's losses over the same steps on the CPU and on the device.
#[derive(Debug, Clone)]
pub struct MethodCheck {
    /// The CPU's loss at each step.
    pub cpu: Vec<f64>,
    /// The device's loss at each step.
    pub device: Vec<f64>,
    /// Whether the loss must fall: every method but MoCo, whose queue receives the batch's own
    /// keys (see the module's notes).
    pub must_fall: bool,
}

impl MethodCheck {
    /// Largest step-wise difference, relative to the CPU's loss (or to 1 below 1); NaN if
    /// either side gave NaN.
    pub fn largest_difference(&self) -> f64 {
        self.cpu
            .iter()
            .zip(&self.device)
            .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
            .fold(0.0, |m, d| if d.is_nan() { f64::NAN } else { m.max(d) })
    }

    /// The device's last loss is below its first.
    pub fn falls(&self) -> bool {
        matches!((self.device.first(), self.device.last()), (Some(a), Some(b)) if b < a)
    }

    /// Same losses as the CPU within [`STEP_TOLERANCE`], and falling where it must.
    pub fn passed(&self) -> bool {
        self.cpu.len() == self.device.len()
            && self.largest_difference() <= STEP_TOLERANCE
            && (!self.must_fall || self.falls())
    }
}

/// [`fixed_batch_losses`] of `config` on the CPU and on `device`.
pub fn check_method(
    config: &TrainConfig,
    device: &Device,
    steps: usize,
) -> Result<MethodCheck, TrainError> {
    Ok(MethodCheck {
        cpu: fixed_batch_losses(config, &Device::flex(), steps)?,
        device: fixed_batch_losses(config, device, steps)?,
        must_fall: !matches!(config.method, MethodConfig::Moco(_)),
    })
}

/// Runs ResNet-18 (CIFAR stem, `width`) with a 128-d linear head in training mode on `batch`
/// random 32×32 images, once on the CPU backend (`flex`) and once on `device` with the same
/// weights and images, and compares the outputs.
pub fn forward_against_cpu(
    device: &Device,
    width: usize,
    batch: usize,
    seed: u64,
) -> Result<ForwardComparison, TrainError> {
    let cpu = Device::flex().autodiff();
    cpu.seed(seed);
    let encoder = EncoderConfig {
        backbone: ResNetConfig {
            width,
            ..ResNetConfig::resnet18_cifar()
        },
        head: HeadConfig::Linear { out_dim: 128 },
    }
    .init(&cpu)?;
    let images = Tensor::<4>::random(
        [batch, 3, 32, 32],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &cpu,
    );
    // A clone keeps the lazily initialised parameters on the CPU's draw (see `repeat_first_batch`).
    let on_device = encoder.clone().fork(&device.clone().autodiff());
    let expected = encoder.forward(images.clone()).into_data();
    let got = on_device
        .forward(images.to_device(&device.clone().autodiff()))
        .into_data();
    let expected = expected
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    let got = got
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    if expected.len() != got.len() || expected.is_empty() {
        return Err(TrainError::Device(format!(
            "the forward on {device:?} gave {} values where the CPU gave {}",
            got.len(),
            expected.len()
        )));
    }
    let max_abs_diff = expected
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, |m, d| if d.is_nan() { f32::NAN } else { m.max(d) });
    let max_abs = expected.iter().fold(0.0f32, |m, a| m.max(a.abs()));
    Ok(ForwardComparison {
        max_abs_diff,
        max_abs,
    })
}

/// Builds `config`'s method on the CPU (seeded by `run.seed`, so every device starts from the
/// same weights), copies it to `device`, trains it there for `steps` steps on the loop's first
/// batch (views and mixture drawn once; the schedule's base learning rate, since a warm-up
/// starts at 0; the momentum of step 0) and returns the loss of each step.
pub fn fixed_batch_losses(
    config: &TrainConfig,
    device: &Device,
    steps: usize,
) -> Result<Vec<f64>, TrainError> {
    let steps = steps_on_first_batch(config, device, steps)?;
    Ok(steps.into_iter().map(|(loss, _)| loss).collect())
}

/// The method of `config` built on the CPU (seeded by `run.seed`) and trained on `device` for
/// `steps` steps on the loop's first batch: each step's loss and wall-clock seconds.
fn steps_on_first_batch(
    config: &TrainConfig,
    device: &Device,
    steps: usize,
) -> Result<Vec<(f64, f64)>, TrainError> {
    config.validate()?;
    let cpu = Device::flex().autodiff();
    cpu.seed(config.run.seed);
    let device = device.clone().autodiff();
    let (train_set, _) = config.data.load()?;
    struct Steps<'a>(&'a TrainConfig, ImageSet, &'a Device, usize);
    impl MethodTask for Steps<'_> {
        type Output = Vec<(f64, f64)>;
        fn run<M: Method>(self, model: M) -> Result<Vec<(f64, f64)>, TrainError> {
            repeat_first_batch(model, self.0, self.1, self.2, self.3)
        }
    }
    let n = train_set.len();
    config.method.build(
        &config.model,
        n,
        &cpu,
        Steps(config, train_set, &device, steps),
    )
}

/// Time of a method's training step on a device.
#[derive(Debug, Clone, Copy)]
pub struct StepTiming {
    /// Mean wall-clock seconds per step (the loss read back at each step's end).
    pub seconds_per_step: f64,
    /// `optim.batch_size` images per step, per second.
    pub images_per_second: f64,
}

/// Times `config`'s training step on `device` as [`fixed_batch_losses`] runs it (the batch
/// already on the device, so the input pipeline is not in the figure): `steps` timed steps after
/// `warmup` untimed ones (kernel compilation and autotuning happen there).
pub fn time_method_step(
    config: &TrainConfig,
    device: &Device,
    warmup: usize,
    steps: usize,
) -> Result<StepTiming, TrainError> {
    let runs = steps_on_first_batch(config, device, warmup + steps.max(1))?;
    let timed: Vec<f64> = runs.iter().skip(warmup).map(|(_, s)| *s).collect();
    let seconds_per_step = timed.iter().sum::<f64>() / timed.len() as f64;
    Ok(StepTiming {
        seconds_per_step,
        images_per_second: config.optim.batch_size as f64 / seconds_per_step,
    })
}

/// Images per second the input pipeline of `config` delivers (its loader on
/// `data.num_workers` threads: decoding, every view's augmentation, the dataset-level mixture;
/// Un-Mix is applied on the device and not counted), over `batches` batches after the first
/// (which waits for the workers to start). Set against [`time_method_step`]'s figure, it says
/// whether a step would wait for its data.
pub fn time_input_pipeline(config: &TrainConfig, batches: usize) -> Result<f64, TrainError> {
    config.validate()?;
    let cpu = Device::flex();
    let (train_set, _) = config.data.load()?;
    struct Pipeline<'a>(&'a TrainConfig, ImageSet, usize);
    impl MethodTask for Pipeline<'_> {
        type Output = f64;
        fn run<M: Method>(self, model: M) -> Result<f64, TrainError> {
            let (loader, _) = loader_and_unmix(&model, self.0, self.1)?;
            let mut epoch = 0u64;
            let mut iter = loader.epoch(epoch, 0);
            let _ = iter.next();
            let start = std::time::Instant::now();
            let mut images = 0usize;
            for _ in 0..self.2.max(1) {
                let batch = match iter.next() {
                    Some(b) => b,
                    None => {
                        epoch += 1;
                        iter = loader.epoch(epoch, 0);
                        iter.next().expect("an epoch has a batch")
                    }
                };
                images += batch.indices.len();
            }
            Ok(images as f64 / start.elapsed().as_secs_f64())
        }
    }
    let n = train_set.len();
    config
        .method
        .build(&config.model, n, &cpu, Pipeline(config, train_set, batches))
}

/// The steps of [`steps_on_first_batch`], once the method is built.
fn repeat_first_batch<M: Method>(
    model: M,
    config: &TrainConfig,
    train_set: ImageSet,
    device: &Device,
    steps: usize,
) -> Result<Vec<(f64, f64)>, TrainError> {
    // `fork` gives the copy its own autodiff graph (`to_device` would record the transfer as an
    // op of the graph). A lazily initialised parameter shared with a live clone initialises
    // where it is, so `model` is kept until the copy is made: the weights are the CPU's draw.
    let on_device = model.clone().fork(device);
    drop(model);
    let mut model = on_device;
    let (loader, unmix) = loader_and_unmix(&model, config, train_set)?;
    let (batch, mixed) = first_batch(&loader, &unmix, config, device, 0)?;
    let per_epoch = loader.batches_per_epoch();
    let lr = scaled_lr(&config.optim);
    let tau = model.momentum().map(|s| s.at(0.0));
    let mut optim = build_optimizer(&config.optim);
    let all_params = param_ids(&model);
    let mut losses = Vec::with_capacity(steps);
    for step in 0..steps as u64 {
        let start = std::time::Instant::now();
        let ctx = StepContext {
            step,
            epoch: 0,
            steps_per_epoch: per_epoch,
            progress: 0.0,
            seed: config.run.seed,
        };
        let (next, out) = train_step(
            model,
            &batch,
            mixed.as_ref(),
            &ctx,
            (&mut optim, lr, tau, &all_params),
            |_, _| {},
        );
        model = next;
        // Reading the loss waits for the device: the step's whole time.
        let loss = out.loss.into_scalar::<f32>() as f64;
        losses.push((loss, start.elapsed().as_secs_f64()));
    }
    Ok(losses)
}
