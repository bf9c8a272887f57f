use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::im2col_conv::conv2d_im2col;
use crate::split_batch_norm::{SplitBatchNorm, SplitBatchNormConfig};
use crate::torchvision::{PretrainedWeights, load_torchvision};

/// The first layers of a ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stem {
    /// 3×3 convolution, stride 1, padding 1, no max-pool (small images; the Un-Mix CIFAR demo).
    Cifar,
    /// 7×7 convolution, stride 2, padding 3, then 3×3 max-pool with stride 2.
    Imagenet,
}

/// The residual block type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// Two 3×3 convolutions (ResNet-18/34); expansion 1.
    #[default]
    Basic,
    /// 1×1 → 3×3 (stride) → 1×1 with 4× expansion (ResNet-50; the SwAV CIFAR "resnet18").
    Bottleneck,
}

impl BlockKind {
    /// Output channels per unit of stage width.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// A ResNet of any `(block, layers)` combination (`../shared/SPEC.md` §3).
///
/// ```
/// use burn::prelude::*;
/// use unmix_models::{BlockKind, ResNetConfig};
///
/// let device = Device::flex();
/// // ResNet-18 with the CIFAR stem at width 8: stages of 8, 16, 32, 64 channels.
/// let resnet18 = ResNetConfig { width: 8, ..ResNetConfig::resnet18_cifar() };
/// assert_eq!(resnet18.feature_dim(), 64);
/// let features = resnet18.init(&device).unwrap().forward(Tensor::zeros([2, 3, 32, 32], &device));
/// assert_eq!(features.dims(), [2, 64]);
/// // ResNet-50's bottleneck blocks end at 4 × 8w channels.
/// let resnet50 = ResNetConfig { layers: vec![3, 4, 6, 3], block: BlockKind::Bottleneck, ..resnet18 };
/// assert_eq!(resnet50.feature_dim(), 256);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    /// Blocks per stage: `[2, 2, 2, 2]` for ResNet-18, `[3, 4, 6, 3]` for ResNet-34/50.
    pub layers: Vec<usize>,
    /// Basic or bottleneck blocks.
    #[serde(default)]
    pub block: BlockKind,
    /// Channels of the first stage (64 in the paper); stages use `w, 2w, 4w, 8w`.
    pub width: usize,
    /// CIFAR or ImageNet stem.
    pub stem: Stem,
    /// Image channels.
    #[serde(default = "three")]
    pub in_channels: usize,
    /// Split batch norm: sub-batches per batch (1 = plain batch norm; 8 in the CIFAR demo).
    #[serde(default = "one")]
    pub bn_splits: usize,
    /// Initialisation of every convolution: torchvision's (the default) or PyTorch's own
    /// (`pytorch_default`, as a network built from bare `nn.Conv2d`s, e.g. Invariance
    /// Propagation's `ResNet18_cifar`).
    #[serde(default)]
    pub conv_init: ConvInit,
    /// The stem convolution's initialisation when it differs from [`ResNetConfig::conv_init`]
    /// (the Un-Mix / MoCo CIFAR demo: `pytorch_default` under torchvision's init).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stem_init: Option<ConvInit>,
    /// Start from these weights (torchvision's names; safetensors or a PyTorch checkpoint)
    /// instead of the initialisation; every tensor must fit (see [`crate::load_torchvision`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PretrainedWeights>,
}

/// How a convolution's weights start (batch norms start at γ = 1, β = 0 either way, as both
/// torchvision and PyTorch's `nn.BatchNorm2d` do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvInit {
    /// torchvision's ResNet: Kaiming normal, fan-out, ReLU gain (`N(0, 2/fan_out)`).
    #[default]
    KaimingNormal,
    /// PyTorch's default for a fresh `nn.Conv2d` (Kaiming uniform with a = √5, i.e.
    /// `U(−1/√fan_in, 1/√fan_in)`). The Un-Mix / MoCo CIFAR demo builds torchvision's ResNet-18
    /// and then replaces its stem with a new 3×3 convolution, which keeps this initialisation;
    /// Invariance Propagation's `ResNet18_cifar` has no init loop, so every convolution keeps it.
    PytorchDefault,
}

impl ConvInit {
    fn initializer(self) -> Initializer {
        match self {
            ConvInit::KaimingNormal => Initializer::KaimingNormal {
                gain: 2f64.sqrt(),
                fan_out_only: true,
            },
            // Burn's Kaiming uniform bound is √3·gain/√fan_in: gain 1/√3 gives PyTorch's 1/√fan_in.
            ConvInit::PytorchDefault => Initializer::KaimingUniform {
                gain: 1.0 / 3f64.sqrt(),
                fan_out_only: false,
            },
        }
    }
}

fn three() -> usize {
    3
}
fn one() -> usize {
    1
}

