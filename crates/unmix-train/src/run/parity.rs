//! Step-level parity with the PyTorch references in `docs/reference/`: one training step of a
//! configured method, exactly as the loop runs it ([`crate::run::train_step`]), with every
//! tensor the step reads and writes recorded in one safetensors file. A reference loads the
//! initial weights, replays the step on the same input batch, mixture and shuffle-BN
//! permutations, and compares its loss, gradients and updated state with ours
//! (`docs/reference/parity.py`; `cargo xtask parity`).
//!
//! File layout (names are our module paths; linear weights in PyTorch's `[out, in]` layout):
//!
//! | tensor | what |
//! |---|---|
//! | `init/<path>` | every parameter and running state before the step (queue included) |
//! | `input/view0`, `input/view1`, … | the step's augmented views `[N, 3, S, S]` |
//! | `input/mixed` | the Un-Mix mixture of view 0, when enabled |
//! | `input/shuffle0`, `input/shuffle1` | MoCo's shuffle-BN permutations of the two views' keys |
//! | `grad/<path>` | the gradient of every trained parameter |
//! | `after/<path>` | every parameter and running state after the step |
//!
//! Metadata: the resolved config (`config`, TOML), `lr`, `tau`, `lambda`, `mix_kind`, `loss`,
//! each named loss term (`term/<name>`) and the step's `epoch` (0-based; `--warm-epochs`).

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use safetensors::tensor::{Dtype, TensorView};
use unmix_data::ImageSet;
use unmix_models::{NamedTensor, named_gradients, named_tensors};

use crate::TrainConfig;
use crate::device::parse_device;
use crate::error::TrainError;
use crate::method::{Method, StepContext, param_ids};
use crate::methods::MethodTask;
use crate::optim::build_optimizer;
use crate::optim::schedule::learning_rate;
use crate::run::prefetch::DeviceBatches;
use crate::run::{first_batch, loader_and_unmix, train_step};
use unmix_data::MultiViewLoader;
use unmix_ops::UnMix;

/// What [`record_step`] measured, besides the file.
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// The step's loss.
    pub loss: f64,
    /// Tensors written.
    pub tensors: usize,
}

/// Runs step 0 of `config` on its own device and writes the record to `out`.
///
/// With `warm_epochs` > 0 the run first trains that many epochs as the loop does, then records
/// the first step of the next epoch from the weights and state they left (for the memory-bank
/// methods: a written bank and a filled neighbour graph), with a fresh optimiser, since the
/// reference replays one step from the recorded weights.
pub fn record_step(
    config: &TrainConfig,
    out: &Path,
    warm_epochs: usize,
) -> Result<StepRecord, TrainError> {
    config.validate()?;
    let device = parse_device(&config.run.device)?.autodiff();
    device.seed(config.run.seed);
    let (train_set, _) = config.data.load()?;
    struct Record<'a> {
        config: &'a TrainConfig,
        train_set: ImageSet,
        device: &'a Device,
        out: &'a Path,
        warm_epochs: usize,
    }
    impl MethodTask for Record<'_> {
        type Output = StepRecord;
        fn run<M: Method>(self, model: M) -> Result<StepRecord, TrainError> {
            record_method(
                model,
                self.config,
                self.train_set,
                self.device,
                (self.out, self.warm_epochs),
            )
        }
    }
    config.method.build(
        &config.model,
        train_set.len(),
        &device,
        Record {
            config,
            train_set,
            device: &device,
            out,
            warm_epochs,
        },
    )
}

