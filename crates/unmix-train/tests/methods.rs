//! Every method behind the one trait: with the identity mixture (λ = 1, mixture = view 0) the
//! Un-Mix term equals the plain loss; the trainer-facing hooks (views, momentum, frozen
//! parameters, after_step state) do what each method's paper says.

use burn::prelude::*;
use unmix_data::MultiViewBatch;
use unmix_models::{EncoderConfig, HeadConfig, ResNetConfig};
use unmix_ops::{MixKind, MixedBatch};
use unmix_train::byol::ByolConfig;
use unmix_train::moco::MocoConfig;
use unmix_train::simclr::SimclrConfig;
use unmix_train::swav::SwavConfig;
use unmix_train::{Method, ParamGroup, StepContext};

fn encoder() -> EncoderConfig {
    EncoderConfig {
        backbone: ResNetConfig {
            width: 4,
            ..ResNetConfig::resnet18_cifar()
        },
        head: HeadConfig::Mlp {
            hidden_dim: 16,
            out_dim: 8,
            hidden_bn: true,
            last_bn: false,
        },
    }
}

fn batch(device: &Device, views: usize) -> MultiViewBatch {
    device.seed(7);
    let view = |size| {
        Tensor::<4>::random(
            [6, 3, size, size],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        )
    };
    let mut all = vec![view(12), view(12)];
    all.extend((2..views).map(|_| view(8)));
    MultiViewBatch {
        views: all,
        indices: (0..6).collect(),
        labels: None,
    }
}

fn ctx(step: u64) -> StepContext {
    StepContext {
        step,
        epoch: 0,
        steps_per_epoch: 10,
        progress: 0.0,
        seed: 1,
    }
}

/// The method's `(plain, mixed)` terms with the identity mixture.
fn identity_terms<M: Method>(model: &M, batch: &MultiViewBatch) -> (f32, f32) {
    let mixed = MixedBatch {
        images: batch.views[0].clone(),
        lambda: 1.0,
        kind: MixKind::Global,
    };
    let out = model.forward_train(batch, Some(&mixed), &ctx(0));
    let get = |name| {
        out.terms
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.clone().into_scalar::<f32>())
            .unwrap()
    };
    (get("plain"), get("mixed"))
}

#[test]
fn simclr_identity_mixture_equals_plain_loss() {
    let device = Device::flex().autodiff();
    let model = SimclrConfig::default().init(&encoder(), &device).unwrap();
    let (plain, mixed) = identity_terms(&model, &batch(&device, 2));
    // nt_xent(x1, x0) = nt_xent(x0, x1).
    assert!((plain - mixed).abs() < 1e-5, "{plain} vs {mixed}");
    assert!(model.momentum().is_none());
}

#[test]
fn byol_identity_mixture_equals_plain_loss_and_tau_follows_the_cosine() {
    let device = Device::flex().autodiff();
    let config = ByolConfig {
        predictor: HeadConfig::Mlp {
            hidden_dim: 16,
            out_dim: 8,
            hidden_bn: true,
            last_bn: false,
        },
        ..ByolConfig::default()
    };
    let model = config.init(&encoder(), &device).unwrap();
    let (plain, mixed) = identity_terms(&model, &batch(&device, 2));
    // [ℓ(p1, z0) + ℓ(p0, z1)] is the plain loss with its terms swapped.
    assert!((plain - mixed).abs() < 1e-5, "{plain} vs {mixed}");
    let tau = model.momentum().unwrap();
    assert_eq!((tau.at(0.0), tau.at(1.0)), (0.99, 1.0));
    // A predictor that does not map back to the embedding size is a named config error.
    let bad = ByolConfig {
        predictor: HeadConfig::mlp(16, 5),
        ..ByolConfig::default()
    };
    let err = bad.validate(&encoder()).unwrap_err().to_string();
    assert!(err.contains("method.predictor.out_dim"), "{err}");
    // The predictor is one parameter group when it trains at its own rate, none otherwise.
    assert!(model.param_groups(&ctx(0)).is_empty());
    let fast = ByolConfig {
        predictor_lr_scale: 10.0,
        ..config
    };
    fast.validate(&encoder()).unwrap();
    let model = fast.init(&encoder(), &device).unwrap();
    assert_eq!(
        model.param_groups(&ctx(0)),
        vec![ParamGroup::of(&model.predictor, 10.0)]
    );
    let negative = ByolConfig {
        predictor_lr_scale: -1.0,
        ..fast
    };
    let err = negative.validate(&encoder()).unwrap_err().to_string();
    assert!(err.contains("method.predictor_lr_scale"), "{err}");
}

#[test]
fn moco_identity_mixture_equals_plain_loss() {
    let device = Device::flex().autodiff();
    let config = MocoConfig {
        queue_len: 24,
        symmetric: false,
        shuffle_bn: false,
        ..MocoConfig::default()
    };
    let model = config.init(&encoder(), &device).unwrap();
    let (plain, mixed) = identity_terms(&model, &batch(&device, 2));
    assert!((plain - mixed).abs() < 1e-5, "{plain} vs {mixed}");
    assert_eq!(model.momentum().unwrap().at(0.5), 0.99);
}

#[test]
fn swav_identity_mixture_multi_crop_freezing_and_queue() {
    let device = Device::flex().autodiff();
    let config = SwavConfig {
        prototypes: 10,
        small_crops: 2,
        small_crop_size: 8,
        queue_len: 12,
        epoch_queue_starts: 0,
        freeze_prototypes_steps: 3,
        ..SwavConfig::default()
    };
    let model = config.init(&encoder(), &device).unwrap();
    let views = model.views();
    assert_eq!(views.len(), 4);
    assert_eq!(views[2].crop_size, Some(8));
    // With only two crops the direct Un-Mix term equals the plain loss; with λ = 1 it is all of
    // the mixed term.
    let two = SwavConfig {
        prototypes: 10,
        ..SwavConfig::default()
    }
    .init(&encoder(), &device)
    .unwrap();
    let (plain, mixed) = identity_terms(&two, &batch(&device, 2));
    assert!((plain - mixed).abs() < 1e-5, "{plain} vs {mixed}");
    // Prototypes are frozen for the first 3 steps only.
    assert_eq!(
        model.param_groups(&ctx(2)),
        vec![ParamGroup::frozen(vec![model.prototypes.weight.id])]
    );
    assert!(model.param_groups(&ctx(3)).is_empty());
    // Each step enqueues the two large crops' embeddings, newest first.
    let b = batch(&device, 4);
    let mut model = model;
    for step in 0..2 {
        let out = model.forward_train(&b, None, &ctx(step));
        let state = out.state.clone().expect("queue filling");
        model = model.after_step(out.state, &ctx(step));
        let queue = model.queue.as_ref().unwrap().value_sync();
        let head: Vec<f32> = queue
            .narrow(0, 0, 1)
            .narrow(1, 0, 6)
            .into_data()
            .try_to_vec()
            .unwrap();
        let want: Vec<f32> = state[0].clone().into_data().try_to_vec().unwrap();
        assert_eq!(head, want);
    }
    // Prototypes stay unit-norm after the step.
    let norms: Vec<f32> = model
        .prototypes
        .weight
        .val()
        .powf_scalar(2.0)
        .sum_dim(1)
        .into_data()
        .try_to_vec()
        .unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5));
}