impl ResNetConfig {
    /// ResNet-18 with the CIFAR stem, full width.
    pub fn resnet18_cifar() -> Self {
        Self {
            layers: vec![2, 2, 2, 2],
            block: BlockKind::Basic,
            width: 64,
            stem: Stem::Cifar,
            in_channels: 3,
            bn_splits: 1,
            conv_init: ConvInit::KaimingNormal,
            stem_init: None,
            pretrained: None,
        }
    }

    /// ResNet-18 with the ImageNet stem, full width.
    pub fn resnet18_imagenet() -> Self {
        Self {
            stem: Stem::Imagenet,
            ..Self::resnet18_cifar()
        }
    }

    /// ResNet-34 (basic blocks, `[3, 4, 6, 3]`) with the CIFAR stem.
    pub fn resnet34_cifar() -> Self {
        Self {
            layers: vec![3, 4, 6, 3],
            ..Self::resnet18_cifar()
        }
    }

    /// ResNet-50 (bottleneck blocks, `[3, 4, 6, 3]`, 2048-d features) with the ImageNet stem.
    pub fn resnet50_imagenet() -> Self {
        Self {
            layers: vec![3, 4, 6, 3],
            block: BlockKind::Bottleneck,
            ..Self::resnet18_imagenet()
        }
    }

    /// Width of the pooled feature vector (`8·width·expansion`: 512 for ResNet-18, 2048 for
    /// ResNet-50).
    pub fn feature_dim(&self) -> usize {
        8 * self.width * self.block.expansion()
    }

    /// Checks the settings; errors name the key.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.layers.len() != 4 || self.layers.contains(&0) {
            return Err(ModelError::Setting {
                owner: "ResNetConfig",
                field: "layers",
                value: format!("{:?}", self.layers),
                expected: "expected four stage depths, each >= 1",
            });
        }
        for (key, v) in [
            ("width", self.width),
            ("in_channels", self.in_channels),
            ("bn_splits", self.bn_splits),
        ] {
            if v == 0 {
                return Err(ModelError::zero("ResNetConfig", key));
            }
        }
        Ok(())
    }

    /// Builds the network with [`ResNetConfig::conv_init`] (torchvision's by default: Kaiming
    /// normal, fan-out) for convolutions and γ = 1, β = 0 for batch norms, then loads
    /// [`ResNetConfig::pretrained`] when set.
    pub fn init(&self, device: &Device) -> Result<ResNet, ModelError> {
        self.validate()?;
        let bn = |c| SplitBatchNormConfig::new(c, self.bn_splits).init(device);
        let stem_init = self.stem_init.unwrap_or(self.conv_init);
        let stem_conv = |k, stride, pad| {
            conv_config(self.in_channels, self.width, k, stride, pad, stem_init).init(device)
        };
        let (conv1, maxpool) = match self.stem {
            Stem::Cifar => (stem_conv(3, 1, 1), None),
            Stem::Imagenet => (
                stem_conv(7, 2, 3),
                Some(
                    MaxPool2dConfig::new([3, 3])
                        .with_strides([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(),
                ),
            ),
        };
        let mut in_planes = self.width;
        let kind = self.block;
        let mut stage = |planes: usize, blocks: usize, stride: usize| -> Vec<Block> {
            (0..blocks)
                .map(|b| {
                    let s = if b == 0 { stride } else { 1 };
                    let block = Block::new(
                        kind,
                        in_planes,
                        planes,
                        s,
                        self.bn_splits,
                        self.conv_init,
                        device,
                    );
                    in_planes = planes * kind.expansion();
                    block
                })
                .collect()
        };
        let w = self.width;
        let resnet = ResNet {
            conv1,
            bn1: bn(w),
            maxpool,
            layer1: stage(w, self.layers[0], 1),
            layer2: stage(2 * w, self.layers[1], 2),
            layer3: stage(4 * w, self.layers[2], 2),
            layer4: stage(8 * w, self.layers[3], 2),
        };
        match &self.pretrained {
            None => Ok(resnet),
            Some(p) => load_torchvision(resnet, &p.path, &p.key_prefix, p.top_level_key.as_deref())
                .map(|(resnet, _)| resnet),
        }
    }
}

/// A ResNet convolution: no bias (torchvision's and `ResNet18_cifar`'s), weights from `init`.
fn conv_config(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    init: ConvInit,
) -> Conv2dConfig {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(init.initializer())
}

/// 1×1 convolution and batch norm on the shortcut when the shape changes.
#[derive(Module, Debug)]
pub struct Downsample {
    /// 1×1 convolution with the block's stride.
    pub conv: Conv2d,
    /// Batch norm after it.
    pub bn: SplitBatchNorm,
}

/// A residual block, torchvision's layout: the basic block (two 3×3 convolutions) or the
/// bottleneck (1×1, 3×3 with the stride, 1×1 to `4·planes`), plus a projection shortcut when the
/// shape changes.
#[derive(Module, Debug)]
pub struct Block {
    /// First convolution (3×3 with the stride in a basic block; 1×1 in a bottleneck).
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: SplitBatchNorm,
    /// Second convolution (3×3; carries the stride in a bottleneck).
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn2: SplitBatchNorm,
    /// Third convolution (1×1 expansion; bottleneck only).
    pub conv3: Option<Conv2d>,
    /// Batch norm after `conv3`.
    pub bn3: Option<SplitBatchNorm>,
    /// Projection shortcut, when stride or width change.
    pub downsample: Option<Downsample>,
}

impl Block {
    fn new(
        kind: BlockKind,
        cin: usize,
        planes: usize,
        stride: usize,
        splits: usize,
        init: ConvInit,
        device: &Device,
    ) -> Self {
        let bn = |c| SplitBatchNormConfig::new(c, splits).init(device);
        let conv =
            |cin, cout, k, stride, pad| conv_config(cin, cout, k, stride, pad, init).init(device);
        let out = planes * kind.expansion();
        let downsample = (stride != 1 || cin != out).then(|| Downsample {
            conv: conv(cin, out, 1, stride, 0),
            bn: bn(out),
        });
        match kind {
            BlockKind::Basic => Self {
                conv1: conv(cin, planes, 3, stride, 1),
                bn1: bn(planes),
                conv2: conv(planes, planes, 3, 1, 1),
                bn2: bn(planes),
                conv3: None,
                bn3: None,
                downsample,
            },
            BlockKind::Bottleneck => Self {
                conv1: conv(cin, planes, 1, 1, 0),
                bn1: bn(planes),
                conv2: conv(planes, planes, 3, stride, 1),
                bn2: bn(planes),
                conv3: Some(conv(planes, out, 1, 1, 0)),
                bn3: Some(bn(out)),
                downsample,
            },
        }
    }

    /// `[N, cin, H, W]` → `[N, planes·expansion, H/stride, W/stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(conv2d_im2col(&d.conv, x.clone())),
            None => x.clone(),
        };
        let out = relu(self.bn1.forward(conv2d_im2col(&self.conv1, x)));
        let mut out = self.bn2.forward(conv2d_im2col(&self.conv2, out));
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            out = bn3.forward(conv2d_im2col(conv3, relu(out)));
        }
        relu(out.add(identity))
    }
}

