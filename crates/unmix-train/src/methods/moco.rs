//! MoCo v1/v2 (He et al. 2020; Chen et al. 2020) with the symmetric form and split BN of the
//! Un-Mix CIFAR demo (algorithms.md §1.4.1, §1.6A/B).

use burn::module::{Module, RunningState};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use unmix_data::MultiViewBatch;
use unmix_losses::{MocoEmbeddings, MocoLoss, l2_normalize};
use unmix_models::{Encoder, EncoderConfig, ShuffleBn, momentum_update};
use unmix_ops::MixedBatch;

use crate::error::TrainError;
use crate::method::{Method, MomentumSchedule, StepContext, StepOutput, beside};

/// `[method]` with `kind = "moco"`. Defaults: the Un-Mix CIFAR demo (K 4096, m 0.99, T 0.1,
/// symmetric).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MocoConfig {
    /// Number of negative keys K.
    pub queue_len: usize,
    /// Key-encoder momentum m (0.99 CIFAR, 0.999 ImageNet).
    pub momentum: f64,
    /// When set, m rises from `momentum` to this value on a cosine of training progress
    /// (solo-learn MoCo V2+: 0.99 → 0.999); constant otherwise.
    pub momentum_end: Option<f64>,
    /// Softmax temperature T (0.1 CIFAR demo, 0.07 v1, 0.2 v2).
    pub temperature: f64,
    /// Symmetric loss (both views as queries; enqueues 2N keys per step).
    pub symmetric: bool,
    /// Shuffle-BN on the key encoder.
    pub shuffle_bn: bool,
}

impl Default for MocoConfig {
    fn default() -> Self {
        Self {
            queue_len: 4096,
            momentum: 0.99,
            momentum_end: None,
            temperature: 0.1,
            symmetric: true,
            shuffle_bn: true,
        }
    }
}

impl MocoConfig {
    /// Checks ranges; `K` must be a multiple of the keys enqueued per step, as the reference
    /// asserts; shuffle-BN needs split batch norm (`bn_splits` > 1) to do anything.
    pub fn validate(&self, batch_size: usize, bn_splits: usize) -> Result<(), TrainError> {
        if self.shuffle_bn && bn_splits < 2 {
            // With one set of batch statistics a permutation of the batch changes nothing: the
            // key encoder would still see every sample's statistics, which is the leak
            // shuffle-BN exists to prevent (MoCo §3.3: per-GPU BN over 8 GPUs; the CIFAR demo's
            // 8 splits).
            return Err(TrainError::value(
                "method.shuffle_bn",
                "true with model.backbone.bn_splits = 1",
                "shuffle-BN only changes which samples share batch statistics when batch norm is \
                 split; set model.backbone.bn_splits > 1 (8 in the references) or shuffle_bn = false",
            ));
        }
        let per_step = if self.symmetric {
            2 * batch_size
        } else {
            batch_size
        };
        if self.queue_len == 0 || !self.queue_len.is_multiple_of(per_step) {
            return Err(TrainError::value(
                "method.queue_len",
                self.queue_len,
                &format!("expected a positive multiple of the {per_step} keys enqueued per step"),
            ));
        }
        for (key, m) in [
            ("method.momentum", self.momentum),
            ("method.momentum_end", self.momentum_end.unwrap_or(1.0)),
        ] {
            if !(0.0..=1.0).contains(&m) {
                return Err(TrainError::value(key, m, "expected a value in [0, 1]"));
            }
        }
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            return Err(TrainError::value(
                "method.temperature",
                self.temperature,
                "expected > 0",
            ));
        }
        Ok(())
    }

    /// Builds the method: a query encoder, its momentum copy and a queue of random unit keys.
    pub fn init(&self, encoder: &EncoderConfig, device: &Device) -> Result<Moco, TrainError> {
        let encoder_q = encoder.init(device)?;
        // An independent module (running statistics must not be shared), then copied exactly.
        let encoder_k = momentum_update(encoder.init(device)?.no_grad(), &encoder_q, 0.0);
        let dim = encoder.head.out_dim();
        let queue = l2_normalize(Tensor::<2>::random(
            [self.queue_len, dim],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        ));
        Ok(Moco {
            encoder_q,
            encoder_k,
            queue: RunningState::new(queue),
            momentum: self.momentum,
            momentum_end: self.momentum_end.unwrap_or(self.momentum),
            temperature: self.temperature,
            symmetric: self.symmetric,
            shuffle_bn: self.shuffle_bn,
        })
    }
}

/// MoCo: query encoder, momentum key encoder and queue of negatives `[K, C]`.
#[derive(Module, Debug)]
pub struct Moco {
    /// Query encoder (trained by gradients).
    pub encoder_q: Encoder,
    /// Key encoder, an EMA of the query encoder.
    pub encoder_k: Encoder,
    /// Negative keys, newest first.
    pub queue: RunningState<Tensor<2>>,
    /// EMA momentum at the start.
    pub momentum: f64,
    /// EMA momentum at the end.
    pub momentum_end: f64,
    /// Temperature.
    pub temperature: f64,
    /// Symmetric loss.
    pub symmetric: bool,
    /// Shuffle-BN on the key encoder.
    pub shuffle_bn: bool,
}

