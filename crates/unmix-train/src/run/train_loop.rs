//! The loop, for any method: per step the batch, Un-Mix's mixture, the method's step and the
//! log; per epoch the evaluation, the metrics row and the checkpoint. Starting or resuming, the
//! evaluation schedule, logging, checkpoints and the display are the pieces it calls.

use std::time::Instant;

use burn::prelude::*;
use unmix_data::{ImageSet, ViewTransform};

use super::checkpoint::{self, LoopState};
use super::loss_window::{LossWindow, WindowSums};
use super::metrics::{EpochRecord, MetricsFile, StepLog};
use super::online_probe::OnlineProbe;
use super::prefetch::DeviceBatches;
use super::progress::Progress;
use super::{RunDir, RunOptions, TrainOutcome, loader_and_unmix, train_step};
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::eval::knn_top1;
use crate::method::{Method, StepContext, param_ids};
use crate::optim::schedule::{learning_rate, scaled_lr};
use crate::optim::{ModuleOptimizer, build_optimizer};

pub(crate) fn train_method<M: Method>(
    model: M,
    config: &TrainConfig,
    options: &RunOptions,
    device: &Device,
    run_dir: &RunDir,
    (train_set, test_set): (ImageSet, ImageSet),
) -> Result<TrainOutcome, TrainError> {
    let started = Instant::now();
    let dir = run_dir.path();
    let o = &config.optim;
    let transform = ViewTransform::new(config.data.augmentation.clone())?;
    let evaluate = |m: &M| knn_top1(m, config, (&train_set, &test_set), &transform, device);
    let (loader, unmix) = loader_and_unmix(&model, config, train_set.clone())?;
    let per_epoch = loader.batches_per_epoch();
    let classes = train_set.class_names.len();
    let probe_dim: usize = model.backbones().iter().map(|(_, r)| r.feature_dim()).sum();
    let mut probe = (config.eval.online_probe && train_set.labels.is_some() && classes > 1)
        .then(|| OnlineProbe::new(probe_dim, classes, config.eval.online_probe_lr, device));
    let Start {
        mut model,
        mut optim,
        mut epoch,
        mut step,
        knn_random_init,
        mut metrics,
    } = start(model, config, options, dir, &evaluate)?;
    if options.resume
        && let (Some(p), Some(ck)) = (probe.take(), checkpoint::latest(dir)?)
    {
        probe = Some(p.load(&ck)?);
    }
    std::fs::write(dir.join("config.toml"), config.to_toml())
        .map_err(|e| TrainError::io(dir, e))?;
    let mut step_log = StepLog::open(
        dir,
        config.run.log_every_steps,
        options.resume.then_some(step),
    )?;
    let last_epoch = options
        .stop_after
        .map_or(o.epochs, |n| (epoch + n).min(o.epochs));
    let steps = (last_epoch.saturating_sub(epoch) * per_epoch) as u64;
    let progress = Progress::new(options.quiet, steps, o.epochs, loader.batch_size());
    progress.line(&crate::optim::describe(o));
    // Parameter ids survive optimiser steps, so the list is taken once.
    let all_params = param_ids(&model);
    let momentum = model.momentum();
    let total_steps = (o.epochs * per_epoch).max(1) as u64;
    let mut window = LossWindow::new(config.run.read_loss_every_steps);
    while epoch < last_epoch {
        progress.start_epoch(epoch);
        let (mut sums, t0) = (Sums::default(), Instant::now());
        let mut lr = 0.0;
        let mut last_lambda = None;
        // Each batch is uploaded, with its Un-Mix mixture, while the step before it runs.
        for (batch, mixed) in
            DeviceBatches::new(loader.epoch(epoch as u64, 0), &unmix, step, device)
        {
            let ctx = StepContext {
                step,
                epoch,
                steps_per_epoch: per_epoch,
                progress: step as f64 / total_steps as f64,
                seed: config.run.seed,
            };
            lr = learning_rate(o, step, per_epoch);
            if let Some(p) = probe.as_mut() {
                // Before the step: the features the batch's update starts from.
                p.step(&model, &batch, lr / scaled_lr(o));
            }
            let tau = momentum.map(|schedule| schedule.at(ctx.progress));
            let optim_step = (&mut optim, lr, tau, all_params.as_slice());
            let (next, out) =
                train_step(model, &batch, mixed.as_ref(), &ctx, optim_step, |_, _| {});
            model = next;
            let lambda = mixed.as_ref().map(|m| m.lambda);
            if step_log.wants(step) {
                // A logged step is read on its own (a sync, every `log_every_steps` steps).
                let loss = out.loss.clone().into_scalar::<f32>() as f64;
                let terms: Vec<(String, f64)> = (out.terms.iter())
                    .map(|(name, t)| (name.to_string(), t.clone().into_scalar::<f32>() as f64))
                    .collect();
                step_log.log(step, lr, loss, &terms, lambda)?;
            }
            window.add(out.loss, out.terms);
            sums.add_lambda(lambda);
            last_lambda = lambda;
            if window.due(step) {
                read_window(
                    &mut window,
                    &mut sums,
                    &progress,
                    (step, epoch),
                    last_lambda,
                )?;
            }
            step += 1;
        }
        // The epoch's last steps, before its record and checkpoint.
        read_window(
            &mut window,
            &mut sums,
            &progress,
            (step.saturating_sub(1), epoch),
            last_lambda,
        )?;
        epoch += 1;
        let evaluate_now = (config.eval.every_epochs > 0 && epoch % config.eval.every_epochs == 0)
            || epoch == last_epoch;
        let record = EpochRecord {
            epoch,
            step,
            lr: Some(lr),
            images_per_s: Some(
                (per_epoch * loader.batch_size()) as f64 / t0.elapsed().as_secs_f64(),
            ),
            knn_top1: evaluate_now.then(|| evaluate(&model)),
            online_probe_train_top1: probe.as_mut().and_then(OnlineProbe::take_train_top1),
            online_probe_test_top1: probe
                .as_ref()
                .filter(|_| evaluate_now)
                .and_then(|p| p.test_top1(&model, &test_set, &transform, device)),
            ..sums.means()
        };
        // The row first: a crash before the checkpoint is renamed into place resumes from the
        // previous epoch, whose resume drops this row and runs the epoch again.
        metrics.push(record.clone())?;
        let state = LoopState {
            epoch,
            step,
            seed: config.run.seed,
            knn_random_init: Some(knn_random_init),
            knn_top1: record.knn_top1,
        };
        checkpoint::save_with(dir, &model, &optim, &state, config, |tmp| match &probe {
            Some(p) => p.save(tmp),
            None => Ok(()),
        })?;
        progress.epoch_done(&record);
    }
    progress.finish();
    let knn_final = match metrics.rows().iter().rev().find_map(|r| r.knn_top1) {
        Some(k) if metrics.rows().len() > 1 => k,
        _ => evaluate(&model),
    };
    // Every checkpoint is on disk by now: a report that cannot be written costs no work.
    let report = match crate::report::run_report::write(dir, config, &model, &test_set, device) {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("warning: the run finished, but its report was not written: {e}");
            None
        }
    };
    Ok(TrainOutcome {
        history: metrics.rows().to_vec(),
        run_dir: dir.to_path_buf(),
        knn_random_init,
        knn_final,
        seconds: started.elapsed().as_secs_f64(),
        train_images: train_set.len(),
        test_images: test_set.len(),
        report,
    })
}

