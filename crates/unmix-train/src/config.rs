//! The run configuration (`configs/<dataset>/<method>[_unmix].toml`).
//!
//! Every section denies unknown keys and defaults to the reference hyper-parameters
//! (algorithms.md §1.6A for MoCo on CIFAR). The resolved config is written into every run
//! directory as `config.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use unmix_data::DataConfig;
use unmix_models::{EncoderConfig, HeadConfig, ResNetConfig};
use unmix_ops::UnMixConfig;

use crate::error::{AtKey, TrainError};
use crate::eval::EvalConfig;
use crate::methods::MethodConfig;
use crate::optim::OptimConfig;

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
            stem_init: Some(unmix_models::ConvInit::PytorchDefault),
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
    /// Also log the loss of every `n`-th step to `steps.csv` (0: no per-step log).
    pub log_every_steps: u64,
    /// Sum the loss on the device and read it back every `n` steps (and at each epoch's end):
    /// a read waits for the device, so on a GPU reading every step stalls its queue. The
    /// progress line shows the window's mean; a NaN stops the run at the window's end, before
    /// the epoch's checkpoint. Steps `steps.csv` logs are read on their own.
    pub read_loss_every_steps: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: "run".into(),
            seed: 0,
            device: "cpu".into(),
            out_dir: "runs".into(),
            log_every_steps: 0,
            read_loss_every_steps: 16,
        }
    }
}

