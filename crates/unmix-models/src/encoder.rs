use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::heads::{HeadConfig, ProjectionHead};
use crate::resnet::{ResNet, ResNetConfig};

/// Backbone and head settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// The trunk.
    pub backbone: ResNetConfig,
    /// The projection head.
    pub head: HeadConfig,
}

impl EncoderConfig {
    /// Builds the encoder.
    pub fn init(&self, device: &Device) -> Result<Encoder, ModelError> {
        Ok(Encoder {
            backbone: self.backbone.init(device)?,
            head: self.head.init(self.backbone.feature_dim(), device)?,
        })
    }
}

/// A backbone followed by a projection head: the query encoder of MoCo, and the unit its
/// momentum (key) copy is made of.
#[derive(Module, Debug)]
pub struct Encoder {
    /// The trunk.
    pub backbone: ResNet,
    /// The projection head.
    pub head: ProjectionHead,
}

impl Encoder {
    /// Embeddings `[N, out_dim]` (not normalised).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.backbone.forward(x))
    }

    /// Backbone features and embeddings.
    pub fn forward_features(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let f = self.backbone.forward(x);
        (f.clone(), self.head.forward(f))
    }
}
