//! Timing of a supervised-style training step (forward, backward, SGD) of a ResNet-18, the
//! figure that compares backends in `docs/benchmarks.md`.

use std::time::Instant;

use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use unmix_models::{EncoderConfig, HeadConfig, ResNetConfig};

use unmix_train::TrainError;
use unmix_train::device::parse_device;

/// Measured throughput.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepTiming {
    /// Mean wall-clock seconds per step.
    pub seconds_per_step: f64,
    /// Images per second.
    pub images_per_second: f64,
}

/// Times `steps` training steps (after one warm-up) of ResNet-18 (CIFAR stem, `width`) with a
/// 128-d linear head on random 32×32 images, with a sum-of-squares loss.
pub(crate) fn train_step(
    device: &str,
    width: usize,
    batch: usize,
    steps: usize,
) -> Result<StepTiming, TrainError> {
    let device = parse_device(device)?.autodiff();
    device.seed(0);
    let mut model = EncoderConfig {
        backbone: ResNetConfig {
            width,
            ..ResNetConfig::resnet18_cifar()
        },
        head: HeadConfig::Linear { out_dim: 128 },
    }
    .init(&device)?;
    let mut optim = SgdConfig::new().init();
    let x = Tensor::<4>::random(
        [batch, 3, 32, 32],
        burn::tensor::Distribution::Default,
        &device,
    );
    let mut elapsed = 0.0;
    for i in 0..=steps {
        let t0 = Instant::now();
        let loss = model.forward(x.clone()).powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.01, model, grads);
        // Reading the loss waits for the device.
        let _: f32 = loss.into_scalar();
        if i > 0 {
            elapsed += t0.elapsed().as_secs_f64();
        }
    }
    let seconds_per_step = elapsed / steps.max(1) as f64;
    Ok(StepTiming {
        seconds_per_step,
        images_per_second: batch as f64 / seconds_per_step,
    })
}
