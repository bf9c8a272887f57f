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

use crate::byol::ByolConfig;
use crate::error::TrainError;
use crate::moco::MocoConfig;
use crate::simclr::SimclrConfig;
use crate::swav::SwavConfig;

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
    // The Un-Mix CIFAR demo: ResNet-18 (CIFAR stem, kept at PyTorch's default initialisation),
    // fc 512→128, split BN with 8 splits.
    EncoderConfig {
        backbone: ResNetConfig {
            bn_splits: 8,
            stem_init: unmix_models::StemInit::PytorchDefault,
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
    /// CIFAR-100 binary version (`cifar-100-binary/`: `train.bin`, `test.bin`).
    Cifar100,
}

/// Which CIFAR-100 labels the kNN monitor scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cifar100Labels {
    /// The 100 classes (the published numbers).
    #[default]
    Fine,
    /// The 20 super-classes.
    Coarse,
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
    /// CIFAR-100 only: fine or coarse labels.
    #[serde(default)]
    pub cifar100_labels: Cifar100Labels,
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
    /// SimCLR.
    Simclr(SimclrConfig),
    /// BYOL.
    Byol(ByolConfig),
    /// SwAV.
    Swav(SwavConfig),
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
            MethodConfig::Simclr(m) => task.run(m.init(encoder, device)?),
            MethodConfig::Byol(m) => task.run(m.init(encoder, device)?),
            MethodConfig::Swav(m) => task.run(m.init(encoder, device)?),
        }
    }

    /// Checks the method's settings against the rest of the config.
    pub fn validate(&self, encoder: &EncoderConfig, batch_size: usize) -> Result<(), TrainError> {
        match self {
            MethodConfig::Moco(m) => m.validate(batch_size, encoder.backbone.bn_splits),
            MethodConfig::Simclr(m) => m.validate(),
            MethodConfig::Byol(m) => m.validate(encoder),
            MethodConfig::Swav(m) => m.validate(batch_size),
        }
    }
}

/// Learning-rate schedule (after any warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// `lr·½(1+cos(π·epoch/epochs))` per epoch, epochs counted from 0 (MoCo `--cos`, the CIFAR
    /// demo).
    Cosine,
    /// Cosine from `lr` to `min_lr` per step over the steps after warm-up (solo-learn's
    /// `warmup_cosine`, SwAV).
    CosineStep,
    /// `lr·gamma^k` after the `k`-th of `milestones` (MoCo v1: ×0.1 at 120 and 160; htdt:
    /// ×0.2 at E−50 and E−25).
    Step,
    /// Constant.
    Constant,
}

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// SGD with momentum and L2 weight decay (MoCo).
    Sgd,
    /// LARS: SGD with a layer-wise trust ratio (solo-learn SimCLR/BYOL/SwAV; SwAV's LARC).
    Lars,
    /// Adam with L2 weight decay added to the gradient (torch `Adam(weight_decay=…)`, the
    /// W-MSE/htdt code of SimCLR and BYOL).
    Adam,
}

/// Scaling of `lr` by the batch size, relative to `reference_batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrScaling {
    /// `lr` as written.
    None,
    /// `lr·batch/reference_batch` (Goyal et al.; SimCLR, BYOL, SwAV papers).
    Linear,
    /// `lr·sqrt(batch/reference_batch)` (SimCLR's small-batch LARS rule).
    Sqrt,
}

