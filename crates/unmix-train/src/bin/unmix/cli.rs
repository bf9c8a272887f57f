//! The `unmix` command line (what `cargo xtask train|eval` runs).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use unmix_train::eval::semi::LabelShare;
use unmix_train::eval::{EvalOptions, Outcome, Protocol, evaluate_checkpoint};
use unmix_train::run::checkpoint;
use unmix_train::{RunOptions, TrainConfig, TrainError, train};

/// Self-supervised pre-training with Un-Mix.
#[derive(Debug, Parser)]
#[command(name = "unmix", version, about)]
pub(crate) struct Cli {
    /// The task.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Tasks.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Pre-train with a config, evaluating with kNN at random init and during training.
    Train {
        /// The run config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Backend: cpu, cuda[:N] or wgpu (overrides `run.device`).
        #[arg(long)]
        device: Option<String>,
        /// Continue from the run directory's latest checkpoint.
        #[arg(long)]
        resume: bool,
        /// Start afresh even if the run directory holds a run, moving that run aside to
        /// `<name>.old-N` first.
        #[arg(long, conflicts_with = "resume")]
        overwrite: bool,
        /// Stop after this many epochs in this invocation (resume later with --resume).
        #[arg(long)]
        stop_after: Option<usize>,
        /// Write the run under this folder instead of `run.out_dir`.
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Override a config key, e.g. `--set optim.lr=0.1 --set unmix.enabled=false` (a
        /// dotted key and a TOML value; repeatable). Checked as the file is; the run's
        /// `config.toml` records the result.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Evaluate checkpoints (side by side when several), as markdown tables naming each
    /// protocol with its parameters.
    Eval {
        /// A checkpoint folder `<run>/checkpoints/epoch-NNNN` (or a run folder: its latest);
        /// repeat to compare several (`--checkpoint A --checkpoint B`).
        #[arg(long, required = true)]
        checkpoint: Vec<PathBuf>,
        /// Backend (overrides the run's `run.device`).
        #[arg(long)]
        device: Option<String>,
        /// `knn`: the weighted kNN monitor with the run's `[eval]` settings; `wmse-knn`: W-MSE's
        /// 5-NN majority vote on un-normalised backbone features (Euclidean); `wmse-linear`:
        /// W-MSE's linear evaluation on the same features (top-1 and top-5); `flatness`: the
        /// instance-discrimination predictions' entropy and confidence on held-out images (the
        /// Un-Mix paper's Figure 3); `linear` / `linear-swav`: a linear head on the frozen trunk
        /// with train-time augmentation, by MoCo's / SwAV's recipe; `semi`: fine-tuning of the
        /// whole network on a share of the labels (`--labels`); `all`: each of them.
        #[arg(long, default_value = "knn",
              value_parser = ["knn", "wmse-knn", "wmse-linear", "flatness", "linear", "linear-swav", "semi", "all"])]
        protocol: String,
        /// `semi`'s labelled images: `1%` or `10%` of each class (seeded by `run.seed`), or a
        /// file of training-image indices, one per line.
        #[arg(long, default_value = "10%")]
        labels: String,
        /// Epochs of `linear`, `linear-swav` and `semi` instead of their recipe's (step
        /// milestones scaled alike), for a quick look; the table names the epochs run.
        #[arg(long)]
        epochs: Option<usize>,
        /// Also write the features a `wmse-*` protocol used, with the labels, to this
        /// safetensors file (`train/features`, `train/labels`, `test/...`).
        #[arg(long)]
        save_features: Option<PathBuf>,
    },
    /// Write a run's report again from its latest checkpoint: `report.md`, `report.toml` and the
    /// figures in `plots/` (every run writes them when it ends).
    Report {
        /// The run directory.
        #[arg(long)]
        run: PathBuf,
        /// Backend (overrides the run's `run.device`).
        #[arg(long)]
        device: Option<String>,
    },
    /// Put runs side by side: `compare.md` (results, flatness, the config keys that differ) and
    /// figures overlaying them, from what each run wrote.
    Compare {
        /// Run directories (two or more).
        #[arg(required = true, num_args = 2..)]
        runs: Vec<PathBuf>,
        /// Where `compare.md` and `plots/` go (default: `runs/compare-<A>-vs-<B>`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a checkpoint's backbone to safetensors under torchvision's parameter names, for
    /// `torchvision.models.resnet18()` and the like (the printed snippet loads it).
    Export {
        /// A checkpoint folder `<run>/checkpoints/epoch-NNNN` (or a run folder: its latest).
        #[arg(long)]
        checkpoint: PathBuf,
        /// The safetensors file to write (CMC's two halves: `<stem>.l.safetensors` and
        /// `<stem>.ab.safetensors`).
        #[arg(long)]
        out: PathBuf,
    },
    /// Time full training steps (forward, backward, SGD update) of a ResNet-18 on a backend:
    /// a supervised-style step, or with `--config` the method's own training step.
    Bench {
        /// Backend.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Time this config's method step instead (its loss, optimiser, momentum and bank
        /// updates), with `--width` and `--batch` replacing the file's.
        #[arg(long)]
        config: Option<PathBuf>,
        /// With `--config`: override a config key (`KEY=VALUE`, repeatable), as `train --set`.
        #[arg(long = "set", value_name = "KEY=VALUE", requires = "config")]
        set: Vec<String>,
        /// With `--config`: also time its input pipeline (the loader's images/s) over this
        /// many batches, beside the step's.
        #[arg(long, requires = "config")]
        data_batches: Option<usize>,
        /// ResNet-18 width (64 = full width).
        #[arg(long, default_value_t = 64)]
        width: usize,
        /// Images per step (32×32, CIFAR stem).
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Timed steps (after one warm-up step).
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Without `--config`: also time the same step in PyTorch eager on the CPU
        /// (`docs/reference/bench_resnet_step.py`, from the working directory), and print the
        /// ratio; skipped with a message when Python with torch is absent.
        #[arg(long, conflicts_with = "config")]
        pytorch: bool,
        /// Without `--config`: time each distinct layer of the ResNet-18 alone at its shape,
        /// forward and backward, with its count in the network and its share of the step (with
        /// `--pytorch`, beside `docs/reference/bench_resnet_layers.py`'s same list).
        #[arg(long, conflicts_with = "config")]
        layers: bool,
        /// Without `--config` or `--layers`: the step with weights and images in this float type
        /// (f32, f16 or bf16), every operation in it: the most mixed precision could gain.
        #[arg(long, default_value = "f32", value_parser = ["f32", "f16", "bf16"],
              conflicts_with_all = ["config", "layers", "pytorch"])]
        dtype: String,
    },
    /// Check a backend: the ResNet forward against the CPU backend, and each config of a folder
    /// trained a few steps on one batch (the loss must fall). Exits non-zero on a failure.
    CheckBackend {
        /// Backend: cuda[:N], wgpu or cpu.
        #[arg(long)]
        device: String,
        /// The configs to train (every `*.toml` of the folder).
        #[arg(long, default_value = "configs/fashion_mnist")]
        configs: PathBuf,
        /// Steps per config (at least 2: a first and a last loss).
        #[arg(long, default_value_t = 5,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..))]
        steps: usize,
        /// Backbone width for the method steps.
        #[arg(long, default_value_t = 4)]
        width: usize,
        /// Batch size for the method steps.
        #[arg(long, default_value_t = 16)]
        batch: usize,
    },
    /// Run step 0 of a config and record every tensor it reads and writes (safetensors), for the
    /// PyTorch references' step-level comparison (`docs/reference/parity.py`).
    ParityStep {
        /// The run config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The record to write.
        #[arg(long)]
        out: PathBuf,
        /// Override a config key (`KEY=VALUE`, repeatable), as `train --set`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Train this many epochs first and record the first step of the next one, from the
        /// state they left (a memory bank written and a neighbour graph filled), with a fresh
        /// optimiser.
        #[arg(long, default_value_t = 0)]
        warm_epochs: usize,
    },
    /// Cut the embedded Fashion-MNIST subset from the Debian package's IDX files.
    CutFashionMnist {
        /// Folder with the four `*-ubyte.gz` files (`/usr/share/datasets/fashion-mnist`).
        #[arg(long)]
        source: PathBuf,
        /// Output folder.
        #[arg(long, default_value = "datasets/fashion-mnist")]
        out: PathBuf,
        /// Training images kept per class.
        #[arg(long, default_value_t = 1000)]
        per_class: usize,
    },
}

