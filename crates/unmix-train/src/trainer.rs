//! The training loop: Un-Mix step, optimiser with a per-step learning rate, momentum targets,
//! progress bar, kNN monitor, metrics CSV, atomic checkpoints and resume. Generic over
//! [`Method`]; nothing here knows which method it trains.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::ParamId;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Gradients;
use indicatif::{ProgressBar, ProgressStyle};
use unmix_data::fashion_mnist::{self, Split};
use unmix_data::{ImageSet, MultiViewLoader, ViewTransform};
use unmix_ops::UnMix;

use crate::checkpoint::{self, LoopState};
use crate::config::{Cifar100Labels, DatasetKind, LrScaling, MethodTask, TrainConfig};
use crate::device::parse_device;
use crate::error::TrainError;
use crate::knn::{extract, weighted_knn};
use crate::method::{Method, ParamGroup, StepContext, param_ids};
use crate::metrics::{EpochRecord, MetricsFile};
use crate::optim::build_optimizer;
use crate::schedule::{learning_rate, scaled_lr};

/// Options that are not part of the experiment.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides `run.device`.
    pub device: Option<String>,
    /// Continue from the run directory's latest checkpoint.
    pub resume: bool,
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
}

/// The training and evaluation sets of a config.
pub fn load_sets(config: &TrainConfig) -> Result<(ImageSet, ImageSet), TrainError> {
    let d = &config.data;
    let (train, test) = match d.dataset {
        DatasetKind::FashionMnist => (
            fashion_mnist::load(&d.path, Split::Train)?,
            fashion_mnist::load(&d.path, Split::Test)?,
        ),
        DatasetKind::Cifar10 => {
            let files: Vec<PathBuf> = (1..=5)
                .map(|i| d.path.join(format!("data_batch_{i}.bin")))
                .collect();
            let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
            (
                unmix_data::cifar::read_cifar10(&refs)?,
                unmix_data::cifar::read_cifar10(&[&d.path.join("test_batch.bin")])?,
            )
        }
        DatasetKind::Cifar100 => {
            use unmix_data::cifar::{Cifar100Label, read_cifar100};
            let label = match d.cifar100_labels {
                Cifar100Labels::Fine => Cifar100Label::Fine,
                Cifar100Labels::Coarse => Cifar100Label::Coarse,
            };
            (
                read_cifar100(&[&d.path.join("train.bin")], label)?,
                read_cifar100(&[&d.path.join("test.bin")], label)?,
            )
        }
    };
    let cut = |set: ImageSet, per_class: Option<usize>| match per_class {
        Some(n) => {
            let idx = set.balanced_head(n);
            set.subset(&idx)
        }
        None => set,
    };
    Ok((cut(train, d.train_per_class), cut(test, d.test_per_class)))
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
        .map(|v| ViewTransform::new(v.apply(&config.data.augmentation)))
        .collect::<Result<Vec<_>, _>>()?;
    let loader = MultiViewLoader::new(
        Arc::new(train_set),
        views,
        config.optim.batch_size,
        config.data.num_workers,
        seed,
    )?;
    let unmix = UnMix::new(config.unmix.clone(), seed ^ 0xA11C_E5ED)?;
    Ok((loader, unmix))
}

/// Builds the configured method and trains it.
pub fn train(config: &TrainConfig, options: &RunOptions) -> Result<TrainOutcome, TrainError> {
    config.validate()?;
    let device_spec = options.device.clone().unwrap_or(config.run.device.clone());
    let device = parse_device(&device_spec)?.autodiff();
    device.seed(config.run.seed);
    struct Train<'a>(&'a TrainConfig, &'a RunOptions, &'a Device);
    impl MethodTask for Train<'_> {
        type Output = TrainOutcome;
        fn run<M: Method>(self, model: M) -> Result<TrainOutcome, TrainError> {
            train_method(model, self.0, self.1, self.2)
        }
    }
    config
        .method
        .build(&config.model, &device, Train(config, options, &device))
}