/// Where the loop starts: a fresh run (random-init evaluation as row 0) or the latest
/// checkpoint.
struct Start<M> {
    model: M,
    optim: ModuleOptimizer,
    epoch: usize,
    step: u64,
    knn_random_init: f64,
    metrics: MetricsFile,
}

fn start<M: Method>(
    model: M,
    config: &TrainConfig,
    options: &RunOptions,
    dir: &std::path::Path,
    evaluate: &impl Fn(&M) -> f64,
) -> Result<Start<M>, TrainError> {
    let optim = build_optimizer(&config.optim);
    if !options.resume {
        let mut metrics = MetricsFile::create(dir);
        let knn0 = evaluate(&model);
        metrics.push(EpochRecord {
            knn_top1: Some(knn0),
            ..EpochRecord::default()
        })?;
        if !options.quiet {
            println!("kNN top-1 at random init: {knn0:.2}%");
        }
        return Ok(Start {
            model,
            optim,
            epoch: 0,
            step: 0,
            knn_random_init: knn0,
            metrics,
        });
    }
    let ck = checkpoint::latest(dir)?.ok_or_else(|| TrainError::RunDir {
        path: dir.to_path_buf(),
        message: "nothing to resume: no finished checkpoint in checkpoints/".into(),
    })?;
    let state = checkpoint::read_state(&ck)?;
    match checkpoint::read_config(&ck)? {
        Some(recorded) => {
            let keys = recorded.resume_conflicts(config);
            if !keys.is_empty() {
                return Err(TrainError::ChangedOnResume { path: ck, keys });
            }
        }
        None if state.seed != config.run.seed => {
            return Err(TrainError::ChangedOnResume {
                path: ck,
                keys: vec![format!("run.seed: {} -> {}", state.seed, config.run.seed)],
            });
        }
        None => {}
    }
    if config.optim.epochs < state.epoch {
        return Err(TrainError::value(
            "optim.epochs",
            config.optim.epochs,
            &format!(
                "expected at least {} (the checkpoint's epoch) to resume",
                state.epoch
            ),
        ));
    }
    let model = checkpoint::load_model(&ck, model)?;
    let optim = checkpoint::load_optim(&ck, optim)?;
    if !options.quiet {
        println!(
            "resuming from {} (epoch {}, step {})",
            ck.display(),
            state.epoch,
            state.step
        );
    }
    Ok(Start {
        model,
        optim,
        epoch: state.epoch,
        step: state.step,
        knn_random_init: state.knn_random_init.unwrap_or(f64::NAN),
        metrics: MetricsFile::resume(dir, state.epoch)?,
    })
}

