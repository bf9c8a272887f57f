//! Evaluation of a trained encoder: the weighted kNN monitor ([`knn`]), run during training and
//! on a checkpoint; on a checkpoint also W-MSE's 5-NN majority vote ([`wmse_knn`]) and linear
//! evaluation ([`linear`]), and the flatness of its instance-discrimination predictions
//! ([`flatness`]), linear evaluation with train-time augmentation by MoCo's and SwAV's recipes
//! ([`linear_augmented`]) and semi-supervised fine-tuning ([`semi`]), both trained by
//! [`classifier`].

pub mod classifier;
pub mod flatness;
pub mod knn;
pub mod linear;
pub mod linear_augmented;
pub mod semi;
pub mod wmse_knn;

use std::path::{Path, PathBuf};

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
    /// Train solo-learn's online linear probe during pre-training (on detached backbone
    /// features; off by itself when the dataset has no labels).
    pub online_probe: bool,
    /// The online probe's base learning rate (solo-learn's `classifier_lr`), following the
    /// run's schedule.
    pub online_probe_lr: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            knn_k: 200,
            knn_t: 0.1,
            every_epochs: 1,
            features: FeatureKind::Projection,
            online_probe: true,
            online_probe_lr: 0.1,
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
        if self.online_probe_lr.is_nan() || self.online_probe_lr <= 0.0 {
            return Err(TrainError::value(
                "eval.online_probe_lr",
                self.online_probe_lr,
                "expected a positive learning rate",
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
    /// Linear evaluation on the frozen trunk with train-time augmentation, MoCo's
    /// `main_lincls.py` recipe ([`linear_augmented::moco`]).
    LinearMoco,
    /// The same with SwAV's `eval_linear.py` recipe ([`linear_augmented::swav`]).
    LinearSwav,
    /// Semi-supervised fine-tuning of the whole network on a share of the labels ([`semi`]).
    Semi(semi::LabelShare),
}

/// Settings of `unmix eval` beside the protocol.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalOptions {
    /// Also write the features a `wmse-*` protocol used, with the labels, to this safetensors
    /// file (`train/features`, `train/labels`, `test/...`).
    pub save_features: Option<PathBuf>,
    /// Epochs of the trained protocols (`linear`, `linear-swav`, `semi`) instead of the
    /// recipe's, for a quick look; the table says so.
    pub epochs: Option<usize>,
    /// The labelled images of `semi`: a list file of training-image indices instead of the
    /// seeded class-balanced draw ([`semi::read_subset_list`]).
    pub labels_list: Option<PathBuf>,
}

impl EvalOptions {
    /// `recipe` with the epochs override applied (milestones scaled with the epochs, never
    /// before epoch 1: as in the recipes, the first epoch runs at the base rate).
    fn apply(&self, mut recipe: classifier::ClassifierRecipe) -> classifier::ClassifierRecipe {
        if let Some(epochs) = self.epochs {
            let old = recipe.epochs;
            if let classifier::EpochSchedule::Steps { milestones, .. } = &mut recipe.schedule {
                milestones
                    .iter_mut()
                    .for_each(|m| *m = (*m * epochs / old.max(1)).max(1));
            }
            recipe.epochs = epochs;
        }
        recipe
    }

    fn recipe(&self, protocol: Protocol) -> Option<classifier::ClassifierRecipe> {
        Some(self.apply(match protocol {
            Protocol::LinearMoco => linear_augmented::moco(),
            Protocol::LinearSwav => linear_augmented::swav(),
            Protocol::Semi(share) => semi::recipe(share),
            _ => return None,
        }))
    }
}

/// A recipe's settings, for a results table.
fn describe_recipe(r: &classifier::ClassifierRecipe) -> String {
    let schedule = match &r.schedule {
        classifier::EpochSchedule::Steps { milestones, gamma } => format!(
            "×{gamma} at epochs {}",
            milestones
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        classifier::EpochSchedule::Cosine => "cosine to 0".into(),
    };
    let lr = if r.trunk_lr == 0.0 {
        format!("lr {}", r.head_lr)
    } else {
        format!("lr trunk {} / head {}", r.trunk_lr, r.head_lr)
    };
    format!(
        "SGD {lr}, momentum {}, wd {}, {schedule}, {} epochs, batch {}; RRC {}–{} + flip",
        r.momentum, r.weight_decay, r.epochs, r.batch_size, r.crop_scale[0], r.crop_scale[1]
    )
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
        self.describe_with(config, &EvalOptions::default())
    }

    /// [`Self::describe`] with `options` applied (the trained protocols' epochs, the label list).
    pub fn describe_with(self, config: &TrainConfig, options: &EvalOptions) -> String {
        if let Some(r) = options.recipe(self) {
            return match self {
                Protocol::LinearMoco => format!(
                    "linear, MoCo's recipe (frozen trunk in eval mode, head N(0, 0.01); {})",
                    describe_recipe(&r)
                ),
                Protocol::LinearSwav => format!(
                    "linear, SwAV's recipe (frozen trunk in eval mode, head N(0, 0.01); {})",
                    describe_recipe(&r)
                ),
                Protocol::Semi(share) => format!(
                    "semi-supervised fine-tuning, SwAV's recipe ({}; whole network, new head; {})",
                    match &options.labels_list {
                        Some(p) => format!("the labelled images listed in {}", p.display()),
                        None => format!(
                            "{}% of the labels, class-balanced, seed {}",
                            100.0 * share.fraction(),
                            config.run.seed
                        ),
                    },
                    describe_recipe(&r)
                ),
                _ => unreachable!("only the trained protocols have a recipe"),
            };
        }
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
            Protocol::LinearMoco | Protocol::LinearSwav | Protocol::Semi(_) => {
                unreachable!("described by their recipe above")
            }
        }
    }
}