/// The loop, for any method.
pub fn train_method<M: Method>(
    mut model: M,
    config: &TrainConfig,
    options: &RunOptions,
    device: &Device,
) -> Result<TrainOutcome, TrainError> {
    let started = Instant::now();
    let run_dir = config.run.out_dir.join(&config.run.name);
    std::fs::create_dir_all(&run_dir).map_err(|e| TrainError::io(&run_dir, e))?;
    let (train_set, test_set) = load_sets(config)?;
    let transform = ViewTransform::new(config.data.augmentation.clone())?;
    let seed = config.run.seed;
    let (loader, unmix) = loader_and_unmix(&model, config, train_set.clone())?;
    let o = &config.optim;
    let mut optim = build_optimizer(o);
    let momentum = model.momentum();
    if !options.quiet {
        let scaling = match o.lr_scaling {
            LrScaling::None => "no batch-size scaling".to_string(),
            LrScaling::Linear => format!("linear scaling, x{}/{}", o.batch_size, o.reference_batch),
            LrScaling::Sqrt => format!(
                "sqrt scaling, x sqrt({}/{})",
                o.batch_size, o.reference_batch
            ),
        };
        println!(
            "optimizer {:?}: lr {} ({scaling}) -> {:.6}, schedule {:?}",
            o.optimizer,
            o.lr,
            scaled_lr(o),
            o.schedule
        );
    }

    let evaluate =
        |model: &M| -> f64 { knn_top1(model, config, (&train_set, &test_set), &transform, device) };

    // Start fresh or from the latest checkpoint.
    let (mut start_epoch, mut step, knn_random_init, metrics) = match checkpoint::latest(&run_dir)?
    {
        Some(dir) if options.resume => {
            let state = checkpoint::read_state(&dir)?;
            if state.seed != seed {
                return Err(TrainError::Checkpoint {
                    path: dir,
                    message: format!(
                        "written by a run with seed {}, config says {seed}",
                        state.seed
                    ),
                });
            }
            model = checkpoint::load_model(&dir, model)?;
            optim = checkpoint::load_optim(&dir, optim)?;
            if !options.quiet {
                println!(
                    "resuming from {} (epoch {}, step {})",
                    dir.display(),
                    state.epoch,
                    state.step
                );
            }
            let metrics = MetricsFile::open(&run_dir, Some(state.epoch))?;
            (
                state.epoch,
                state.step,
                state.knn_random_init.unwrap_or(f64::NAN),
                metrics,
            )
        }
        _ => {
            let metrics = MetricsFile::open(&run_dir, None)?;
            let knn0 = evaluate(&model);
            metrics.append(&EpochRecord {
                epoch: 0,
                step: 0,
                lr: 0.0,
                loss: f64::NAN,
                loss_plain: f64::NAN,
                loss_mixed: f64::NAN,
                lambda: f64::NAN,
                images_per_s: f64::NAN,
                knn_top1: knn0,
            })?;
            if !options.quiet {
                println!("kNN top-1 at random init: {knn0:.2}%");
            }
            (0, 0, knn0, metrics)
        }
    };
    std::fs::write(run_dir.join("config.toml"), config.to_toml())
        .map_err(|e| TrainError::io(&run_dir, e))?;

    let per_epoch = loader.batches_per_epoch();
    let total_steps = (o.epochs * per_epoch) as u64;
    let last_epoch = options
        .stop_after
        .map_or(o.epochs, |n| (start_epoch + n).min(o.epochs));
    let bar = if options.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(((last_epoch - start_epoch) * per_epoch) as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .expect("template")
                .progress_chars("=> "),
        );
        bar
    };
    let mut last_knn = f64::NAN;
    // Parameter ids survive optimiser steps, so the list is taken once.
    let all_params = param_ids(&model);
    while start_epoch < last_epoch {
        let epoch = start_epoch;
        let mut lr = learning_rate(o, step, per_epoch);
        let (mut sum, mut sum_plain, mut sum_mixed, mut sum_lambda) = (0.0, 0.0, 0.0, 0.0);
        let t0 = Instant::now();
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, o.epochs));
        for host in loader.epoch(epoch as u64, 0) {
            let ctx = StepContext {
                step,
                epoch,
                steps_per_epoch: per_epoch,
                progress: step as f64 / total_steps.max(1) as f64,
                seed,
            };
            let batch = host.to_device(device);
            let mixed = unmix
                .config()
                .enabled
                .then(|| unmix.apply(batch.views[0].clone(), step));
            lr = learning_rate(o, step, per_epoch);
            let tau = momentum.map(|schedule| schedule.at(ctx.progress));
            let (next, out) = train_step(
                model,
                &batch,
                mixed.as_ref(),
                &ctx,
                (&mut optim, lr, tau, &all_params),
                |_, _| {},
            );
            model = next;
            let loss: f64 = out.loss.into_scalar::<f32>() as f64;
            sum += loss;
            for (name, t) in out.terms {
                let v = t.into_scalar::<f32>() as f64;
                match name {
                    "plain" => sum_plain += v,
                    "mixed" => sum_mixed += v,
                    _ => {}
                }
            }
            let lambda = mixed.as_ref().map_or(f64::NAN, |m| m.lambda);
            sum_lambda += lambda;
            step += 1;
            bar.inc(1);
            let ips = bar.position() as f64 * loader.batch_size() as f64
                / bar.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("loss {loss:.3} λ {lambda:.2} {ips:.0} img/s"));
        }
        let seconds = t0.elapsed().as_secs_f64();
        start_epoch += 1;
        let n = per_epoch as f64;
        let due = config.eval.every_epochs > 0 && start_epoch % config.eval.every_epochs == 0;
        let knn = if due || start_epoch == last_epoch {
            evaluate(&model)
        } else {
            f64::NAN
        };
        if !knn.is_nan() {
            last_knn = knn;
        }
        let record = EpochRecord {
            epoch: start_epoch,
            step,
            lr,
            loss: sum / n,
            loss_plain: sum_plain / n,
            loss_mixed: if config.unmix.enabled {
                sum_mixed / n
            } else {
                f64::NAN
            },
            lambda: sum_lambda / n,
            images_per_s: n * loader.batch_size() as f64 / seconds,
            knn_top1: knn,
        };
        metrics.append(&record)?;
        checkpoint::save(
            &run_dir,
            &model,
            &optim,
            &LoopState {
                epoch: start_epoch,
                step,
                seed,
                knn_random_init: Some(knn_random_init),
                knn_top1: (!knn.is_nan()).then_some(knn),
            },
        )?;
        if !options.quiet {
            let line = format!(
                "epoch {start_epoch}/{}: loss {:.4} lr {lr:.4} {:.0} img/s kNN {}",
                o.epochs,
                record.loss,
                record.images_per_s,
                if knn.is_nan() {
                    "-".to_string()
                } else {
                    format!("{knn:.2}%")
                }
            );
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        }
    }
    bar.finish_and_clear();
    if last_knn.is_nan() {
        last_knn = evaluate(&model);
    }
    Ok(TrainOutcome {
        history: MetricsFile::read(&run_dir.join("metrics.csv"))?,
        run_dir,
        knn_random_init,
        knn_final: last_knn,
        seconds: started.elapsed().as_secs_f64(),
        train_images: train_set.len(),
        test_images: test_set.len(),
    })
}

