//! One training step of any method, exactly as the loop (and the parity harness) runs it.

use burn::module::ParamId;
use burn::optim::ModuleOptimizer;
use burn::tensor::Gradients;
use unmix_data::MultiViewBatch;
use unmix_ops::MixedBatch;

use crate::method::{Method, StepContext, StepOutput};
use crate::optim::groups::grouped_step;

/// The optimiser of a step, its learning rate, the momentum τ (`None` for methods without
/// momentum targets) and every parameter id of the model.
pub type StepOptim<'a> = (&'a mut ModuleOptimizer, f64, Option<f64>, &'a [ParamId]);

/// One training step of any method, exactly as the loop runs it: the method's loss, backward,
/// the grouped optimiser step, the momentum update with `tau`, then the method's own
/// `after_step`. `inspect` sees the model and its gradients before the optimiser consumes them
/// (the parity harness records them; the loop passes a no-op). Returns the updated model and
/// the step's output (its `state` already consumed by `after_step`, so `()`).
pub fn train_step<M: Method>(
    model: M,
    batch: &MultiViewBatch,
    mixed: Option<&MixedBatch>,
    ctx: &StepContext,
    (optim, lr, tau, all_params): StepOptim<'_>,
    mut inspect: impl FnMut(&M, &Gradients),
) -> (M, StepOutput<()>) {
    let out = model.forward_train(batch, mixed, ctx);
    let groups = model.param_groups(ctx);
    let grads = out.loss.backward();
    inspect(&model, &grads);
    let mut model = grouped_step(optim, model, grads, lr, groups, all_params);
    if let Some(tau) = tau {
        model = model.momentum_update(tau);
    }
    let model = model.after_step(out.state, ctx);
    let out = StepOutput {
        loss: out.loss,
        terms: out.terms,
        state: (),
    };
    (model, out)
}
