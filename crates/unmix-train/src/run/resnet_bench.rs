//! The timings `unmix bench` prints for a supervised-style ResNet-18 step: the whole step split
//! into forward, backward and update ([`time_resnet_step`]), and each distinct layer alone
//! ([`resnet18_layers`], [`time_layer`]). `docs/reference/bench_resnet_step.py` and
//! `bench_resnet_layers.py` time the same in PyTorch; `docs/reference/cpu_backends` calls these on
//! Burn's `ndarray` backend too.

use std::time::Instant;

use burn::module::{ModuleMapper, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::FloatDType;
use burn::tensor::activation::relu;
use unmix_models::{EncoderConfig, HeadConfig, ResNetConfig, SplitBatchNormConfig};

use crate::error::TrainError;

/// Waits for `device`'s queued work, so that a phase's time is its own.
fn sync(device: &Device) -> Result<(), TrainError> {
    device
        .sync()
        .map_err(|e| TrainError::Device(format!("device sync: {e:?}")))
}

/// A training step's mean time, split into its three phases.
#[derive(Debug, Clone, Copy)]
pub struct PhaseTiming {
    /// Mean wall-clock seconds per step (the sum of the phases).
    pub seconds_per_step: f64,
    /// Images per second.
    pub images_per_second: f64,
    /// Mean seconds of the forward pass and the loss.
    pub forward: f64,
    /// Mean seconds of the backward pass (the gradients).
    pub backward: f64,
    /// Mean seconds of the SGD update.
    pub update: f64,
}

/// Casts every float parameter to a dtype; each stays a leaf (the cast happens before training).
struct CastParams(FloatDType);

impl ModuleMapper for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype).detach().require_grad())
    }
}

/// Times `steps` training steps (after one warm-up) of ResNet-18 (CIFAR stem, `width`) with a
/// 128-d linear head on random 32×32 images, with a mean-of-squares loss and plain SGD (lr
/// 0.01), on `device` (an autodiff device). Weights and images are in `dtype`, so every operation
/// is: with f16 or bf16 this is the most a mixed-precision step (f32 master weights) could gain.
/// The device is synchronised after each phase, so that each phase's time is its own on a
/// backend that queues work (fusion on a GPU).
pub fn time_resnet_step(
    device: &Device,
    width: usize,
    batch: usize,
    steps: usize,
    dtype: FloatDType,
) -> Result<PhaseTiming, TrainError> {
    device.seed(0);
    let mut model = EncoderConfig {
        backbone: ResNetConfig {
            width,
            ..ResNetConfig::resnet18_cifar()
        },
        head: HeadConfig::Linear { out_dim: 128 },
    }
    .init(device)?;
    if dtype != FloatDType::F32 {
        model = model.map(&mut CastParams(dtype));
    }
    let mut optim = SgdConfig::new().init();
    let x = Tensor::<4>::random(
        [batch, 3, 32, 32],
        burn::tensor::Distribution::Default,
        device,
    )
    .cast(dtype);
    let [mut forward, mut backward, mut update] = [0.0; 3];
    for i in 0..=steps {
        let t0 = Instant::now();
        let loss = model.forward(x.clone()).powf_scalar(2.0).mean();
        sync(device)?;
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        sync(device)?;
        let t2 = Instant::now();
        model = optim.step(0.01, model, grads);
        sync(device)?;
        let t3 = Instant::now();
        if i > 0 {
            forward += (t1 - t0).as_secs_f64();
            backward += (t2 - t1).as_secs_f64();
            update += (t3 - t2).as_secs_f64();
        }
    }
    let n = steps.max(1) as f64;
    let (forward, backward, update) = (forward / n, backward / n, update / n);
    let seconds_per_step = forward + backward + update;
    Ok(PhaseTiming {
        seconds_per_step,
        images_per_second: batch as f64 / seconds_per_step,
        forward,
        backward,
        update,
    })
}

/// One distinct layer of the network at its input shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Layer {
    /// Convolution without bias.
    Conv {
        /// Input channels.
        cin: usize,
        /// Output channels.
        cout: usize,
        /// Kernel side.
        k: usize,
        /// Stride.
        stride: usize,
        /// Input side (square maps).
        side: usize,
    },
    /// Batch norm in training mode (batch statistics) over `c` channels of `side`².
    #[allow(missing_docs)]
    BatchNorm { c: usize, side: usize },
    /// ReLU over `c` channels of `side`².
    #[allow(missing_docs)]
    Relu { c: usize, side: usize },
    /// The residual sum over `c` channels of `side`².
    #[allow(missing_docs)]
    Add { c: usize, side: usize },
    /// Global average pooling of `c` channels of `side`², the 128-d linear head, then the loss
    /// (mean of squares).
    #[allow(missing_docs)]
    PoolHeadLoss { c: usize, side: usize },
}

