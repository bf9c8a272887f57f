//! Contrastive Multiview Coding (CMC; Tian et al. 2019) as `szq0214/CMC_with_Image_Mixture`
//! trains it (`train_CMC.py`, `models/resnet.py::ResNetV1|V2`, `NCE/NCEAverage.py::NCEAverage`,
//! `NCE/NCECriterion.py`; algorithms.md §2.4): each image is one view in `Lab` (or `YCbCr`,
//! `[data.augmentation] color_space`), split into its first channel and the other two; one
//! encoder per part (`l_to_ab` on L, `ab_to_l` on ab), each with a linear head to unit
//! 128-d embeddings and a memory bank of its own. The L embedding is scored against the ab bank
//! and the ab embedding against the L bank, on the same rows (own id in column 0, `nce_k`
//! uniform draws), NCE with one constant normaliser per direction set by the first batch (or
//! `softmax = true`), `L = L_l + L_ab`; then both banks take their momentum update.
//!
//! With Un-Mix (`docs/methods.md`, "Un-Mix on memory-bank methods"): the mixture of sample `i`
//! (λ) and its batch partner `N−1−i` (1−λ) goes through both encoders and both cross-view
//! losses, with `i`'s rows as the positives at weight λ and the partner's at 1−λ.

use burn::module::{Module, RunningState};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use unmix_data::MultiViewBatch;
use unmix_losses::{l2_normalize, unmix_combine};
use unmix_models::{Encoder, EncoderConfig, MemoryBank, sample_ids};
use unmix_ops::MixedBatch;

use crate::error::TrainError;
use crate::method::{Method, StepContext, StepOutput, ViewSpec};
use crate::methods::insdis::{bank_loss, contrast_draw, normalizer_or_first, reverse_logits};

/// `[method]` with `kind = "cmc"`. Defaults: the CMC row of the repository README's ImageNet-100
/// table (2 × ResNet-50 half, YCbCr, softmax-CE, 4,096 negatives: 75.8%; its NCE row is empty),
/// otherwise `train_CMC.py`'s argument defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CmcConfig {
    /// Noise rows per embedding, drawn uniformly from the bank (`--nce_k`).
    pub nce_k: usize,
    /// Temperature T of `exp(s/T)` (`--nce_t`).
    pub temperature: f64,
    /// Memory-bank momentum m (`--nce_m`).
    pub bank_momentum: f64,
    /// Cross-entropy over the `K + 1` scores instead of NCE (`--softmax`).
    pub softmax: bool,
    /// Image channels the first encoder sees (`torch.split(x, [1, 2], dim=1)`: L of Lab, Y of
    /// YCbCr); the second sees the rest.
    pub first_channels: usize,
}

impl Default for CmcConfig {
    fn default() -> Self {
        Self {
            nce_k: 4_096,
            temperature: 0.07,
            bank_momentum: 0.5,
            softmax: true,
            first_channels: 1,
        }
    }
}

impl CmcConfig {
    /// Checks ranges against the encoder (whose `in_channels` are the image's, split here).
    pub fn validate(&self, encoder: &EncoderConfig) -> Result<(), TrainError> {
        crate::methods::insdis::InsDisConfig {
            nce_k: self.nce_k,
            temperature: self.temperature,
            bank_momentum: self.bank_momentum,
            softmax: self.softmax,
        }
        .validate()?;
        let channels = encoder.backbone.in_channels;
        if self.first_channels == 0 || self.first_channels >= channels {
            return Err(TrainError::value(
                "method.first_channels",
                self.first_channels,
                "expected at least 1 and fewer than model.backbone.in_channels, so that each \
                 encoder sees some channels",
            ));
        }
        Ok(())
    }

    /// Builds the two encoders (the `[model]` encoder on the first `first_channels` channels
    /// and on the rest), one bank per encoder for `train_images` samples and the two unset
    /// normalisers.
    pub fn init(
        &self,
        encoder: &EncoderConfig,
        train_images: usize,
        device: &Device,
    ) -> Result<Cmc, TrainError> {
        self.validate(encoder)?;
        let on = |channels| {
            let mut c = encoder.clone();
            c.backbone.in_channels = channels;
            c.init(device)
        };
        let dim = encoder.head.out_dim();
        let unset = || RunningState::new(Tensor::from_data([-1.0], device));
        Ok(Cmc {
            encoder_l: on(self.first_channels)?,
            encoder_ab: on(encoder.backbone.in_channels - self.first_channels)?,
            bank_l: MemoryBank::new(train_images, dim, device)?,
            bank_ab: MemoryBank::new(train_images, dim, device)?,
            normalizer_l: unset(),
            normalizer_ab: unset(),
            settings: self.clone(),
        })
    }
}

/// CMC: two encoders, their memory banks and the two NCE normalisers.
#[derive(Module, Debug)]
pub struct Cmc {
    /// The encoder of the first channels (L of Lab; `l_to_ab`).
    pub encoder_l: Encoder,
    /// The encoder of the other channels (ab of Lab; `ab_to_l`).
    pub encoder_ab: Encoder,
    /// The L embeddings of every training image (`memory_l`).
    pub bank_l: MemoryBank,
    /// The ab embeddings of every training image (`memory_ab`).
    pub bank_ab: MemoryBank,
    /// `Z_l`, `[1]`, of the L embeddings' scores against the ab bank: −1 until set.
    pub normalizer_l: RunningState<Tensor<1>>,
    /// `Z_ab`, `[1]`, of the ab embeddings' scores against the L bank: −1 until set.
    pub normalizer_ab: RunningState<Tensor<1>>,
    /// The method's settings.
    #[module(skip)]
    pub settings: CmcConfig,
}

