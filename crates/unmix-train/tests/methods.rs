//! Every method behind the one trait: with the identity mixture (λ = 1, mixture = view 0) the
//! Un-Mix term equals the plain loss; the trainer-facing hooks (views, momentum, frozen
//! parameters, after_step state) do what each method's paper says.

use burn::prelude::*;
use unmix_data::MultiViewBatch;
use unmix_models::{EncoderConfig, HeadConfig, ResNetConfig};
use unmix_ops::{MixKind, MixedBatch};
use unmix_train::methods::{
    ByolConfig, CmcConfig, InsDisConfig, InvariancePropagationConfig, MocoConfig, SimclrConfig,
    SwavConfig,
};
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

/// Six images per view, the same on every call. Drawn on the host from a local seeded generator:
/// the device's generator is one per process, shared by the tests running beside this one, so
/// `device.seed` followed by `Tensor::random` could interleave with another test's draws.
fn batch(device: &Device, views: usize) -> MultiViewBatch {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut view = |size: usize| {
        let values: Vec<f32> = (0..6 * 3 * size * size)
            .map(|_| rand_distr::StandardNormal.sample(&mut rng))
            .collect();
        Tensor::<4>::from_data(TensorData::new(values, [6, 3, size, size]), device)
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

/// The demo (`unmix_c10.py`) forwards the mixture once per direction of its symmetric loss, so
/// the query encoder's running statistics (what kNN and linear evaluation read) move four times
/// a step, in the order x0, mixture, x1, mixture. Ours must leave them where that order does,
/// and not where one forward of each (x0, x1, mixture) would.
#[test]
fn moco_symmetric_running_statistics_follow_the_demos_four_forwards() {
    let device = Device::flex().autodiff();
    let config = MocoConfig {
        queue_len: 24,
        shuffle_bn: false,
        ..MocoConfig::default()
    };
    assert!(config.symmetric);
    let model = config.init(&encoder(), &device).unwrap();
    // Independent copies of the initial query encoder (a clone would share running state).
    let copy = || {
        let fresh = config.init(&encoder(), &device).unwrap().encoder_q;
        fresh.load_record(model.encoder_q.clone().into_record())
    };
    let b = batch(&device, 2);
    let mixed = MixedBatch {
        images: b.views[0].clone().flip([0]).mul_scalar(0.5).add_scalar(1.0),
        lambda: 0.5,
        kind: MixKind::Global,
    };
    let (demo, one_each) = (copy(), copy());
    for x in [&b.views[0], &mixed.images, &b.views[1], &mixed.images] {
        drop(demo.forward(x.clone()));
    }
    for x in [&b.views[0], &b.views[1], &mixed.images] {
        drop(one_each.forward(x.clone()));
    }
    drop(model.forward_train(&b, Some(&mixed), &ctx(0)));
    let eval = |e: &unmix_models::Encoder| {
        e.valid()
            .forward(b.views[1].clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let (ours, demo, one_each) = (eval(&model.encoder_q), eval(&demo), eval(&one_each));
    let gap = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    };
    assert!(
        gap(&ours, &demo) < 1e-6,
        "ours vs the demo's order: {}",
        gap(&ours, &demo)
    );
    assert!(
        gap(&ours, &one_each) > 1e-3,
        "one forward each should differ: {}",
        gap(&ours, &one_each)
    );
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

/// A checkpoint taken right after a training forward holds the batch-norm running statistics of
/// that forward: the loaded model's evaluation features are bit-identical to the saved one's.
/// (Burn keeps the last running-statistics update aside until the next read; before the fix the
/// checkpoint of SimCLR, which has no momentum update to read them, missed it.)
#[test]
fn save_load_evaluate_gives_bit_identical_features() {
    let device = Device::flex().autodiff();
    let b = batch(&device, 2);
    let x = b.views[0].clone().without_autodiff();
    let features = |m: &unmix_train::methods::Simclr| {
        let (backbone, projection) = m.valid().features(x.clone());
        [backbone, projection].map(|t| t.into_data().try_to_vec::<f32>().unwrap())
    };
    // Any weights will do (the generator is shared with the tests beside this one).
    let model = SimclrConfig::default().init(&encoder(), &device).unwrap();
    let before = features(&model);
    // A training forward: moves every BN layer's running statistics (the update stays pending).
    let _ = model.forward_train(&b, None, &ctx(0));
    let dir = std::env::temp_dir().join(format!("unmix-ckpt-sync-{}", std::process::id()));
    let optim = burn::optim::SgdConfig::new().init();
    let config: unmix_train::TrainConfig = toml::from_str(
        "[data]\ndataset = \"cifar10\"\npath = \"x\"\n[method]\nkind = \"simclr\"\n",
    )
    .unwrap();
    let state = unmix_train::run::checkpoint::LoopState {
        epoch: 1,
        step: 1,
        seed: 1,
        knn_random_init: None,
        knn_top1: None,
    };
    let saved = unmix_train::run::checkpoint::save(&dir, &model, &optim, &state, &config).unwrap();
    let fresh = SimclrConfig::default().init(&encoder(), &device).unwrap();
    let loaded = unmix_train::run::checkpoint::load_model(&saved, fresh).unwrap();
    let trained = features(&model);
    assert_ne!(trained, before, "the forward moved no running statistics");
    assert_eq!(
        features(&loaded),
        trained,
        "features differ after save -> load"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The plain term of a step with a mixture, divided by the same step's plain term without one:
/// 1 exactly when the clean views' batch statistics ignore the mixture.
fn plain_with_and_without_mixture<M: Method>(model: &M, batch: &MultiViewBatch) -> (f32, f32) {
    // A mixture unlike the views (a constant image), so joint batch statistics move.
    let mixed = MixedBatch {
        images: batch.views[0].clone().mul_scalar(0.0).add_scalar(3.0),
        lambda: 0.5,
        kind: MixKind::Global,
    };
    let plain = |m: Option<&MixedBatch>| {
        let out = model.forward_train(batch, m, &ctx(0));
        let (_, t) = out.terms.iter().find(|(n, _)| *n == "plain").unwrap();
        t.clone().into_scalar::<f32>()
    };
    (plain(Some(&mixed)), plain(None))
}

/// The references pass each crop through the network on its own (htdt's
/// `[self.model(x) for x in samples]`): with `forward = "per_view"` the mixture cannot change
/// the clean views' loss; with `forward = "joint"` (one 3N batch) it does.
#[test]
fn per_view_forward_keeps_the_mixture_out_of_the_clean_views_batch_norm() {
    use unmix_train::method::ViewForward;
    let device = Device::flex().autodiff();
    let b = batch(&device, 2);
    let predictor = HeadConfig::Mlp {
        hidden_dim: 16,
        out_dim: 8,
        hidden_bn: true,
        last_bn: false,
    };
    for forward in [ViewForward::PerView, ViewForward::Joint] {
        let simclr = SimclrConfig {
            forward,
            ..SimclrConfig::default()
        }
        .init(&encoder(), &device)
        .unwrap();
        let byol = ByolConfig {
            predictor: predictor.clone(),
            forward,
            ..ByolConfig::default()
        }
        .init(&encoder(), &device)
        .unwrap();
        for (name, (with, without)) in [
            ("simclr", plain_with_and_without_mixture(&simclr, &b)),
            ("byol", plain_with_and_without_mixture(&byol, &b)),
        ] {
            match forward {
                ViewForward::PerView => {
                    assert_eq!(with, without, "{name}: the mixture moved the plain term")
                }
                ViewForward::Joint => assert!(
                    (with - without).abs() > 1e-4,
                    "{name}: joint forward should share statistics ({with} vs {without})"
                ),
            }
        }
    }
}

/// With a full queue, the mixture's code is computed with crop 0's queue, as crop 0's own code
/// is (the reference passes the mixture in crop 0's slot): so the identity mixture's Un-Mix term
/// still equals the plain loss. Before the fix the mixture's code ignored the queue.
#[test]
fn swav_mixture_codes_use_the_queue() {
    let device = Device::flex().autodiff();
    let mut model = SwavConfig {
        prototypes: 10,
        queue_len: 12,
        epoch_queue_starts: 0,
        ..SwavConfig::default()
    }
    .init(&encoder(), &device)
    .unwrap();
    let b = batch(&device, 2);
    for step in 0..2 {
        let out = model.forward_train(&b, None, &ctx(step));
        model = model.after_step(out.state, &ctx(step));
    }
    // Other images in the queue than in the batch, so that the queue changes the codes.
    let fresh = batch(&device, 2);
    let identity = MixedBatch {
        images: fresh.views[0].clone(),
        lambda: 1.0,
        kind: MixKind::Global,
    };
    let terms = |step| {
        let out = model.forward_train(&fresh, Some(&identity), &ctx(step));
        let get = |name| {
            let (_, t) = out.terms.iter().find(|(n, _)| *n == name).unwrap();
            t.clone().into_scalar::<f32>()
        };
        (get("plain"), get("mixed"))
    };
    let (plain_full, mixed_full) = terms(2);
    assert!(
        (plain_full - mixed_full).abs() < 1e-5,
        "queue full: {plain_full} vs {mixed_full}"
    );
    // The queue is in use at step 2 (not at step 1, when 6 of its 12 rows are filled).
    let (plain_filling, _) = terms(1);
    assert!((plain_full - plain_filling).abs() > 1e-6);
}

fn term(out: &unmix_train::StepOutput<impl Sized>, name: &str) -> Option<f32> {
    out.terms
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t.clone().into_scalar::<f32>())
}

fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, w] = t.dims();
    let v: Vec<f32> = t.into_data().convert::<f32>().try_to_vec().unwrap();
    v.chunks(w).map(|c| c.to_vec()).collect()
}

fn invariance_propagation() -> InvariancePropagationConfig {
    InvariancePropagationConfig {
        n_background: 8,
        k_nearest: 2,
        diffusion_layers: 2,
        n_pos: 3,
        ..Default::default()
    }
}

/// The method with a bank of 20 samples.
fn invariance_propagation_of_20(device: &Device) -> unmix_train::methods::InvariancePropagation {
    invariance_propagation()
        .init(&encoder(), 20, device)
        .unwrap()
}

#[test]
fn invariance_propagation_identity_mixture_equals_instance_loss() {
    let device = Device::flex().autodiff();
    let model = invariance_propagation_of_20(&device);
    assert_eq!(model.views().len(), 1, "one view per image");
    let mixed = MixedBatch {
        images: batch(&device, 2).views[0].clone(),
        lambda: 1.0,
        kind: MixKind::Global,
    };
    let out = model.forward_train(&batch(&device, 2), Some(&mixed), &ctx(0));
    let (instance, mixed) = (
        term(&out, "instance").unwrap(),
        term(&out, "mixed").unwrap(),
    );
    // λ = 1: only the direct term, the same embeddings against the same bank.
    assert!((instance - mixed).abs() < 1e-5, "{instance} vs {mixed}");
    // Epoch 1 of the reference: the binary ramp of 30 keeps propagation off.
    assert_eq!(term(&out, "propagation"), None);
    // The reference's epoch 31 (ours 30, counted from 0): on, weighted by lam_inv.
    let late = StepContext {
        epoch: 30,
        ..ctx(0)
    };
    let out = model.forward_train(&batch(&device, 2), None, &late);
    let propagation = term(&out, "propagation").unwrap();
    let instance = term(&out, "instance").unwrap();
    let total: f32 = out.loss.into_scalar();
    // Its sign depends on the untrained weights (3 positives can outweigh 8 background rows),
    // and those come from the process's shared generator, so only that it is there.
    assert!(
        propagation.is_finite() && propagation != 0.0,
        "{propagation}"
    );
    assert!((total - instance - propagation).abs() < 1e-5);
}

#[test]
fn invariance_propagation_updates_the_batch_rows_of_bank_and_graph() {
    let device = Device::flex().autodiff();
    let model = invariance_propagation_of_20(&device);
    let before = rows(model.bank.all());
    let b = batch(&device, 2);
    let out = model.forward_train(&b, None, &ctx(0));
    let model = model.after_step(out.state, &ctx(0));
    let after = rows(model.bank.all());
    for id in 0..20 {
        let norm: f32 = after[id].iter().map(|v| v * v).sum::<f32>().sqrt();
        if b.indices.contains(&id) {
            // v ← normalize(0.5·v + 0.5·f): a unit row, moved.
            assert!((norm - 1.0).abs() < 1e-5, "row {id}: norm {norm}");
            assert_ne!(after[id], before[id], "row {id}");
        } else {
            assert_eq!(after[id], before[id], "row {id} is not in the batch");
        }
    }
    let ids = Tensor::<1, Int>::from_data([0, 1, 2, 3, 4, 5, 6], &device);
    let graph: Vec<i64> = model
        .graph
        .neighbours(ids)
        .into_data()
        .convert::<i64>()
        .try_to_vec()
        .unwrap();
    for id in 0..6 {
        let row = &graph[id * 2..id * 2 + 2];
        assert!(
            !row.contains(&(id as i64)),
            "sample {id} is its own neighbour: {row:?}"
        );
    }
    // Sample 6 was not in the batch: the reference's zeros.
    assert_eq!(&graph[12..14], &[0, 0]);
}

#[test]
fn invariance_propagation_needs_a_bank_larger_than_its_background() {
    let device = Device::flex();
    let e = invariance_propagation()
        .init(&encoder(), 8, &device)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("method.n_background = 8"), "{e}");
    let e = InvariancePropagationConfig {
        n_background: 4,
        k_nearest: 4,
        ..Default::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("method.n_background = 4"), "{e}");
}

#[test]
fn insdis_identity_mixture_equals_plain_loss_and_z_is_set_once() {
    let device = Device::flex().autodiff();
    let config = InsDisConfig {
        nce_k: 16,
        softmax: false,
        ..Default::default()
    };
    let model = config.init(&encoder(), 20, &device).unwrap();
    assert_eq!(model.views().len(), 1, "one view per image");
    let (plain, mixed) = identity_terms(&model, &batch(&device, 2));
    // λ = 1: the same embeddings against the same rows and Z.
    assert!((plain - mixed).abs() < 1e-5, "{plain} vs {mixed}");
    let z = |m: &unmix_train::methods::InsDis| m.normalizer.value().into_scalar::<f32>();
    assert_eq!(z(&model), -1.0, "unset before the first step");
    let out = model.forward_train(&batch(&device, 2), None, &ctx(0));
    let model = model.after_step(out.state, &ctx(0));
    let first = z(&model);
    // exp(s/T) with |s| <= 1 row norms near 1: Z = mean·20 lies in 20·[e^-15, e^15].
    assert!(first > 0.0, "{first}");
    let out = model.forward_train(&batch(&device, 2), None, &ctx(1));
    let model = model.after_step(out.state, &ctx(1));
    assert_eq!(z(&model), first, "Z is kept after the first batch");
}

#[test]
fn cmc_scores_each_view_against_the_other_views_bank() {
    let device = Device::flex().autodiff();
    // NCE, worked by hand below (the configs' softmax is the same scores through
    // `nce_softmax_loss`, tested with InsDis and against PyTorch in `tests/parity.rs`).
    let config = CmcConfig {
        nce_k: 16,
        softmax: false,
        ..Default::default()
    };
    let model = config.init(&encoder(), 20, &device).unwrap();
    assert_eq!(
        model.views().len(),
        1,
        "one view per image, split by channels"
    );
    let b = batch(&device, 2);
    let out = model.forward_train(&b, None, &ctx(0));
    // By hand: L (channel 0) against the ab bank, ab (channels 1-2) against the L bank, the same
    // rows, each direction with its own first-batch normaliser (`NCEAverage.forward`).
    let x = b.views[0].clone();
    let unit = |t: Tensor<2>| unmix_losses::l2_normalize(t);
    let l = unit(model.encoder_l.forward(x.clone().narrow(1, 0, 1)));
    let ab = unit(model.encoder_ab.forward(x.narrow(1, 1, 2)));
    let ids = unmix_train::methods::insdis::contrast_draw(1, 0, 20, &b.indices, 16, &device);
    let direction = |f: Tensor<2>, bank: &unmix_models::MemoryBank| {
        let e = bank.dot_rows(f, ids.clone()).div_scalar(0.07).exp();
        let z = e.clone().mean().mul_scalar(20.0);
        unmix_losses::nce_loss(e / z.unsqueeze_dim::<2>(0), 20).into_scalar::<f32>()
    };
    let want = direction(l.clone(), &model.bank_ab) + direction(ab.clone(), &model.bank_l);
    let got = out.loss.clone().into_scalar::<f32>();
    assert!((got - want).abs() < 1e-4 * want.abs(), "{got} vs {want}");
    let swapped = direction(l, &model.bank_l) + direction(ab, &model.bank_ab);
    assert!((got - swapped).abs() > 1e-3, "the banks must be crossed");

    // λ = 1: the mixture term is the plain loss.
    let (plain, mixed) = identity_terms(&model, &b);
    assert!((plain - mixed).abs() < 1e-4, "{plain} vs {mixed}");

    // After the step: both normalisers set, exactly the batch's rows of both banks moved.
    let before_l = model.bank_l.all().into_data();
    let model = model.after_step(out.state, &ctx(0));
    for z in [&model.normalizer_l, &model.normalizer_ab] {
        assert!(z.value().into_scalar::<f32>() > 0.0);
    }
    let after_l = model.bank_l.all().into_data().try_to_vec::<f32>().unwrap();
    let before_l = before_l.try_to_vec::<f32>().unwrap();
    for row in 0..20 {
        let moved = (0..8).any(|c| after_l[row * 8 + c] != before_l[row * 8 + c]);
        assert_eq!(moved, row < 6, "row {row}");
    }
    // Evaluation features: both encoders', concatenated; the projections as unit embeddings,
    // in the space of the two banks side by side.
    let (backbone, projection) = model.features(b.views[0].clone());
    assert_eq!(backbone.dims(), [6, 64]);
    assert_eq!(projection.dims(), [6, 16]);
    let norms = projection
        .powi_scalar(2)
        .sum_dim(1)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(norms.iter().all(|n| (n - 2.0).abs() < 1e-4), "{norms:?}");
    assert_eq!(model.memory_bank().unwrap().dims(), [20, 16]);
}

#[test]
fn cmc_needs_channels_for_both_encoders() {
    let e = CmcConfig {
        first_channels: 3,
        ..Default::default()
    }
    .validate(&encoder())
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("method.first_channels = 3"), "{e}");
}

/// kNN features are extracted with the set's second half of batches on a second thread; the
/// bank must be, bit for bit and in set order, the one built one batch after the other.
#[test]
fn knn_features_on_two_threads_equal_one_batch_at_a_time() {
    use unmix_data::{AugmentationConfig, ImageSet, ViewTransform, loader::eval_batches};
    use unmix_train::eval::{FeatureKind, knn};
    let device = Device::flex().autodiff();
    let model = SimclrConfig::default().init(&encoder(), &device).unwrap();
    // 600 grey 12×12 images: batches of 256, 256 and 88, split two / one over the threads.
    let set = ImageSet {
        channels: 1,
        height: 12,
        width: 12,
        pixels: (0..600 * 144).map(|i| ((i * 7919) % 251) as u8).collect(),
        labels: None,
        class_names: Vec::new(),
    };
    let transform = ViewTransform::new(AugmentationConfig {
        crop_size: 8,
        ..AugmentationConfig::default()
    })
    .unwrap();
    let bank = knn::extract(&model, &set, &transform, FeatureKind::Backbone, &device);
    let valid = model.valid();
    let mut one_by_one = Vec::new();
    for batch in eval_batches(&set, &transform, 256) {
        let images = batch
            .to_device(&device.clone().without_autodiff())
            .views
            .remove(0);
        let f = unmix_losses::l2_normalize(valid.features(images).0);
        one_by_one.extend(f.into_data().try_to_vec::<f32>().unwrap());
    }
    assert_eq!(bank.dim, 32, "ResNet-18 width 4: 32 backbone features");
    assert_eq!(bank.data.len(), 600 * 32);
    assert!(bank.data == one_by_one, "the two-thread bank differs");
}
