//! Timing of a supervised-style training step (forward, backward, SGD) of a ResNet-18, the
//! figure that compares backends in `docs/benchmarks.md`.

use std::time::Instant;

use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use unmix_models::{EncoderConfig, HeadConfig, ResNetConfig};

use unmix_train::TrainError;
use unmix_train::device::parse_device;

/// Measured throughput, with the step split into its three phases.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepTiming {
    /// Mean wall-clock seconds per step (the sum of the phases).
    pub seconds_per_step: f64,
    /// Images per second.
    pub images_per_second: f64,
    /// Mean seconds of the forward pass and the loss.
    pub forward: f64,
    /// Mean seconds of the backward pass (the gradients).
    pub backward: f64,
    /// Mean seconds of the SGD update.
    pub update: f64,
}

/// Times `steps` training steps (after one warm-up) of ResNet-18 (CIFAR stem, `width`) with a
/// 128-d linear head on random 32×32 images, with a sum-of-squares loss. The device is
/// synchronised after each phase, so that each phase's time is its own on a backend that queues
/// work (fusion on a GPU); `docs/reference/bench_resnet_step.py` times the same step in PyTorch.
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
    let sync = |device: &Device| {
        device
            .sync()
            .map_err(|e| TrainError::Device(format!("device sync: {e:?}")))
    };
    let [mut forward, mut backward, mut update] = [0.0; 3];
    for i in 0..=steps {
        let t0 = Instant::now();
        let loss = model.forward(x.clone()).powf_scalar(2.0).mean();
        sync(&device)?;
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        sync(&device)?;
        let t2 = Instant::now();
        model = optim.step(0.01, model, grads);
        sync(&device)?;
        let t3 = Instant::now();
        if i > 0 {
            forward += (t1 - t0).as_secs_f64();
            backward += (t2 - t1).as_secs_f64();
            update += (t3 - t2).as_secs_f64();
        }
    }
    let n = steps.max(1) as f64;
    let (forward, backward, update) = (forward / n, backward / n, update / n);
    let seconds_per_step = forward + backward + update;
    Ok(StepTiming {
        seconds_per_step,
        images_per_second: batch as f64 / seconds_per_step,
        forward,
        backward,
        update,
    })
}

/// The PyTorch script that times the same step as [`train_step`].
const PYTORCH_SCRIPT: &str = "docs/reference/bench_resnet_step.py";

/// Runs a PyTorch reference script of `docs/reference/` with `--width`, `--batch` and
/// `--steps` and returns its standard output, or `None` after saying so when `python3` or torch
/// is missing (the comparison is optional). Run from the repository root.
pub(crate) fn run_pytorch_script(
    script: &std::path::Path,
    width: usize,
    batch: usize,
    steps: usize,
) -> Result<Option<String>, TrainError> {
    let failed = |message: String| TrainError::Report {
        path: script.into(),
        message,
    };
    if !script.exists() {
        return Err(failed(
            "not found: run `unmix bench --pytorch` from the repository root".into(),
        ));
    }
    let has_torch = std::process::Command::new("python3")
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        println!(
            "\nPyTorch side skipped: `python3 -c \"import torch\"` failed (pip install torch)"
        );
        return Ok(None);
    }
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(["--width", &width.to_string()])
        .args(["--batch", &batch.to_string()])
        .args(["--steps", &steps.to_string()])
        .output()
        .map_err(|source| TrainError::Io {
            path: script.into(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(failed(format!(
            "python3 failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(Some(text))
}

/// Runs [`PYTORCH_SCRIPT`] (PyTorch eager, on the CPU) at the same width, batch and step count,
/// prints its row (the same columns as ours) and the ratio of images/s, ours over PyTorch's. When
/// `python3` or torch is missing, says so and returns `Ok`: the comparison is optional.
pub(crate) fn pytorch_row(
    ours: &StepTiming,
    width: usize,
    batch: usize,
    steps: usize,
) -> Result<(), TrainError> {
    let script = std::path::Path::new(PYTORCH_SCRIPT);
    let failed = |message: String| TrainError::Report {
        path: script.into(),
        message,
    };
    let Some(text) = run_pytorch_script(script, width, batch, steps)? else {
        return Ok(());
    };
    let row = text
        .lines()
        .rfind(|l| l.starts_with("| pytorch"))
        .ok_or_else(|| failed(format!("no `| pytorch` row in its output: {text}")))?;
    println!("{row}");
    let theirs: f64 = row
        .split('|')
        .nth(8)
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| failed(format!("no images/s in {row:?}")))?;
    println!(
        "\nours / PyTorch eager: {:.2}× the images/s",
        ours.images_per_second / theirs
    );
    Ok(())
}
