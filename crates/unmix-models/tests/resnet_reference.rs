//! ResNet-18 forward pass against PyTorch on fixed weights and input.
//!
//! The reference values were produced with PyTorch 2.15 (CPU, float64) by this script; the test
//! needs no Python. Every tensor is filled by a formula of its PyTorch name, so both sides hold
//! identical weights without shipping a weight file.
//!
//! ```python
//! import math, torch, torch.nn as nn
//! torch.set_default_dtype(torch.float64)
//!
//! class Block(nn.Module):
//!     def __init__(s, cin, planes, stride):
//!         super().__init__()
//!         s.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False); s.bn1 = nn.BatchNorm2d(planes)
//!         s.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False); s.bn2 = nn.BatchNorm2d(planes)
//!         s.downsample = None
//!         if stride != 1 or cin != planes:
//!             s.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
//!     def forward(s, x):
//!         idn = x if s.downsample is None else s.downsample(x)
//!         out = torch.relu(s.bn1(s.conv1(x)))
//!         return torch.relu(s.bn2(s.conv2(out)) + idn)
//!
//! class ResNet18(nn.Module):  # torchvision's resnet18 layout, stem selectable, width w
//!     def __init__(s, w, stem, out_dim):
//!         super().__init__()
//!         if stem == "cifar":
//!             s.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False); s.maxpool = nn.Identity()
//!         else:
//!             s.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False); s.maxpool = nn.MaxPool2d(3, 2, 1)
//!         s.bn1 = nn.BatchNorm2d(w)
//!         cin = w
//!         for i, (planes, stride) in enumerate([(w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)]):
//!             blocks = [Block(cin, planes, stride), Block(planes, planes, 1)]; cin = planes
//!             setattr(s, f"layer{i+1}", nn.Sequential(*blocks))
//!         s.fc = nn.Linear(8 * w, out_dim)
//!     def forward(s, x):
//!         x = s.maxpool(torch.relu(s.bn1(s.conv1(x))))
//!         for i in range(4): x = getattr(s, f"layer{i+1}")(x)
//!         return s.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
//!
//! def fill(name, t):
//!     h = sum((i + 1) * ord(c) for i, c in enumerate(name)) % 997
//!     j = torch.arange(t.numel(), dtype=torch.float64)
//!     v = torch.sin(0.37 * j + 0.11 * h).reshape(t.shape)
//!     if name.endswith("running_var"): return 1 + 0.5 * v.abs()
//!     if name.endswith("running_mean") or name.endswith("bias"): return 0.1 * v
//!     if t.dim() == 1: return 1 + 0.2 * v                      # batch-norm weight
//!     return v / math.sqrt(t.numel() / t.shape[0])              # conv / linear weight, fan-in scaled
//!
//! x = (2 * torch.sin(0.05 * torch.arange(2 * 3 * 16 * 16, dtype=torch.float64))).reshape(2, 3, 16, 16)
//! for stem in ["cifar", "imagenet"]:
//!     m = ResNet18(4, stem, 5)
//!     with torch.no_grad():
//!         for name, t in m.state_dict().items():
//!             if not name.endswith("num_batches_tracked"): t.copy_(fill(name, t))
//!     m.eval(); ev = m(x)
//!     m.train(); tr = m(x)
//!     for mode, y in [("eval", ev), ("train", tr)]:
//!         print(stem, mode, [round(v, 6) for v in y.flatten().tolist()])
//! ```

//! The bottleneck case (the SwAV CIFAR `ResNet(Bottleneck, [2, 2, 2, 2])`, width 4, CIFAR stem)
//! uses the same `fill` and input with this network:
//!
//! ```python
//! class Bottleneck(nn.Module):
//!     def __init__(s, cin, planes, stride):
//!         super().__init__()
//!         out = 4 * planes
//!         s.conv1 = nn.Conv2d(cin, planes, 1, 1, 0, bias=False); s.bn1 = nn.BatchNorm2d(planes)
//!         s.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False); s.bn2 = nn.BatchNorm2d(planes)
//!         s.conv3 = nn.Conv2d(planes, out, 1, 1, 0, bias=False); s.bn3 = nn.BatchNorm2d(out)
//!         s.downsample = None
//!         if stride != 1 or cin != out:
//!             s.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))
//!     def forward(s, x):
//!         idn = x if s.downsample is None else s.downsample(x)
//!         out = torch.relu(s.bn1(s.conv1(x)))
//!         out = torch.relu(s.bn2(s.conv2(out)))
//!         return torch.relu(s.bn3(s.conv3(out)) + idn)
//!
//! class ResNetB(nn.Module):  # torchvision's Bottleneck layout, CIFAR stem, layers [2,2,2,2], width w
//!     def __init__(s, w, out_dim):
//!         super().__init__()
//!         s.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False); s.bn1 = nn.BatchNorm2d(w)
//!         cin = w
//!         for i, (planes, stride) in enumerate([(w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)]):
//!             blocks = [Bottleneck(cin, planes, stride), Bottleneck(4 * planes, planes, 1)]; cin = 4 * planes
//!             setattr(s, f"layer{i+1}", nn.Sequential(*blocks))
//!         s.fc = nn.Linear(32 * w, out_dim)
//!     def forward(s, x):
//!         x = torch.relu(s.bn1(s.conv1(x)))
//! # fill and x as above
//! m = ResNetB(4, 5)  # filled, then eval / train outputs printed as above
//! ```

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use unmix_models::{BlockKind, Encoder, EncoderConfig, HeadConfig, ResNetConfig, Stem};

