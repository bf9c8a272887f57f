//! Instance discrimination (InsDis; Wu et al. 2018) as `szq0214/CMC_with_Image_Mixture` trains
//! it (`train_moco_ins.py::train_ins`, `NCE/NCEAverage.py::MemoryInsDis`,
//! `NCE/NCECriterion.py`; algorithms.md §2.4): one view per image, its L2-normalised embedding
//! scored against its own memory-bank row and `nce_k` rows drawn uniformly from the bank,
//! `exp(s/T)/Z` with CMC's constant normaliser `Z` (set from the first batch), NCE against the
//! uniform noise distribution (or `softmax = true`: cross-entropy over the `K + 1` scores), and
//! the bank's momentum update `v ← normalize(m·v + (1−m)·f)`. The dataset-level image mixture of
//! the same repository is `[data.image_mixture]`, for any method.
//!
//! With Un-Mix (`docs/methods.md`, "Un-Mix on memory-bank methods"): the mixture of sample `i`
//! (λ) and its batch partner `N−1−i` (1−λ) is scored against the same `K` noise rows with `i`'s
//! row as the positive at weight λ and the partner's at weight 1−λ.

use burn::module::{Module, RunningState};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use unmix_data::MultiViewBatch;
use unmix_losses::{l2_normalize, nce_loss, nce_softmax_loss, unmix_combine};
use unmix_models::{Encoder, EncoderConfig, MemoryBank, sample_ids};
use unmix_ops::MixedBatch;

use crate::error::TrainError;
use crate::method::{Method, StepContext, StepOutput, ViewSpec};

/// `[method]` with `kind = "insdis"`. Defaults: the repository README's InsDis command
/// (`train_moco_ins.py --batch_size 128 --nce_k 16384 --softmax`, the run behind its ImageNet-100
/// table), otherwise `train_moco_ins.py`'s argument defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InsDisConfig {
    /// Noise samples per embedding, drawn uniformly from the bank (`--nce_k`).
    pub nce_k: usize,
    /// Temperature T of `exp(s/T)` (`--nce_t`).
    pub temperature: f64,
    /// Memory-bank momentum m (`--nce_m`).
    pub bank_momentum: f64,
    /// Cross-entropy over the `K + 1` scores instead of NCE (`--softmax`; on in the README's
    /// command, whose NCE row of the ImageNet-100 table is empty).
    pub softmax: bool,
}

impl Default for InsDisConfig {
    fn default() -> Self {
        Self {
            nce_k: 16_384,
            temperature: 0.07,
            bank_momentum: 0.5,
            softmax: true,
        }
    }
}

impl InsDisConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.nce_k == 0 {
            return Err(TrainError::value(
                "method.nce_k",
                self.nce_k,
                "expected a positive value",
            ));
        }
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            return Err(TrainError::value(
                "method.temperature",
                self.temperature,
                "expected > 0",
            ));
        }
        if !(0.0..=1.0).contains(&self.bank_momentum) {
            return Err(TrainError::value(
                "method.bank_momentum",
                self.bank_momentum,
                "expected a value in [0, 1]",
            ));
        }
        Ok(())
    }

    /// Builds the method for a training set of `train_images` samples: the encoder, one bank
    /// row per sample (`U(−s, s)`, as `MemoryInsDis`) and the normaliser, unset (`−1`).
    pub fn init(
        &self,
        encoder: &EncoderConfig,
        train_images: usize,
        device: &Device,
    ) -> Result<InsDis, TrainError> {
        Ok(InsDis {
            encoder: encoder.init(device)?,
            bank: MemoryBank::new(train_images, encoder.head.out_dim(), device)?,
            normalizer: RunningState::new(Tensor::from_data([-1.0], device)),
            settings: self.clone(),
        })
    }
}

/// The `[B, K+1]` bank ids step `step` scores its batch against: each sample's own id, then `k`
/// uniform draws over the `bank_len` rows (`MemoryInsDis`'s `AliasMethod` over uniform weights). A pure
/// function of `(seed, step)`, so a resumed run and the parity record draw the same.
pub fn contrast_draw(
    seed: u64,
    step: u64,
    bank_len: usize,
    own: &[usize],
    k: usize,
    device: &Device,
) -> Tensor<2, Int> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1D15_0B4E);
    rng.set_stream(step);
    unmix_models::contrast_ids(bank_len, own, k, &mut rng, device)
}

/// CMC's normaliser for this step: the stored `Z`, or, while it is unset (`< 0`), `mean(exp(s/T))
/// · N` of this batch's scores `logits = s/T` (`NCEAverage` / `MemoryInsDis.forward`). Kept on
/// the device, so no step waits for it. Shared with CMC.
pub fn normalizer_or_first(stored: Tensor<1>, logits: Tensor<2>, bank_len: usize) -> Tensor<1> {
    let first = logits.detach().exp().mean().mul_scalar(bank_len as f64);
    stored.clone().mask_where(stored.lower_elem(0.0), first)
}