/// What a step hands to the bank updates.
#[derive(Debug, Clone)]
pub struct CmcUpdate {
    ids: Tensor<1, Int>,
    features_l: Tensor<2>,
    features_ab: Tensor<2>,
    normalizer_l: Tensor<1>,
    normalizer_ab: Tensor<1>,
}

impl Cmc {
    /// The unit embeddings of the two channel groups of `images`.
    fn embed(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let (l, ab) = self.split(images);
        (
            l2_normalize(self.encoder_l.forward(l)),
            l2_normalize(self.encoder_ab.forward(ab)),
        )
    }

    /// `torch.split(x, [first, rest], dim=1)`.
    fn split(&self, images: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let channels = images.dims()[1];
        let first = self.settings.first_channels;
        (
            images.clone().narrow(1, 0, first),
            images.narrow(1, first, channels - first),
        )
    }

    /// The scores `s/T` of unit embeddings `f` against `bank`'s rows `ids` (positive in
    /// column 0).
    fn logits(&self, f: Tensor<2>, bank: &MemoryBank, ids: Tensor<2, Int>) -> Tensor<2> {
        bank.dot_rows(f, ids).div_scalar(self.settings.temperature)
    }

    /// `L_l + L_ab` of the L scores (against the ab bank) and the ab scores (against the L
    /// bank), with their normalisers (NCE) or the softmax loss.
    fn pair_loss(
        &self,
        (logits_l, logits_ab): (Tensor<2>, Tensor<2>),
        (z_l, z_ab): (Tensor<1>, Tensor<1>),
    ) -> Tensor<1> {
        let (n, softmax) = (self.bank_l.len(), self.settings.softmax);
        bank_loss(logits_l, z_l, n, softmax) + bank_loss(logits_ab, z_ab, n, softmax)
    }
}

impl Method for Cmc {
    type StepState = CmcUpdate;

    /// One view per image, both encoders reading their channels of it.
    fn views(&self) -> Vec<ViewSpec> {
        vec![ViewSpec::LARGE]
    }

    fn forward_train(
        &self,
        batch: &MultiViewBatch,
        mixed: Option<&MixedBatch>,
        ctx: &StepContext,
    ) -> StepOutput<CmcUpdate> {
        let s = &self.settings;
        let (l, ab) = self.embed(batch.views[0].clone());
        // One draw of rows for both directions (`NCEAverage` scores both banks at `idx`).
        let ids = contrast_draw(
            ctx.seed,
            ctx.step,
            self.bank_l.len(),
            &batch.indices,
            s.nce_k,
            &l.device(),
        );
        // The clean scores are gathered once, for the normalisers and the loss.
        let n = self.bank_l.len();
        let logits_l = self.logits(l.clone(), &self.bank_ab, ids.clone());
        let logits_ab = self.logits(ab.clone(), &self.bank_l, ids.clone());
        let z_l = normalizer_or_first(self.normalizer_l.value(), logits_l.clone(), n);
        let z_ab = normalizer_or_first(self.normalizer_ab.value(), logits_ab.clone(), n);
        let z = (z_l.clone(), z_ab.clone());
        let plain = self.pair_loss((logits_l, logits_ab), z.clone());
        let mixed = mixed.map(|m| {
            let (ml, mab) = self.embed(m.images.clone());
            let direct_l = self.logits(ml.clone(), &self.bank_ab, ids.clone());
            let direct_ab = self.logits(mab.clone(), &self.bank_l, ids.clone());
            let t = s.temperature;
            let reverse = (
                reverse_logits(direct_l.clone(), ml, &self.bank_ab, ids.clone(), t),
                reverse_logits(direct_ab.clone(), mab, &self.bank_l, ids.clone(), t),
            );
            let direct = self.pair_loss((direct_l, direct_ab), z.clone());
            unmix_combine(direct, self.pair_loss(reverse, z.clone()), m.lambda)
        });
        let update = CmcUpdate {
            ids: sample_ids(&batch.indices, &l.device()),
            features_l: l.detach(),
            features_ab: ab.detach(),
            normalizer_l: z_l.detach(),
            normalizer_ab: z_ab.detach(),
        };
        StepOutput::with_unmix(plain, mixed, update)
    }

    /// Both banks' momentum updates with the step's embeddings, and both `Z` kept.
    fn after_step(self, state: CmcUpdate, _ctx: &StepContext) -> Self {
        let m = self.settings.bank_momentum;
        Self {
            bank_l: self.bank_l.update(state.ids.clone(), state.features_l, m),
            bank_ab: self.bank_ab.update(state.ids, state.features_ab, m),
            normalizer_l: RunningState::new(state.normalizer_l),
            normalizer_ab: RunningState::new(state.normalizer_ab),
            ..self
        }
    }

    /// Both banks side by side, L first, as the concatenated projections are.
    fn memory_bank(&self) -> Option<Tensor<2>> {
        Some(Tensor::cat(vec![self.bank_l.all(), self.bank_ab.all()], 1))
    }

    /// CMC's evaluation features: both encoders' features, concatenated (L first). The
    /// projections are each encoder's unit embedding (the space of its bank), so that neither
    /// half outweighs the other and [`Method::memory_bank`] pairs with them.
    fn features(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let (l, ab) = self.split(images);
        let (bl, pl) = self.encoder_l.forward_features(l);
        let (bab, pab) = self.encoder_ab.forward_features(ab);
        (
            Tensor::cat(vec![bl, bab], 1),
            Tensor::cat(vec![l2_normalize(pl), l2_normalize(pab)], 1),
        )
    }

    /// The two halves: `l` reads the first `first_channels` channels, `ab` the rest.
    fn backbones(&self) -> Vec<(&'static str, &unmix_models::ResNet)> {
        vec![
            ("l", &self.encoder_l.backbone),
            ("ab", &self.encoder_ab.backbone),
        ]
    }
}