/// W-MSE's `k`.
pub const WMSE_K: usize = 5;

/// What `protocol` measures on a checkpoint, with the config it was trained with;
/// also the config and the training and test set sizes (for `semi`, the labelled images).
pub fn evaluate_checkpoint(
    dir: &Path,
    device: Option<&str>,
    protocol: Protocol,
    options: &EvalOptions,
) -> Result<(TrainConfig, Outcome, usize, usize), TrainError> {
    let save_features = options.save_features.as_deref();
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
        options: &'a EvalOptions,
        labelled: &'a [usize],
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
                Protocol::LinearMoco | Protocol::LinearSwav | Protocol::Semi(_) => {
                    let recipe = self
                        .options
                        .recipe(self.protocol)
                        .expect("a trained protocol");
                    let (train, test) = sets;
                    let labelled = train.subset(self.labelled);
                    let parts = model.backbones().into_iter().map(|(_, r)| r.clone());
                    // Every view has three channels (RGB, Lab or YCbCr; grey repeated).
                    let trunk = classifier::Trunk::new(parts.collect(), 3)?;
                    Outcome::Scores(classifier::train_classifier(
                        &trunk,
                        &labelled,
                        test,
                        train.class_names.len(),
                        &self.config.data.augmentation,
                        &recipe,
                        seed,
                        device,
                    )?)
                }
            })
        }
    }
    if train_set.labels.is_none() || test_set.labels.is_none() {
        return Err(TrainError::value(
            "data.dataset",
            config.data.path.display(),
            "expected labelled training and test images: every protocol scores classes",
        ));
    }
    let labelled: Vec<usize> = match (protocol, &options.labels_list) {
        (Protocol::Semi(_), Some(list)) => semi::read_subset_list(list, train_set.len())?,
        (Protocol::Semi(share), None) => semi::balanced_subset(
            train_set.labels.as_deref().unwrap_or_default(),
            train_set.class_names.len(),
            share.fraction(),
            config.run.seed,
        ),
        _ => (0..train_set.len()).collect(),
    };
    let n_train = labelled.len();
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
            options,
            labelled: &labelled,
        },
    )?;
    Ok((config, scores, n_train, test_set.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--epochs`: MoCo's steps at 60 and 80 of 100 become 6 and 8 of 10, and never epoch 0
    /// (one epoch runs at lr 30, not 0.3).
    #[test]
    fn the_epochs_override_scales_milestones_from_epoch_one() {
        let milestones = |epochs| {
            let options = EvalOptions {
                epochs: Some(epochs),
                ..Default::default()
            };
            let recipe = options.recipe(Protocol::LinearMoco).unwrap();
            assert_eq!(recipe.epochs, epochs);
            match recipe.schedule {
                classifier::EpochSchedule::Steps { milestones, .. } => milestones,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(milestones(10), [6, 8]);
        assert_eq!(milestones(1), [1, 1]);
        let one = EvalOptions {
            epochs: Some(1),
            ..Default::default()
        };
        let recipe = one.recipe(Protocol::LinearMoco).unwrap();
        assert_eq!(recipe.schedule.factor(0, 1), 1.0);
        assert_eq!(EvalOptions::default().recipe(Protocol::WeightedKnn), None);
    }
}