const CIFAR_EVAL: [f32; 10] = [
    -1.425904, -1.782528, -1.208848, 0.011039, 1.261951, -1.645285, -1.776736, -0.980806, 0.346211,
    1.53505,
];
const CIFAR_TRAIN: [f32; 10] = [
    -0.483542, -0.806216, -0.691448, -0.191667, 0.441468, 1.330775, 0.657111, -0.317828, -1.096364,
    -1.284837,
];
const BOTTLENECK_EVAL: [f32; 10] = [
    -1.087617, 1.004154, -0.551062, 0.438085, 0.076507, -1.089941, 1.005008, -0.550399, 0.435941,
    0.080012,
];
const BOTTLENECK_TRAIN: [f32; 10] = [
    -0.374274, 0.308102, 0.089076, -0.110617, 0.503327, -1.16428, 0.84772, -0.170212, -0.146049,
    0.831511,
];
const IMAGENET_EVAL: [f32; 10] = [
    -0.360511, -0.662459, -0.599536, -0.198, 0.340088, -0.288333, -0.608867, -0.591584, -0.239701,
    0.269785,
];
const IMAGENET_TRAIN: [f32; 10] = [
    0.056342, 0.007591, -0.014544, 0.006619, 0.061038, 0.537257, -0.08184, -0.629176, -0.822934,
    -0.564662,
];

/// Our parameter path → PyTorch's `state_dict` name.
fn torch_name(path: &str) -> String {
    let p = path
        .trim_start_matches("backbone.")
        .trim_start_matches("head.")
        .replace("downsample.conv.", "downsample.0.")
        .replace("downsample.bn.", "downsample.1.");
    p.replace(".gamma", ".weight").replace(".beta", ".bias")
}

fn fill(name: &str, torch_shape: &[usize]) -> Vec<f32> {
    let h = name
        .bytes()
        .enumerate()
        .map(|(i, c)| (i + 1) * c as usize)
        .sum::<usize>()
        % 997;
    let n: usize = torch_shape.iter().product();
    (0..n)
        .map(|j| {
            let v = (0.37 * j as f64 + 0.11 * h as f64).sin();
            let x = if name.ends_with("running_var") {
                1.0 + 0.5 * v.abs()
            } else if name.ends_with("running_mean") || name.ends_with("bias") {
                0.1 * v
            } else if torch_shape.len() == 1 {
                1.0 + 0.2 * v
            } else {
                v / ((n / torch_shape[0]) as f64).sqrt()
            };
            x as f32
        })
        .collect()
}

struct Filler {
    path: Vec<String>,
    filled: usize,
}

impl ModuleMapper for Filler {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = torch_name(&self.path.join("."));
        self.filled += 1;
        param.map(|t| {
            let device = t.device();
            let dims = t.dims();
            if name == "fc.weight" {
                // Burn stores a linear weight as [in, out]; PyTorch as [out, in].
                let v = fill(&name, &[dims[1], dims[0]]);
                Tensor::<2>::from_data(TensorData::new(v, [dims[1], dims[0]]), &device)
                    .transpose()
                    .reshape(dims)
            } else {
                Tensor::from_data(TensorData::new(fill(&name, &dims), dims), &device)
            }
        })
    }
}

fn check(stem: Stem, block: BlockKind, eval: &[f32], train: &[f32]) {
    let device = Device::flex();
    let config = EncoderConfig {
        backbone: ResNetConfig {
            width: 4,
            stem,
            block,
            ..ResNetConfig::resnet18_cifar()
        },
        head: HeadConfig::Linear { out_dim: 5 },
    };
    let mut filler = Filler {
        path: Vec::new(),
        filled: 0,
    };
    let encoder: Encoder = config.init(&device).unwrap().map(&mut filler);
    // Basic: 20 conv weights, 20 BN × 4 tensors, fc weight and bias; bottleneck: 29 and 29.
    let layers = match block {
        BlockKind::Basic => 20,
        BlockKind::Bottleneck => 29,
    };
    assert_eq!(filler.filled, layers + layers * 4 + 2);
    let x: Vec<f32> = (0..2 * 3 * 16 * 16)
        .map(|j| (2.0 * (0.05 * j as f64).sin()) as f32)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(x, [2, 3, 16, 16]), &device);
    let close = |got: Tensor<2>, want: &[f32], mode: &str| {
        let got = got.into_data().try_to_vec::<f32>().unwrap();
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() < 2e-4,
                "{stem:?} {mode}: output {i}: {g} vs PyTorch {w}"
            );
        }
    };
    close(encoder.valid().forward(x.clone()), eval, "eval");
    close(encoder.forward(x), train, "train");
}

