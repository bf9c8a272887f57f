//! A [`ResNet`]'s weights under torchvision's parameter names, so a trained backbone can leave
//! (safetensors that `torchvision.models.resnet18()` loads) and weights trained elsewhere can
//! arrive (safetensors, or PyTorch `.pt` / `.pth` checkpoints), both through Burn's store
//! (`burn::store`).
//!
//! Our module paths already follow torchvision's layout (`layer2.0.conv1.weight`); three
//! spellings differ and are renamed on the way out and back: batch norm's `gamma` / `beta`
//! (torchvision `weight` / `bias`) and the shortcut's `downsample.conv` / `downsample.bn`
//! (torchvision's `nn.Sequential`: `downsample.0` / `downsample.1`). Batch norm's
//! `num_batches_tracked` is not written: PyTorch's `load_state_dict` fills it in when a state
//! dict has none (`_NormBase._load_from_state_dict`), and it only matters with `momentum=None`.

use std::path::{Path, PathBuf};

use burn::store::{ApplyResult, KeyRemapper, ModuleSnapshot, PytorchStore, SafetensorsStore};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::resnet::ResNet;

/// Where a backbone's starting weights come from: `[model.backbone.pretrained]`.
///
/// ```toml
/// [model.backbone.pretrained]
/// path = "resnet18.safetensors"      # or a PyTorch .pt / .pth checkpoint
/// key_prefix = "module.encoder_q."   # optional: the trunk's prefix inside the file
/// top_level_key = "state_dict"       # optional (.pt / .pth): the dictionary holding the tensors
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainedWeights {
    /// A safetensors file (`.safetensors`) or a PyTorch checkpoint (any other extension).
    pub path: PathBuf,
    /// Prefix of the trunk's names inside the file, removed before matching (`backbone.`,
    /// `module.encoder_q.`); tensors outside it are ignored.
    #[serde(default)]
    pub key_prefix: String,
    /// PyTorch checkpoints only: the key of the dictionary that holds the tensors
    /// (`state_dict` in MoCo's and SwAV's checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_level_key: Option<String>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// Tensors copied into the ResNet.
    pub loaded: usize,
    /// Tensors of the file that are not part of a ResNet trunk (a classifier `fc`, a projection
    /// head, a momentum encoder, `num_batches_tracked`), by their name in the file.
    pub ignored: Vec<String>,
}

/// Our name for one of the ResNet's tensors → torchvision's (what [`save_torchvision`] writes).
///
/// ```
/// use unmix_models::torchvision_name;
/// assert_eq!(torchvision_name("layer2.0.downsample.bn.gamma"), "layer2.0.downsample.1.weight");
/// assert_eq!(torchvision_name("bn1.running_var"), "bn1.running_var");
/// ```
pub fn torchvision_name(ours: &str) -> String {
    OURS_TO_TORCHVISION
        .iter()
        .fold(ours.to_string(), |name, (from, to)| {
            Regex::new(from)
                .expect("valid pattern")
                .replace_all(&name, *to)
                .into_owned()
        })
}

/// Ours → torchvision, as regular expressions applied in order (the export's key remapping and
/// [`torchvision_name`]).
const OURS_TO_TORCHVISION: [(&str, &str); 4] = [
    (r"(^|\.)downsample\.conv\.", "${1}downsample.0."),
    (r"(^|\.)downsample\.bn\.", "${1}downsample.1."),
    (r"\.gamma$", ".weight"),
    (r"\.beta$", ".bias"),
];

/// torchvision → ours. A batch norm is `bn1`/`bn2`/`bn3` or a shortcut's second module, so its
/// `weight` / `bias` become `gamma` / `beta`; convolutions keep `weight`.
const TORCHVISION_TO_OURS: [(&str, &str); 4] = [
    (r"(^|\.)downsample\.0\.", "${1}downsample.conv."),
    (r"(^|\.)downsample\.1\.", "${1}downsample.bn."),
    (r"(^|\.)(bn\d|downsample\.bn)\.weight$", "${1}${2}.gamma"),
    (r"(^|\.)(bn\d|downsample\.bn)\.bias$", "${1}${2}.beta"),
];

