//! Invariance Propagation (Wang et al., NeurIPS 2020; algorithms.md §4), as the reference's
//! `main.py` and `objective.py::InvariancePropagationLoss` train it: one view per image per
//! step, a memory bank of unit embeddings (momentum 0.5), instance discrimination against the
//! `n_background` most similar bank rows, and a kNN graph over the bank whose propagated
//! neighbours give the hardest `n_pos` positives:
//! `L = L_ins + lam_inv · ramp(epoch) · L_inv`.
//!
//! With Un-Mix (no reference has it; `docs/methods.md` "Un-Mix on memory-bank methods"): the
//! mixture of sample `i` (share λ) and its batch partner `N−1−i` (share 1−λ) is discriminated
//! against its own background with `i`'s bank entry as the positive at weight λ and the
//! partner's at weight 1−λ: `λ·L_ins(m, v_i) + (1−λ)·L_ins(m, v_partner)`.

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use unmix_data::MultiViewBatch;
use unmix_losses::{
    hard_negative_instance_loss, l2_normalize, propagation_loss, select_positives, unmix_combine,
};
use unmix_models::{Encoder, EncoderConfig, MemoryBank, NeighbourGraph, sample_ids};
use unmix_ops::MixedBatch;

use crate::error::TrainError;
use crate::method::{Method, StepContext, StepOutput, ViewSpec};

/// How the propagation loss is switched on over the epochs (the reference's `--ramp_up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropagationRamp {
    /// `BinaryRampUp`: 0 up to and including epoch `ramp_epochs`, 1 after it.
    #[default]
    Binary,
    /// `GaussianRampUp`: `exp(−5·max(1 − epoch/ramp_epochs, 0)²)`.
    Gaussian,
    /// Always 1.
    Zero,
}

impl PropagationRamp {
    /// The ramp's value in training epoch `epoch`, counted from 1 as the reference's
    /// `i_epoch` (its `main.py` starts at `start_epoch = 1`): the binary ramp of 30 first fires
    /// in the 31st epoch.
    pub fn at(self, epoch: usize, ramp_epochs: usize) -> f64 {
        match self {
            PropagationRamp::Binary => f64::from(u8::from(epoch > ramp_epochs)),
            PropagationRamp::Gaussian => {
                let left = (1.0 - epoch as f64 / ramp_epochs.max(1) as f64).max(0.0);
                (-5.0 * left * left).exp()
            }
            PropagationRamp::Zero => 1.0,
        }
    }
}

/// `[method]` with `kind = "invariance_propagation"`. Defaults: the reference's CIFAR-10
/// README command (`--n_background 4096 --t 0.2 --n_pos 20 --nonlinearhead 1`) and `main.py`'s
/// defaults for the rest (sources in `docs/methods.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvariancePropagationConfig {
    /// Hard negatives: the most similar bank rows each sample is discriminated against.
    pub n_background: usize,
    /// Temperature t of `exp(cos/t)` (README 0.2; `main.py` default 0.07).
    pub temperature: f64,
    /// Memory-bank momentum m: `v ← normalize(m·v + (1−m)·f)`.
    pub bank_momentum: f64,
    /// Neighbours per sample in the kNN graph (`--K_nearst`).
    pub k_nearest: usize,
    /// Propagation layers (`--diffusion_layer`: 3 for CIFAR-10, 4 for CIFAR-100 per the
    /// reference's comment).
    pub diffusion_layers: usize,
    /// Positives kept among the propagated candidates (README 20; `main.py` default 50).
    pub n_pos: usize,
    /// Weight of the propagation loss.
    pub lam_inv: f64,
    /// Leave the sample's own similarity out of the propagation loss's denominator.
    pub exclusive: bool,
    /// Keep the least similar candidates as positives (`not --not_hardpos`).
    pub hard_positives: bool,
    /// How the propagation loss comes in over the epochs.
    pub ramp: PropagationRamp,
    /// The ramp's length in epochs (30 in the reference).
    pub ramp_epochs: usize,
    /// Bank rows compared per chunk when searching the background, so that memory stays
    /// bounded for large banks (the reference forms the whole `[B, N]` matrix).
    pub chunk_rows: usize,
}

