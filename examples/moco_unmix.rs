//! MoCo + Un-Mix in a hand-written Burn loop, with only `unmix-ops` (the mixture),
//! `unmix-losses` (the loss) and `unmix-models` (encoder, momentum update) — no `unmix-train`.
//!
//! ```text
//! cargo run -p unmix-losses --example moco_unmix -- 200     # steps (default 100)
//! ```
//!
//! Trains a width-8 ResNet-18 on the first 2,000 embedded Fashion-MNIST images (two random
//! 28×28 crops with flips per image, drawn by hand here; `unmix-data` has the full recipes) and
//! prints the loss. `cargo test -p unmix-losses --example moco_unmix` runs a few steps.

use std::io::Read;

use burn::module::Module;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use unmix_losses::{MocoEmbeddings, MocoLoss, l2_normalize};
use unmix_models::{EncoderConfig, HeadConfig, ResNetConfig, momentum_update};
use unmix_ops::{UnMix, UnMixConfig};

const BATCH: usize = 32;
const QUEUE: usize = 256;

/// Trains for `steps` steps and returns each step's loss.
fn train(steps: usize) -> Vec<f32> {
    let device = Device::flex().autodiff();
    device.seed(0);
    let images = fashion_mnist(2000);
    let config = EncoderConfig {
        backbone: ResNetConfig {
            width: 8,
            in_channels: 1,
            ..ResNetConfig::resnet18_cifar()
        },
        head: HeadConfig::mlp(128, 64),
    };
    let mut query = config.init(&device).expect("a valid config");
    // The key encoder: its own module (batch-norm running statistics are not shared), then an
    // exact copy of the query encoder (m = 0), without gradients.
    let mut key = momentum_update(config.init(&device).unwrap().no_grad(), &query, 0.0);
    let mut queue = l2_normalize(Tensor::<2>::random(
        [QUEUE, 64],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    ));
    let unmix = UnMix::new(UnMixConfig::default(), 1).expect("default settings");
    let loss_fn = MocoLoss {
        temperature: 0.2,
        symmetric: false,
    };
    let mut optim = SgdConfig::new().init();
    let mut losses = Vec::new();
    for step in 0..steps {
        let start = (step * BATCH) % (images.len() - BATCH);
        let x = &images[start..start + BATCH];
        let (v0, v1) = (views(x, step, 0, &device), views(x, step, 1, &device));
        let mixed = unmix.apply(v0.clone(), step as u64); // Un-Mix: mixture of view 0
        let q1 = l2_normalize(query.forward(v0));
        let qm = l2_normalize(query.forward(mixed.images));
        let k2 = l2_normalize(key.forward(v1)).detach();
        let emb = MocoEmbeddings {
            q1,
            k2: k2.clone(),
            swapped: None,
            mixed: Some((qm, mixed.lambda)),
        };
        let loss = loss_fn.forward(emb, queue.clone()).total;
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &query);
        query = optim.step(0.03, query, grads);
        key = momentum_update(key, &query, 0.99);
        queue = Tensor::cat(vec![k2, queue.narrow(0, 0, QUEUE - BATCH)], 0); // newest first
    }
    losses
}

/// A random 28×28 crop of the zero-padded 32×32 image, flipped half of the time: a different
/// draw per (step, view, sample).
fn views(x: &[Vec<f32>], step: usize, view: usize, device: &Device) -> Tensor<4> {
    let crops: Vec<Tensor<4>> = x
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let h = (step * 7919 + view * 104_729 + i * 31) % 4096;
            let img = Tensor::<4>::from_data(TensorData::new(img.clone(), [1, 1, 28, 28]), device);
            let padded = img.pad((2, 2, 2, 2), burn::tensor::ops::PadMode::Constant(0.0));
            let crop = padded.narrow(2, h % 5, 28).narrow(3, (h / 5) % 5, 28);
            if (h / 25).is_multiple_of(2) {
                crop.flip([3])
            } else {
                crop
            }
        })
        .collect();
    Tensor::cat(crops, 0)
}

/// The first `n` training images of the embedded Fashion-MNIST subset, scaled to `[0, 1]`.
fn fashion_mnist(n: usize) -> Vec<Vec<f32>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../datasets/fashion-mnist/train-images-idx3-ubyte.gz"
    );
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("the embedded set"))
        .read_to_end(&mut bytes)
        .expect("a gzip IDX file");
    bytes[16..]
        .chunks(28 * 28)
        .take(n)
        .map(|p| p.iter().map(|&b| b as f32 / 255.0).collect())
        .collect()
}

fn main() {
    let steps = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    for (step, loss) in train(steps).iter().enumerate() {
        if step % 10 == 0 {
            println!("step {step}: loss {loss:.4}");
        }
    }
}

#[test]
fn a_few_steps_give_finite_losses() {
    let losses = train(3);
    assert_eq!(losses.len(), 3);
    // Un-Mix adds its own two InfoNCE terms to the plain one, each about ln(1 + K) at start.
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
}
