use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

/// Folds pending batch-norm running-statistic updates into the module's stored values.
///
/// Burn's running states keep the last update of each thread aside until the next read; taking
/// a validation snapshot merges them. Call this before reading or overwriting running
/// statistics from outside a forward pass.
pub fn sync_running_stats<M: Module>(module: &M) {
    let _ = module.valid();
}

/// The momentum (EMA) update of a target module towards an online module of the same
/// architecture: every tensor `θ_t ← m·θ_t + (1-m)·θ_o`, BN running statistics included
/// (MoCo Eq. 2; BYOL's target update). Gradients never flow into the target: its parameters keep
/// `require_grad = false` and the new values carry no graph.
///
/// `m = 1` leaves the target unchanged; `m = 0` copies the online module.
pub fn momentum_update<M: Module>(target: M, online: &M, m: f64) -> M {
    sync_running_stats(online);
    sync_running_stats(&target);
    let mut collect = Collect(Vec::new());
    online.visit(&mut collect);
    let mut ema = Ema {
        sources: collect.0.into_iter(),
        m,
    };
    target.map(&mut ema)
}

struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val().without_autodiff();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

struct Ema {
    sources: std::vec::IntoIter<Tensor<1>>,
    m: f64,
}

impl ModuleMapper for Ema {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let source = self
            .sources
            .next()
            .expect("momentum_update: online and target modules differ in structure");
        let m = self.m;
        param
            .map(|t| {
                let ad = t.is_autodiff();
                let shape = t.shape();
                let new = t
                    .without_autodiff()
                    .mul_scalar(m)
                    .add(source.reshape(shape).mul_scalar(1.0 - m));
                if ad { new.autodiff() } else { new }
            })
            .set_require_grad(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EncoderConfig, HeadConfig, ResNetConfig};

    fn values<M: Module>(m: &M) -> Vec<Vec<f32>> {
        sync_running_stats(m);
        let mut c = Collect(Vec::new());
        m.visit(&mut c);
        c.0.into_iter()
            .map(|t| t.into_data().try_to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn ema_matches_hand_arithmetic_including_running_stats() {
        let device = Device::flex().autodiff();
        let config = EncoderConfig {
            backbone: ResNetConfig {
                width: 2,
                layers: vec![1, 1, 1, 1],
                ..ResNetConfig::resnet18_cifar()
            },
            head: HeadConfig::Linear { out_dim: 3 },
        };
        let online = config.init(&device).unwrap();
        let target = config.init(&device).unwrap().no_grad();
        // A training forward moves the online running statistics away from (0, 1).
        let x = Tensor::<4>::random([4, 3, 8, 8], burn::tensor::Distribution::Default, &device);
        let _ = online.forward(x.add_scalar(3.0));
        let (o, t) = (values(&online), values(&target));
        let updated = momentum_update(target, &online, 0.9);
        let u = values(&updated);
        assert_eq!(u.len(), o.len());
        let mut checked_running_mean = false;
        for ((ui, oi), ti) in u.iter().zip(&o).zip(&t) {
            for ((a, b), c) in ui.iter().zip(oi).zip(ti) {
                let expected = 0.9 * c + 0.1 * b;
                assert!((a - expected).abs() < 1e-5, "{a} vs {expected}");
            }
            checked_running_mean |= ti.iter().all(|&v| v == 0.0) && oi.iter().any(|&v| v > 0.1);
        }
        assert!(checked_running_mean, "no running mean was exercised");
        // The target never requires gradients.
        let mut grads = GradCheck(false);
        updated.visit(&mut grads);
        assert!(!grads.0);
    }

    struct GradCheck(bool);
    impl ModuleVisitor for GradCheck {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0 |= param.val().is_require_grad();
        }
    }
}
