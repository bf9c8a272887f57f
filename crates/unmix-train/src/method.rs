//! The interface between the trainer and a self-supervised method.
//!
//! The trainer knows nothing method-specific. Per step it
//! 1. builds the crops the method asks for ([`Method::views`]) and, with Un-Mix, the mixture of
//!    view 0 (the one shared op in `unmix-ops`);
//! 2. asks the method for its loss ([`Method::forward_train`]), with named parts for logging;
//! 3. steps the optimiser, each of the method's parameter groups at its multiple of the
//!    scheduled learning rate ([`Method::param_groups`]: BYOL's faster predictor, SwAV's
//!    prototypes frozen early in training) and everything else at the scheduled rate;
//! 4. moves the method's momentum targets towards their online modules with τ from the
//!    method's schedule ([`Method::momentum`], [`Method::momentum_update`]);
//! 5. lets the method update its other non-gradient state (queues, memory banks, prototype
//!    normalisation) with what its forward pass produced ([`Method::after_step`]).
//!
//! The batch carries every view (two-view methods read `views[0..2]`, multi-crop methods all of
//! them) and each sample's dataset index, so memory-bank methods (CMC, Invariance Propagation)
//! fit the same trait.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use unmix_data::{AugmentationConfig, MultiViewBatch};
use unmix_models::ResNet;
use unmix_ops::MixedBatch;

pub use crate::optim::schedule::MomentumSchedule;