/// The optimiser of a step, its learning rate, the momentum τ (`None` for methods without
/// momentum targets) and every parameter id of the model.
pub type StepOptim<'a> = (&'a mut ModuleOptimizer, f64, Option<f64>, &'a [ParamId]);

/// One training step of any method, exactly as the loop runs it: the method's loss, backward,
/// the grouped optimiser step, the momentum update with `tau`, then the method's own
/// `after_step`. `inspect` sees the model and its gradients before the optimiser consumes them
/// (the parity harness records them; the loop passes a no-op). Returns the updated model and
/// the step's output (its `state` already consumed by `after_step`, so `()`).
pub fn train_step<M: Method>(
    model: M,
    batch: &unmix_data::MultiViewBatch,
    mixed: Option<&unmix_ops::MixedBatch>,
    ctx: &StepContext,
    (optim, lr, tau, all_params): StepOptim<'_>,
    mut inspect: impl FnMut(&M, &Gradients),
) -> (M, crate::StepOutput<()>) {
    let out = model.forward_train(batch, mixed, ctx);
    let groups = model.param_groups(ctx);
    let grads = out.loss.backward();
    inspect(&model, &grads);
    let mut model = grouped_step(optim, model, grads, lr, groups, all_params);
    if let Some(tau) = tau {
        model = model.momentum_update(tau);
    }
    let model = model.after_step(out.state, ctx);
    let out = crate::StepOutput {
        loss: out.loss,
        terms: out.terms,
        state: (),
    };
    (model, out)
}

/// One optimiser step: the method's parameter groups at their multiple of `lr`, every other
/// parameter of `all_params` at `lr`. Each group is stepped on its own parameters' gradients
/// (taken out of `grads`, so groups stay disjoint); a frozen group is not stepped at all.
///
/// Burn's own per-group rates (`ModuleLearningRate`) come only out of a `ModuleLrScheduler` of
/// Burn schedulers, and our schedule (warm-up, then cosine/step, per step) is our own function
/// of the step, so each group gets its own `step` call instead.
pub fn grouped_step<M: Module>(
    optim: &mut ModuleOptimizer,
    model: M,
    mut grads: Gradients,
    lr: f64,
    groups: Vec<ParamGroup>,
    all_params: &[ParamId],
) -> M {
    if groups.is_empty() {
        let grads = GradientsParams::from_grads(grads, &model);
        return optim.step(lr, model, grads);
    }
    let grouped: Vec<ParamId> = groups
        .iter()
        .flat_map(|g| g.params.iter().copied())
        .collect();
    let rest = ParamGroup {
        params: all_params
            .iter()
            .filter(|id| !grouped.contains(id))
            .copied()
            .collect(),
        lr_scale: 1.0,
    };
    let mut model = model;
    for group in std::iter::once(rest).chain(groups) {
        if group.lr_scale > 0.0 && !group.params.is_empty() {
            let g = GradientsParams::from_params(&mut grads, &model, &group.params);
            model = optim.step(lr * group.lr_scale, model, g);
        }
    }
    model
}

