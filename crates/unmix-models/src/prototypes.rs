use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::prelude::*;

use crate::error::ModelError;

/// SwAV's prototype vectors: a bias-free linear layer `[P, D]` whose rows are kept at unit
/// length, so its output is the cosine similarity of an L2-normalised embedding with each
/// prototype (Caron et al. 2020, §3.1; `prototypes.weight` renormalised every iteration in the
/// reference code).
#[derive(Module, Debug)]
pub struct Prototypes {
    /// One prototype per row.
    pub weight: Param<Tensor<2>>,
}

impl Prototypes {
    /// `count` prototypes of dimension `dim`, initialised like `nn.Linear` and normalised.
    pub fn new(count: usize, dim: usize, device: &Device) -> Result<Self, ModelError> {
        if count == 0 {
            return Err(ModelError::zero("Prototypes::new", "count"));
        }
        let bound = 1.0 / (dim.max(1) as f64).sqrt();
        let weight = Initializer::Uniform {
            min: -bound,
            max: bound,
        }
        .init([count, dim], device);
        Ok(Self { weight }.normalized())
    }

    /// Number of prototypes.
    pub fn count(&self) -> usize {
        // Reading a shape never initialises the parameter (see `ResNet::feature_dim`).
        self.weight.lazy_shape()[0]
    }

    /// Scores `z · Wᵀ`: `[N, D]` → `[N, P]`.
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        z.matmul(self.weight.val().transpose())
    }

    /// The same prototypes with every row rescaled to unit L2 norm (no gradient flows through
    /// the rescaling, as `with torch.no_grad()` in the reference).
    pub fn normalized(self) -> Self {
        let weight = self.weight.map(|w| {
            let (ad, grad) = (w.is_autodiff(), w.is_require_grad());
            let w = w.without_autodiff();
            let norm = w
                .clone()
                .powf_scalar(2.0)
                .sum_dim(1)
                .sqrt()
                .clamp_min(1e-12);
            let w = w.div(norm);
            let w = if ad { w.autodiff() } else { w };
            w.set_require_grad(grad)
        });
        Self { weight }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_unit_norm_and_scores_are_cosines() {
        let device = Device::flex();
        let p = Prototypes::new(5, 3, &device).unwrap();
        let w = p.weight.val();
        let norms: Vec<f32> = w
            .clone()
            .powf_scalar(2.0)
            .sum_dim(1)
            .sqrt()
            .into_data()
            .try_to_vec()
            .unwrap();
        for n in norms {
            assert!((n - 1.0).abs() < 1e-5, "{n}");
        }
        // A unit vector equal to prototype 2 scores 1 against it.
        let z = w.clone().slice([2..3, 0..3]);
        let s: Vec<f32> = p.forward(z).into_data().try_to_vec().unwrap();
        assert!((s[2] - 1.0).abs() < 1e-5);
        assert!(s.iter().all(|v| *v <= 1.0 + 1e-5));
        assert!(Prototypes::new(0, 3, &device).is_err());
    }
}
