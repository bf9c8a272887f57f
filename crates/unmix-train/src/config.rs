//! The run configuration (`configs/<dataset>/<method>[_unmix].toml`).
//!
//! Every section denies unknown keys and defaults to the reference hyper-parameters
//! (algorithms.md §1.6A for MoCo on CIFAR). The resolved config is written into every run
//! directory as `config.toml`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use unmix_data::AugmentationConfig;
use unmix_models::{EncoderConfig, HeadConfig, ResNetConfig};
use unmix_ops::UnMixConfig;

use crate::error::TrainError;
use crate::moco::MocoConfig;

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Name, seed, device, output folder.
    #[serde(default)]
    pub run: RunConfig,
    /// Dataset and augmentation.
    pub data: DataConfig,
    /// Backbone and head.
    #[serde(default = "default_model")]
    pub model: EncoderConfig,
    /// The self-supervised method.
    pub method: MethodConfig,
    /// Un-Mix.
    #[serde(default)]
    pub unmix: UnMixConfig,
    /// Optimiser and schedule.
    #[serde(default)]
    pub optim: OptimConfig,
    /// The kNN monitor.
    #[serde(default)]
    pub eval: EvalConfig,
}

fn default_model() -> EncoderConfig {
    // The Un-Mix CIFAR demo: ResNet-18 (CIFAR stem), fc 512→128, split BN with 8 splits.
    EncoderConfig {
        backbone: ResNetConfig {
            bn_splits: 8,
            ..ResNetConfig::resnet18_cifar()
        },
        head: HeadConfig::Linear { out_dim: 128 },
    }
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Run name: the run directory is `<out_dir>/<name>`.
    pub name: String,
    /// Seed of every random choice (initialisation, data order, augmentation, mixing).
    pub seed: u64,
    /// `cpu`, `cuda[:N]` or `wgpu`; `--device` overrides it.
    pub device: String,
    /// Where run directories go.
    pub out_dir: PathBuf,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: "run".into(),
            seed: 0,
            device: "cpu".into(),
            out_dir: "runs".into(),
        }
    }
}

/// Which dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// The Fashion-MNIST subset embedded in `datasets/fashion-mnist`.
    FashionMnist,
    /// CIFAR-10 binary version (`cifar-10-batches-bin/`).
    Cifar10,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The dataset.
    pub dataset: DatasetKind,
    /// Its folder, relative to the working directory.
    pub path: PathBuf,
    /// Use only the first `n` training images of each class (all when absent).
    #[serde(default)]
    pub train_per_class: Option<usize>,
    /// Use only the first `n` test images of each class for evaluation (all when absent).
    #[serde(default)]
    pub test_per_class: Option<usize>,
    /// Threads that build batches ahead of the training step.
    #[serde(default = "one")]
    pub num_workers: usize,
    /// The augmentation of both views.
    #[serde(default)]
    pub augmentation: AugmentationConfig,
}

fn one() -> usize {
    1
}

/// `[method]`: the base method, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MethodConfig {
    /// MoCo v1/v2 (symmetric or asymmetric).
    Moco(MocoConfig),
}

/// Work to do with a built method, whatever its type: how the trainer and the evaluator get a
/// concrete [`Method`](crate::Method) from a config without naming any method.
pub trait MethodTask {
    /// What the task returns.
    type Output;
    /// Runs the task on the freshly built method.
    fn run<M: crate::Method>(self, method: M) -> Result<Self::Output, TrainError>;
}

impl MethodConfig {
    /// Builds the configured method on `device` and hands it to `task`. Adding a method adds
    /// one arm here and nothing in the trainer.
    pub fn build<T: MethodTask>(
        &self,
        encoder: &EncoderConfig,
        device: &burn::prelude::Device,
        task: T,
    ) -> Result<T::Output, TrainError> {
        match self {
            MethodConfig::Moco(m) => task.run(m.init(encoder, device)?),
        }
    }
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// `lr·½(1+cos(π·epoch/epochs))` per epoch, epochs counted from 0 (MoCo `--cos`).
    Cosine,
    /// Constant.
    Constant,
}

