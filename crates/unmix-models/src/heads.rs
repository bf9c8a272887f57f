use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::split_batch_norm::{SplitBatchNorm, SplitBatchNormConfig};

/// The projection head after the backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HeadConfig {
    /// One linear layer (MoCo v1; the Un-Mix CIFAR demo's `fc` 512→128).
    Linear {
        /// Embedding size (128 in MoCo).
        out_dim: usize,
    },
    /// Linear–[BN]–ReLU–Linear–[BN] (MoCo v2: 2048→2048→128 without BN; SwAV, BYOL's projector
    /// and predictor with the hidden BN; SimCLR in the htdt code with both).
    Mlp {
        /// Hidden size; the backbone's feature size in MoCo v2.
        hidden_dim: usize,
        /// Embedding size.
        out_dim: usize,
        /// Batch norm after the hidden layer.
        #[serde(default)]
        hidden_bn: bool,
        /// Batch norm on the output (htdt SimCLR's `bn_last`).
        #[serde(default)]
        last_bn: bool,
    },
}

impl HeadConfig {
    /// Embedding size.
    pub fn out_dim(&self) -> usize {
        match self {
            HeadConfig::Linear { out_dim } | HeadConfig::Mlp { out_dim, .. } => *out_dim,
        }
    }

    /// An MLP head without batch norm (MoCo v2).
    pub fn mlp(hidden_dim: usize, out_dim: usize) -> Self {
        HeadConfig::Mlp {
            hidden_dim,
            out_dim,
            hidden_bn: false,
            last_bn: false,
        }
    }

    /// Checks the sizes; the error names the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            HeadConfig::Linear { out_dim: 0 } | HeadConfig::Mlp { out_dim: 0, .. } => {
                Err(ModelError::zero("HeadConfig", "out_dim"))
            }
            HeadConfig::Mlp { hidden_dim: 0, .. } => {
                Err(ModelError::zero("HeadConfig", "hidden_dim"))
            }
            _ => Ok(()),
        }
    }

    /// Builds the head for `in_dim` input features.
    pub fn init(&self, in_dim: usize, device: &Device) -> Result<ProjectionHead, ModelError> {
        self.validate()?;
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        let bn = |on: bool, c| on.then(|| SplitBatchNormConfig::new(c, 1).init(device));
        match self {
            HeadConfig::Linear { out_dim } => Ok(ProjectionHead {
                fc: lin(in_dim, *out_dim),
                hidden: None,
                hidden_bn: None,
                last_bn: None,
            }),
            HeadConfig::Mlp {
                hidden_dim,
                out_dim,
                hidden_bn,
                last_bn,
            } => Ok(ProjectionHead {
                hidden: Some(lin(in_dim, *hidden_dim)),
                hidden_bn: bn(*hidden_bn, *hidden_dim),
                fc: lin(*hidden_dim, *out_dim),
                last_bn: bn(*last_bn, *out_dim),
            }),
        }
    }
}

/// A linear or two-layer MLP head: the projector of every method and BYOL's predictor.
#[derive(Module, Debug)]
pub struct ProjectionHead {
    /// The first layer of an MLP head (followed by ReLU).
    pub hidden: Option<Linear>,
    /// Batch norm between the hidden layer and the ReLU.
    pub hidden_bn: Option<SplitBatchNorm>,
    /// The output layer.
    pub fc: Linear,
    /// Batch norm on the output.
    pub last_bn: Option<SplitBatchNorm>,
}

/// Batch norm of `[N, C]` features (the 2-D case of the 4-D layer).
fn bn_1d(bn: &SplitBatchNorm, x: Tensor<2>) -> Tensor<2> {
    let [n, c] = x.dims();
    bn.forward(x.reshape([n, c, 1, 1])).reshape([n, c])
}

impl ProjectionHead {
    /// `[N, in]` → `[N, out]` (not normalised).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = match &self.hidden {
            Some(h) => {
                let x = h.forward(x);
                let x = match &self.hidden_bn {
                    Some(bn) => bn_1d(bn, x),
                    None => x,
                };
                relu(x)
            }
            None => x,
        };
        let x = self.fc.forward(x);
        match &self.last_bn {
            Some(bn) => bn_1d(bn, x),
            None => x,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_sizes_are_rejected_naming_the_field() {
        let err = HeadConfig::Linear { out_dim: 0 }.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "HeadConfig.out_dim = 0: expected a positive value"
        );
        let err = HeadConfig::mlp(0, 128).validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "HeadConfig.hidden_dim = 0: expected a positive value"
        );
        HeadConfig::mlp(2048, 128).validate().unwrap();
        let device = Device::flex();
        let err = HeadConfig::mlp(8, 0).init(4, &device).unwrap_err();
        assert!(matches!(
            err,
            ModelError::Setting {
                field: "out_dim",
                ..
            }
        ));
    }

    #[test]
    fn resnet_settings_are_checked_naming_the_field() {
        use crate::ResNetConfig;
        let bad = ResNetConfig {
            layers: vec![2, 2, 2],
            ..ResNetConfig::resnet18_cifar()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "ResNetConfig.layers = [2, 2, 2]: expected four stage depths, each >= 1"
        );
        let bad = ResNetConfig {
            bn_splits: 0,
            ..ResNetConfig::resnet18_cifar()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "ResNetConfig.bn_splits = 0: expected a positive value"
        );
    }
}
