//! `cargo xtask bench data`: the input pipeline against the training step, for every recipe.
//!
//! For each config of a folder (`configs/fashion_mnist` by default: one per method and mixture,
//! so every augmentation recipe), `unmix bench --config C --data-batches N` times the method's
//! step and the loader (decoding, each view's augmentation, the dataset-level image mixture) on
//! the config's `data.num_workers` threads; this prints one table of the two rates and their
//! ratio. A loader below 1× starves the step: raise `data.num_workers` (issue 14, item 4).

use std::process::Command;

use crate::{Failed, build_unmix, feature_for, option, unmix_path};

/// What one `unmix bench --config … --data-batches …` printed that the table needs.
#[derive(Debug, PartialEq)]
pub(crate) struct PipelineFigures {
    /// The step's images/s.
    pub step: f64,
    /// The loader's threads.
    pub workers: usize,
    /// The loader's images/s.
    pub loader: f64,
}

/// Reads the step row (`| backend | config | model | batch | s/step | images/s |`) and the line
/// `input pipeline (N worker threads, B batches): X images/s, R× what the step consumes`.
pub(crate) fn parse(stdout: &str) -> Option<PipelineFigures> {
    let step = stdout
        .lines()
        .filter(|l| l.starts_with("| "))
        .filter_map(|l| l.split('|').nth(6)?.trim().parse::<f64>().ok())
        .next_back()?;
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with("input pipeline ("))?;
    let workers = line
        .strip_prefix("input pipeline (")?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    let loader = line
        .split("): ")
        .nth(1)?
        .split(" images/s")
        .next()?
        .parse()
        .ok()?;
    Some(PipelineFigures {
        step,
        workers,
        loader,
    })
}

/// `cargo xtask bench data [--device D] [--width 8] [--batch 64] [--batches 20]
/// [--configs configs/fashion_mnist]`, with the binary in `UNMIX_BIN` if set, else built.
pub(crate) fn bench_data(args: &[String], release: bool) -> Result<(), Failed> {
    let device = option(args, "--device").unwrap_or("cpu");
    let width = option(args, "--width").unwrap_or("8");
    let batch = option(args, "--batch").unwrap_or("64");
    let batches = option(args, "--batches").unwrap_or("20");
    let folder = option(args, "--configs").unwrap_or("configs/fashion_mnist");
    // The configs first: a wrong folder is said before a build of minutes.
    let read = std::fs::read_dir(folder)
        .map_err(|e| Failed(format!("bench data: --configs {folder}: {e}"), 2))?;
    let mut configs: Vec<_> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    configs.sort();
    if configs.is_empty() {
        return Err(Failed(
            format!("bench data: --configs {folder}: no .toml file"),
            2,
        ));
    }
    // `UNMIX_BIN`: a binary already built (the GPU kit's, say), used as it is.
    let bin = match std::env::var_os("UNMIX_BIN") {
        Some(bin) => std::path::PathBuf::from(bin),
        None => {
            build_unmix(release, feature_for(device))?;
            unmix_path(release)
        }
    };
    println!(
        "Input pipeline against the step on `{device}` (ResNet-18 width {width}, batch {batch}, \
         {batches} loader batches)\n"
    );
    println!("| config | loader threads | loader images/s | step images/s | loader / step |");
    println!("|---|---|---|---|---|");
    let mut failed = Vec::new();
    for config in &configs {
        let mut cmd = Command::new(&bin);
        cmd.args(["bench", "--device", device, "--config"])
            .arg(config)
            .args(["--width", width, "--batch", batch, "--steps", "2"])
            .args(["--data-batches", batches]);
        let name = config.display().to_string();
        let out = cmd
            .output()
            .map_err(|e| Failed(format!("could not start {cmd:?}: {e}"), 1))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        match (out.status.success(), parse(&stdout)) {
            (true, Some(f)) => println!(
                "| {name} | {} | {:.1} | {:.1} | {:.1}× |",
                f.workers,
                f.loader,
                f.step,
                f.loader / f.step
            ),
            _ => {
                println!("| {name} | failed ({}) | – | – | – |", out.status);
                eprintln!("{name}:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
                failed.push(name);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failed(
            format!("bench data: failed for {}", failed.join(", ")),
            1,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `unmix bench --config configs/fashion_mnist/moco_unmix.toml --width 8 --batch 64
    /// --steps 2 --data-batches 10` printed on 2026-12-04.
    const PRINTED: &str = "\
| backend | method config | model | batch | s/step | images/s |
|---|---|---|---|---|---|
| cpu | configs/fashion_mnist/moco_unmix.toml | ResNet-18 width 8 | 64 | 1.2907 | 49.6 |

input pipeline (1 worker threads, 10 batches): 5622.8 images/s, 113.39× what the step consumes
";

    #[test]
    fn reads_the_step_and_the_loader() {
        assert_eq!(
            parse(PRINTED),
            Some(PipelineFigures {
                step: 49.6,
                workers: 1,
                loader: 5622.8
            })
        );
    }

    #[test]
    fn a_run_without_the_loader_line_has_no_figures() {
        let step_only = PRINTED.lines().take(3).collect::<Vec<_>>().join("\n");
        assert_eq!(parse(&step_only), None);
        assert_eq!(parse(""), None);
    }
}
