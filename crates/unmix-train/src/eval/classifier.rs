//! A classifier trained on an encoder's trunk with labels, with train-time augmentation: the
//! engine of the augmented linear protocols ([`super::linear_augmented`]: the trunk frozen in
//! evaluation mode, only the linear head learns) and of semi-supervised fine-tuning
//! ([`super::semi`]: the whole network learns, trunk and head at their own learning rates).
//!
//! As the references (`main_lincls.py`, SwAV's `eval_linear.py` / `eval_semisup.py`): SGD with
//! momentum (no dampening, no Nesterov), L2 weight decay, the learning rate set per epoch by a
//! step or cosine schedule, cross-entropy; a random-resized crop and a horizontal flip per
//! image per epoch; the test images through the run's evaluation transform, top-1 and top-5.
//! A frozen trunk runs in evaluation mode on a device without autodiff, so neither its weights
//! nor its batch-norm statistics move (MoCo's `model.eval()` with `requires_grad=False`). The
//! loader drops an epoch's last incomplete batch (torch's `DataLoader` keeps it).

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use unmix_data::loader::eval_batches;
use unmix_data::{AugmentationConfig, ImageSet, MultiViewLoader, ViewTransform};
use unmix_models::ResNet;

use super::Scores;
use crate::error::{AtKey, TrainError};
use crate::method::ParamGroup;
use crate::optim::groups::grouped_step;

/// How the learning rate moves over the epochs (set at the start of each epoch).
#[derive(Debug, Clone, PartialEq)]
pub enum EpochSchedule {
    /// Multiplied by `gamma` at each milestone epoch (torch `MultiStepLR`).
    Steps {
        /// Epochs (0-based) from which the next factor applies.
        milestones: Vec<usize>,
        /// The factor.
        gamma: f64,
    },
    /// Half a cosine from the base rate to 0 over the epochs (torch `CosineAnnealingLR`,
    /// `eta_min` 0).
    Cosine,
}

impl EpochSchedule {
    /// The factor of the base rate in `epoch` (0-based) of `epochs`.
    ///
    /// ```
    /// use unmix_train::eval::classifier::EpochSchedule;
    ///
    /// let steps = EpochSchedule::Steps { milestones: vec![60, 80], gamma: 0.1 };
    /// assert_eq!(steps.factor(59, 100), 1.0);
    /// assert!((steps.factor(80, 100) - 0.01).abs() < 1e-15);
    /// assert_eq!(EpochSchedule::Cosine.factor(0, 100), 1.0);
    /// assert!((EpochSchedule::Cosine.factor(50, 100) - 0.5).abs() < 1e-12);
    /// ```
    pub fn factor(&self, epoch: usize, epochs: usize) -> f64 {
        match self {
            EpochSchedule::Steps { milestones, gamma } => {
                gamma.powi(milestones.iter().filter(|&&m| epoch >= m).count() as i32)
            }
            EpochSchedule::Cosine => {
                0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos())
            }
        }
    }
}

/// How the linear head starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadInit {
    /// Weights `N(0, 0.01)`, bias 0 (`main_lincls.py`, SwAV's `RegLog`).
    Normal001,
    /// PyTorch's `nn.Linear` default (Burn's `LinearConfig` default is the same
    /// Kaiming-uniform bound).
    TorchDefault,
}

/// A recipe: everything but the data.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierRecipe {
    /// Epochs over the labelled images.
    pub epochs: usize,
    /// Images per step (capped at the number of labelled images).
    pub batch_size: usize,
    /// The head's base learning rate.
    pub head_lr: f64,
    /// The trunk's base learning rate; 0 freezes it (evaluation mode, no gradient).
    pub trunk_lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// The learning-rate schedule, per epoch.
    pub schedule: EpochSchedule,
    /// The head's initialisation.
    pub head_init: HeadInit,
    /// Area range of the train-time random-resized crop (then a flip with probability ½).
    pub crop_scale: [f64; 2],
}

/// The trunk and its linear head.
#[derive(Module, Debug)]
pub struct Classifier {
    /// The encoder's trunk (pooled features).
    pub trunk: ResNet,
    /// The linear layer to the classes.
    pub head: Linear,
}

impl Classifier {
    /// Class scores of `images`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.trunk.forward(images))
    }
}

/// The train-time augmentation: the run's crop size and normalisation, a random-resized crop of
/// `scale` (torchvision's ratio 3/4–4/3), a flip with probability ½, nothing else.
pub fn train_augmentation(base: &AugmentationConfig, scale: [f64; 2]) -> AugmentationConfig {
    AugmentationConfig {
        crop_scale: scale,
        crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
        hflip_prob: 0.5,
        jitter_prob: 0.0,
        grayscale_prob: 0.0,
        blur_prob: 0.0,
        solarize_prob: 0.0,
        ..base.clone()
    }
}