impl Layer {
    /// The name both this file and the PyTorch script print.
    pub fn name(&self) -> String {
        match *self {
            Layer::Conv {
                cin,
                cout,
                k,
                stride,
                side,
            } => format!("conv {k}x{k} {cin}->{cout} /{stride} @{side}"),
            Layer::BatchNorm { c, side } => format!("batchnorm {c} @{side}"),
            Layer::Relu { c, side } => format!("relu {c} @{side}"),
            Layer::Add { c, side } => format!("add {c} @{side}"),
            Layer::PoolHeadLoss { c, side } => format!("pool+linear+loss {c}->128 @{side}"),
        }
    }

    /// The kind, for the summary by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Conv { .. } => "conv",
            Layer::BatchNorm { .. } => "batchnorm",
            Layer::Relu { .. } => "relu",
            Layer::Add { .. } => "add",
            Layer::PoolHeadLoss { .. } => "pool+linear+loss",
        }
    }
}

/// The layers of ResNet-18 with the CIFAR stem at `width`, on 32×32 inputs, each with its
/// number of occurrences (torchvision's BasicBlock: conv-bn-relu-conv-bn, + shortcut, relu; the
/// first block of stages 2–4 has stride 2 and a 1×1 conv + bn on the shortcut).
pub fn resnet18_layers(width: usize) -> Vec<(Layer, usize)> {
    let mut counts: Vec<(Layer, usize)> = Vec::new();
    let mut add = |l: Layer| match counts.iter_mut().find(|(m, _)| *m == l) {
        Some((_, n)) => *n += 1,
        None => counts.push((l, 1)),
    };
    let conv = |cin, cout, k, stride, side| Layer::Conv {
        cin,
        cout,
        k,
        stride,
        side,
    };
    add(conv(3, width, 3, 1, 32));
    add(Layer::BatchNorm { c: width, side: 32 });
    add(Layer::Relu { c: width, side: 32 });
    let mut cin = width;
    let mut side = 32;
    for stage in 0..4 {
        let c = width << stage;
        for block in 0..2 {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let out_side = side / stride;
            add(conv(cin, c, 3, stride, side));
            add(Layer::BatchNorm { c, side: out_side });
            add(Layer::Relu { c, side: out_side });
            add(conv(c, c, 3, 1, out_side));
            add(Layer::BatchNorm { c, side: out_side });
            if stride != 1 || cin != c {
                add(conv(cin, c, 1, stride, side));
                add(Layer::BatchNorm { c, side: out_side });
            }
            add(Layer::Add { c, side: out_side });
            add(Layer::Relu { c, side: out_side });
            cin = c;
            side = out_side;
        }
    }
    add(Layer::PoolHeadLoss { c: cin, side });
    counts
}

/// Mean forward and backward seconds of one layer.
#[derive(Debug, Clone, Copy)]
pub struct LayerTiming {
    /// Seconds of the forward.
    pub forward: f64,
    /// Seconds of the backward.
    pub backward: f64,
}

/// Times `layer` alone on `batch` inputs: `steps` runs after one warm-up, the device
/// synchronised after each phase. The input requires a gradient (as inside the network) except
/// for the stem, whose input is the image; the backward starts from the sum of the output, as
/// the PyTorch script's does.
pub fn time_layer(
    layer: Layer,
    batch: usize,
    steps: usize,
    device: &Device,
) -> Result<LayerTiming, TrainError> {
    let random = |c: usize, side: usize| {
        Tensor::<4>::random(
            [batch, c, side, side],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        )
    };
    let (input_c, side) = match layer {
        Layer::Conv { cin, side, .. } => (cin, side),
        Layer::BatchNorm { c, side }
        | Layer::Relu { c, side }
        | Layer::Add { c, side }
        | Layer::PoolHeadLoss { c, side } => (c, side),
    };
    let x = random(input_c, side);
    let x = if input_c == 3 { x } else { x.require_grad() };
    let forward: Box<dyn Fn(Tensor<4>) -> Tensor<4>> = match layer {
        Layer::Conv {
            cin,
            cout,
            k,
            stride,
            ..
        } => {
            let pad = k / 2;
            let conv = Conv2dConfig::new([cin, cout], [k, k])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(device);
            // What the ResNet runs: ours on `flex`, Burn's elsewhere.
            Box::new(move |x| unmix_models::conv2d_im2col(&conv, x))
        }
        Layer::BatchNorm { c, .. } => {
            let bn = SplitBatchNormConfig::new(c, 1).init(device);
            Box::new(move |x| bn.forward(x))
        }
        Layer::Relu { .. } => Box::new(relu),
        Layer::Add { .. } => {
            let other = random(input_c, side).require_grad();
            Box::new(move |x| x.add(other.clone()))
        }
        Layer::PoolHeadLoss { c, .. } => {
            let head = burn::nn::LinearConfig::new(c, 128).init(device);
            Box::new(move |x: Tensor<4>| {
                let [n, c, _, _] = x.dims();
                let y = head.forward(x.mean_dims(&[2, 3]).reshape([n, c]));
                y.powf_scalar(2.0).mean().reshape([1, 1, 1, 1])
            })
        }
    };
    time_forward_backward(|| forward(x.clone()), steps, device)
}

