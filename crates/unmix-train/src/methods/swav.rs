//! SwAV (Caron et al. 2020) with Un-Mix as `UnMix_SwAV/main_swav_unmix.py` (algorithms.md
//! §1.4.3, §1.6C): unit-norm prototypes renormalised after every step, Sinkhorn-Knopp codes of
//! the two large crops (ε 0.05, 3 iterations), swapped prediction against every other crop
//! (2 large + `small_crops` small ones), an embedding queue from `epoch_queue_starts`, and
//! prototypes frozen for the first `freeze_prototypes_steps` steps.
//!
//! Un-Mix adds `λ·direct + (1−λ)·reverse` between the mixture of crop 0 and crop 1, with the
//! reverse term either as the authors' code computes it or as their formula states
//! ([`SwavReverse`]). As the reference's multi-resolution forward, the large crops and the
//! mixture go through the backbone as one `3N` batch (batch norm over all three), the small crops
//! as another, and the head over all of them at once. Only clean large
//! crops enter the queue (the reference also pushes mixtures; in its CIFAR script the queue is
//! empty, §1.4.3).

use burn::module::{Module, RunningState};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use unmix_data::MultiViewBatch;
use unmix_losses::{
    SwavReverse, l2_normalize, sinkhorn, swav_loss, swav_unmix_terms, unmix_combine,
};
use unmix_models::{Encoder, EncoderConfig, Prototypes};
use unmix_ops::MixedBatch;

use crate::error::TrainError;
use crate::method::{Method, ParamGroup, StepContext, StepOutput, ViewSpec, views_and_mixture};

/// `[method]` with `kind = "swav"`. Defaults: the Un-Mix SwAV CIFAR script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwavConfig {
    /// Softmax temperature of the predictions (0.1).
    pub temperature: f64,
    /// Sinkhorn regularisation ε (0.05).
    pub epsilon: f64,
    /// Sinkhorn iterations (3).
    pub sinkhorn_iterations: usize,
    /// Number of prototypes (100 on CIFAR, 3000 on ImageNet).
    pub prototypes: usize,
    /// Queued embeddings per large crop (0 = no queue: the CIFAR script's 120 rounds to 0).
    pub queue_len: usize,
    /// First epoch (0-based) whose embeddings enter the queue (15).
    pub epoch_queue_starts: usize,
    /// Steps during which the prototypes receive no update (5005).
    pub freeze_prototypes_steps: u64,
    /// Small crops per sample (multi-crop; 0 in the CIFAR script, 6 on ImageNet).
    pub small_crops: usize,
    /// Side of the small crops (96 on ImageNet for 224 large crops).
    pub small_crop_size: usize,
    /// Area range of the small crops (`[0.05, 0.14]`).
    pub small_crop_scale: [f64; 2],
    /// How the Un-Mix reverse term is formed.
    pub reverse: SwavReverse,
}

impl Default for SwavConfig {
    fn default() -> Self {
        Self {
            temperature: 0.1,
            epsilon: 0.05,
            sinkhorn_iterations: 3,
            prototypes: 100,
            queue_len: 0,
            epoch_queue_starts: 15,
            freeze_prototypes_steps: 5005,
            small_crops: 0,
            small_crop_size: 16,
            small_crop_scale: [0.05, 0.14],
            reverse: SwavReverse::Code,
        }
    }
}

impl SwavConfig {
    /// Checks ranges.
    pub fn validate(&self, batch_size: usize) -> Result<(), TrainError> {
        for (key, v) in [
            ("method.temperature", self.temperature),
            ("method.epsilon", self.epsilon),
        ] {
            if v.is_nan() || v <= 0.0 {
                return Err(TrainError::value(key, v, "expected > 0"));
            }
        }
        if self.sinkhorn_iterations == 0 || self.prototypes == 0 {
            return Err(TrainError::value(
                "method.sinkhorn_iterations / method.prototypes",
                format!("{} / {}", self.sinkhorn_iterations, self.prototypes),
                "expected both >= 1",
            ));
        }
        if self.queue_len > 0 && !self.queue_len.is_multiple_of(batch_size) {
            return Err(TrainError::value(
                "method.queue_len",
                self.queue_len,
                &format!("expected 0 or a multiple of the batch size {batch_size}"),
            ));
        }
        if self.small_crops > 0 && self.small_crop_size == 0 {
            return Err(TrainError::value(
                "method.small_crop_size",
                0,
                "expected a positive size",
            ));
        }
        let [s0, s1] = self.small_crop_scale;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
            return Err(TrainError::value(
                "method.small_crop_scale",
                format!("{:?}", self.small_crop_scale),
                "expected [lo, hi] with 0 < lo <= hi <= 1",
            ));
        }
        Ok(())
    }

    /// Builds the encoder, the prototypes and the (empty) queue.
    pub fn init(&self, encoder: &EncoderConfig, device: &Device) -> Result<Swav, TrainError> {
        let dim = encoder.head.out_dim();
        Ok(Swav {
            encoder: encoder.init(device)?,
            prototypes: Prototypes::new(self.prototypes, dim, device)?,
            queue: (self.queue_len > 0)
                .then(|| RunningState::new(Tensor::zeros([2, self.queue_len, dim], device))),
            config: self.clone(),
        })
    }
}

/// SwAV: encoder, prototypes, optional queue `[2, L, D]` (newest first).
#[derive(Module, Debug)]
pub struct Swav {
    /// Backbone + projection head.
    pub encoder: Encoder,
    /// Unit-norm prototypes.
    pub prototypes: Prototypes,
    /// Embeddings of past large crops, one queue per crop.
    pub queue: Option<RunningState<Tensor<3>>>,
    /// The settings.
    #[module(skip)]
    pub config: SwavConfig,
}

