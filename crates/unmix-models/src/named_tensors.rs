use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;

/// One tensor of a module in PyTorch's layout: its module path (`encoder_q.backbone.layer1.0.
/// conv1.weight`), its shape and its values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Field names from the module's root, joined by dots; vector elements by their index.
    pub path: String,
    /// The shape as PyTorch holds it.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// Every float tensor of `module` — parameters and running states (batch-norm statistics, queues)
/// — in visiting order, in PyTorch's layout: Burn keeps a linear weight as `[in, out]`, PyTorch
/// as `[out, in]`, so those are transposed; everything else already matches.
///
/// This is what a PyTorch reference needs to start from the same weights (the parity harness)
/// and what an export to torchvision names builds on.
pub fn named_tensors<M: Module>(module: &M) -> Vec<NamedTensor> {
    crate::sync_running_stats(module);
    collect(module, None)
}

/// The gradient of every parameter of `module` that has one in `grads`, named and laid out as
/// [`named_tensors`].
pub fn named_gradients<M: Module>(module: &M, grads: &Gradients) -> Vec<NamedTensor> {
    collect(module, Some(grads))
}

fn collect<M: Module>(module: &M, grads: Option<&Gradients>) -> Vec<NamedTensor> {
    let mut visitor = Named {
        path: Vec::new(),
        linear_depth: Vec::new(),
        grads,
        out: Vec::new(),
    };
    module.visit(&mut visitor);
    visitor.out
}

struct Named<'a> {
    path: Vec<String>,
    /// For each entered level: whether it entered a field of a `Linear`.
    linear_depth: Vec<bool>,
    grads: Option<&'a Gradients>,
    out: Vec<NamedTensor>,
}

impl ModuleVisitor for Named<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.linear_depth.push(container_type == "Struct:Linear");
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
        self.linear_depth.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let tensor = match self.grads {
            Some(grads) => match value.grad(grads) {
                Some(g) => g,
                None => return,
            },
            None => value.without_autodiff(),
        };
        let mut shape = tensor.dims().to_vec();
        let is_linear_weight = self.linear_depth.last() == Some(&true)
            && self.path.last().map(String::as_str) == Some("weight");
        let tensor = if is_linear_weight && D == 2 {
            shape.reverse();
            tensor.swap_dims(0, 1)
        } else {
            tensor
        };
        let values = tensor
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("float tensor");
        self.out.push(NamedTensor {
            path: self.path.join("."),
            shape,
            values,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EncoderConfig, HeadConfig, ResNetConfig};

    #[test]
    fn linear_weights_are_transposed_and_paths_follow_fields() {
        let device = Device::flex().autodiff();
        let config = EncoderConfig {
            backbone: ResNetConfig {
                width: 2,
                layers: vec![1, 1, 1, 1],
                ..ResNetConfig::resnet18_cifar()
            },
            head: HeadConfig::Linear { out_dim: 3 },
        };
        let encoder = config.init(&device).unwrap();
        let named = named_tensors(&encoder);
        let fc = named.iter().find(|t| t.path == "head.fc.weight").unwrap();
        // Burn's [16, 3] becomes PyTorch's [3, 16]; element (o, i) of ours is (i, o) of Burn's.
        assert_eq!(fc.shape, vec![3, 16]);
        let burn_fc = encoder.head.fc.weight.val().into_data().try_to_vec::<f32>();
        let burn_fc = burn_fc.unwrap();
        assert_eq!(fc.values[16 + 5], burn_fc[5 * 3 + 1]);
        for path in [
            "backbone.conv1.weight",
            "backbone.bn1.gamma",
            "backbone.bn1.running_var",
            "backbone.layer2.0.downsample.conv.weight",
            "head.fc.bias",
        ] {
            assert!(named.iter().any(|t| t.path == path), "{path} missing");
        }
        // Gradients: only parameters that took part in the loss, same names and layout.
        let x = Tensor::<4>::ones([2, 3, 4, 4], &device);
        let grads = encoder.forward(x).sum().backward();
        let g = named_gradients(&encoder, &grads);
        let g_fc = g.iter().find(|t| t.path == "head.fc.weight").unwrap();
        assert_eq!(g_fc.shape, vec![3, 16]);
        assert!(!g.iter().any(|t| t.path.ends_with("running_mean")));
    }
}
