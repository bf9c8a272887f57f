//! Evaluation of a trained encoder: the weighted kNN monitor ([`knn`]), run during training and
//! on a checkpoint; on a checkpoint also W-MSE's 5-NN majority vote ([`wmse_knn`]) and linear
//! evaluation ([`linear`]), and the flatness of its instance-discrimination predictions
//! ([`flatness`]). Each further protocol (semi-supervised, augmented linear) is one file here.

pub mod flatness;
pub mod knn;
pub mod linear;
pub mod wmse_knn;

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use unmix_data::{ImageSet, ViewTransform};

use crate::config::TrainConfig;
use crate::device::parse_device;
use crate::error::TrainError;
use crate::method::Method;
use crate::methods::MethodTask;
use crate::run::checkpoint;
use knn::{extract, weighted_knn};

/// Which features the kNN monitor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// The projection head's output (the MoCo demo's monitor).
    Projection,
    /// The pooled backbone features.
    Backbone,
    /// The memory bank's rows as the training features and the projection of the test images
    /// as the queries, without a pass over the training set (Invariance Propagation's monitor,
    /// `main.py::kNN(net, npc, ...)`); memory-bank methods only.
    MemoryBank,
}

impl FeatureKind {
    /// How results tables name the features.
    pub fn name(self) -> &'static str {
        match self {
            FeatureKind::Projection => "projection",
            FeatureKind::Backbone => "backbone",
            FeatureKind::MemoryBank => "memory bank against projection",
        }
    }
}

/// `[eval]`: the weighted kNN monitor (SPEC §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Neighbours.
    pub knn_k: usize,
    /// Temperature of the `exp(sim/t)` weights.
    pub knn_t: f64,
    /// Evaluate every `n` epochs (and always after the last); 0 = only at the end.
    pub every_epochs: usize,
    /// Features used.
    pub features: FeatureKind,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            knn_k: 200,
            knn_t: 0.1,
            every_epochs: 1,
            features: FeatureKind::Projection,
        }
    }
}

impl EvalConfig {
    /// Checks values that parse but make no sense; errors name the `eval.*` key.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.knn_k == 0 || self.knn_t.is_nan() || self.knn_t <= 0.0 {
            return Err(TrainError::value(
                "eval.knn_k / eval.knn_t",
                format!("{} / {}", self.knn_k, self.knn_t),
                "expected k >= 1 and t > 0",
            ));
        }
        Ok(())
    }
}

/// Weighted kNN top-1 (%) of `model`: the training set is the bank, the test set the queries.
pub(crate) fn knn_top1<M: Method>(
    model: &M,
    config: &TrainConfig,
    (train, test): (&ImageSet, &ImageSet),
    transform: &ViewTransform,
    device: &Device,
) -> f64 {
    let kind = config.eval.features;
    let bank = match (kind, model.memory_bank()) {
        (FeatureKind::MemoryBank, Some(rows)) => knn::FeatureBank::from_rows(rows),
        _ => extract(model, train, transform, kind, device),
    };
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

/// W-MSE's protocols on `model`'s un-normalised backbone features of both sets: the 5-NN
/// majority vote, or the linear probe (seeded by `seed`). With `save`, the features and labels
/// are also written there (safetensors: `train/features`, `train/labels`, `test/...`), for a
/// comparison with the reference's own code on the same features.
fn wmse_scores<M: Method>(
    model: &M,
    (train, test): (&ImageSet, &ImageSet),
    transform: &ViewTransform,
    linear_probe: Option<u64>,
    save: Option<&Path>,
    device: &Device,
) -> Result<Scores, TrainError> {
    let raw =
        |set| knn::extract_features(model, set, transform, FeatureKind::Backbone, false, device);
    let (bank, queries) = (raw(train), raw(test));
    if let Some(path) = save {
        let mut tensors = Vec::new();
        for (name, set, f) in [("train", train, &bank), ("test", test, &queries)] {
            let labels: Vec<f32> = set.labels.iter().flatten().map(|&l| l as f32).collect();
            let n = labels.len();
            for (what, shape, values) in [
                ("features", vec![n, f.dim], f.data.clone()),
                ("labels", vec![n], labels),
            ] {
                let path = format!("{name}/{what}");
                tensors.push((
                    path.clone(),
                    unmix_models::NamedTensor {
                        path,
                        shape,
                        values,
                    },
                ));
            }
        }
        crate::run::parity::write_safetensors(path, &tensors, Default::default())?;
    }
    let train_f = wmse_knn::RawFeatures {
        data: &bank.data,
        dim: bank.dim,
    };
    let test_f = wmse_knn::RawFeatures {
        data: &queries.data,
        dim: queries.dim,
    };
    let labels = |set: &ImageSet| set.labels.clone().unwrap_or_default();
    let (train_labels, test_labels) = (labels(train), labels(test));
    let classes = train.class_names.len();
    Ok(match linear_probe {
        None => Scores {
            top1: 100.0
                * wmse_knn::majority_knn(
                    train_f,
                    &train_labels,
                    test_f,
                    &test_labels,
                    classes,
                    WMSE_K,
                    device,
                ),
            top5: None,
        },
        Some(seed) => {
            let s = linear::linear_probe(
                train_f,
                &train_labels,
                test_f,
                &test_labels,
                classes,
                &linear::LinearProbeConfig::default(),
                seed,
                device,
            );
            Scores {
                top1: 100.0 * s.top1,
                top5: Some(100.0 * s.top5),
            }
        }
    })
}

/// An evaluation protocol of `unmix eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The weighted kNN monitor with the run's `[eval]` settings.
    WeightedKnn,
    /// W-MSE's `k`-NN: majority vote of the 5 nearest by Euclidean distance between
    /// un-normalised backbone features.
    WmseKnn,
    /// W-MSE's linear evaluation: a linear layer trained with Adam on the precomputed,
    /// un-normalised backbone features ([`linear`]).
    WmseLinear,
    /// The flatness of the instance-discrimination predictions on held-out images
    /// ([`flatness`], the Un-Mix paper's Figure 3).
    Flatness,
}