/// Mean forward and backward seconds of `forward()` then the backward from its sum: `steps`
/// runs after one warm-up, the device synchronised after each phase.
fn time_forward_backward(
    forward: impl Fn() -> Tensor<4>,
    steps: usize,
    device: &Device,
) -> Result<LayerTiming, TrainError> {
    let (mut fwd, mut bwd) = (0.0, 0.0);
    for i in 0..=steps {
        let t0 = Instant::now();
        let y = forward();
        sync(device)?;
        let t1 = Instant::now();
        let grads = y.sum().backward();
        sync(device)?;
        let t2 = Instant::now();
        drop(grads);
        if i > 0 {
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
        }
    }
    let n = steps.max(1) as f64;
    Ok(LayerTiming {
        forward: fwd / n,
        backward: bwd / n,
    })
}

/// A convolution's backward split into its two gradients (mean seconds of each alone).
#[derive(Debug, Clone, Copy)]
pub struct ConvBackwardSplit {
    /// The gradient with respect to the input (`None` for the stem, whose input is the image).
    pub input: Option<f64>,
    /// The gradient with respect to the weight.
    pub weight: f64,
}

/// Times a convolution layer's backward twice, once with only the input requiring a gradient
/// and once with only the weight, so that the two gradients' costs show apart (on `flex`
/// [`unmix_models::conv2d_im2col`]'s GEMMs; elsewhere Burn's default `conv2d_x_backward`, a
/// transposed convolution, and `conv2d_weight_backward`, a convolution of the input by the output
/// gradient). `None` for a layer that is not a convolution.
pub fn time_conv_backward_split(
    layer: Layer,
    batch: usize,
    steps: usize,
    device: &Device,
) -> Result<Option<ConvBackwardSplit>, TrainError> {
    let Layer::Conv {
        cin,
        cout,
        k,
        stride,
        side,
    } = layer
    else {
        return Ok(None);
    };
    let normal = burn::tensor::Distribution::Normal(0.0, 1.0);
    let x = Tensor::<4>::random([batch, cin, side, side], normal, device);
    let w = Tensor::<4>::random([cout, cin, k, k], normal, device).mul_scalar(0.1);
    let pad = k / 2;
    let backward_of = |x: Tensor<4>, w_requires_grad: bool| -> Result<f64, TrainError> {
        let mut conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(false)
            .init(device);
        conv.weight = Param::from_tensor(w.clone()).set_require_grad(w_requires_grad);
        let forward = || unmix_models::conv2d_im2col(&conv, x.clone());
        Ok(time_forward_backward(forward, steps, device)?.backward)
    };
    let input = if cin == 3 {
        None
    } else {
        Some(backward_of(x.clone().require_grad(), false)?)
    };
    let weight = backward_of(x, true)?;
    Ok(Some(ConvBackwardSplit { input, weight }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ResNet-18 has 20 convolutions (stem, 16 in the blocks, 3 on the shortcuts) with as many
    /// batch norms, 17 ReLUs (stem and two per block) and 8 residual sums.
    #[test]
    fn resnet18_has_its_layer_counts() {
        let layers = resnet18_layers(8);
        let count = |kind: &str| -> usize {
            layers
                .iter()
                .filter(|(l, _)| l.kind() == kind)
                .map(|(_, n)| n)
                .sum()
        };
        assert_eq!(count("conv"), 20);
        assert_eq!(count("batchnorm"), 20);
        assert_eq!(count("relu"), 17);
        assert_eq!(count("add"), 8);
        assert_eq!(count("pool+linear+loss"), 1);
        // The first block of stage 2 reads 8 channels at 32 and writes 16 at 16.
        assert!(layers.contains(&(
            Layer::Conv {
                cin: 8,
                cout: 16,
                k: 3,
                stride: 2,
                side: 32
            },
            1
        )));
        assert!(layers.contains(&(
            Layer::Conv {
                cin: 16,
                cout: 16,
                k: 3,
                stride: 1,
                side: 16
            },
            3
        )));
    }
}
