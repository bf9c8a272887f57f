//! Weights that arrive from torchvision and leave for it, checked against PyTorch's own outputs.
//!
//! The fixture (`tests/fixtures/`, 430 kB) was written by `docs/reference/torchvision_fixture.py`
//! (PyTorch 2.15, torchvision 0.29): a ResNet-18 built by torchvision's own code at width 4, every
//! tensor drawn at random, as safetensors (torchvision's names, with its `fc` and
//! `num_batches_tracked`), as a PyTorch checkpoint (`{"epoch": 7, "state_dict":
//! {"module.encoder_q." + name: tensor}}`), and an input with the features torchvision's model
//! computed from it in evaluation mode. No Python runs here.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::Distribution;
use safetensors::SafeTensors;
use unmix_models::{
    PretrainedWeights, ResNet, ResNetConfig, load_torchvision, named_tensors, save_torchvision,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn width4() -> ResNetConfig {
    ResNetConfig {
        width: 4,
        ..ResNetConfig::resnet18_imagenet()
    }
}

/// Every f32 tensor of a safetensors file, by name.
fn read(path: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = file
        .tensors()
        .into_iter()
        .filter(|(_, t)| t.dtype() == safetensors::Dtype::F32)
        .map(|(name, t)| {
            let values = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, t.shape().to_vec(), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn pytorch_features(device: &Device) -> (Tensor<4>, Vec<f32>) {
    let io = read(&fixture("resnet18_w4_io.safetensors"));
    let get = |n: &str| io.iter().find(|t| t.0 == n).unwrap().clone();
    let (_, shape, x) = get("input");
    let input = Tensor::<1>::from_floats(x.as_slice(), device)
        .reshape([shape[0], shape[1], shape[2], shape[3]]);
    (input, get("features").2)
}

fn assert_close(ours: &[f32], reference: &[f32]) {
    assert_eq!(ours.len(), reference.len());
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "feature {i}: ours {a}, PyTorch {b}"
        );
    }
}

fn features(resnet: &ResNet, input: Tensor<4>) -> Vec<f32> {
    resnet
        .valid()
        .forward(input)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn torchvision_safetensors_load_and_give_pytorchs_features() {
    let device = Device::flex();
    let (resnet, report) = load_torchvision(
        width4().init(&device).unwrap(),
        &fixture("resnet18_w4.safetensors"),
        "",
        None,
    )
    .unwrap();
    // 20 convolutions, 20 batch norms × (γ, β, mean, variance).
    assert_eq!(report.loaded, 100);
    let mut ignored = report.ignored.clone();
    ignored.sort();
    assert_eq!(ignored.len(), 22, "{ignored:?}");
    assert!(ignored.starts_with(&["bn1.num_batches_tracked".into()]));
    assert!(ignored.contains(&"fc.weight".into()) && ignored.contains(&"fc.bias".into()));
    let (input, expected) = pytorch_features(&device);
    assert_close(&features(&resnet, input), &expected);
}

#[test]
fn a_pytorch_checkpoint_loads_through_its_key_and_prefix() {
    let device = Device::flex();
    let path = fixture("resnet18_w4.pt");
    let (from_pt, report) = load_torchvision(
        width4().init(&device).unwrap(),
        &path,
        "module.encoder_q.",
        Some("state_dict"),
    )
    .unwrap();
    assert_eq!(report.loaded, 100);
    let (from_st, _) = load_torchvision(
        width4().init(&device).unwrap(),
        &fixture("resnet18_w4.safetensors"),
        "",
        None,
    )
    .unwrap();
    assert_eq!(named_tensors(&from_pt), named_tensors(&from_st));
    // Without the prefix nothing of the trunk is found, and the error says what is missing.
    let err = load_torchvision(
        width4().init(&device).unwrap(),
        &path,
        "",
        Some("state_dict"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("resnet18_w4.pt") && err.contains("conv1.weight"),
        "{err}"
    );
}

#[test]
fn the_export_writes_torchvisions_tensors_back() {
    let device = Device::flex();
    let source = fixture("resnet18_w4.safetensors");
    let (resnet, _) = load_torchvision(width4().init(&device).unwrap(), &source, "", None).unwrap();
    let out = std::env::temp_dir().join(format!("unmix-export-{}.safetensors", std::process::id()));
    save_torchvision(&resnet, &out).unwrap();
    // The same names, shapes and values as torchvision's state dict, less `fc` and the
    // (int64) `num_batches_tracked`.
    let expected: Vec<_> = read(&source)
        .into_iter()
        .filter(|t| !t.0.starts_with("fc."))
        .collect();
    assert_eq!(read(&out), expected);
    std::fs::remove_file(&out).ok();
}

#[test]
fn a_config_starts_from_pretrained_weights() {
    let device = Device::flex();
    let config: ResNetConfig = toml::from_str(&format!(
        "layers = [2, 2, 2, 2]\nwidth = 4\nstem = \"imagenet\"\n\n[pretrained]\npath = {:?}\n\
         key_prefix = \"module.encoder_q.\"\ntop_level_key = \"state_dict\"\n",
        fixture("resnet18_w4.pt")
    ))
    .unwrap();
    assert_eq!(
        config.pretrained,
        Some(PretrainedWeights {
            path: fixture("resnet18_w4.pt"),
            key_prefix: "module.encoder_q.".into(),
            top_level_key: Some("state_dict".into()),
        })
    );
    let resnet = config.init(&device).unwrap();
    let (input, expected) = pytorch_features(&device);
    assert_close(&features(&resnet, input), &expected);
    // A width the file does not have: the error names the file and the tensor.
    let err = ResNetConfig { width: 8, ..config }
        .init(&device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("resnet18_w4.pt") && err.contains("conv1.weight"),
        "{err}"
    );
}

/// Whether `python3` with torch, torchvision and safetensors is installed; says the test is
/// skipped when not.
fn torchvision_available() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import torch, torchvision, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "skipped: python3 with torch, torchvision and safetensors is not installed \
             (pip install torch torchvision safetensors)"
        );
    }
    found
}

/// Full width, as users load it: `torchvision.models.resnet18()` / `resnet50()` (the CIFAR stem
/// swapped in for CIFAR models) loads our export strictly and computes our features
/// (`docs/reference/torchvision_load.py`).
#[test]
fn torchvision_loads_the_export_and_computes_the_same_features() {
    if !torchvision_available() {
        return;
    }
    let device = Device::flex();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let work = std::env::temp_dir().join(format!("unmix-tv-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    for (arch, config, side) in [
        ("resnet18", ResNetConfig::resnet18_cifar(), 32),
        ("resnet50", ResNetConfig::resnet50_imagenet(), 64),
    ] {
        let stem = match config.stem {
            unmix_models::Stem::Cifar => "cifar",
            unmix_models::Stem::Imagenet => "imagenet",
        };
        // Batch norm's statistics moved away from 0 / 1 by training-mode forwards.
        let resnet = config.init(&device).unwrap();
        for _ in 0..3 {
            let x = Tensor::<4>::random([8, 3, side, side], Distribution::Default, &device);
            let _ = resnet.forward(x);
        }
        let input =
            Tensor::<4>::random([4, 3, side, side], Distribution::Normal(0.0, 1.0), &device);
        let features = resnet.valid().forward(input.clone());
        let backbone = work.join(format!("{arch}.safetensors"));
        save_torchvision(&resnet, &backbone).unwrap();
        let io = work.join(format!("{arch}-io.safetensors"));
        let bytes = |t: &Tensor<4>| -> Vec<u8> {
            let values = t.clone().into_data().try_to_vec::<f32>().unwrap();
            values.iter().flat_map(|x| x.to_le_bytes()).collect()
        };
        let (x, f) = (bytes(&input), bytes(&features.clone().unsqueeze::<4>()));
        let view = |shape: Vec<usize>, data| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, data).unwrap()
        };
        let views = vec![
            ("input", view(input.dims().to_vec(), &x)),
            ("features", view(features.dims().to_vec(), &f)),
        ];
        std::fs::write(&io, safetensors::serialize(views, None).unwrap()).unwrap();
        let out = std::process::Command::new("python3")
            .arg(root.join("docs/reference/torchvision_load.py"))
            .args([&backbone, &io])
            .args([arch, stem])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        println!("{text}");
        assert!(out.status.success(), "{arch}: {text}");
    }
    std::fs::remove_dir_all(&work).ok();
}