impl Moco {
    /// Normalised keys of view `view` (0 or 1), through shuffle-BN when enabled.
    fn keys(&self, x: Tensor<4>, ctx: &StepContext, view: u64) -> Tensor<2> {
        let x = x.detach();
        let k = if self.shuffle_bn {
            let shuffle = key_shuffle(ctx.seed, ctx.step, view, x.dims()[0]);
            shuffle.unshuffle(self.encoder_k.forward(shuffle.shuffle(x)))
        } else {
            self.encoder_k.forward(x)
        };
        l2_normalize(k).detach()
    }
}

/// The shuffle-BN permutation of view `view`'s keys at `step`: a pure function of
/// `(seed, step, view)`, so a resumed run (and the parity harness) reproduces it.
pub fn key_shuffle(seed: u64, step: u64, view: u64, n: usize) -> ShuffleBn {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_5B0F);
    rng.set_stream(2 * step + view);
    ShuffleBn::random(n, &mut rng)
}

impl Method for Moco {
    /// The keys to enqueue.
    type StepState = Tensor<2>;

    fn forward_train(
        &self,
        batch: &MultiViewBatch,
        mixed: Option<&MixedBatch>,
        ctx: &StepContext,
    ) -> StepOutput<Tensor<2>> {
        let (x0, x1) = (batch.views[0].clone(), batch.views[1].clone());
        let queue = self.queue.value_sync();
        // The key encoder's forwards (no gradient, no random draw: the shuffle is a pure
        // function of the step) run on a second thread beside the query's, so that a CPU run
        // keeps both cores busy; the results are the same as one after the other.
        let ((q1, q2, mixed), (k2, k1)) = beside(
            || {
                // The query encoder's forwards in the demo's order (`unmix_c10.py`,
                // `contrastive_loss` once per direction): x0, mixture, x1, mixture. Its batch
                // norms' running statistics (read by kNN and linear evaluation) move once per
                // forward, so the order and the count are part of parity.
                let q1 = l2_normalize(self.encoder_q.forward(x0.clone()));
                let mixed_again = mixed.filter(|_| self.symmetric);
                // One forward of the mixture for the loss; its batch flip is taken on the
                // embeddings.
                let mixed = mixed.map(|m| {
                    (
                        l2_normalize(self.encoder_q.forward(m.images.clone())),
                        m.lambda,
                    )
                });
                let q2 = self
                    .symmetric
                    .then(|| l2_normalize(self.encoder_q.forward(x1.clone())));
                if let Some(m) = mixed_again {
                    // The demo's second direction forwards the mixture again. Same weights and
                    // input, so the same embeddings and gradients as the first: we take the
                    // loss terms of both directions on one forward, and repeat it only for
                    // the running statistics' fourth update (output dropped, no backward).
                    drop(self.encoder_q.forward(m.images.clone()));
                }
                (q1, q2, mixed)
            },
            || {
                let k2 = self.keys(x1.clone(), ctx, 1);
                let k1 = self.symmetric.then(|| self.keys(x0.clone(), ctx, 0));
                (k2, k1)
            },
        );
        let (swapped, enqueue) = match (q2, k1) {
            (Some(q2), Some(k1)) => (Some((q2, k1.clone())), Tensor::cat(vec![k1, k2.clone()], 0)),
            _ => (None, k2.clone()),
        };
        let loss = MocoLoss {
            temperature: self.temperature,
            symmetric: self.symmetric,
        };
        let terms = loss.forward(
            MocoEmbeddings {
                q1,
                k2,
                swapped,
                mixed,
            },
            queue,
        );
        StepOutput::with_unmix(terms.plain, terms.mixed, enqueue)
    }

    fn momentum(&self) -> Option<MomentumSchedule> {
        Some(MomentumSchedule {
            base: self.momentum,
            end: self.momentum_end,
        })
    }

    fn momentum_update(mut self, tau: f64) -> Self {
        // EMA after the optimiser step equals the reference's EMA before the next key forward.
        self.encoder_k = momentum_update(self.encoder_k, &self.encoder_q, tau);
        self
    }

    fn after_step(mut self, keys: Tensor<2>, _ctx: &StepContext) -> Self {
        let queue = self.queue.value_sync();
        let [k, _] = queue.dims();
        let n = keys.dims()[0];
        let kept = queue.narrow(0, 0, k - n);
        self.queue = RunningState::new(Tensor::cat(vec![keys.detach(), kept], 0).detach());
        self
    }

    fn features(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.encoder_q.forward_features(images)
    }

    fn backbones(&self) -> Vec<(&'static str, &unmix_models::ResNet)> {
        vec![("backbone", &self.encoder_q.backbone)]
    }
}