impl Swav {
    /// Codes of large crop `crop`, with the queued embeddings' scores appended when the queue
    /// is given.
    fn code(&self, scores: Tensor<2>, crop: usize, queue: Option<&Tensor<3>>) -> Tensor<2> {
        let c = &self.config;
        let n = scores.dims()[0];
        let extended = match queue {
            Some(q) => {
                let [_, len, dim] = q.dims();
                let queued = q.clone().narrow(0, crop, 1).reshape([len, dim]);
                let queued_scores = self.prototypes.forward(queued).detach();
                Tensor::cat(vec![scores.detach(), queued_scores], 0)
            }
            None => scores.detach(),
        };
        sinkhorn(extended, c.epsilon, c.sinkhorn_iterations).narrow(0, 0, n)
    }

    /// First step whose embeddings enter the queue.
    fn queue_start(&self, ctx: &StepContext) -> u64 {
        (self.config.epoch_queue_starts * ctx.steps_per_epoch) as u64
    }

    /// The queue, once full: the reference's `use_the_queue or not all zero` test on the last
    /// row, counted from the steps that have enqueued rather than read back from the device.
    fn full_queue(&self, ctx: &StepContext, batch: usize) -> Option<Tensor<3>> {
        let enqueued = ctx.step.checked_sub(self.queue_start(ctx))? as usize * batch;
        if enqueued < self.config.queue_len {
            return None;
        }
        self.queue.as_ref().map(|q| q.value_sync())
    }
}

impl Method for Swav {
    /// Embeddings of the two large crops to enqueue, when the queue is filling.
    type StepState = Option<[Tensor<2>; 2]>;

    fn views(&self) -> Vec<ViewSpec> {
        let c = &self.config;
        let mut views = vec![ViewSpec::LARGE; 2];
        views.extend(std::iter::repeat_n(
            ViewSpec {
                crop_size: Some(c.small_crop_size),
                crop_scale: Some(c.small_crop_scale),
            },
            c.small_crops,
        ));
        views
    }

    fn forward_train(
        &self,
        batch: &MultiViewBatch,
        mixed: Option<&MixedBatch>,
        ctx: &StepContext,
    ) -> StepOutput<Self::StepState> {
        let c = &self.config;
        let n = batch.indices.len();
        // The reference's multi-resolution forward: the backbone once per run of same-sized
        // crops (large crops and mixture together, then the small ones), the head and its batch
        // norm once over all of them (`src/resnet50.py::forward`).
        let large = views_and_mixture(batch, mixed);
        let n_large = large.dims()[0] / n;
        let mut feats = vec![self.encoder.backbone.forward(large)];
        if batch.views.len() > 2 {
            let small = Tensor::cat(batch.views[2..].to_vec(), 0);
            feats.push(self.encoder.backbone.forward(small));
        }
        let z = l2_normalize(self.encoder.head.forward(Tensor::cat(feats, 0)));
        let s = self.prototypes.forward(z.clone());
        let chunk = |t: &Tensor<2>, i: usize| t.clone().narrow(0, i * n, n);
        // Views 0 and 1, then the small crops; the mixture (chunk 2) only meets view 1.
        let mut scores = vec![chunk(&s, 0), chunk(&s, 1)];
        scores.extend((n_large..s.dims()[0] / n).map(|i| chunk(&s, i)));
        let queue = self.full_queue(ctx, n);
        let codes: Vec<(usize, Tensor<2>)> = (0..2)
            .map(|crop| (crop, self.code(scores[crop].clone(), crop, queue.as_ref())))
            .collect();
        let plain = swav_loss(&scores, &codes, c.temperature);
        let mixed = mixed.map(|m| {
            let s_mix = chunk(&s, 2);
            // The mixture takes crop 0's place in the reference's second `swav_loss` call, so
            // its code is computed with crop 0's queue too (`main_swav_unmix.py`).
            let code_mix = self.code(s_mix.clone(), 0, queue.as_ref());
            let (direct, reverse) = swav_unmix_terms(
                (s_mix, code_mix),
                (scores[1].clone(), codes[1].1.clone()),
                c.temperature,
                c.reverse,
            );
            unmix_combine(direct, reverse, m.lambda)
        });
        let enqueue = (self.queue.is_some() && ctx.step >= self.queue_start(ctx))
            .then(|| [chunk(&z, 0).detach(), chunk(&z, 1).detach()]);
        StepOutput::with_unmix(plain, mixed, enqueue)
    }

    fn param_groups(&self, ctx: &StepContext) -> Vec<ParamGroup> {
        if ctx.step < self.config.freeze_prototypes_steps {
            vec![ParamGroup::frozen(vec![self.prototypes.weight.id])]
        } else {
            Vec::new()
        }
    }

    fn after_step(mut self, enqueue: Self::StepState, _ctx: &StepContext) -> Self {
        self.prototypes = self.prototypes.normalized();
        if let (Some(state), Some([z0, z1])) = (&self.queue, enqueue) {
            let q = state.value_sync();
            let [_, len, dim] = q.dims();
            let n = z0.dims()[0];
            let fresh = Tensor::stack::<3>(vec![z0, z1], 0);
            let kept = q.narrow(1, 0, len - n);
            let new = Tensor::cat(vec![fresh, kept], 1).detach();
            debug_assert_eq!(new.dims(), [2, len, dim]);
            self.queue = Some(RunningState::new(new));
        }
        self
    }

    fn features(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.encoder.forward_features(images)
    }

    fn backbones(&self) -> Vec<(&'static str, &unmix_models::ResNet)> {
        vec![("backbone", &self.encoder.backbone)]
    }
}
