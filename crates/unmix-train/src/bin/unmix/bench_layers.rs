//! The per-layer view of the training step `unmix bench` times: each distinct layer of a
//! ResNet-18 (CIFAR stem) run on its own at its shape in the network, forward and backward, with
//! how often it occurs, so that the step's time can be split by layer kind and set beside
//! PyTorch's (`docs/reference/bench_resnet_layers.py` times the same list).

use std::collections::HashMap;

use unmix_train::TrainError;
use unmix_train::device::parse_device;
use unmix_train::run::resnet_bench::{
    ConvBackwardSplit, Layer, LayerTiming, resnet18_layers, time_conv_backward_split, time_layer,
};

/// The PyTorch script that times the same layers.
const PYTORCH_SCRIPT: &str = "docs/reference/bench_resnet_layers.py";

/// PyTorch's timings of one layer: forward and backward, and a convolution's backward split.
struct PytorchLayer {
    timing: LayerTiming,
    split: Option<ConvBackwardSplit>,
}

/// Runs the PyTorch script at the same width, batch and steps and returns its timings by layer
/// name, or `None` (with a message) when Python with torch is absent.
fn pytorch_timings(
    width: usize,
    batch: usize,
    steps: usize,
) -> Result<Option<HashMap<String, PytorchLayer>>, TrainError> {
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
        let (name, fwd, bwd, split) = match cells[..] {
            [_, name, fwd, bwd, _] => (name, fwd, bwd, None),
            [_, name, fwd, bwd, input, weight, _] => (name, fwd, bwd, Some((input, weight))),
            _ => {
                return Err(failed(format!(
                    "expected | layer | fwd ms | bwd ms | [input grad ms | weight grad ms |]: \
                     {row:?}"
                )));
            }
        };
        let ms = |s: &str| {
            s.parse::<f64>()
                .map(|v| v / 1e3)
                .map_err(|_| failed(format!("not a number of ms: {s:?} in {row:?}")))
        };
        let split = match split {
            Some((input, weight)) => Some(ConvBackwardSplit {
                input: if input == "–" {
                    None
                } else {
                    Some(ms(input)?)
                },
                weight: ms(weight)?,
            }),
            None => None,
        };
        let timing = LayerTiming {
            forward: ms(fwd)?,
            backward: ms(bwd)?,
        };
        out.insert(name.to_string(), PytorchLayer { timing, split });
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
    // Our forward and backward, PyTorch's when measured, and the speed ratio, as table cells.
    let ms = |s: f64| format!("{:.3}", s * 1e3);
    let cells = |ours: [f64; 2], theirs: Option<[f64; 2]>| match theirs {
        Some(p) => format!(
            "{} | {} | {} | {} | {:.2}×",
            ms(ours[0]),
            ms(ours[1]),
            ms(p[0]),
            ms(p[1]),
            (p[0] + p[1]) / (ours[0] + ours[1])
        ),
        None => format!("{} | {} | – | – | –", ms(ours[0]), ms(ours[1])),
    };
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
    let share = |t: [f64; 2]| format!("{:.1}%", 100.0 * (t[0] + t[1]) / total);
    // Per kind, and in all: each layer's times its count, ours then PyTorch's.
    let mut kinds: Vec<(&str, [f64; 4])> = Vec::new();
    let mut sum = [0.0; 4];
    for ((layer, n), t) in layers.iter().zip(&ours) {
        let p = theirs
            .as_ref()
            .and_then(|m| m.get(&layer.name()))
            .map(|p| [p.timing.forward, p.timing.backward]);
        let n = *n as f64;
        let ours = [t.forward, t.backward];
        println!(
            "| {} | {n} | {} | {} |",
            layer.name(),
            cells(ours, p),
            share(ours.map(|v| n * v))
        );
        let weighted = [
            ours[0],
            ours[1],
            p.map_or(0.0, |p| p[0]),
            p.map_or(0.0, |p| p[1]),
        ];
        let entry = match kinds.iter().position(|(k, _)| *k == layer.kind()) {
            Some(i) => &mut kinds[i].1,
            None => {
                kinds.push((layer.kind(), [0.0; 4]));
                &mut kinds.last_mut().expect("just pushed").1
            }
        };
        for ((e, s), w) in entry.iter_mut().zip(&mut sum).zip(weighted) {
            *e += n * w;
            *s += n * w;
        }
    }
    println!("\nBy kind, each layer times its count (ms per step):\n");
    println!(
        "| kind | ours fwd | ours bwd | PyTorch fwd | PyTorch bwd | ours / PyTorch | share of ours |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (kind, t) in kinds.iter().chain([&("**sum**", sum)]) {
        let ours = [t[0], t[1]];
        let p = theirs.is_some().then_some([t[2], t[3]]);
        println!("| {kind} | {} | {} |", cells(ours, p), share(ours));
    }
    print_conv_backward_split(&layers, batch, steps, &on, theirs.as_ref())
}

/// The convolutions' backward split into the input's and the weight's gradient, each timed
/// alone, per layer and summed over the network (each layer times its count), beside PyTorch's.
fn print_conv_backward_split(
    layers: &[(Layer, usize)],
    batch: usize,
    steps: usize,
    on: &burn::prelude::Device,
    theirs: Option<&HashMap<String, PytorchLayer>>,
) -> Result<(), TrainError> {
    let ms = |s: Option<f64>| s.map_or("–".to_string(), |s| format!("{:.3}", s * 1e3));
    let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
        (Some(o), Some(t)) if o > 0.0 => format!("{:.2}×", t / o),
        _ => "–".to_string(),
    };
    println!("\nConvolution backward, each gradient alone (ms):\n");
    println!(
        "| conv layer | count | ours input grad | ours weight grad | PyTorch input grad | \
         PyTorch weight grad | input grad ours / PyTorch | weight grad ours / PyTorch |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // Summed over the network: ours input, ours weight, PyTorch input, PyTorch weight.
    let mut sum = [0.0; 4];
    for &(layer, n) in layers {
        let Some(split) = time_conv_backward_split(layer, batch, steps, on)? else {
            continue;
        };
        let p = theirs
            .and_then(|m| m.get(&layer.name()))
            .and_then(|p| p.split);
        let row = [
            split.input,
            Some(split.weight),
            p.and_then(|p| p.input),
            p.map(|p| p.weight),
        ];
        println!(
            "| {} | {n} | {} | {} | {} | {} | {} | {} |",
            layer.name(),
            ms(row[0]),
            ms(row[1]),
            ms(row[2]),
            ms(row[3]),
            ratio(row[0], row[2]),
            ratio(row[1], row[3])
        );
        for (s, v) in sum.iter_mut().zip(row) {
            *s += n as f64 * v.unwrap_or(0.0);
        }
    }
    let compared = theirs.is_some();
    let theirs_sum = |v: f64| compared.then_some(v);
    println!(
        "| **sum** | | {} | {} | {} | {} | {} | {} |",
        ms(Some(sum[0])),
        ms(Some(sum[1])),
        ms(theirs_sum(sum[2])),
        ms(theirs_sum(sum[3])),
        ratio(Some(sum[0]), theirs_sum(sum[2])),
        ratio(Some(sum[1]), theirs_sum(sum[3]))
    );
    Ok(())
}