/// Runs a parsed command line.
pub(crate) fn run(cli: Cli) -> Result<(), TrainError> {
    match cli.command {
        Command::Train {
            config,
            device,
            resume,
            overwrite,
            stop_after,
            out_dir,
            set,
        } => {
            let mut cfg = TrainConfig::load_with(&config, &set)?;
            if let Some(dir) = out_dir {
                cfg.run.out_dir = dir;
            }
            let out = train(
                &cfg,
                &RunOptions {
                    device,
                    resume,
                    overwrite,
                    quiet: false,
                    stop_after,
                },
            )?;
            println!();
            println!(
                "| encoder | kNN top-1 (k={}, t={}, {} features; {} train / {} test images) |",
                cfg.eval.knn_k,
                cfg.eval.knn_t,
                feature_name(&cfg),
                out.train_images,
                out.test_images
            );
            println!("|---|---|");
            println!("| random init | {:.2}% |", out.knn_random_init);
            println!(
                "| after epoch {} | {:.2}% |",
                out.history.last().map_or(0, |r| r.epoch),
                out.knn_final
            );
            println!(
                "\ngain {:+.2} points in {:.0} s; run directory {}",
                out.knn_final - out.knn_random_init,
                out.seconds,
                out.run_dir.display()
            );
            if let Some(report) = &out.report {
                println!("report: {}", report.markdown.display());
            }
            Ok(())
        }
        Command::Report { run, device } => {
            let report = unmix_train::report::write_report(&run, device.as_deref())?;
            println!(
                "report: {} ({} figure files)",
                report.markdown.display(),
                report.figures.len()
            );
            Ok(())
        }
        Command::Compare { runs, out } => {
            let out = out.unwrap_or_else(|| {
                let name = |p: &PathBuf| {
                    p.file_name()
                        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned())
                };
                let names: Vec<String> = runs.iter().map(name).collect();
                PathBuf::from("runs").join(format!("compare-{}", names.join("-vs-")))
            });
            let report = unmix_train::report::write_comparison(&runs, &out)?;
            println!(
                "comparison: {} ({} figure files)",
                report.markdown.display(),
                report.figures.len()
            );
            Ok(())
        }
        Command::Eval {
            checkpoint,
            device,
            protocol,
            labels,
            epochs,
            save_features,
        } => {
            let (share, labels_list) = match labels.as_str() {
                "1%" => (LabelShare::OnePercent, None),
                "10%" => (LabelShare::TenPercent, None),
                // A list file: the 10% recipe's rates (the share the file holds is not known).
                file => (LabelShare::TenPercent, Some(PathBuf::from(file))),
            };
            let options = EvalOptions {
                save_features,
                epochs,
                labels_list,
            };
            let dirs = checkpoint
                .into_iter()
                .map(checkpoint_dir)
                .collect::<Result<Vec<_>, _>>()?;
            let protocols = match protocol.as_str() {
                "wmse-knn" => vec![Protocol::WmseKnn],
                "wmse-linear" => vec![Protocol::WmseLinear],
                "flatness" => vec![Protocol::Flatness],
                "linear" => vec![Protocol::LinearMoco],
                "linear-swav" => vec![Protocol::LinearSwav],
                "semi" => vec![Protocol::Semi(share)],
                "all" => vec![
                    Protocol::WeightedKnn,
                    Protocol::WmseKnn,
                    Protocol::WmseLinear,
                    Protocol::LinearMoco,
                    Protocol::LinearSwav,
                    Protocol::Semi(share),
                    Protocol::Flatness,
                ],
                _ => vec![Protocol::WeightedKnn],
            };
            let (mut scores, mut flat) = (Vec::new(), Vec::new());
            for protocol in protocols {
                for dir in &dirs {
                    let (cfg, outcome, n_train, n_test) =
                        evaluate_checkpoint(dir, device.as_deref(), protocol, &options)?;
                    let what = protocol.describe_with(&cfg, &options);
                    match outcome {
                        Outcome::Scores(s) => scores.push(format!(
                            "| {} | {what} | {n_train} images | {n_test} images | {:.2}% | {} |",
                            dir.display(),
                            s.top1,
                            s.top5.map_or("–".into(), |t| format!("{t:.2}%")),
                        )),
                        Outcome::Flatness(f) => flat.push((dir.clone(), what, f)),
                    }
                }
            }
            if !scores.is_empty() {
                println!("| checkpoint | protocol | train | test | top-1 | top-5 |");
                println!("|---|---|---|---|---|---|");
                scores.iter().for_each(|row| println!("{row}"));
            }
            if let Some((_, what, f)) = flat.first() {
                if !scores.is_empty() {
                    println!();
                }
                println!("{what}; means over the {} images:\n", f.images);
                let bins = f.max_probability_histogram.len();
                println!(
                    "| checkpoint | entropy (nats) | entropy / ln N | largest p | own view \
                     ranked first | p at ranks 1–{} | largest-p histogram ({bins} bins of \
                     [0, 1]) |",
                    f.sorted_probabilities.len()
                );
                println!("|---|---|---|---|---|---|---|");
                let list = |v: &[f64], digits: usize| {
                    v.iter()
                        .map(|x| format!("{x:.digits$}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                for (dir, _, f) in &flat {
                    println!(
                        "| {} | {:.3} | {:.3} | {:.3} | {:.2}% | {} | {} |",
                        dir.display(),
                        f.entropy,
                        f.relative_entropy,
                        f.max_probability,
                        100.0 * f.instance_top1,
                        list(&f.sorted_probabilities, 4),
                        list(&f.max_probability_histogram, 3),
                    );
                }
            }
            Ok(())
        }
        Command::Export { checkpoint, out } => {
            let dir = checkpoint_dir(checkpoint)?;
            let written = unmix_train::run::export::export_checkpoint(&dir, &out)?;
            println!("| checkpoint | trunk | file | tensors | feature dim |");
            println!("|---|---|---|---|---|");
            for w in &written {
                println!(
                    "| {} | {} | {} | {} | {} |",
                    dir.display(),
                    w.name,
                    w.path.display(),
                    w.tensors,
                    w.feature_dim
                );
            }
            let cfg = checkpoint::config_of(&dir)?;
            let b = &cfg.model.backbone;
            let stem = match b.stem {
                unmix_models::Stem::Cifar => format!(
                    "model.conv1 = torch.nn.Conv2d({}, {}, 3, 1, 1, bias=False); \
                     model.maxpool = torch.nn.Identity()\n",
                    b.in_channels, b.width
                ),
                unmix_models::Stem::Imagenet => String::new(),
            };
            let arch = match (b.block, b.layers.as_slice()) {
                (unmix_models::BlockKind::Basic, [2, 2, 2, 2]) => Some("resnet18"),
                (unmix_models::BlockKind::Basic, [3, 4, 6, 3]) => Some("resnet34"),
                (unmix_models::BlockKind::Bottleneck, [3, 4, 6, 3]) => Some("resnet50"),
                _ => None,
            };
            match arch {
                Some(arch) if b.width == 64 && written.len() == 1 => println!(
                    "\nIn PyTorch:\n\nimport torch, torchvision\nfrom safetensors.torch import \
                     load_file\nmodel = torchvision.models.{arch}()\n{stem}model.fc = \
                     torch.nn.Identity()\nmodel.load_state_dict(load_file(\"{}\"))",
                    written[0].path.display()
                ),
                _ => println!(
                    "\ntorchvision's constructors build width 64 with one trunk; this backbone \
                     (width {}, layers {:?}) keeps torchvision's names for a ResNet built to \
                     its shape.",
                    b.width, b.layers
                ),
            }
            Ok(())
        }
        Command::Bench {
            device,
            config: Some(config),
            set,
            data_batches,
            width,
            batch,
            steps,
            pytorch: _,
            layers: _,
            dtype: _,
        } => {
            let mut cfg = TrainConfig::load_with(&config, &set)?;
            cfg.model.backbone.width = width;
            cfg.optim.batch_size = batch;
            let on = unmix_train::device::parse_device(&device)?;
            let r = unmix_train::run::backend_check::time_method_step(&cfg, &on, 2, steps)?;
            println!("| backend | method config | model | batch | s/step | images/s |");
            println!("|---|---|---|---|---|---|");
            println!(
                "| {device} | {} | ResNet-18 width {width} | {batch} | {:.4} | {:.1} |",
                config.display(),
                r.seconds_per_step,
                r.images_per_second
            );
            if let Some(batches) = data_batches {
                let ips = unmix_train::run::backend_check::time_input_pipeline(&cfg, batches)?;
                println!(
                    "\ninput pipeline ({} worker threads, {batches} batches): {ips:.1} images/s, \
                     {:.2}× what the step consumes",
                    cfg.data.num_workers,
                    ips / r.images_per_second
                );
            }
            Ok(())
        }
        Command::Bench {
            device,
            config: None,
            set: _,
            data_batches: _,
            width,
            batch,
            steps,
            pytorch,
            layers,
            dtype,
        } => {
            if layers {
                return crate::bench_layers::run(&device, width, batch, steps, pytorch);
            }
            let float = match dtype.as_str() {
                "f16" => burn::tensor::FloatDType::F16,
                "bf16" => burn::tensor::FloatDType::BF16,
                _ => burn::tensor::FloatDType::F32,
            };
            let on = unmix_train::device::parse_device(&device)?.autodiff();
            let r =
                unmix_train::run::resnet_bench::time_resnet_step(&on, width, batch, steps, float)?;
            println!(
                "| backend | model | batch | forward s | backward s | update s | s/step | images/s |"
            );
            println!("|---|---|---|---|---|---|---|---|");
            println!(
                "| {device} | ResNet-18 width {width}, 32×32, {dtype} | {batch} | {:.4} | {:.4} | {:.4} | {:.4} | {:.1} |",
                r.forward, r.backward, r.update, r.seconds_per_step, r.images_per_second
            );
            if pytorch {
                crate::bench::pytorch_row(&r, width, batch, steps)?;
            }
            Ok(())
        }
        Command::CheckBackend {
            device,
            configs,
            steps,
            width,
            batch,
        } => crate::check_backend::run(crate::check_backend::CheckBackend {
            device: &device,
            configs: &configs,
            steps,
            width,
            batch,
        }),
        Command::ParityStep {
            config,
            out,
            set,
            warm_epochs,
        } => {
            let cfg = TrainConfig::load_with(&config, &set)?;
            let r = unmix_train::run::parity::record_step(&cfg, &out, warm_epochs)?;
            println!(
                "the first step after {warm_epochs} epochs: loss {:.6}; {} tensors written to {}",
                r.loss,
                r.tensors,
                out.display()
            );
            Ok(())
        }
        Command::CutFashionMnist {
            source,
            out,
            per_class,
        } => {
            for p in unmix_data::fashion_mnist::cut(&source, &out, per_class)? {
                let sum = unmix_data::checksum::sha256_file(&p)?;
                println!("{sum}  {}", p.display());
            }
            Ok(())
        }
    }
}

fn feature_name(cfg: &TrainConfig) -> &'static str {
    cfg.eval.features.name()
}

/// A checkpoint folder, or a run folder's latest checkpoint.
fn checkpoint_dir(path: PathBuf) -> Result<PathBuf, TrainError> {
    if path.join("state.json").exists() {
        return Ok(path);
    }
    checkpoint::latest(&path)?.ok_or_else(|| TrainError::Checkpoint {
        path,
        message: "no finished checkpoint here".into(),
    })
}
