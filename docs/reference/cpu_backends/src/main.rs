//! Times the training step of `unmix bench` (ResNet-18, CIFAR stem, 128-d linear head, mean of
//! squares, plain SGD at lr 0.01) and its heaviest layers alone on Burn's `flex` and `ndarray`
//! CPU backends, in one process, one backend after the other.

use std::time::Instant;

use burn::module::{ModuleMapper, Param};
use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNormConfig, PaddingConfig2d};
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::FloatDType;
use unmix_models::{EncoderConfig, HeadConfig, ResNetConfig};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("an integer"))
        .unwrap_or(default)
}

/// Mean (forward, backward) seconds of `f` on `x` over `steps` runs after one warm-up.
fn time(
    steps: usize,
    device: &Device,
    x: &Tensor<4>,
    f: &dyn Fn(Tensor<4>) -> Tensor<4>,
) -> (f64, f64) {
    let (mut fwd, mut bwd) = (0.0, 0.0);
    for i in 0..=steps {
        let t0 = Instant::now();
        let y = f(x.clone());
        device.sync().unwrap();
        let t1 = Instant::now();
        let _grads = y.sum().backward();
        device.sync().unwrap();
        let t2 = Instant::now();
        if i > 0 {
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
        }
    }
    (fwd / steps as f64, bwd / steps as f64)
}

/// Casts every float parameter to the given type (leaves stay leaves: the cast happens before training).
struct CastParams(FloatDType);

impl ModuleMapper for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype).detach().require_grad())
    }
}

/// The step with the weights, the images and so every operation in `dtype` (no f32 master copy:
/// the most that a mixed-precision step could gain).
fn step(width: usize, batch: usize, steps: usize, device: &Device, dtype: FloatDType) -> f64 {
    device.seed(0);
    let mut model = EncoderConfig {
        backbone: ResNetConfig {
            width,
            ..ResNetConfig::resnet18_cifar()
        },
        head: HeadConfig::Linear { out_dim: 128 },
    }
    .init(device)
    .unwrap()
    .map(&mut CastParams(dtype));
    let mut optim = SgdConfig::new().init();
    let x = Tensor::<4>::random(
        [batch, 3, 32, 32],
        burn::tensor::Distribution::Default,
        device,
    )
    .cast(dtype);
    let mut total = 0.0;
    for i in 0..=steps {
        let t0 = Instant::now();
        let loss = model.forward(x.clone()).powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.01, model, grads);
        device.sync().unwrap();
        if i > 0 {
            total += t0.elapsed().as_secs_f64();
        }
    }
    total / steps as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (width, batch, steps) = (
        arg(&args, "--width", 8),
        arg(&args, "--batch", 64),
        arg(&args, "--steps", 10),
    );
    println!("ResNet-18 width {width}, batch {batch}, 32×32; mean of {steps} after one warm-up\n");
    println!(
        "| backend | step s | images/s | conv 3×3 {width}→{width} @32 fwd / bwd ms | conv 3×3 {w8}→{w8} @4 fwd / bwd ms | batchnorm {width} @32 fwd / bwd ms |",
        w8 = 8 * width
    );
    println!("|---|---|---|---|---|---|");
    // Burn 0.22.1 marks `ndarray` deprecated in favour of `flex`; it is timed here to show why.
    #[allow(deprecated)]
    let ndarray = Device::ndarray();
    for (name, device) in [("flex", Device::flex()), ("ndarray", ndarray)] {
        let device = device.autodiff();
        let s = step(width, batch, steps, &device, FloatDType::F32);
        let conv = |cin: usize, side: usize| {
            let conv = Conv2dConfig::new([cin, cin], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(&device);
            let x = Tensor::<4>::random(
                [batch, cin, side, side],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            )
            .require_grad();
            time(steps, &device, &x, &|x| conv.forward(x))
        };
        let (c1f, c1b) = conv(width, 32);
        let (c4f, c4b) = conv(8 * width, 4);
        let bn = BatchNormConfig::new(width).init(&device);
        let x = Tensor::<4>::random(
            [batch, width, 32, 32],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        let (bf, bb) = time(steps, &device, &x, &|x| bn.forward(x));
        let ms = |v: f64| format!("{:.2}", v * 1e3);
        println!(
            "| {name} | {s:.4} | {:.1} | {} / {} | {} / {} | {} / {} |",
            batch as f64 / s,
            ms(c1f),
            ms(c1b),
            ms(c4f),
            ms(c4b),
            ms(bf),
            ms(bb)
        );
    }
    println!("\n| flex, whole step in | step s | images/s |\n|---|---|---|");
    for (name, dtype) in [
        ("f32", FloatDType::F32),
        ("f16", FloatDType::F16),
        ("bf16", FloatDType::BF16),
    ] {
        let s = step(width, batch, steps, &Device::flex().autodiff(), dtype);
        println!("| {name} | {s:.4} | {:.1} |", batch as f64 / s);
    }
}
