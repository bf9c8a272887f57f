//! Times the training step of `unmix bench` and three of its layers alone (the functions of
//! `unmix_train::run::resnet_bench`) on Burn's `flex` and `ndarray` CPU backends, in one process,
//! one backend after the other.

use burn::prelude::*;
use burn::tensor::FloatDType;
use unmix_train::run::resnet_bench::{Layer, time_layer, time_resnet_step};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("an integer"))
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (width, batch, steps) = (
        arg(&args, "--width", 8),
        arg(&args, "--batch", 64),
        arg(&args, "--steps", 10),
    );
    let conv = |c, side| Layer::Conv {
        cin: c,
        cout: c,
        k: 3,
        stride: 1,
        side,
    };
    let layers = [
        conv(width, 32),
        conv(8 * width, 4),
        Layer::BatchNorm { c: width, side: 32 },
    ];
    println!("ResNet-18 width {width}, batch {batch}, 32×32; mean of {steps} after one warm-up\n");
    let names: Vec<String> = layers
        .iter()
        .map(|l| format!("{} fwd / bwd ms", l.name()))
        .collect();
    println!("| backend | step s | images/s | {} |", names.join(" | "));
    println!("|---|---|---|---|---|---|");
    // Burn 0.22.1 marks `ndarray` deprecated in favour of `flex`; it is timed here to show why.
    #[allow(deprecated)]
    let ndarray = Device::ndarray();
    for (name, device) in [("flex", Device::flex()), ("ndarray", ndarray)] {
        let device = device.autodiff();
        let step = time_resnet_step(&device, width, batch, steps, FloatDType::F32).unwrap();
        let cells: Vec<String> = layers
            .iter()
            .map(|&l| {
                let t = time_layer(l, batch, steps, &device).unwrap();
                format!("{:.2} / {:.2}", t.forward * 1e3, t.backward * 1e3)
            })
            .collect();
        println!(
            "| {name} | {:.4} | {:.1} | {} |",
            step.seconds_per_step,
            step.images_per_second,
            cells.join(" | ")
        );
    }
}