/// Weighted kNN top-1 (%) of `model`: the training set is the bank, the test set the queries.
fn knn_top1<M: Method>(
    model: &M,
    config: &TrainConfig,
    (train, test): (&ImageSet, &ImageSet),
    transform: &ViewTransform,
    device: &Device,
) -> f64 {
    let kind = config.eval.features;
    let bank = extract(model, train, transform, kind, device);
    let queries = extract(model, test, transform, kind, device);
    100.0
        * weighted_knn(
            &bank,
            train.labels.as_deref().unwrap_or_default(),
            &queries,
            test.labels.as_deref().unwrap_or_default(),
            train.class_names.len(),
            config.eval.knn_k,
            config.eval.knn_t,
            device,
        )
}

/// kNN top-1 (%) of a checkpoint, with the config saved in its run directory.
pub fn evaluate_checkpoint(
    dir: &Path,
    device: Option<&str>,
) -> Result<(TrainConfig, f64, usize, usize), TrainError> {
    let run_dir = dir
        .parent()
        .and_then(|p| p.parent())
        .ok_or_else(|| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            message: "expected <run>/checkpoints/epoch-NNNN".into(),
        })?;
    let config = TrainConfig::load(&run_dir.join("config.toml"))?;
    let device = parse_device(device.unwrap_or(&config.run.device))?;
    let (train_set, test_set) = load_sets(&config)?;
    let transform = ViewTransform::new(config.data.augmentation.clone())?;
    struct Eval<'a> {
        dir: &'a Path,
        config: &'a TrainConfig,
        sets: (&'a ImageSet, &'a ImageSet),
        transform: &'a ViewTransform,
        device: &'a Device,
    }
    impl MethodTask for Eval<'_> {
        type Output = f64;
        fn run<M: Method>(self, model: M) -> Result<f64, TrainError> {
            let model = checkpoint::load_model(self.dir, model)?;
            Ok(knn_top1(
                &model,
                self.config,
                self.sets,
                self.transform,
                self.device,
            ))
        }
    }
    let top1 = config.method.build(
        &config.model,
        &device,
        Eval {
            dir,
            config: &config,
            sets: (&train_set, &test_set),
            transform: &transform,
            device: &device,
        },
    )?;
    Ok((config, top1, train_set.len(), test_set.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::SgdConfig;

    #[derive(Module, Debug)]
    struct Three {
        a: Linear,
        b: Linear,
        c: Linear,
    }

    fn weights(m: &Three) -> [Vec<f32>; 3] {
        [&m.a, &m.b, &m.c].map(|l| l.weight.val().into_data().try_to_vec::<f32>().unwrap())
    }

    /// `loss = Σ a(x) + Σ b(x) + Σ c(x)` with `x = [1, 1]` gives every weight the gradient 1, so
    /// plain SGD moves each weight by `−lr · scale`: `a` at the scheduled rate, `b` at 3×, `c`
    /// frozen.
    #[test]
    fn grouped_step_scales_and_freezes_groups() {
        let device = Device::flex().autodiff();
        let linear = || LinearConfig::new(2, 2).with_bias(false).init(&device);
        let model = Three {
            a: linear(),
            b: linear(),
            c: linear(),
        };
        let before = weights(&model);
        let x = Tensor::<2>::ones([1, 2], &device);
        let loss = model.a.forward(x.clone()).sum()
            + model.b.forward(x.clone()).sum()
            + model.c.forward(x).sum();
        let groups = vec![
            ParamGroup::of(&model.b, 3.0),
            ParamGroup::frozen(vec![model.c.weight.id]),
        ];
        let all = param_ids(&model);
        let mut optim = SgdConfig::new().init();
        let model = grouped_step(&mut optim, model, loss.backward(), 0.1, groups, &all);
        let after = weights(&model);
        for (k, expected) in [-0.1f32, -0.3, 0.0].into_iter().enumerate() {
            for (b, a) in before[k].iter().zip(&after[k]) {
                assert!(
                    (a - b - expected).abs() < 1e-6,
                    "layer {k}: moved {} instead of {expected}",
                    a - b
                );
            }
        }
    }
}