/// Running sums of an epoch's logged values.
/// Reads the window's sums (one wait for the device), stops the run if the loss is not finite,
/// and moves the progress line. `at` is the window's last step and its epoch (0-based).
fn read_window(
    window: &mut LossWindow,
    sums: &mut Sums,
    progress: &Progress,
    (step, epoch): (u64, usize),
    lambda: Option<f64>,
) -> Result<(), TrainError> {
    let Some(read) = window.read() else {
        return Ok(());
    };
    if !read.loss.is_finite() {
        // Nothing of this epoch is saved: the last checkpoint stays the newest.
        progress.finish();
        return Err(TrainError::Diverged {
            step,
            epoch: epoch + 1,
            loss: read.loss,
        });
    }
    progress.steps(read.steps, read.loss / read.steps as f64, lambda);
    sums.add(&read);
    Ok(())
}

#[derive(Default)]
struct Sums {
    steps: usize,
    loss: f64,
    terms: Vec<(String, f64)>,
    lambda: Option<f64>,
}

impl Sums {
    /// A window's sums (read from the device).
    fn add(&mut self, window: &WindowSums) {
        self.steps += window.steps;
        self.loss += window.loss;
        for (name, v) in &window.terms {
            match self.terms.iter_mut().find(|(n, _)| n == name) {
                Some((_, sum)) => *sum += v,
                None => self.terms.push((name.clone(), *v)),
            }
        }
    }

    /// A step's λ (known on the host).
    fn add_lambda(&mut self, lambda: Option<f64>) {
        if let Some(l) = lambda {
            *self.lambda.get_or_insert(0.0) += l;
        }
    }

    fn means(self) -> EpochRecord {
        let n = self.steps.max(1) as f64;
        EpochRecord {
            loss: Some(self.loss / n),
            terms: self.terms.into_iter().map(|(t, v)| (t, v / n)).collect(),
            lambda: self.lambda.map(|l| l / n),
            ..EpochRecord::default()
        }
    }
}