/// Runs `first` on the calling thread and `second` on a scoped thread beside it, and returns
/// both results. Methods use it for work that neither reads the other's result nor draws from
/// Burn's generator, such as a momentum encoder's forward beside the online one's: on the CPU
/// backend a width-8 step keeps about one core busy on its own, so the second core takes the
/// other branch; the results are those of running them one after the other. A panic on either
/// side is re-raised here.
pub fn beside<A, B: Send>(first: impl FnOnce() -> A, second: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|scope| {
        let handle = scope.spawn(second);
        let a = first();
        match handle.join() {
            Ok(b) => (a, b),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Where the run is.
#[derive(Debug, Clone, Copy)]
pub struct StepContext {
    /// Global step (0-based), the key of every per-step random choice.
    pub step: u64,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Steps in one epoch (to turn epoch-based settings into steps).
    pub steps_per_epoch: usize,
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
    /// Named parts of the loss for logging (`plain`, `mixed`).
    pub terms: Vec<(&'static str, Tensor<1>)>,
    /// Detached results the method needs after the optimiser step (keys to enqueue, features
    /// for a memory bank).
    pub state: S,
}

impl<S> StepOutput<S> {
    /// The output of a method whose loss is `plain` plus, with Un-Mix, the already weighted
    /// `mixed` terms; both are logged under their names.
    pub fn with_unmix(plain: Tensor<1>, mixed: Option<Tensor<1>>, state: S) -> Self {
        let mut terms = vec![("plain", plain.clone())];
        let loss = match mixed {
            Some(m) => {
                terms.push(("mixed", m.clone()));
                plain.add(m)
            }
            None => plain,
        };
        Self { loss, terms, state }
    }
}

/// Views 0 and 1, followed by the mixture when there is one, as one batch `[2N or 3N, C, H, W]`:
/// the single forward pass of the two-view methods (batch norm over all of them).
pub fn views_and_mixture(batch: &MultiViewBatch, mixed: Option<&MixedBatch>) -> Tensor<4> {
    let mut crops = vec![batch.views[0].clone(), batch.views[1].clone()];
    if let Some(m) = mixed {
        crops.push(m.images.clone());
    }
    Tensor::cat(crops, 0)
}

/// How the crops of one step meet batch norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewForward {
    /// Each crop (view 0, view 1, the mixture) through the network on its own, so each has its
    /// own batch statistics and the clean views never see the mixture's: the references
    /// (htdt's `[self.model(x) for x in samples]`, the Un-Mix README's separate `model(...)`
    /// calls).
    #[default]
    PerView,
    /// All crops as one `3N` batch (batch norm over all of them), as the SwAV Un-Mix code's
    /// multi-resolution forward; one pass instead of three.
    Joint,
}

/// `f` applied to views 0 and 1 and the mixture (when given), in that order: one call per crop
/// for [`ViewForward::PerView`], one call over their concatenation, split back, for
/// [`ViewForward::Joint`].
pub fn encode_views(
    mode: ViewForward,
    batch: &MultiViewBatch,
    mixed: Option<&MixedBatch>,
    f: impl Fn(Tensor<4>) -> Tensor<2>,
) -> Vec<Tensor<2>> {
    match mode {
        ViewForward::PerView => batch.views[..2]
            .iter()
            .cloned()
            .chain(mixed.map(|m| m.images.clone()))
            .map(f)
            .collect(),
        ViewForward::Joint => {
            let n = batch.indices.len();
            let z = f(views_and_mixture(batch, mixed));
            let crops = z.dims()[0] / n;
            (0..crops).map(|i| z.clone().narrow(0, i * n, n)).collect()
        }
    }
}

/// One crop the loader produces per sample: `[data.augmentation]` with the crop size and scale
/// optionally replaced (SwAV's small crops).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ViewSpec {
    /// Output side, when not the configured `crop_size`.
    pub crop_size: Option<usize>,
    /// Crop area range, when not the configured `crop_scale`.
    pub crop_scale: Option<[f64; 2]>,
}

impl ViewSpec {
    /// A crop with the configured augmentation.
    pub const LARGE: ViewSpec = ViewSpec {
        crop_size: None,
        crop_scale: None,
    };

    /// `base` with this view's overrides.
    pub fn apply(&self, base: &AugmentationConfig) -> AugmentationConfig {
        AugmentationConfig {
            crop_size: self.crop_size.unwrap_or(base.crop_size),
            crop_scale: self.crop_scale.unwrap_or(base.crop_scale),
            ..base.clone()
        }
    }
}

/// Parameters trained at `lr_scale` times the scheduled learning rate; `0` freezes them (no
/// update at all: no weight decay, no momentum, optimiser state untouched).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGroup {
    /// The parameters.
    pub params: Vec<ParamId>,
    /// Multiple of the scheduled learning rate.
    pub lr_scale: f64,
}

impl ParamGroup {
    /// Every parameter of `module`, at `lr_scale`.
    pub fn of<M: Module>(module: &M, lr_scale: f64) -> Self {
        Self {
            params: param_ids(module),
            lr_scale,
        }
    }

    /// Parameters that receive no update.
    pub fn frozen(params: Vec<ParamId>) -> Self {
        Self {
            params,
            lr_scale: 0.0,
        }
    }
}

/// Every parameter of a module.
pub fn param_ids<M: Module>(module: &M) -> Vec<ParamId> {
    struct Ids(Vec<ParamId>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.id);
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}

/// A self-supervised method: a module holding its trainable encoders and its non-gradient state.
///
/// The smallest method, to show the shape of one (a toy: it pulls the two views' embeddings
/// together, which collapses without negatives or a predictor; the real methods are in
/// [`crate::methods`]):
///
/// ```
/// use burn::prelude::*;
/// use unmix_data::MultiViewBatch;
/// use unmix_losses::{byol_regression, unmix_combine};
/// use unmix_models::{Encoder, EncoderConfig, HeadConfig, ResNetConfig};
/// use unmix_ops::MixedBatch;
/// use unmix_train::{Method, StepContext, StepOutput};
///
/// #[derive(Module, Debug)]
/// struct Pull {
///     encoder: Encoder,
/// }
///
/// impl Method for Pull {
///     type StepState = ();
///
///     fn forward_train(
///         &self,
///         batch: &MultiViewBatch,
///         mixed: Option<&MixedBatch>,
///         _ctx: &StepContext,
///     ) -> StepOutput<()> {
///         let z0 = self.encoder.forward(batch.views[0].clone());
///         let z1 = self.encoder.forward(batch.views[1].clone()).detach();
///         let plain = byol_regression(z0, z1.clone());
///         // Un-Mix: the mixture of view 0 against view 1, weighted by its share λ, and its
///         // batch reverse by 1 − λ.
///         let mixed = mixed.map(|m| {
///             let zm = self.encoder.forward(m.images.clone());
///             let direct = byol_regression(zm.clone(), z1.clone());
///             let reverse = byol_regression(zm.flip([0]), z1.clone());
///             unmix_combine(direct, reverse, m.lambda)
///         });
///         StepOutput::with_unmix(plain, mixed, ())
///     }
///
///     fn features(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
///         self.encoder.forward_features(images)
///     }
///
///     fn backbones(&self) -> Vec<(&'static str, &unmix_models::ResNet)> {
///         vec![("backbone", &self.encoder.backbone)]
///     }
/// }
///
/// let device = Device::flex().autodiff();
/// let backbone = ResNetConfig { width: 4, ..ResNetConfig::resnet18_cifar() };
/// let head = HeadConfig::Linear { out_dim: 8 };
/// let method = Pull { encoder: EncoderConfig { backbone, head }.init(&device).unwrap() };
/// // Two different views: with one image twice, cos is 1 and the loss is 0 up to rounding,
/// // which can fall just below 0.
/// let view = || Tensor::<4>::random([4, 3, 16, 16], burn::tensor::Distribution::Default, &device);
/// let batch = MultiViewBatch {
///     views: vec![view(), view()],
///     indices: vec![0, 1, 2, 3],
///     labels: None,
/// };
/// let ctx = StepContext { step: 0, epoch: 0, steps_per_epoch: 1, progress: 0.0, seed: 0 };
/// let out = method.forward_train(&batch, None, &ctx);
/// assert_eq!(out.terms.len(), 1); // "plain" only: no mixture given
/// // The loop steps the optimiser on `out.loss.backward()` (`unmix_train::run::train_step`).
/// let loss: f32 = out.loss.into_scalar();
/// assert!(loss > 0.0 && loss <= 4.0, "2 − 2·cos lies in [0, 4]: {loss}");
/// ```
pub trait Method: Module + Sized {
    /// What [`Method::forward_train`] hands to [`Method::after_step`].
    type StepState;

    /// The crops per sample, in order; view 0 is the one Un-Mix mixes. Two large crops unless
    /// the method says otherwise.
    fn views(&self) -> Vec<ViewSpec> {
        vec![ViewSpec::LARGE; 2]
    }

    /// The loss of one batch, with Un-Mix terms when `mixed` (the mixture of view 0) is given.
    fn forward_train(
        &self,
        batch: &MultiViewBatch,
        mixed: Option<&MixedBatch>,
        ctx: &StepContext,
    ) -> StepOutput<Self::StepState>;

    /// The τ schedule of the method's momentum (EMA) targets; `None` when it has none.
    fn momentum(&self) -> Option<MomentumSchedule> {
        None
    }

    /// Moves every momentum target towards its online module: `θ_t ← τ·θ_t + (1−τ)·θ_o`.
    fn momentum_update(self, _tau: f64) -> Self {
        self
    }

    /// Parameters trained at another rate than the scheduled one at this step; the others
    /// train at the scheduled rate. Groups must be disjoint.
    fn param_groups(&self, _ctx: &StepContext) -> Vec<ParamGroup> {
        Vec::new()
    }

    /// Updates state that gradients do not touch, after the optimiser step and the momentum
    /// update; nothing unless the method has such state.
    fn after_step(self, _state: Self::StepState, _ctx: &StepContext) -> Self {
        self
    }

    /// Features for evaluation: `(backbone [N, D], projection [N, C])`.
    fn features(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>);

    /// The ResNet trunk(s) whose pooled output is the backbone feature, by name: one
    /// `"backbone"` (the online or query encoder's) for most methods, CMC's two halves `"l"` and
    /// `"ab"`. What `unmix export` writes under torchvision's names.
    fn backbones(&self) -> Vec<(&'static str, &ResNet)>;

    /// The memory bank, one row per training sample in sample-id order, in the space of the
    /// projection features (`eval.features = "memory_bank"`: the training side of the kNN
    /// monitor, as Invariance Propagation's `kNN` reads it); `None` for methods without one.
    fn memory_bank(&self) -> Option<Tensor<2>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `beside` returns both results, the second computed on another thread.
    #[test]
    fn beside_runs_the_second_branch_on_another_thread() {
        let here = std::thread::current().id();
        let (a, (b, there)) = beside(|| 2 + 3, || ("key", std::thread::current().id()));
        assert_eq!((a, b), (5, "key"));
        assert_ne!(here, there);
    }

    /// A panic in the second branch reaches the caller with its message, after the first
    /// branch has finished.
    #[test]
    fn beside_re_raises_a_panic_of_the_second_branch() {
        let finished = std::sync::atomic::AtomicBool::new(false);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            beside(
                || finished.store(true, std::sync::atomic::Ordering::SeqCst),
                || -> () { panic!("target branch failed") },
            )
        }))
        .unwrap_err();
        assert_eq!(caught.downcast_ref::<&str>(), Some(&"target branch failed"));
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    }
}