/// The loss of scores `logits = s/T` `[B, K+1]` (positive in column 0) against a bank of
/// `bank_len` rows: the softmax loss, or NCE on `exp(logits)/z`. Shared with CMC.
pub fn bank_loss(logits: Tensor<2>, z: Tensor<1>, bank_len: usize, softmax: bool) -> Tensor<1> {
    if softmax {
        nce_softmax_loss(logits)
    } else {
        nce_loss(logits.exp() / z.unsqueeze_dim::<2>(0), bank_len)
    }
}

/// Un-Mix's reverse scores `[B, K+1]`: the mixture's `direct` scores with column 0 replaced by
/// its score against the partner's row (`N−1−i`, the batch flip of each sample's own id `ids[:,
/// 0]`); the noise columns are the same rows, so only that column is gathered again. Shared
/// with CMC.
pub fn reverse_logits(
    direct: Tensor<2>,
    mixture: Tensor<2>,
    bank: &MemoryBank,
    ids: Tensor<2, Int>,
    temperature: f64,
) -> Tensor<2> {
    let noise = direct.dims()[1] - 1;
    let partner = ids.narrow(1, 0, 1).flip([0]);
    let positive = bank.dot_rows(mixture, partner).div_scalar(temperature);
    Tensor::cat(vec![positive, direct.narrow(1, 1, noise)], 1)
}

/// InsDis: one encoder, its memory bank and NCE's normaliser.
#[derive(Module, Debug)]
pub struct InsDis {
    /// The encoder (backbone + head).
    pub encoder: Encoder,
    /// One unit embedding per training image.
    pub bank: MemoryBank,
    /// CMC's `Z`, `[1]`: −1 until the first batch sets it.
    pub normalizer: RunningState<Tensor<1>>,
    /// The method's settings.
    #[module(skip)]
    pub settings: InsDisConfig,
}

/// What a step hands to the bank update.
#[derive(Debug, Clone)]
pub struct InsDisUpdate {
    ids: Tensor<1, Int>,
    features: Tensor<2>,
    normalizer: Tensor<1>,
}

impl InsDis {
    /// The scores `s/T` `[B, K+1]` of unit embeddings `f` against bank rows `ids` (positive in
    /// column 0).
    fn logits(&self, f: Tensor<2>, ids: Tensor<2, Int>) -> Tensor<2> {
        self.bank
            .dot_rows(f, ids)
            .div_scalar(self.settings.temperature)
    }

    /// NCE on `exp(logits)/z`, or the softmax loss on the logits.
    fn loss(&self, logits: Tensor<2>, z: Tensor<1>) -> Tensor<1> {
        bank_loss(logits, z, self.bank.len(), self.settings.softmax)
    }
}

impl Method for InsDis {
    type StepState = InsDisUpdate;

    /// One view per image.
    fn views(&self) -> Vec<ViewSpec> {
        vec![ViewSpec::LARGE]
    }

    fn forward_train(
        &self,
        batch: &MultiViewBatch,
        mixed: Option<&MixedBatch>,
        ctx: &StepContext,
    ) -> StepOutput<InsDisUpdate> {
        let s = &self.settings;
        let f = l2_normalize(self.encoder.forward(batch.views[0].clone()));
        let ids = contrast_draw(
            ctx.seed,
            ctx.step,
            self.bank.len(),
            &batch.indices,
            s.nce_k,
            &f.device(),
        );
        let logits = self.logits(f.clone(), ids.clone());
        let z = normalizer_or_first(self.normalizer.value(), logits.clone(), self.bank.len());
        let plain = self.loss(logits, z.clone());
        let mixed = mixed.map(|m| {
            let fm = l2_normalize(self.encoder.forward(m.images.clone()));
            let direct = self.logits(fm.clone(), ids.clone());
            let reverse =
                reverse_logits(direct.clone(), fm, &self.bank, ids.clone(), s.temperature);
            let (direct, reverse) = (self.loss(direct, z.clone()), self.loss(reverse, z.clone()));
            unmix_combine(direct, reverse, m.lambda)
        });
        let update = InsDisUpdate {
            ids: sample_ids(&batch.indices, &f.device()),
            features: f.detach(),
            normalizer: z.detach(),
        };
        StepOutput::with_unmix(plain, mixed, update)
    }

    /// The bank's momentum update with the step's embeddings, and `Z` kept.
    fn after_step(self, state: InsDisUpdate, _ctx: &StepContext) -> Self {
        Self {
            bank: self
                .bank
                .update(state.ids, state.features, self.settings.bank_momentum),
            normalizer: RunningState::new(state.normalizer),
            ..self
        }
    }

    fn memory_bank(&self) -> Option<Tensor<2>> {
        Some(self.bank.all())
    }

    fn features(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.encoder.forward_features(images)
    }

    fn backbones(&self) -> Vec<(&'static str, &unmix_models::ResNet)> {
        vec![("backbone", &self.encoder.backbone)]
    }
}