/// A ResNet trunk that ends with global average pooling: `[N, C, H, W]` → `[N, feature_dim]`.
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem convolution.
    pub conv1: Conv2d,
    /// Stem batch norm.
    pub bn1: SplitBatchNorm,
    /// Stem max-pool (ImageNet stem only).
    pub maxpool: Option<MaxPool2d>,
    /// Stage 1 (width `w`, stride 1).
    pub layer1: Vec<Block>,
    /// Stage 2 (width `2w`, stride 2).
    pub layer2: Vec<Block>,
    /// Stage 3 (width `4w`, stride 2).
    pub layer3: Vec<Block>,
    /// Stage 4 (width `8w`, stride 2).
    pub layer4: Vec<Block>,
}

impl ResNet {
    /// The image channels the stem reads (3 for RGB; CMC's halves 1 and 2).
    pub fn in_channels(&self) -> usize {
        // `lazy_shape`, not `dims`: reading a shape must not initialise the parameter (see
        // `feature_dim`).
        self.conv1.weight.lazy_shape()[1]
    }

    /// Width of the pooled features: the output channels of the last block (the stem's when
    /// there is none).
    pub fn feature_dim(&self) -> usize {
        let last = self
            .layer4
            .last()
            .or(self.layer3.last())
            .or(self.layer2.last())
            .or(self.layer1.last());
        let conv = match last {
            Some(b) => b.conv3.as_ref().unwrap_or(&b.conv2),
            None => &self.conv1,
        };
        // `lazy_shape`, not `dims`: Burn initialises a parameter on its first read, drawing from
        // the device's seeded generator, so touching this one before the first forward would
        // change the order of the draws and with it every initial weight of the seed.
        conv.weight.lazy_shape()[0]
    }

    /// Pooled features `[N, feature_dim]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.bn1.forward(conv2d_im2col(&self.conv1, x)));
        if let Some(pool) = &self.maxpool {
            x = pool.forward(x);
        }
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        // Global average pooling.
        let [n, c, _, _] = x.dims();
        x.mean_dims(&[2, 3]).reshape([n, c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burn draws a parameter's initial values on its first read. Asking a fresh ResNet its
    /// sizes must read none, or the seeded draws come in another order and every initial weight
    /// of a seed changes (it did once: SwAV's learn test moved from a 0.319 loss fall to 0.143).
    #[test]
    fn asking_the_sizes_initialises_no_parameter() {
        let device = Device::flex();
        let net = ResNetConfig {
            width: 4,
            ..ResNetConfig::resnet18_cifar()
        }
        .init(&device)
        .unwrap();
        let last = &net.layer4.last().unwrap().conv2.weight;
        assert!(!last.is_initialized() && !net.conv1.weight.is_initialized());
        assert_eq!((net.feature_dim(), net.in_channels()), (32, 3));
        assert!(!last.is_initialized() && !net.conv1.weight.is_initialized());
    }
}