fn labels_on(labels: &[u16], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(
        TensorData::new(labels.iter().map(|&l| l as i64).collect(), [labels.len()]),
        device,
    )
}

/// Trains a classifier of `classes` classes on `trunk` with the labelled `train` images (by
/// `recipe`, seeded by `seed`) and scores it on `test` (top-1 and top-5, in %).
#[allow(clippy::too_many_arguments)]
pub fn train_classifier(
    trunk: &ResNet,
    train: &ImageSet,
    test: &ImageSet,
    classes: usize,
    augmentation: &AugmentationConfig,
    recipe: &ClassifierRecipe,
    seed: u64,
    device: &Device,
) -> Result<Scores, TrainError> {
    let plain = device.clone().without_autodiff();
    let ad = plain.clone().autodiff();
    ad.seed(seed);
    let dim = trunk.feature_dim();
    let mut head: Linear = LinearConfig::new(dim, classes).init(&ad);
    if recipe.head_init == HeadInit::Normal001 {
        head.weight = Param::from_tensor(Tensor::random(
            [dim, classes],
            Distribution::Normal(0.0, 0.01),
            &ad,
        ));
        head.bias = head.bias.map(|b| Param::from_tensor(b.val().zeros_like()));
    }
    let transform = ViewTransform::new(train_augmentation(augmentation, recipe.crop_scale))
        .at("data.augmentation")?;
    let batch = recipe.batch_size.min(train.len()).max(1);
    let loader = MultiViewLoader::new(Arc::new(train.clone()), vec![transform], batch, 1, seed)
        .at("labelled images")?;
    let decay = (recipe.weight_decay > 0.0).then_some(WeightDecayConfig {
        penalty: recipe.weight_decay as f32,
    });
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: recipe.momentum,
            // torch's SGD has no dampening (Burn's default is 0.1).
            dampening: 0.0,
            nesterov: false,
        }))
        .with_weight_decay(decay)
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let frozen = recipe.trunk_lr == 0.0;
    let frozen_trunk = trunk.clone().valid();
    let mut model = Classifier {
        trunk: if frozen {
            trunk.clone()
        } else {
            trunk.clone().fork(&ad).train()
        },
        head,
    };
    // Parameter ids survive optimiser steps: the trunk's group is listed once.
    let all_params = crate::method::param_ids(&model);
    let trunk_group = ParamGroup::of(&model.trunk, recipe.trunk_lr / recipe.head_lr);
    for epoch in 0..recipe.epochs {
        let lr = recipe.head_lr * recipe.schedule.factor(epoch, recipe.epochs);
        for host in loader.epoch(epoch as u64, 0) {
            let labels = labels_on(host.labels.as_deref().unwrap_or_default(), &ad);
            let images = host.to_device(&plain).views.remove(0);
            if frozen {
                // Features of the frozen trunk, handed to the head as data.
                let features = frozen_trunk.forward(images).autodiff();
                let loss = loss_fn.forward(model.head.forward(features), labels);
                let grads = GradientsParams::from_grads(loss.backward(), &model.head);
                model.head = optim.step(lr, model.head, grads);
            } else {
                let images = images.autodiff();
                let loss = loss_fn.forward(model.forward(images), labels);
                let groups = vec![trunk_group.clone()];
                model = grouped_step(&mut optim, model, loss.backward(), lr, groups, &all_params);
            }
        }
    }
    let model = Classifier {
        trunk: if frozen {
            frozen_trunk
        } else {
            model.trunk.valid()
        },
        head: model.head.valid(),
    };
    score(&model, test, augmentation, classes, &plain)
}

/// Top-1 and top-5 (top-`classes` when fewer) of `model` on `test`, in %.
fn score(
    model: &Classifier,
    test: &ImageSet,
    augmentation: &AugmentationConfig,
    classes: usize,
    device: &Device,
) -> Result<Scores, TrainError> {
    let transform = ViewTransform::new(augmentation.clone()).at("data.augmentation")?;
    let top = 5.min(classes);
    let (mut top1, mut top5, mut n) = (0usize, 0usize, 0usize);
    for host in eval_batches(test, &transform, 256) {
        let labels = host.labels.clone().unwrap_or_default();
        let images = host.to_device(device).views.remove(0);
        let (hits1, hits5) = super::linear::top_hits(model.forward(images), &labels, top);
        top1 += hits1;
        top5 += hits5;
        n += labels.len();
    }
    let n = n.max(1) as f64;
    Ok(Scores {
        top1: 100.0 * top1 as f64 / n,
        top5: Some(100.0 * top5 as f64 / n),
    })
}
