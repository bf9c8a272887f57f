//! Backbones, heads and momentum encoders for self-supervised learning with Burn
//! (`../shared/SPEC.md` §3).
//!
//! - [`ResNet`]: any `(block, layers)` ResNet — ResNet-18/34 (basic blocks), ResNet-50
//!   (bottleneck) — with the CIFAR or ImageNet stem and a width setting, built on
//!   [`SplitBatchNorm`] (the MoCo CIFAR demo's split BN; one split is plain batch norm).
//! - [`batch_norm_train_fused`]: training-mode batch norm as one operation with its own backward
//!   on Burn's CPU backend (`flex` feature), Burn's op elsewhere; [`conv2d_im2col`]: a
//!   `Conv2d`'s forward as im2col + GEMM over tiles of images there, with its own backward.
//! - [`ProjectionHead`]: the linear head of MoCo v1, the MLP heads of MoCo v2, SimCLR, SwAV and
//!   BYOL (with or without batch norm), and BYOL's predictor.
//! - [`Prototypes`]: SwAV's unit-norm prototype vectors.
//! - [`MemoryBank`]: one embedding per training image with its momentum update by sample id
//!   (InsDis, CMC, Invariance Propagation) and a chunked top-k search; [`NeighbourGraph`]:
//!   Invariance Propagation's kNN graph over it and its propagation, on the device. Both are
//!   module state, so checkpoints keep them.
//! - [`Encoder`]: backbone + head, the unit a momentum copy is made of.
//! - [`momentum_update`]: the EMA of a target module towards an online one, BN running
//!   statistics included; [`ShuffleBn`]: the key encoder's batch shuffle.
//! - [`named_tensors`] / [`named_gradients`]: every tensor of a module by path, in PyTorch's
//!   layout (what the PyTorch parity references load).
//! - [`save_torchvision`] / [`load_torchvision`]: a ResNet's weights under torchvision's names,
//!   out to safetensors and in from safetensors or PyTorch checkpoints
//!   ([`PretrainedWeights`]: `[model.backbone.pretrained]`, a run's starting point).
//!
//! ```
//! use burn::prelude::*;
//! use unmix_models::{EncoderConfig, ResNetConfig, HeadConfig};
//!
//! let device = Device::flex();
//! let config = EncoderConfig {
//!     backbone: ResNetConfig { width: 8, ..ResNetConfig::resnet18_cifar() },
//!     head: HeadConfig::Linear { out_dim: 16 },
//! };
//! let encoder = config.init(&device).unwrap();
//! let z = encoder.forward(Tensor::zeros([2, 3, 16, 16], &device));
//! assert_eq!(z.dims(), [2, 16]);
//! ```

mod encoder;
mod error;
#[cfg(feature = "flex")]
mod flex_tensor;
mod fused_batch_norm;
mod heads;
mod im2col_conv;
mod memory_bank;
mod momentum;
mod named_tensors;
mod neighbour_graph;
mod prototypes;
mod resnet;
mod shuffle_bn;
mod split_batch_norm;
mod torchvision;

pub use encoder::{Encoder, EncoderConfig};
pub use error::ModelError;
pub use fused_batch_norm::batch_norm_train_fused;
pub use heads::{HeadConfig, ProjectionHead};
pub use im2col_conv::conv2d_im2col;
pub use memory_bank::{MemoryBank, contrast_ids, sample_ids};
pub use momentum::{momentum_update, sync_running_stats};
pub use named_tensors::{NamedTensor, named_gradients, named_tensors};
pub use neighbour_graph::NeighbourGraph;
pub use prototypes::Prototypes;
pub use resnet::{Block, BlockKind, ConvInit, ResNet, ResNetConfig, Stem};
pub use shuffle_bn::ShuffleBn;
pub use split_batch_norm::{SplitBatchNorm, SplitBatchNormConfig};
pub use torchvision::{
    ImportReport, PretrainedWeights, load_torchvision, save_torchvision, torchvision_name,
};