#[test]
fn resnet18_cifar_stem_matches_pytorch() {
    check(Stem::Cifar, BlockKind::Basic, &CIFAR_EVAL, &CIFAR_TRAIN);
}

#[test]
fn resnet18_imagenet_stem_matches_pytorch() {
    check(
        Stem::Imagenet,
        BlockKind::Basic,
        &IMAGENET_EVAL,
        &IMAGENET_TRAIN,
    );
}

#[test]
fn bottleneck_resnet_matches_pytorch() {
    check(
        Stem::Cifar,
        BlockKind::Bottleneck,
        &BOTTLENECK_EVAL,
        &BOTTLENECK_TRAIN,
    );
}

#[test]
fn resnet34_and_resnet50_have_the_published_shapes() {
    let device = Device::flex();
    let r34 = ResNetConfig::resnet34_cifar();
    let r50 = ResNetConfig::resnet50_imagenet();
    assert_eq!((r34.feature_dim(), r50.feature_dim()), (512, 2048));
    let narrow = |c: ResNetConfig| ResNetConfig { width: 2, ..c }.init(&device).unwrap();
    let net = narrow(r50);
    assert_eq!(
        [
            net.layer1.len(),
            net.layer2.len(),
            net.layer3.len(),
            net.layer4.len()
        ],
        [3, 4, 6, 3]
    );
    let y = net.forward(Tensor::zeros([2, 3, 32, 32], &device));
    assert_eq!(y.dims(), [2, 2 * 8 * 4]);
    assert_eq!(
        net.feature_dim(),
        2 * 8 * 4,
        "the module's own feature width"
    );
    let r34 = narrow(r34);
    let y = r34.forward(Tensor::zeros([2, 3, 8, 8], &device));
    assert_eq!(y.dims(), [2, 16]);
    assert_eq!(r34.feature_dim(), 16);
}

/// Standard deviation and largest magnitude of a convolution's weights.
fn spread(conv: &burn::nn::conv::Conv2d) -> (f64, f64) {
    let w: Vec<f32> = conv.weight.val().into_data().try_to_vec().unwrap();
    let n = w.len() as f64;
    let mean = w.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let max = w.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    (std, max)
}

/// Checks a convolution against PyTorch's default, `U(−1/√fan_in, 1/√fan_in)` (standard deviation
/// `1/√(3·fan_in)`), or torchvision's Kaiming normal with fan-out (standard deviation
/// `√(2/fan_out)`). Every convolution here has at least 1,728 weights, so the sample standard
/// deviation is within 5% (3 standard errors of at most 1.7%).
fn assert_init(name: &str, conv: &burn::nn::conv::Conv2d, init: unmix_models::ConvInit) {
    let [cout, cin, kh, kw] = conv.weight.dims();
    let (std, max) = spread(conv);
    let expected = match init {
        unmix_models::ConvInit::PytorchDefault => {
            let bound = 1.0 / ((cin * kh * kw) as f64).sqrt();
            assert!(max <= bound, "{name}: {max} beyond the bound {bound}");
            bound / 3f64.sqrt()
        }
        unmix_models::ConvInit::KaimingNormal => (2.0 / (cout * kh * kw) as f64).sqrt(),
    };
    assert!(
        (std / expected - 1.0).abs() < 0.05,
        "{name}: std {std}, expected {expected} ({init:?})"
    );
}

/// `conv_init` sets every convolution's distribution and `stem_init`, when given, the stem's
/// alone: torchvision's Kaiming normal by default; `stem_init = "pytorch_default"` as the CIFAR
/// demo's replaced stem; `conv_init = "pytorch_default"` as Invariance Propagation's
/// `ResNet18_cifar`, which has no init loop. Width 64: the stem's fan_in is 27, fan_out 576.
#[test]
fn convolutions_follow_the_configured_initialisation() {
    use unmix_models::ConvInit::{KaimingNormal, PytorchDefault};
    let device = Device::flex();
    device.seed(5);
    for (conv_init, stem_init, stem) in [
        (KaimingNormal, None, KaimingNormal),
        (KaimingNormal, Some(PytorchDefault), PytorchDefault),
        (PytorchDefault, None, PytorchDefault),
        (PytorchDefault, Some(KaimingNormal), KaimingNormal),
    ] {
        let net = ResNetConfig {
            conv_init,
            stem_init,
            layers: vec![1, 1, 1, 1],
            ..ResNetConfig::resnet18_cifar()
        }
        .init(&device)
        .unwrap();
        assert_init("conv1", &net.conv1, stem);
        for (i, b) in [&net.layer1, &net.layer2, &net.layer3, &net.layer4]
            .into_iter()
            .enumerate()
        {
            let b = &b[0];
            assert_init(&format!("layer{}.0.conv1", i + 1), &b.conv1, conv_init);
            assert_init(&format!("layer{}.0.conv2", i + 1), &b.conv2, conv_init);
            if let Some(d) = &b.downsample {
                assert_init(&format!("layer{}.0.downsample", i + 1), &d.conv, conv_init);
            }
        }
    }
}
