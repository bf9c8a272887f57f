//! One optimiser step over a method's parameter groups, each at its own multiple of the
//! scheduled learning rate.

use burn::module::{Module, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Gradients;

use crate::method::ParamGroup;

/// One optimiser step: the method's parameter groups at their multiple of `lr`, every other
/// parameter of `all_params` at `lr`. Each group is stepped on its own parameters' gradients
/// (taken out of `grads`, so groups stay disjoint); a frozen group is not stepped at all.
///
/// Burn's own per-group rates (`ModuleLearningRate`) come only out of a `ModuleLrScheduler` of
/// Burn schedulers, and our schedule (warm-up, then cosine/step, per step) is our own function
/// of the step, so each group gets its own `step` call instead.
pub(crate) fn grouped_step<M: Module>(
    optim: &mut ModuleOptimizer,
    model: M,
    mut grads: Gradients,
    lr: f64,
    groups: Vec<ParamGroup>,
    all_params: &[ParamId],
) -> M {
    if groups.is_empty() {
        let grads = GradientsParams::from_grads(grads, &model);
        return optim.step(lr, model, grads);
    }
    let grouped: Vec<ParamId> = groups
        .iter()
        .flat_map(|g| g.params.iter().copied())
        .collect();
    let rest = ParamGroup {
        params: all_params
            .iter()
            .filter(|id| !grouped.contains(id))
            .copied()
            .collect(),
        lr_scale: 1.0,
    };
    let mut model = model;
    for group in std::iter::once(rest).chain(groups) {
        if group.lr_scale > 0.0 && !group.params.is_empty() {
            let g = GradientsParams::from_params(&mut grads, &model, &group.params);
            model = optim.step(lr * group.lr_scale, model, g);
        }
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::param_ids;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::SgdConfig;
    use burn::prelude::*;

    #[derive(Module, Debug)]
    struct Three {
        a: Linear,
        b: Linear,
        c: Linear,
    }

    fn weights(m: &Three) -> [Vec<f32>; 3] {
        [&m.a, &m.b, &m.c].map(|l| l.weight.val().into_data().try_to_vec::<f32>().unwrap())
    }

    /// `loss = Σ a(x) + Σ b(x) + Σ c(x)` with `x = [1, 1]` gives every weight the gradient 1, so
    /// plain SGD moves each weight by `−lr · scale`: `a` at the scheduled rate, `b` at 3×, `c`
    /// frozen.
    #[test]
    fn grouped_step_scales_and_freezes_groups() {
        let device = Device::flex().autodiff();
        let linear = || LinearConfig::new(2, 2).with_bias(false).init(&device);
        let model = Three {
            a: linear(),
            b: linear(),
            c: linear(),
        };
        let before = weights(&model);
        let x = Tensor::<2>::ones([1, 2], &device);
        let loss = model.a.forward(x.clone()).sum()
            + model.b.forward(x.clone()).sum()
            + model.c.forward(x).sum();
        let groups = vec![
            ParamGroup::of(&model.b, 3.0),
            ParamGroup::frozen(vec![model.c.weight.id]),
        ];
        let all = param_ids(&model);
        let mut optim = SgdConfig::new().init();
        let model = grouped_step(&mut optim, model, loss.backward(), 0.1, groups, &all);
        let after = weights(&model);
        for (k, expected) in [-0.1f32, -0.3, 0.0].into_iter().enumerate() {
            for (b, a) in before[k].iter().zip(&after[k]) {
                assert!(
                    (a - b - expected).abs() < 1e-6,
                    "layer {k}: moved {} instead of {expected}",
                    a - b
                );
            }
        }
    }
}