/// What a protocol returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accuracies (kNN and linear protocols).
    Scores(Scores),
    /// The prediction flatness.
    Flatness(flatness::Flatness),
}

/// What a protocol measured on the test set, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy, for the protocols that rank classes.
    pub top5: Option<f64>,
}

impl Protocol {
    /// What the protocol is, with its parameters, for a results table.
    pub fn describe(self, config: &TrainConfig) -> String {
        match self {
            Protocol::WeightedKnn => format!(
                "weighted kNN (cosine, exp(sim/t), k {}, t {}, {} features)",
                config.eval.knn_k,
                config.eval.knn_t,
                config.eval.features.name()
            ),
            Protocol::WmseKnn => format!(
                "W-MSE k-NN ({WMSE_K}-NN majority vote, Euclidean, un-normalised backbone features)"
            ),
            Protocol::Flatness => {
                let c = flatness::FlatnessConfig::default();
                format!(
                    "flatness (instance discrimination among up to {} held-out images, two \
                     views each by the training augmentation: softmax of cosine / t, t {}, \
                     projection)",
                    c.images, c.temperature
                )
            }
            Protocol::WmseLinear => {
                let c = linear::LinearProbeConfig::default();
                format!(
                    "W-MSE linear (frozen un-normalised backbone features, no augmentation; Adam \
                     lr {} → {} exponential over {} epochs, wd {}, batch {})",
                    c.lr_start, c.lr_end, c.epochs, c.weight_decay, c.batch_size
                )
            }
        }
    }
}

/// W-MSE's `k`.
pub const WMSE_K: usize = 5;

/// What `protocol` measures on a checkpoint, with the config it was trained with;
/// also the config and the training and test set sizes. `save_features` (W-MSE's protocols)
/// writes the features the protocol used.
pub fn evaluate_checkpoint(
    dir: &Path,
    device: Option<&str>,
    protocol: Protocol,
    save_features: Option<&Path>,
) -> Result<(TrainConfig, Outcome, usize, usize), TrainError> {
    let config = checkpoint::config_of(dir)?;
    let device = parse_device(device.unwrap_or(&config.run.device))?;
    let (train_set, test_set) = config.data.load()?;
    let transform = ViewTransform::new(config.data.augmentation.clone())?;
    struct Eval<'a> {
        dir: &'a Path,
        config: &'a TrainConfig,
        sets: (&'a ImageSet, &'a ImageSet),
        transform: &'a ViewTransform,
        device: &'a Device,
        protocol: Protocol,
        save: Option<&'a Path>,
    }
    impl MethodTask for Eval<'_> {
        type Output = Outcome;
        fn run<M: Method>(self, model: M) -> Result<Outcome, TrainError> {
            let model = checkpoint::load_model(self.dir, model)?;
            let (sets, transform, device) = (self.sets, self.transform, self.device);
            let seed = self.config.run.seed;
            Ok(match self.protocol {
                Protocol::WeightedKnn => Outcome::Scores(Scores {
                    top1: knn_top1(&model, self.config, sets, transform, device),
                    top5: None,
                }),
                Protocol::WmseKnn => Outcome::Scores(wmse_scores(
                    &model, sets, transform, None, self.save, device,
                )?),
                Protocol::WmseLinear => Outcome::Scores(wmse_scores(
                    &model,
                    sets,
                    transform,
                    Some(seed),
                    self.save,
                    device,
                )?),
                // The held-out set, with the training augmentation (`transform` is built from
                // `data.augmentation`; `evaluate` is its test-time path).
                Protocol::Flatness => Outcome::Flatness(flatness::flatness(
                    &model,
                    sets.1,
                    transform,
                    &flatness::FlatnessConfig::default(),
                    seed,
                    device,
                )),
            })
        }
    }
    let scores = config.method.build(
        &config.model,
        train_set.len(),
        &device,
        Eval {
            dir,
            config: &config,
            sets: (&train_set, &test_set),
            transform: &transform,
            device: &device,
            protocol,
            save: save_features,
        },
    )?;
    Ok((config, scores, train_set.len(), test_set.len()))
}