fn weights_error(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Weights {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes `resnet`'s parameters and batch-norm statistics to a safetensors file under
/// torchvision's names (f32, PyTorch's layout), with the metadata `format = "pt"` that
/// `safetensors.torch` expects.
///
/// In PyTorch (CIFAR-stem models swap torchvision's stem for theirs first):
///
/// ```python
/// import torch, torchvision
/// from safetensors.torch import load_file
/// model = torchvision.models.resnet18()
/// model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)  # CIFAR stem only
/// model.maxpool = torch.nn.Identity()                        # CIFAR stem only
/// model.fc = torch.nn.Identity()                             # the pooled 512-d features
/// model.load_state_dict(load_file("backbone.safetensors"))
/// ```
///
/// Round trip in Rust:
///
/// ```
/// use burn::prelude::*;
/// use unmix_models::{ResNetConfig, load_torchvision, save_torchvision};
///
/// let device = Device::flex();
/// let config = ResNetConfig { width: 2, ..ResNetConfig::resnet18_cifar() };
/// let path = std::env::temp_dir().join("unmix-doc-resnet18-w2.safetensors");
/// save_torchvision(&config.init(&device).unwrap(), &path).unwrap();
/// let (_resnet, report) = load_torchvision(config.init(&device).unwrap(), &path, "", None).unwrap();
/// assert_eq!(report.loaded, 100); // 20 convolutions, 20 batch norms × 4 tensors
/// ```
pub fn save_torchvision(resnet: &ResNet, path: &Path) -> Result<(), ModelError> {
    // Fold any pending running-statistics update into the values written.
    crate::sync_running_stats(resnet);
    let mut store = SafetensorsStore::from_file(path)
        .clear_metadata()
        .metadata("format", "pt")
        .metadata("producer", "unmix")
        .skip_enum_variants(true)
        .overwrite(true)
        .remap(KeyRemapper::from_patterns(OURS_TO_TORCHVISION.to_vec()).expect("valid patterns"));
    resnet
        .save_into(&mut store)
        .map_err(|e| weights_error(path, e.to_string()))
}

/// Loads torchvision-named ResNet weights from `path` into `resnet` (same architecture): a
/// safetensors file (`.safetensors`) or a PyTorch checkpoint (any other extension; a dictionary
/// of tensors, or one under `top_level_key`). Names are matched after removing `key_prefix`.
///
/// Every parameter and running statistic of `resnet` must be found with its shape, and every
/// trunk tensor of the file (`conv1`, `bn1`, `layer1`–`layer4`) must have a place in `resnet`;
/// otherwise the error names the tensors. Other tensors (`fc`, heads, `num_batches_tracked`) are
/// listed in the report and left alone.
pub fn load_torchvision(
    mut resnet: ResNet,
    path: &Path,
    key_prefix: &str,
    top_level_key: Option<&str>,
) -> Result<(ResNet, ImportReport), ModelError> {
    if !path.is_file() {
        return Err(weights_error(path, "no such file"));
    }
    let mut remap = Vec::new();
    if !key_prefix.is_empty() {
        remap.push((format!("^{}", regex::escape(key_prefix)), String::new()));
    }
    remap.extend(TORCHVISION_TO_OURS.map(|(a, b)| (a.to_string(), b.to_string())));
    let remapper = KeyRemapper::from_patterns(remap).expect("valid patterns");
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let result = if is_safetensors {
        let mut store = SafetensorsStore::from_file(path)
            .allow_partial(true)
            .validate(false)
            .skip_enum_variants(true)
            .remap(remapper);
        resnet.load_from(&mut store).map_err(|e| e.to_string())
    } else {
        let mut store = PytorchStore::from_file(path)
            .allow_partial(true)
            .validate(false)
            .map_indices_contiguous(false)
            .remap(remapper);
        if let Some(key) = top_level_key {
            store = store.with_top_level_key(key);
        }
        resnet.load_from(&mut store).map_err(|e| e.to_string())
    }
    .map_err(|e| weights_error(path, e))?;
    let report = check(&result, key_prefix).map_err(|m| weights_error(path, m))?;
    Ok((resnet, report))
}

/// Turns the store's result into an error naming what did not fit, or the report.
fn check(result: &ApplyResult, key_prefix: &str) -> Result<ImportReport, String> {
    let mut problems = Vec::new();
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        problems.push(format!("tensors that do not fit: {}", errors.join("; ")));
    }
    if !result.missing.is_empty() {
        let missing: Vec<String> = result
            .missing
            .iter()
            .map(|(ours, _)| format!("{key_prefix}{}", torchvision_name(ours)))
            .collect();
        problems.push(format!(
            "the file has no tensor {} (expected by the configured ResNet)",
            missing.join(", ")
        ));
    }
    // After the remapping, trunk tensors of the file that found no place keep our names.
    let is_trunk = |name: &str| {
        !name.ends_with("num_batches_tracked")
            && ["conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4."]
                .iter()
                .any(|p| name.starts_with(p))
    };
    let extra: Vec<String> = result
        .unused
        .iter()
        .filter(|n| is_trunk(n))
        .map(|n| format!("{key_prefix}{}", torchvision_name(n)))
        .collect();
    if !extra.is_empty() {
        problems.push(format!(
            "ResNet tensors with no place in the configured ResNet (another depth or block?): {}",
            extra.join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(ImportReport {
        loaded: result.applied.len(),
        ignored: result
            .unused
            .iter()
            .map(|n| {
                if is_trunk(n) || n.ends_with("num_batches_tracked") {
                    format!("{key_prefix}{}", torchvision_name(n))
                } else {
                    n.clone()
                }
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ResNetConfig, Stem, named_tensors};
    use burn::prelude::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("unmix-torchvision-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn small(width: usize) -> ResNetConfig {
        ResNetConfig {
            width,
            ..ResNetConfig::resnet18_cifar()
        }
    }

    /// Changes every tensor of `resnet` (batch norm included) so a round trip is not a no-op.
    fn trained(resnet: ResNet, device: &Device) -> ResNet {
        let x = Tensor::<4>::random([4, 3, 8, 8], burn::tensor::Distribution::Default, device);
        let _ = resnet.forward(x); // running statistics move away from 0 / 1
        resnet
    }

    #[test]
    fn names_are_torchvisions() {
        let device = Device::flex();
        let path = tmp("names.safetensors");
        save_torchvision(&small(2).init(&device).unwrap(), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = safetensors_header(&bytes);
        for name in [
            "conv1.weight",
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var",
            "layer1.0.conv1.weight",
            "layer1.1.bn2.bias",
            "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.weight",
            "layer2.0.downsample.1.running_var",
            "layer4.1.conv2.weight",
        ] {
            assert!(file.contains(&format!("\"{name}\"")), "{name} missing");
        }
        for ours in [
            "gamma",
            "beta",
            "downsample.conv",
            "downsample.bn",
            "training",
        ] {
            assert!(!file.contains(ours), "{ours} written");
        }
        assert!(file.contains("\"format\":\"pt\""));
    }

    fn safetensors_header(bytes: &[u8]) -> String {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        String::from_utf8(bytes[8..8 + n].to_vec()).unwrap()
    }

    #[test]
    fn a_round_trip_restores_every_tensor_and_the_features() {
        let device = Device::flex();
        for config in [
            small(4),
            ResNetConfig {
                width: 2,
                ..ResNetConfig::resnet50_imagenet()
            },
        ] {
            let a = trained(config.init(&device).unwrap(), &device).valid();
            let path = tmp(&format!("round-{:?}.safetensors", config.block));
            save_torchvision(&a, &path).unwrap();
            let fresh = config.init(&device).unwrap();
            let (b, report) = load_torchvision(fresh, &path, "", None).unwrap();
            assert!(report.ignored.is_empty(), "{:?}", report.ignored);
            let (ta, tb) = (named_tensors(&a), named_tensors(&b.valid()));
            assert_eq!(report.loaded, ta.len());
            assert_eq!(ta, tb);
            let x =
                Tensor::<4>::random([2, 3, 16, 16], burn::tensor::Distribution::Default, &device);
            let fa = a
                .forward(x.clone())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let fb = b
                .valid()
                .forward(x)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            assert_eq!(fa, fb);
        }
    }

    #[test]
    fn a_mismatch_names_the_tensors() {
        let device = Device::flex();
        let path = tmp("w2.safetensors");
        save_torchvision(&small(2).init(&device).unwrap(), &path).unwrap();
        // Another width: shapes differ.
        let err = load_torchvision(small(4).init(&device).unwrap(), &path, "", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("w2.safetensors"), "{err}");
        assert!(
            err.contains("conv1.weight") && err.contains("[4, 3, 3, 3]"),
            "{err}"
        );
        // Another stem: the 7×7 convolution does not fit the 3×3 one.
        let imagenet = ResNetConfig {
            stem: Stem::Imagenet,
            ..small(2)
        };
        let err = load_torchvision(imagenet.init(&device).unwrap(), &path, "", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("conv1.weight"), "{err}");
        // A deeper file into a shallower net: the extra blocks are named, not dropped.
        let deeper = tmp("w2-34.safetensors");
        let resnet34 = ResNetConfig {
            width: 2,
            ..ResNetConfig::resnet34_cifar()
        };
        save_torchvision(&resnet34.init(&device).unwrap(), &deeper).unwrap();
        let err = load_torchvision(small(2).init(&device).unwrap(), &deeper, "", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer1.2.conv1.weight"), "{err}");
        // A shallower file into a deeper net: the missing tensors are named by torchvision.
        let err = load_torchvision(resnet34.init(&device).unwrap(), &path, "", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no tensor") && err.contains("layer1.2.bn1.weight"),
            "{err}"
        );
        // No file.
        let err = load_torchvision(small(2).init(&device).unwrap(), &tmp("none.pt"), "", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("none.pt") && err.contains("no such file"),
            "{err}"
        );
    }
}