impl Default for InvariancePropagationConfig {
    fn default() -> Self {
        Self {
            n_background: 4096,
            temperature: 0.2,
            bank_momentum: 0.5,
            k_nearest: 4,
            diffusion_layers: 3,
            n_pos: 20,
            lam_inv: 0.6,
            exclusive: true,
            hard_positives: true,
            ramp: PropagationRamp::Binary,
            ramp_epochs: 30,
            chunk_rows: 65_536,
        }
    }
}

impl InvariancePropagationConfig {
    /// Checks ranges; the background must hold the `k_nearest + 1` rows the graph update reads.
    pub fn validate(&self) -> Result<(), TrainError> {
        for (key, v) in [
            ("method.k_nearest", self.k_nearest),
            ("method.diffusion_layers", self.diffusion_layers),
            ("method.n_pos", self.n_pos),
            ("method.chunk_rows", self.chunk_rows),
        ] {
            if v == 0 {
                return Err(TrainError::value(key, v, "expected a positive value"));
            }
        }
        if self.n_background <= self.k_nearest {
            return Err(TrainError::value(
                "method.n_background",
                self.n_background,
                &format!(
                    "expected more than method.k_nearest = {} (the graph update reads the \
                     k_nearest + 1 most similar rows)",
                    self.k_nearest
                ),
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
        if self.lam_inv.is_nan() || self.lam_inv < 0.0 {
            return Err(TrainError::value(
                "method.lam_inv",
                self.lam_inv,
                "expected >= 0",
            ));
        }
        Ok(())
    }

    /// Builds the method for a training set of `train_images` samples: the encoder, a bank row
    /// and a graph row per sample.
    pub fn init(
        &self,
        encoder: &EncoderConfig,
        train_images: usize,
        device: &Device,
    ) -> Result<InvariancePropagation, TrainError> {
        if train_images <= self.n_background {
            return Err(TrainError::value(
                "method.n_background",
                self.n_background,
                &format!("expected fewer than the {train_images} training images"),
            ));
        }
        Ok(InvariancePropagation {
            encoder: encoder.init(device)?,
            bank: MemoryBank::new(train_images, encoder.head.out_dim(), device)?,
            graph: NeighbourGraph::new(train_images, self.k_nearest, device)?,
            settings: self.clone(),
        })
    }
}

/// Invariance Propagation: one encoder, its memory bank and the bank's kNN graph.
#[derive(Module, Debug)]
pub struct InvariancePropagation {
    /// The encoder (backbone + head).
    pub encoder: Encoder,
    /// One unit embedding per training image.
    pub bank: MemoryBank,
    /// `k_nearest` neighbour ids per training image.
    pub graph: NeighbourGraph,
    /// The method's settings.
    #[module(skip)]
    pub settings: InvariancePropagationConfig,
}

/// What a step hands to the bank and graph updates.
#[derive(Debug, Clone)]
pub struct BankUpdate {
    ids: Tensor<1, Int>,
    features: Tensor<2>,
    background: Tensor<2, Int>,
}

impl InvariancePropagation {
    /// The `n_background` bank rows most similar to each unit embedding: ids and cosines.
    fn background(&self, f: Tensor<2>) -> (Tensor<2, Int>, Tensor<2>) {
        let s = &self.settings;
        self.bank.top_similar(f, s.n_background, s.chunk_rows)
    }

    /// The cosine of each unit embedding with bank row `own[b]`, `[B]`.
    fn own_cos(&self, f: Tensor<2>, own: Tensor<1, Int>) -> Tensor<1> {
        self.bank
            .dot_rows(f, own.unsqueeze_dim::<2>(1))
            .squeeze_dim::<1>(1)
    }
}

impl Method for InvariancePropagation {
    type StepState = BankUpdate;

    /// One view per image (the reference's loader returns one augmented image).
    fn views(&self) -> Vec<ViewSpec> {
        vec![ViewSpec::LARGE]
    }

    fn forward_train(
        &self,
        batch: &MultiViewBatch,
        mixed: Option<&MixedBatch>,
        ctx: &StepContext,
    ) -> StepOutput<BankUpdate> {
        let s = &self.settings;
        let t = s.temperature;
        let x = batch.views[0].clone();
        let ids = sample_ids(&batch.indices, &x.device());
        let f = l2_normalize(self.encoder.forward(x));
        let (background, background_cos) = self.background(f.clone());
        let self_cos = self.own_cos(f.clone(), ids.clone());
        let instance = hard_negative_instance_loss(self_cos.clone(), background_cos.clone(), t);
        // Propagation over the graph as it stood before this step (the reference updates it
        // after computing the loss).
        let candidates = self.graph.propagate(ids.clone(), s.diffusion_layers);
        let positives = select_positives(
            self.bank.dot_rows(f.clone(), candidates),
            s.n_pos,
            s.hard_positives,
        );
        let propagation = propagation_loss(
            positives,
            background_cos,
            self_cos,
            s.temperature,
            s.exclusive,
        );
        // The loop's epochs count from 0, the reference's from 1.
        let weight = s.lam_inv * s.ramp.at(ctx.epoch + 1, s.ramp_epochs);
        let mut loss = instance.clone();
        let mut terms = vec![("instance", instance)];
        if weight > 0.0 {
            let weighted = propagation.mul_scalar(weight);
            loss = loss + weighted.clone();
            terms.push(("propagation", weighted));
        }
        if let Some(m) = mixed {
            let fm = l2_normalize(self.encoder.forward(m.images.clone()));
            // One background for the mixture; the two positives are the sources' rows.
            let (_, mixed_background) = self.background(fm.clone());
            let against = |own: Tensor<1, Int>| {
                let own = self.own_cos(fm.clone(), own);
                hard_negative_instance_loss(own, mixed_background.clone(), t)
            };
            let direct = against(ids.clone());
            let reverse = against(ids.clone().flip([0]));
            let term = unmix_combine(direct, reverse, m.lambda);
            loss = loss + term.clone();
            terms.push(("mixed", term));
        }
        let update = BankUpdate {
            ids,
            features: f.detach(),
            background: background.narrow(1, 0, s.k_nearest + 1),
        };
        StepOutput {
            loss,
            terms,
            state: update,
        }
    }

    /// The bank's momentum update with the step's embeddings and the graph's update with its
    /// background (the reference's `update_points` after `optimizer.step()` and `update_nn`).
    fn after_step(self, state: BankUpdate, _ctx: &StepContext) -> Self {
        Self {
            bank: self.bank.update(
                state.ids.clone(),
                state.features,
                self.settings.bank_momentum,
            ),
            graph: self.graph.update(state.ids, state.background),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `BinaryRampUp(i, 30) = int(i > 30)`, `GaussianRampUp(i, 30, 5) = exp(−5·max(1 − i/30,
    /// 0)²)`: python `math.exp(-5 * (1 - 15 / 30) ** 2)` = 0.28650479686019015.
    #[test]
    fn ramps_are_the_references() {
        use PropagationRamp::*;
        assert_eq!((Binary.at(30, 30), Binary.at(31, 30)), (0.0, 1.0));
        assert!((Gaussian.at(15, 30) - 0.28650479686019015).abs() < 1e-12);
        assert_eq!((Gaussian.at(30, 30), Gaussian.at(45, 30)), (1.0, 1.0));
        assert!(Gaussian.at(0, 30) < 0.007);
        assert_eq!(Zero.at(1, 30), 1.0);
    }
}