/// `[optim]`: SGD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Epochs.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Base learning rate (0.06 for batch 512 in the CIFAR demo).
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Schedule.
    pub schedule: Schedule,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            epochs: 1000,
            batch_size: 512,
            lr: 0.06,
            momentum: 0.9,
            weight_decay: 5e-4,
            schedule: Schedule::Cosine,
        }
    }
}

/// Which features the kNN monitor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// The projection head's output (the MoCo demo's monitor).
    Projection,
    /// The pooled backbone features.
    Backbone,
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

impl TrainConfig {
    /// Reads and validates a TOML file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let config: TrainConfig = toml::from_str(&text).map_err(|e| TrainError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.model.backbone.validate()?;
        self.unmix.validate()?;
        self.data.augmentation.validate()?;
        let o = &self.optim;
        if o.epochs == 0 {
            return Err(TrainError::value("optim.epochs", 0, "expected at least 1"));
        }
        if o.batch_size < 2 {
            return Err(TrainError::value(
                "optim.batch_size",
                o.batch_size,
                "expected at least 2",
            ));
        }
        if !o.batch_size.is_multiple_of(self.model.backbone.bn_splits) {
            return Err(TrainError::value(
                "optim.batch_size",
                o.batch_size,
                "expected a multiple of model.backbone.bn_splits",
            ));
        }
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(TrainError::value(
                "optim.lr",
                o.lr,
                "expected a finite value > 0",
            ));
        }
        if !(0.0..1.0).contains(&o.momentum) {
            return Err(TrainError::value(
                "optim.momentum",
                o.momentum,
                "expected a value in [0, 1)",
            ));
        }
        if o.weight_decay.is_nan() || o.weight_decay < 0.0 {
            return Err(TrainError::value(
                "optim.weight_decay",
                o.weight_decay,
                "expected >= 0",
            ));
        }
        if self.eval.knn_k == 0 || self.eval.knn_t.is_nan() || self.eval.knn_t <= 0.0 {
            return Err(TrainError::value(
                "eval.knn_k / eval.knn_t",
                format!("{} / {}", self.eval.knn_k, self.eval.knn_t),
                "expected k >= 1 and t > 0",
            ));
        }
        match &self.method {
            MethodConfig::Moco(m) => m.validate(o.batch_size)?,
        }
        Ok(())
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_in_configs_parses_and_validates() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut seen = 0;
        for dataset in std::fs::read_dir(&root).unwrap() {
            for file in std::fs::read_dir(dataset.unwrap().path()).unwrap() {
                let p = file.unwrap().path();
                if p.extension().is_some_and(|e| e == "toml") {
                    TrainConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
                    seen += 1;
                }
            }
        }
        assert!(seen >= 4, "{seen} configs");
    }

    #[test]
    fn defaults_are_the_cifar_demo_and_round_trip() {
        let c: TrainConfig = toml::from_str(
            "[data]\ndataset = \"cifar10\"\npath = \"x\"\n[method]\nkind = \"moco\"\n",
        )
        .unwrap();
        let MethodConfig::Moco(m) = &c.method;
        assert_eq!(
            (m.queue_len, m.momentum, m.temperature, m.symmetric),
            (4096, 0.99, 0.1, true)
        );
        assert_eq!(
            (c.optim.lr, c.optim.batch_size, c.optim.weight_decay),
            (0.06, 512, 5e-4)
        );
        assert_eq!(c.model.backbone.bn_splits, 8);
        assert_eq!((c.unmix.p_global, c.unmix.beta), (0.5, 1.0));
        let again: TrainConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_keys_are_rejected_in_every_section() {
        for (section, key) in [
            ("[run]", "seeed = 1"),
            ("[optim]", "learning_rate = 0.1"),
            ("[unmix]", "prob = 0.5"),
            ("[eval]", "k = 5"),
        ] {
            let text = format!(
                "[data]\ndataset = \"cifar10\"\npath = \"x\"\n[method]\nkind = \"moco\"\n{section}\n{key}\n"
            );
            let err = toml::from_str::<TrainConfig>(&text)
                .unwrap_err()
                .to_string();
            let name = key.split(' ').next().unwrap();
            assert!(err.contains(name), "{section}: {err}");
        }
        let err = toml::from_str::<TrainConfig>(
            "[data]\ndataset = \"cifar10\"\npath = \"x\"\n[method]\nkind = \"moco\"\nqueue = 5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("queue"), "{err}");
    }
}
