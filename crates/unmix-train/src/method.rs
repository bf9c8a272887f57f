//! The interface between the trainer and a self-supervised method.
//!
//! The trainer knows nothing method-specific: it asks the method for a loss on a batch of
//! views (plus, with Un-Mix, the mixture of view 0 built by the one shared op in `unmix-ops`),
//! steps the optimiser on that loss, then lets the method update its own non-gradient state
//! (momentum encoders, queues, memory banks) with what its forward pass produced.
//!
//! The batch type carries every view (two-view methods read `views[0..2]`, multi-crop methods
//! all of them, single-view methods `views[0]`) and each sample's dataset index, so memory-bank
//! methods (CMC, Invariance Propagation) fit the same trait.

use burn::module::Module;
use burn::prelude::*;
use unmix_data::MultiViewBatch;
use unmix_ops::MixedBatch;

/// Where the run is.
#[derive(Debug, Clone, Copy)]
pub struct StepContext {
    /// Global step (0-based), the key of every per-step random choice.
    pub step: u64,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Fraction of training done, in `[0, 1)` (for momentum schedules).
    pub progress: f64,
    /// The run's seed.
    pub seed: u64,
}

/// What a training forward pass returns.
#[derive(Debug, Clone)]
pub struct StepOutput<S> {
    /// The loss to minimise, `[1]`.
    pub loss: Tensor<1>,
    /// Named parts of the loss for logging (e.g. `plain`, `mixed`).
    pub terms: Vec<(&'static str, Tensor<1>)>,
    /// Detached results the method needs after the optimiser step (keys to enqueue, features
    /// for a memory bank).
    pub state: S,
}

/// A self-supervised method: a module holding its trainable encoders and its non-gradient state.
pub trait Method: Module + Sized {
    /// What [`Method::forward_train`] hands to [`Method::after_step`].
    type StepState;

    /// How many views per sample the loader must produce.
    fn num_views(&self) -> usize;

    /// The loss of one batch, with Un-Mix terms when `mixed` (the mixture of view 0) is given.
    fn forward_train(
        &self,
        batch: &MultiViewBatch,
        mixed: Option<&MixedBatch>,
        ctx: &StepContext,
    ) -> StepOutput<Self::StepState>;

    /// Updates state that gradients do not touch, after the optimiser step.
    fn after_step(self, state: Self::StepState, ctx: &StepContext) -> Self;

    /// Features for evaluation: `(backbone [N, D], projection [N, C])`.
    fn features(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>);
}
