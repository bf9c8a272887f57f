//! The per-layer view of the training step `unmix bench` times: each distinct layer of a
//! ResNet-18 (CIFAR stem) run on its own at its shape in the network, forward and backward, with
//! how often it occurs, so that the step's time can be split by layer kind and set beside
//! PyTorch's (`docs/reference/bench_resnet_layers.py` times the same list).

use std::collections::HashMap;
use std::time::Instant;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::prelude::*;
use burn::tensor::activation::relu;
use unmix_models::SplitBatchNormConfig;

use unmix_train::TrainError;
use unmix_train::device::parse_device;

/// One distinct layer of the network at its input shape.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layer {
    /// Convolution without bias: channels in and out, kernel, stride, input side.
    Conv {
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        side: usize,
    },
    /// Batch norm in training mode (batch statistics): channels, side.
    BatchNorm { c: usize, side: usize },
    /// ReLU: channels, side.
    Relu { c: usize, side: usize },
    /// The residual sum: channels, side.
    Add { c: usize, side: usize },
    /// Global average pooling and the 128-d linear head, then the loss (mean of squares).
    PoolHeadLoss { c: usize, side: usize },
}

impl Layer {
    /// The name both this file and the PyTorch script print.
    fn name(&self) -> String {
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
    fn kind(&self) -> &'static str {
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
fn resnet18_layers(width: usize) -> Vec<(Layer, usize)> {
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
struct LayerTiming {
    forward: f64,
    backward: f64,
}

/// Times `layer` alone on `batch` inputs: `steps` runs after one warm-up, the device
/// synchronised after each phase. The input requires a gradient (as inside the network) except
/// for the stem, whose input is the image; the backward starts from the sum of the output, as
/// the PyTorch script's does.
fn time_layer(
    layer: Layer,
    batch: usize,
    steps: usize,
    device: &Device,
) -> Result<LayerTiming, TrainError> {
    let sync = || {
        device
            .sync()
            .map_err(|e| TrainError::Device(format!("device sync: {e:?}")))
    };
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
    let other = random(input_c, side).require_grad();
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
            Box::new(move |x| conv.forward(x))
        }
        Layer::BatchNorm { c, .. } => {
            let bn = SplitBatchNormConfig::new(c, 1).init(device);
            Box::new(move |x| bn.forward(x))
        }
        Layer::Relu { .. } => Box::new(relu),
        Layer::Add { .. } => Box::new(move |x| x.add(other.clone())),
        Layer::PoolHeadLoss { c, .. } => {
            let head = burn::nn::LinearConfig::new(c, 128).init(device);
            Box::new(move |x: Tensor<4>| {
                let [n, c, _, _] = x.dims();
                let y = head.forward(x.mean_dims(&[2, 3]).reshape([n, c]));
                y.powf_scalar(2.0).mean().reshape([1, 1, 1, 1])
            })
        }
    };
    let (mut fwd, mut bwd) = (0.0, 0.0);
    for i in 0..=steps {
        let t0 = Instant::now();
        let y = forward(x.clone());
        sync()?;
        let t1 = Instant::now();
        let grads = y.sum().backward();
        sync()?;
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

/// The PyTorch script that times the same layers.
const PYTORCH_SCRIPT: &str = "docs/reference/bench_resnet_layers.py";

/// Runs the PyTorch script at the same width, batch and steps and returns its timings by layer
/// name, or `None` (with a message) when Python with torch is absent.
fn pytorch_timings(
    width: usize,
    batch: usize,
    steps: usize,
) -> Result<Option<HashMap<String, LayerTiming>>, TrainError> {
    let script = std::path::Path::new(PYTORCH_SCRIPT);
    let Some(text) = crate::bench::run_pytorch_script(script, width, batch, steps)? else {
        return Ok(None);
    };
    let failed = |message: String| TrainError::Report {
        path: script.into(),
        message,
    };
    let mut out = HashMap::new();
    for row in text.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let [_, name, fwd, bwd, ..] = cells[..] else {
            return Err(failed(format!(
                "expected | layer | fwd ms | bwd ms |: {row:?}"
            )));
        };
        let ms = |s: &str| {
            s.parse::<f64>()
                .map(|v| v / 1e3)
                .map_err(|_| failed(format!("not a number of ms: {s:?} in {row:?}")))
        };
        out.insert(
            name.to_string(),
            LayerTiming {
                forward: ms(fwd)?,
                backward: ms(bwd)?,
            },
        );
    }
    Ok(Some(out))
}

/// Prints the per-layer table of ResNet-18 at `width` and `batch` on `device` (with PyTorch's
/// columns and the ratio when `pytorch`), then the time by layer kind.
pub(crate) fn run(
    device: &str,
    width: usize,
    batch: usize,
    steps: usize,
    pytorch: bool,
) -> Result<(), TrainError> {
    let on = parse_device(device)?.autodiff();
    on.seed(0);
    let layers = resnet18_layers(width);
    let ours: Vec<LayerTiming> = layers
        .iter()
        .map(|&(l, _)| time_layer(l, batch, steps, &on))
        .collect::<Result<_, _>>()?;
    let theirs = if pytorch {
        pytorch_timings(width, batch, steps)?
    } else {
        None
    };
    let ms = |s: f64| format!("{:.3}", s * 1e3);
    println!(
        "ResNet-18 width {width}, batch {batch}, 32×32 on {device}: each layer alone, mean of \
         {steps} runs (ms)\n"
    );
    println!(
        "| layer | count | ours fwd | ours bwd | PyTorch fwd | PyTorch bwd | ours / PyTorch | \
         share of ours |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let total: f64 = layers
        .iter()
        .zip(&ours)
        .map(|((_, n), t)| *n as f64 * (t.forward + t.backward))
        .sum();
    let mut kinds: Vec<(&str, [f64; 4])> = Vec::new();
    for ((layer, n), t) in layers.iter().zip(&ours) {
        let p = theirs.as_ref().and_then(|m| m.get(&layer.name()));
        let (pf, pb, ratio) = match p {
            Some(p) => (
                ms(p.forward),
                ms(p.backward),
                format!(
                    "{:.2}×",
                    (p.forward + p.backward) / (t.forward + t.backward)
                ),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let n = *n as f64;
        println!(
            "| {} | {n} | {} | {} | {pf} | {pb} | {ratio} | {:.1}% |",
            layer.name(),
            ms(t.forward),
            ms(t.backward),
            100.0 * n * (t.forward + t.backward) / total
        );
        let entry = match kinds.iter_mut().find(|(k, _)| *k == layer.kind()) {
            Some(e) => e,
            None => {
                kinds.push((layer.kind(), [0.0; 4]));
                kinds.last_mut().expect("just pushed")
            }
        };
        entry.1[0] += n * t.forward;
        entry.1[1] += n * t.backward;
        if let Some(p) = p {
            entry.1[2] += n * p.forward;
            entry.1[3] += n * p.backward;
        }
    }
    println!("\nBy kind, each layer times its count (ms per step):\n");
    println!(
        "| kind | ours fwd | ours bwd | PyTorch fwd | PyTorch bwd | ours / PyTorch | share of ours |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut sums = [0.0; 4];
    for (kind, t) in &kinds {
        let has = theirs.is_some();
        let cell = |v: f64| if has { ms(v) } else { "–".into() };
        let ratio = if has {
            format!("{:.2}×", (t[2] + t[3]) / (t[0] + t[1]))
        } else {
            "–".into()
        };
        println!(
            "| {kind} | {} | {} | {} | {} | {ratio} | {:.1}% |",
            ms(t[0]),
            ms(t[1]),
            cell(t[2]),
            cell(t[3]),
            100.0 * (t[0] + t[1]) / total
        );
        for (s, v) in sums.iter_mut().zip(t) {
            *s += v;
        }
    }
    let has = theirs.is_some();
    println!(
        "| **sum** | {} | {} | {} | {} | {} | 100% |",
        ms(sums[0]),
        ms(sums[1]),
        if has { ms(sums[2]) } else { "–".into() },
        if has { ms(sums[3]) } else { "–".into() },
        if has {
            format!("{:.2}×", (sums[2] + sums[3]) / (sums[0] + sums[1]))
        } else {
            "–".into()
        }
    );
    Ok(())
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
