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

/// The encoder's trunk: its ResNet(s) in [`Method::backbones`](crate::Method::backbones)'
/// order. Each reads the next run of the image's channels, as many as its stem takes, and their
/// pooled features are concatenated: one ResNet reads the whole image; CMC's L half reads the
/// first channel and its ab half the other two, and the head sees `feat_l ‖ feat_ab` (CMC's
/// `LinearClassifierResNet` on `torch.cat((feat_l, feat_ab), dim=1)`).
#[derive(Module, Debug)]
pub struct Trunk {
    /// The ResNets, in channel order.
    pub parts: Vec<ResNet>,
}

impl Trunk {
    /// The trunk of `parts`; an error names the channel counts when they do not add up to
    /// `channels`, the images' own.
    pub fn new(parts: Vec<ResNet>, channels: usize) -> Result<Self, TrainError> {
        let read: Vec<usize> = parts.iter().map(ResNet::in_channels).collect();
        if parts.is_empty() || read.iter().sum::<usize>() != channels {
            return Err(TrainError::Value {
                key: "model.backbone".into(),
                value: format!("trunks reading {read:?} channels"),
                expected: format!("trunks that together read the images' {channels} channels"),
            });
        }
        Ok(Self { parts })
    }

    /// Width of the concatenated features.
    pub fn feature_dim(&self) -> usize {
        self.parts.iter().map(ResNet::feature_dim).sum()
    }

    /// Concatenated pooled features `[N, feature_dim]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        if let [one] = self.parts.as_slice() {
            return one.forward(images);
        }
        let mut first = 0;
        let features = self
            .parts
            .iter()
            .map(|part| {
                let channels = part.in_channels();
                let x = images.clone().narrow(1, first, channels);
                first += channels;
                part.forward(x)
            })
            .collect();
        Tensor::cat(features, 1)
    }
}

/// The trunk and its linear head.
#[derive(Module, Debug)]
pub struct Classifier {
    /// The encoder's trunk (pooled features).
    pub trunk: Trunk,
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

/// Trains a classifier of `classes` classes on `trunk` (see [`Trunk`]) with the labelled
/// `train` images (by `recipe`, seeded by `seed`) and scores it on `test` (top-1 and top-5,
/// in %).
#[allow(clippy::too_many_arguments)]
pub fn train_classifier(
    trunk: &Trunk,
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

#[cfg(test)]
mod tests {
    use super::*;
    use unmix_models::ResNetConfig;

    fn resnet(in_channels: usize, device: &Device) -> ResNet {
        ResNetConfig {
            width: 4,
            in_channels,
            layers: vec![1, 1, 1, 1],
            ..ResNetConfig::resnet18_cifar()
        }
        .init(device)
        .unwrap()
        .valid()
    }

    fn columns(t: Tensor<2>, from: usize, to: usize) -> Vec<f32> {
        t.narrow(1, from, to - from)
            .into_data()
            .try_to_vec()
            .unwrap()
    }

    /// CMC's halves: the first ResNet reads channel 0 only, the second channels 1–2, and the
    /// features are theirs side by side; a change to channel 0 moves only the first block of
    /// columns, a change to channel 2 only the second.
    #[test]
    fn each_part_of_a_trunk_reads_its_own_channels() {
        let device = Device::flex();
        let trunk = Trunk::new(vec![resnet(1, &device), resnet(2, &device)], 3).unwrap();
        let d = trunk.parts[0].feature_dim();
        assert_eq!(trunk.feature_dim(), 2 * d);
        let x = Tensor::<4>::random([2, 3, 8, 8], Distribution::Default, &device);
        let bump = |c: usize| {
            let delta = Tensor::<4>::ones([2, 1, 8, 8], &device);
            x.clone().slice_assign(
                [0..2, c..c + 1, 0..8, 0..8],
                x.clone().narrow(1, c, 1) + delta,
            )
        };
        let base = trunk.forward(x.clone());
        let first = trunk.forward(bump(0));
        let last = trunk.forward(bump(2));
        assert_ne!(columns(first.clone(), 0, d), columns(base.clone(), 0, d));
        assert_eq!(columns(first, d, 2 * d), columns(base.clone(), d, 2 * d));
        assert_eq!(columns(last.clone(), 0, d), columns(base.clone(), 0, d));
        assert_ne!(columns(last, d, 2 * d), columns(base, d, 2 * d));
        // The same as each part on its own slice.
        let own = trunk.parts[1].forward(x.clone().narrow(1, 1, 2));
        let ours = trunk.forward(x);
        assert_eq!(
            columns(ours, d, 2 * d),
            own.into_data().try_to_vec::<f32>().unwrap()
        );
    }

    #[test]
    fn a_trunk_must_read_every_channel_once() {
        let device = Device::flex();
        let err = Trunk::new(vec![resnet(3, &device), resnet(2, &device)], 3)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[3, 2]") && err.contains("3 channels"),
            "{err}"
        );
        assert!(Trunk::new(Vec::new(), 3).is_err());
        let one = Trunk::new(vec![resnet(3, &device)], 3).unwrap();
        assert_eq!(one.feature_dim(), one.parts[0].feature_dim());
    }
}