fn record_method<M: Method>(
    model: M,
    config: &TrainConfig,
    train_set: ImageSet,
    device: &Device,
    (out, warm_epochs): (&Path, usize),
) -> Result<StepRecord, TrainError> {
    let seed = config.run.seed;
    let train_images = train_set.len();
    let (loader, unmix) = loader_and_unmix(&model, config, train_set)?;
    let per_epoch = loader.batches_per_epoch();
    let model = warm_up(model, config, (&loader, &unmix), warm_epochs, device);
    // The loop's own batch, mixture and schedule values at the recorded step.
    let (batch, mixed) = first_batch(&loader, &unmix, config, device, warm_epochs)?;
    let step = (warm_epochs * per_epoch) as u64;
    let (ctx, lr, tau) = schedule_at(&model, config, step, per_epoch);

    let mut tensors: Vec<(String, NamedTensor)> = Vec::new();
    let mut push = |prefix: &str, list: Vec<NamedTensor>| {
        tensors.extend(
            list.into_iter()
                .map(|t| (format!("{prefix}/{}", t.path), t)),
        );
    };
    push("init", named_tensors(&model));
    let mut inputs: Vec<NamedTensor> = batch
        .views
        .iter()
        .enumerate()
        .map(|(i, v)| image_tensor(&format!("view{i}"), v.clone()))
        .collect();
    if let Some(m) = &mixed {
        inputs.push(image_tensor("mixed", m.images.clone()));
    }
    let n = batch.indices.len();
    // Sample ids, for the memory-bank methods (exact in f32 below 2^24).
    inputs.push(NamedTensor {
        path: "indices".into(),
        shape: vec![n],
        values: batch.indices.iter().map(|&i| i as f32).collect(),
    });
    // InsDis's and CMC's noise rows, drawn as their steps draw them.
    let nce_k = match &config.method {
        crate::methods::MethodConfig::Insdis(m) => Some(m.nce_k),
        crate::methods::MethodConfig::Cmc(m) => Some(m.nce_k),
        _ => None,
    };
    if let Some(nce_k) = nce_k {
        let ids = crate::methods::insdis::contrast_draw(
            seed,
            0,
            train_images,
            &batch.indices,
            nce_k,
            device,
        );
        let shape = ids.dims().to_vec();
        let values = ids.into_data().convert::<f32>().try_to_vec::<f32>();
        inputs.push(NamedTensor {
            path: "contrast_ids".into(),
            shape,
            values: values.expect("f32 ids"),
        });
    }
    for view in 0..2u64 {
        let perm = crate::methods::moco::key_shuffle(seed, 0, view, n).permutation();
        inputs.push(NamedTensor {
            path: format!("shuffle{view}"),
            shape: vec![n],
            values: perm.into_iter().map(|i| i as f32).collect(),
        });
    }
    push("input", inputs);

    let mut optim = build_optimizer(&config.optim);
    let all_params = param_ids(&model);
    let mut grads = Vec::new();
    let (model, step_out) = train_step(
        model,
        &batch,
        mixed.as_ref(),
        &ctx,
        (&mut optim, lr, tau, &all_params),
        |m, g| grads = named_gradients(m, g),
    );
    push("grad", grads);
    push("after", named_tensors(&model));

    let loss = step_out.loss.into_scalar::<f32>() as f64;
    let mut meta: HashMap<String, String> = HashMap::from([
        ("config".into(), config.to_toml()),
        ("lr".into(), lr.to_string()),
        ("tau".into(), tau.map_or("none".into(), |t| t.to_string())),
        ("loss".into(), loss.to_string()),
        ("epoch".into(), warm_epochs.to_string()),
    ]);
    if let Some(m) = &mixed {
        meta.insert("lambda".into(), m.lambda.to_string());
        meta.insert("mix_kind".into(), format!("{:?}", m.kind).to_lowercase());
    }
    for (name, t) in step_out.terms {
        meta.insert(
            format!("term/{name}"),
            (t.into_scalar::<f32>() as f64).to_string(),
        );
    }
    write_safetensors(out, &tensors, meta)?;
    Ok(StepRecord {
        loss,
        tensors: tensors.len(),
    })
}

/// Step `step`'s context, learning rate and momentum coefficient, as the loop computes them.
fn schedule_at<M: Method>(
    model: &M,
    config: &TrainConfig,
    step: u64,
    per_epoch: usize,
) -> (StepContext, f64, Option<f64>) {
    let total_steps = (config.optim.epochs * per_epoch).max(1) as f64;
    let ctx = StepContext {
        step,
        epoch: step as usize / per_epoch.max(1),
        steps_per_epoch: per_epoch,
        progress: step as f64 / total_steps,
        seed: config.run.seed,
    };
    let lr = learning_rate(&config.optim, step, per_epoch);
    let tau = model.momentum().map(|s| s.at(ctx.progress));
    (ctx, lr, tau)
}

/// Trains `epochs` epochs of `config` as the loop does (its device batches, mixtures,
/// schedules and momentum), for a record taken after them.
fn warm_up<M: Method>(
    mut model: M,
    config: &TrainConfig,
    (loader, unmix): (&MultiViewLoader, &UnMix),
    epochs: usize,
    device: &Device,
) -> M {
    let per_epoch = loader.batches_per_epoch();
    let mut optim = build_optimizer(&config.optim);
    let all_params = param_ids(&model);
    let mut step = 0u64;
    for epoch in 0..epochs {
        for (batch, mixed) in DeviceBatches::new(loader.epoch(epoch as u64, 0), unmix, step, device)
        {
            let (ctx, lr, tau) = schedule_at(&model, config, step, per_epoch);
            let optim_step = (&mut optim, lr, tau, all_params.as_slice());
            (model, _) = train_step(model, &batch, mixed.as_ref(), &ctx, optim_step, |_, _| {});
            step += 1;
        }
    }
    model
}

fn image_tensor(name: &str, t: Tensor<4>) -> NamedTensor {
    NamedTensor {
        path: name.to_string(),
        shape: t.dims().to_vec(),
        values: t
            .without_autodiff()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 images"),
    }
}

/// Writes f32 tensors and string metadata as one safetensors file.
pub(crate) fn write_safetensors(
    out: &Path,
    tensors: &[(String, NamedTensor)],
    meta: HashMap<String, String>,
) -> Result<(), TrainError> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, t), b)| {
            TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| TrainError::value("parity tensor", name, &e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = safetensors::serialize(views, Some(meta))
        .map_err(|e| TrainError::value("parity record", out.display(), &e.to_string()))?;
    std::fs::write(out, data).map_err(|e| TrainError::io(out, e))
}