/// `[optim]`: optimiser, learning rate and its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Epochs.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Which optimiser.
    pub optimizer: OptimizerKind,
    /// Base learning rate (0.06 for batch 512 in the CIFAR demo), before `lr_scaling`.
    pub lr: f64,
    /// Batch-size scaling of `lr`, logged at the start of a run.
    pub lr_scaling: LrScaling,
    /// The batch size `lr` is quoted for (256).
    pub reference_batch: usize,
    /// SGD/LARS momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Schedule after warm-up.
    pub schedule: Schedule,
    /// Linear warm-up over this many epochs (solo-learn 10, SwAV CIFAR 5)...
    pub warmup_epochs: f64,
    /// ...plus this many steps (htdt: 500 iterations).
    pub warmup_steps: usize,
    /// Learning rate at the first warm-up step (solo-learn 3e-5; SwAV 0).
    pub warmup_start_lr: f64,
    /// Final learning rate of `cosine_step` (SwAV CIFAR 0.0006).
    pub min_lr: f64,
    /// Epochs at which `step` multiplies by `gamma`.
    pub milestones: Vec<usize>,
    /// Factor of `step`.
    pub gamma: f64,
    /// LARS trust coefficient η.
    pub lars_eta: f64,
    /// LARS: clip the adaptive rate to 1 relative to the learning rate.
    pub lars_clip: bool,
    /// LARS: no adaptation or decay for biases and norm parameters.
    pub lars_exclude_bias_and_norm: bool,
    /// Adam's β₁, β₂.
    pub adam_betas: [f64; 2],
    /// Adam's ε, added to `sqrt(v̂)`: PyTorch's 1e-8, which the references use (Burn's own
    /// default is 1e-5).
    pub adam_eps: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            epochs: 1000,
            batch_size: 512,
            optimizer: OptimizerKind::Sgd,
            lr: 0.06,
            lr_scaling: LrScaling::None,
            reference_batch: 256,
            momentum: 0.9,
            weight_decay: 5e-4,
            schedule: Schedule::Cosine,
            warmup_epochs: 0.0,
            warmup_steps: 0,
            warmup_start_lr: 0.0,
            min_lr: 0.0,
            milestones: Vec::new(),
            gamma: 0.1,
            lars_eta: 0.02,
            lars_clip: true,
            lars_exclude_bias_and_norm: true,
            adam_betas: [0.9, 0.999],
            adam_eps: 1e-8,
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
        let positive = |key: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(TrainError::value(key, v, "expected a finite value > 0"))
            }
        };
        let non_negative = |key: &'static str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(TrainError::value(key, v, "expected a finite value >= 0"))
            }
        };
        positive("optim.reference_batch", o.reference_batch as f64)?;
        positive("optim.gamma", o.gamma)?;
        positive("optim.lars_eta", o.lars_eta)?;
        non_negative("optim.warmup_epochs", o.warmup_epochs)?;
        non_negative("optim.warmup_start_lr", o.warmup_start_lr)?;
        non_negative("optim.min_lr", o.min_lr)?;
        positive("optim.adam_eps", o.adam_eps)?;
        if o.adam_betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return Err(TrainError::value(
                "optim.adam_betas",
                format!("{:?}", o.adam_betas),
                "expected two values in [0, 1)",
            ));
        }
        self.method.validate(&self.model, o.batch_size)
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
        assert!(seen >= 30, "{seen} configs");
    }

    #[test]
    fn defaults_are_the_cifar_demo_and_round_trip() {
        let c: TrainConfig = toml::from_str(
            "[data]\ndataset = \"cifar10\"\npath = \"x\"\n[method]\nkind = \"moco\"\n",
        )
        .unwrap();
        let MethodConfig::Moco(m) = &c.method else {
            panic!("{:?}", c.method)
        };
        assert_eq!(
            (m.queue_len, m.momentum, m.temperature, m.symmetric),
            (4096, 0.99, 0.1, true)
        );
        assert_eq!(
            (c.optim.lr, c.optim.batch_size, c.optim.weight_decay),
            (0.06, 512, 5e-4)
        );
        assert_eq!(c.model.backbone.bn_splits, 8);
        assert_eq!(
            c.model.backbone.stem_init,
            unmix_models::StemInit::PytorchDefault
        );
        assert_eq!(c.optim.adam_eps, 1e-8);
        assert_eq!((c.unmix.p_global, c.unmix.beta), (0.5, 1.0));
        let again: TrainConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(again, c);
    }

    /// Shuffle-BN with one set of batch statistics would shuffle for nothing: a config error
    /// naming the key and the way out.
    #[test]
    fn shuffle_bn_without_split_batch_norm_is_an_error() {
        let text = |splits: usize| {
            format!(
                "[data]\ndataset = \"cifar10\"\npath = \"x\"\n[model.backbone]\nlayers = [2, 2, 2, 2]\n\
                 width = 8\nstem = \"cifar\"\nbn_splits = {splits}\n[model.head]\nkind = \"linear\"\n\
                 out_dim = 16\n[method]\nkind = \"moco\"\nshuffle_bn = true\n"
            )
        };
        let one: TrainConfig = toml::from_str(&text(1)).unwrap();
        let err = one.validate().unwrap_err().to_string();
        assert!(
            err.contains("method.shuffle_bn") && err.contains("bn_splits"),
            "{err}"
        );
        let eight: TrainConfig = toml::from_str(&text(8)).unwrap();
        eight.validate().unwrap();
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
