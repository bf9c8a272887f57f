use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// The projection head after the backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HeadConfig {
    /// One linear layer (MoCo v1; the Un-Mix CIFAR demo's `fc` 512→128).
    Linear {
        /// Embedding size (128 in MoCo).
        out_dim: usize,
    },
    /// Linear–ReLU–Linear (MoCo v2: 2048→2048→128 on ResNet-50).
    Mlp {
        /// Hidden size; the backbone's feature size in MoCo v2.
        hidden_dim: usize,
        /// Embedding size.
        out_dim: usize,
    },
}

impl HeadConfig {
    /// Embedding size.
    pub fn out_dim(&self) -> usize {
        match self {
            HeadConfig::Linear { out_dim } | HeadConfig::Mlp { out_dim, .. } => *out_dim,
        }
    }

    /// Builds the head for `in_dim` input features.
    pub fn init(&self, in_dim: usize, device: &Device) -> Result<ProjectionHead, ModelError> {
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        match self {
            HeadConfig::Linear { out_dim: 0 } | HeadConfig::Mlp { out_dim: 0, .. } => {
                Err(ModelError::Zero {
                    key: "head.out_dim",
                })
            }
            HeadConfig::Mlp { hidden_dim: 0, .. } => Err(ModelError::Zero {
                key: "head.hidden_dim",
            }),
            HeadConfig::Linear { out_dim } => Ok(ProjectionHead {
                fc: lin(in_dim, *out_dim),
                hidden: None,
            }),
            HeadConfig::Mlp {
                hidden_dim,
                out_dim,
            } => Ok(ProjectionHead {
                hidden: Some(lin(in_dim, *hidden_dim)),
                fc: lin(*hidden_dim, *out_dim),
            }),
        }
    }
}

/// A linear or two-layer MLP projection head.
#[derive(Module, Debug)]
pub struct ProjectionHead {
    /// The first layer of an MLP head (followed by ReLU).
    pub hidden: Option<Linear>,
    /// The output layer.
    pub fc: Linear,
}

impl ProjectionHead {
    /// `[N, in]` → `[N, out]` (not normalised).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = match &self.hidden {
            Some(h) => relu(h.forward(x)),
            None => x,
        };
        self.fc.forward(x)
    }
}
