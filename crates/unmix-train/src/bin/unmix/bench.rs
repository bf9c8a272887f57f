//! The PyTorch side of `unmix bench`: the reference scripts that time the same step
//! ([`unmix_train::run::resnet_bench`]) in PyTorch eager, and the ratio.

use unmix_train::TrainError;
use unmix_train::run::resnet_bench::PhaseTiming;

/// The PyTorch script that times the same step as `time_resnet_step`.
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
    ours: &PhaseTiming,
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