impl TrainConfig {
    /// Reads and validates a TOML file (following `extends`); errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        Self::load_with(path, &[])
    }

    /// Reads a TOML file, following `extends = "base.toml"` (a path relative to the file: the
    /// base is read first and this file's tables are merged over it, key by key; a table whose
    /// `kind` differs replaces the base's), applies `overrides` (`key=value` with a dotted key
    /// and a TOML value, as `cargo xtask train --set optim.lr=0.1`), then deserialises and
    /// validates the result exactly as a file.
    pub fn load_with(path: &Path, overrides: &[String]) -> Result<Self, TrainError> {
        let config_error = |message: String| TrainError::Config {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| config_error(e.to_string()))?;
        let config: TrainConfig = if !table.contains_key("extends") && overrides.is_empty() {
            // Parsed from the text, so errors point at the line.
            toml::from_str(&text).map_err(|e| config_error(e.to_string()))?
        } else {
            let mut table = compose(path, table, &mut Vec::new())?;
            for spec in overrides {
                apply_override(&mut table, spec)?;
            }
            let with = if overrides.is_empty() {
                String::new()
            } else {
                format!(" (with --set {})", overrides.join(" --set "))
            };
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| config_error(format!("{}{with}", e.message())))?
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), TrainError> {
        // The library crates name their own fields; `at` puts them under their tables here.
        self.model.backbone.validate().at("model.backbone")?;
        self.model.head.validate().at("model.head")?;
        self.unmix.validate().at("unmix")?;
        self.data.augmentation.validate().at("data.augmentation")?;
        self.data
            .image_mixture
            .validate()
            .at("data.image_mixture")?;
        self.optim.validate()?;
        let batch = self.optim.batch_size;
        if !batch.is_multiple_of(self.model.backbone.bn_splits) {
            return Err(TrainError::value(
                "optim.batch_size",
                batch,
                "expected a multiple of model.backbone.bn_splits",
            ));
        }
        self.eval.validate()?;
        if self.eval.features == crate::eval::FeatureKind::MemoryBank
            && !self.method.has_memory_bank()
        {
            return Err(TrainError::value(
                "eval.features",
                "memory_bank",
                "expected a memory-bank method (invariance_propagation, insdis, cmc); use \
                 projection or backbone",
            ));
        }
        self.method.validate(&self.model, batch)
    }

    /// Every value of the config under its dotted key (`optim.lr`, `method.queue_len`), in key
    /// order; an array is one value.
    pub fn leaves(&self) -> BTreeMap<String, toml::Value> {
        fn walk(prefix: &str, value: toml::Value, out: &mut BTreeMap<String, toml::Value>) {
            match value {
                toml::Value::Table(table) => {
                    for (k, v) in table {
                        let key = if prefix.is_empty() {
                            k
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&key, v, out);
                    }
                }
                leaf => {
                    out.insert(prefix.to_string(), leaf);
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(
            "",
            toml::Value::try_from(self).expect("config serialises"),
            &mut out,
        );
        out
    }

    /// Every key whose value differs between `self` and `other`, as `key: a -> b`, in key
    /// order; a key only one of them has shows `(absent)` on the other side.
    pub fn differences(&self, other: &TrainConfig) -> Vec<String> {
        let (a, b) = (self.leaves(), other.leaves());
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        let show = |v: Option<&toml::Value>| v.map_or("(absent)".into(), |v| v.to_string());
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| format!("{k}: {} -> {}", show(a.get(k)), show(b.get(k))))
            .collect()
    }

    /// The differences between the config a checkpoint recorded and the one a resumed run is
    /// given that would change the run; what may change on resume (more `optim.epochs`, the
    /// evaluation schedule `eval.*`, where and on what it runs, the per-step log, loader threads)
    /// is left out.
    pub fn resume_conflicts(&self, now: &TrainConfig) -> Vec<String> {
        const MAY_CHANGE: [&str; 7] = [
            "optim.epochs:",
            "eval.",
            "run.device:",
            "run.out_dir:",
            "run.log_every_steps:",
            "run.read_loss_every_steps:",
            "data.num_workers:",
        ];
        self.differences(now)
            .into_iter()
            .filter(|d| !MAY_CHANGE.iter().any(|k| d.starts_with(k)))
            .collect()
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

/// `table` (read from `path`) over the chain of files it extends.
fn compose(
    path: &Path,
    mut table: toml::Table,
    seen: &mut Vec<PathBuf>,
) -> Result<toml::Table, TrainError> {
    let config_error = |message: String| TrainError::Config {
        path: path.to_path_buf(),
        message,
    };
    seen.push(path.to_path_buf());
    let Some(base) = table.remove("extends") else {
        return Ok(table);
    };
    let base = base
        .as_str()
        .ok_or_else(|| config_error("extends: expected a file name (a string)".into()))?;
    let base_path = path.parent().unwrap_or(Path::new(".")).join(base);
    let same =
        |p: &PathBuf| std::fs::canonicalize(p).ok() == std::fs::canonicalize(&base_path).ok();
    if seen.iter().any(same) {
        return Err(config_error(format!(
            "extends = {base:?}: a cycle ({} -> {})",
            seen.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" -> "),
            base_path.display()
        )));
    }
    let text = std::fs::read_to_string(&base_path).map_err(|e| TrainError::io(&base_path, e))?;
    let base_table: toml::Table = toml::from_str(&text).map_err(|e| TrainError::Config {
        path: base_path.clone(),
        message: e.to_string(),
    })?;
    let mut merged = compose(&base_path, base_table, seen)?;
    merge(&mut merged, table);
    Ok(merged)
}

/// `over` merged into `base`: tables key by key, anything else replaced. A table that names
/// another `kind` (another method, optimiser or head) replaces the base's whole.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o))
                if o.get("kind").is_none_or(|k| b.get("kind") == Some(k)) =>
            {
                merge(b, o)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Sets `key=value` (a dotted key; the value as TOML, or as a string when it does not parse as
/// one) in `table`.
fn apply_override(table: &mut toml::Table, spec: &str) -> Result<(), TrainError> {
    let bad = |expected: &str| TrainError::value("--set", spec, expected);
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected KEY=VALUE, e.g. --set optim.lr=0.1"))?;
    let (key, raw) = (key.trim(), raw.trim());
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad("expected a dotted key such as optim.lr"));
    }
    let (last, tables) = parts.split_last().expect("split gives at least one part");
    let mut t = table;
    for part in tables {
        t = t
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| bad(&format!("`{part}` is a value, not a table")))?;
    }
    t.insert(last.to_string(), value);
    Ok(())
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

    /// The reference code bases that build a torchvision ResNet-18 and then swap in the CIFAR
    /// stem (the Un-Mix CIFAR demo's MoCo; htdt's SimCLR and BYOL, `get_model`) do so after
    /// torchvision's Kaiming-normal init loop, so their stem keeps PyTorch's default
    /// initialisation. With Kaiming normal there the reference itself learned 0.7 kNN points
    /// less over 10 epochs (docs/methods.md, "SimCLR from the same initial weights").
    #[test]
    fn recipes_whose_reference_replaces_the_stem_keep_its_default_initialisation() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for dataset in ["cifar10", "cifar100"] {
            for method in ["moco", "simclr", "byol"] {
                for suffix in ["", "_unmix"] {
                    let p = root.join(format!("{dataset}/{method}{suffix}.toml"));
                    let c = TrainConfig::load(&p).unwrap();
                    assert_eq!(
                        c.model.backbone.stem_init,
                        Some(unmix_models::ConvInit::PytorchDefault),
                        "{}",
                        p.display()
                    );
                }
            }
        }
    }

    /// Invariance Propagation's `ResNet18_cifar` has no init loop, so every convolution keeps
    /// PyTorch's default; with torchvision's instead, the reference itself stays at the
    /// equal-similarity point after propagation starts on the embedded set (docs/methods.md,
    /// "On the whole embedded set").
    #[test]
    fn invariance_propagation_initialises_as_its_reference() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for dataset in ["fashion_mnist", "cifar10", "cifar100"] {
            for suffix in ["", "_unmix"] {
                let p = root.join(format!("{dataset}/invariance_propagation{suffix}.toml"));
                let b = TrainConfig::load(&p).unwrap().model.backbone;
                assert_eq!(
                    (b.conv_init, b.stem_init),
                    (unmix_models::ConvInit::PytorchDefault, None),
                    "{}",
                    p.display()
                );
            }
        }
    }

    #[test]
    fn the_memory_bank_monitor_needs_a_memory_bank() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/fashion_mnist");
        let mut moco = TrainConfig::load(&p.join("moco.toml")).unwrap();
        moco.eval.features = crate::eval::FeatureKind::MemoryBank;
        let e = moco.validate().unwrap_err().to_string();
        assert!(e.starts_with("eval.features = memory_bank"), "{e}");
        let mut insdis = TrainConfig::load(&p.join("insdis.toml")).unwrap();
        insdis.eval.features = crate::eval::FeatureKind::MemoryBank;
        insdis.validate().unwrap();
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
            Some(unmix_models::ConvInit::PytorchDefault)
        );
        assert_eq!(
            c.optim.optimizer,
            crate::optim::OptimizerConfig::Sgd { momentum: 0.9 }
        );
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

    /// Resuming may extend the run or change its evaluation, nothing that alters what it
    /// learns.
    #[test]
    fn resume_conflicts_name_the_changed_keys() {
        let base: TrainConfig = toml::from_str(
            "[data]\ndataset = \"cifar10\"\npath = \"x\"\n[method]\nkind = \"moco\"\n",
        )
        .unwrap();
        let mut now = base.clone();
        now.optim.epochs += 10;
        now.eval.every_epochs = 5;
        now.run.device = "cuda".into();
        assert!(base.resume_conflicts(&now).is_empty());
        now.unmix.enabled = !base.unmix.enabled;
        now.optim.lr = 0.1;
        let conflicts = base.resume_conflicts(&now);
        assert_eq!(conflicts.len(), 2, "{conflicts:?}");
        assert!(
            conflicts[0].starts_with("optim.lr: 0.06 -> 0.1"),
            "{conflicts:?}"
        );
        assert!(conflicts[1].starts_with("unmix.enabled"), "{conflicts:?}");
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("unmix-config-{name}-{}", std::process::id()))
    }

    /// A `_unmix` file is its base plus `[unmix]`: the composed config equals the base with
    /// only the keys it sets changed.
    #[test]
    fn extends_merges_over_the_base_and_the_unmix_files_differ_only_there() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for dataset in ["fashion_mnist", "cifar10", "cifar100"] {
            for method in ["moco", "simclr", "byol", "swav"] {
                let dir = root.join(dataset);
                let base = TrainConfig::load(&dir.join(format!("{method}.toml"))).unwrap();
                let unmix = TrainConfig::load(&dir.join(format!("{method}_unmix.toml"))).unwrap();
                let diff = base.differences(&unmix);
                assert_eq!(diff.len(), 2, "{dataset}/{method}: {diff:?}");
                assert!(diff[0].starts_with("run.name"), "{diff:?}");
                assert_eq!(diff[1], "unmix.enabled: false -> true");
            }
        }
    }

    /// Leaves are the dotted keys with their values; a key of one method only is `(absent)` in
    /// the other's differences.
    #[test]
    fn leaves_and_differences_name_dotted_keys() {
        let parse = |method: &str| -> TrainConfig {
            toml::from_str(&format!(
                "[data]\ndataset = \"cifar10\"\npath = \"x\"\n[method]\n{method}\n"
            ))
            .unwrap()
        };
        let moco = parse("kind = \"moco\"\nqueue_len = 512");
        let leaves = moco.leaves();
        assert_eq!(leaves["method.queue_len"], toml::Value::Integer(512));
        assert_eq!(
            leaves["data.dataset"],
            toml::Value::String("cifar10".into())
        );
        assert!(!leaves.keys().any(|k| k == "method" || k.ends_with('.')));
        let diff = moco.differences(&parse("kind = \"simclr\""));
        assert!(
            diff.contains(&"method.kind: \"moco\" -> \"simclr\"".to_string()),
            "{diff:?}"
        );
        assert!(
            diff.contains(&"method.queue_len: 512 -> (absent)".to_string()),
            "{diff:?}"
        );
        assert!(moco.differences(&moco).is_empty());
    }

    #[test]
    fn extends_follows_chains_replaces_other_kinds_and_refuses_cycles() {
        let dir = tmp("extends");
        write(
            &dir,
            "a.toml",
            "[data]\ndataset = \"cifar10\"\npath = \"x\"\n[method]\nkind = \"moco\"\nqueue_len = 512\n",
        );
        write(&dir, "b.toml", "extends = \"a.toml\"\n[optim]\nlr = 0.1\n");
        let c = write(
            &dir,
            "c.toml",
            "extends = \"b.toml\"\n[method]\nkind = \"simclr\"\n",
        );
        let config = TrainConfig::load(&c).unwrap();
        assert_eq!(config.optim.lr, 0.1);
        // queue_len belongs to MoCo: a SimCLR table replaces the MoCo one whole.
        assert!(
            matches!(config.method, MethodConfig::Simclr(_)),
            "{:?}",
            config.method
        );
        let loop_a = write(&dir, "loop_a.toml", "extends = \"loop_b.toml\"\n");
        write(&dir, "loop_b.toml", "extends = \"loop_a.toml\"\n");
        let err = TrainConfig::load(&loop_a).unwrap_err().to_string();
        assert!(err.contains("cycle"), "{err}");
    }

    /// `--set` overrides any key, and is validated and reported as the file is.
    #[test]
    fn overrides_set_keys_and_are_validated() {
        let dir = tmp("set");
        let p = write(
            &dir,
            "base.toml",
            "[data]\ndataset = \"cifar10\"\npath = \"x\"\n[method]\nkind = \"moco\"\n",
        );
        let set = |specs: &[&str]| {
            let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
            TrainConfig::load_with(&p, &specs)
        };
        let c = set(&[
            "optim.lr=0.1",
            "unmix.enabled=false",
            "run.name=other",
            "data.path=/d",
        ])
        .unwrap();
        assert_eq!((c.optim.lr, c.unmix.enabled), (0.1, false));
        assert_eq!(
            (c.run.name.as_str(), c.data.path.as_path()),
            ("other", Path::new("/d"))
        );
        let err = set(&["optim.lr=-1"]).unwrap_err().to_string();
        assert!(
            err.contains("optim.lr = -1") && err.contains("> 0"),
            "{err}"
        );
        let err = set(&["optim.learning_rate=0.1"]).unwrap_err().to_string();
        assert!(
            err.contains("learning_rate") && err.contains("--set"),
            "{err}"
        );
        let err = set(&["optim.lr"]).unwrap_err().to_string();
        assert!(err.contains("KEY=VALUE"), "{err}");
        let err = set(&["optim.lr=0.1", "optim.lr.x=1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`lr` is a value"), "{err}");
    }

    /// The library crates name their own fields (`UnMixConfig.p_global`); errors reaching the
    /// user of the config file name the file's keys instead.
    #[test]
    fn library_setting_errors_name_the_config_keys() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/fashion_mnist/byol.toml");
        for (set, said) in [
            (
                "unmix.p_global=1.5",
                "unmix.p_global = 1.5: expected a probability",
            ),
            (
                "unmix.beta=0.0",
                "unmix.beta = 0: expected a finite value > 0",
            ),
            (
                "model.backbone.width=0",
                "model.backbone.width = 0: expected a positive",
            ),
            (
                "model.backbone.layers=[2, 2]",
                "model.backbone.layers = [2, 2]: expected four",
            ),
            (
                "model.head={kind = \"mlp\", hidden_dim = 0, out_dim = 256}",
                "model.head.hidden_dim = 0: expected a positive",
            ),
            (
                "method.predictor={kind = \"linear\", out_dim = 0}",
                "method.predictor.out_dim = 0: expected a positive",
            ),
            (
                "data.augmentation.grayscale_prob=2.0",
                "data.augmentation.grayscale_prob = 2: expected a probability",
            ),
            (
                "data.augmentation.crop_scale=[0.5, 0.2]",
                "data.augmentation.crop_scale = [0.5, 0.2]: expected [lo, hi]",
            ),
            (
                "data.image_mixture.g_prob=1.5",
                "data.image_mixture.g_prob = 1.5: expected a probability",
            ),
            (
                "data.image_mixture.area_ratio_range=[0.4, 0.02]",
                "data.image_mixture.area_ratio_range = [0.4, 0.02]: expected 0 < low < high <= 1",
            ),
        ] {
            let err = TrainConfig::load_with(&p, &[set.to_string()])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(said), "--set {set}: {err}");
            assert!(!err.contains("Config."), "--set {set}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected_in_every_section() {
        for (section, key) in [
            ("[run]", "seeed = 1"),
            ("[optim]", "learning_rate = 0.1"),
            ("[unmix]", "prob = 0.5"),
            ("[eval]", "k = 5"),
            ("[data.image_mixture]", "type = \"IM\""),
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
