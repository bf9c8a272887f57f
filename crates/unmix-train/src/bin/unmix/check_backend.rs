//! `unmix check-backend`: a backend against the CPU (the ResNet forward) and every method of a
//! config folder trained a few steps on it, as one markdown table. The GPU run kit's first
//! step (`scripts/gpu_kit.sh`); `tests/backends.rs` runs the same checks on wgpu.

use std::path::Path;

use unmix_train::device::parse_device;
use unmix_train::run::backend_check::{
    FORWARD_TOLERANCE, STEP_TOLERANCE, check_method, forward_against_cpu,
};
use unmix_train::{TrainConfig, TrainError};

/// What to run.
pub(crate) struct CheckBackend<'a> {
    pub device: &'a str,
    pub configs: &'a Path,
    pub steps: usize,
    pub width: usize,
    pub batch: usize,
}

/// Prints the table; fails when the forward differs or a method's loss does not fall.
pub(crate) fn run(c: CheckBackend<'_>) -> Result<(), TrainError> {
    let device = parse_device(c.device)?;
    let mut failed = Vec::new();
    println!("| check on `{}` | result | ok |", c.device);
    println!("|---|---|---|");
    // The methods' width and batch: their kernels are then shared (each new shape is a
    // compilation on the device).
    let f = forward_against_cpu(&device, c.width, c.batch, 0)?;
    let ok = f.passed();
    println!(
        "| ResNet-18 width {} forward (train mode, batch {}) vs cpu | max abs diff {:.3e} of {:.3} (relative {:.2e}, tolerance {FORWARD_TOLERANCE:.0e}) | {} |",
        c.width,
        c.batch,
        f.max_abs_diff,
        f.max_abs,
        f.relative(),
        mark(ok)
    );
    if !ok {
        failed.push("forward".to_string());
    }
    let mut paths: Vec<_> = std::fs::read_dir(c.configs)
        .map_err(|e| TrainError::Device(format!("--configs {}: {e}", c.configs.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let mut config = TrainConfig::load(&path)?;
        config.model.backbone.width = c.width;
        config.optim.batch_size = c.batch;
        config.data.num_workers = 1;
        let check = check_method(&config, &device, c.steps)?;
        let (first, last) = (check.device[0], check.device[check.device.len() - 1]);
        let ok = check.passed();
        println!(
            "| {} ({} steps on one batch, width {}, batch {}) | loss {first:.4} → {last:.4}{}; vs cpu: largest relative difference {:.1e} (tolerance {STEP_TOLERANCE:.0e}) | {} |",
            path.display(),
            c.steps,
            c.width,
            c.batch,
            if check.must_fall {
                ""
            } else {
                " (a queue: need not fall)"
            },
            check.largest_difference(),
            mark(ok)
        );
        if !ok {
            println!(
                "|   losses per step | cpu {:?}, {} {:?} | |",
                check.cpu, c.device, check.device
            );
            failed.push(path.display().to_string());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(TrainError::Device(format!(
            "--device {}: failed: {}",
            c.device,
            failed.join(", ")
        )))
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}
