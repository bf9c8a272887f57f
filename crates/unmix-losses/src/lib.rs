//! Contrastive losses and their Un-Mix forms for Burn (`../shared/SPEC.md` §1 step 4, §2).
//!
//! - [`info_nce`]: MoCo's InfoNCE of queries against their keys and a queue of negatives.
//! - [`mixed_info_nce`]: the Un-Mix pair of terms `λ·L(mixed, k) + (1-λ)·L(flip(mixed), k)`,
//!   with `flip(mixed)` taken on the embeddings of one forward pass.
//! - [`MocoLoss`]: the symmetric and asymmetric MoCo objectives of the Un-Mix CIFAR demo, with or
//!   without the mixed terms.
//! - [`nt_xent`]: SimCLR's NT-Xent over two views (htdt's two-block form).
//! - [`byol_regression`], [`byol_loss`]: BYOL's `2 − 2·cos` and its symmetrised form.
//! - [`sinkhorn`], [`swav_loss`], [`swav_unmix_terms`]: SwAV's codes, swapped prediction over
//!   crops, and the Un-Mix terms in the reference-code and paper-formula variants.
//! - [`nce_loss`], [`nce_normalizer`], [`nce_softmax_loss`]: CMC's NCE with its constant
//!   normaliser and its softmax alternative, for memory-bank methods.
//! - [`hard_negative_instance_loss`], [`propagation_loss`], [`select_positives`]: Invariance
//!   Propagation's instance and propagation losses on memory-bank similarities.
//! - [`unmix_combine`]: `λ·direct + (1−λ)·reverse`, the one weighting every method uses.
//!
//! ```
//! use burn::prelude::*;
//! use unmix_losses::{info_nce, l2_normalize};
//!
//! let device = Device::flex();
//! let q = l2_normalize(Tensor::<2>::from_floats([[1.0, 0.0]], &device));
//! let k = q.clone();
//! let queue = Tensor::<2>::from_floats([[0.0, 1.0]], &device);
//! let loss: f32 = info_nce(q, k, queue, 1.0).into_scalar();
//! assert!((loss - (1.0f32 + (-1.0f32).exp()).ln()).abs() < 1e-6);
//! ```

mod byol;
mod info_nce;
mod invariance_propagation;
mod moco;
mod nce;
mod normalize;
mod nt_xent;
mod swav;
#[cfg(test)]
mod test_util;
mod unmix;

pub use byol::{byol_loss, byol_regression};
pub use info_nce::info_nce;
pub use invariance_propagation::{hard_negative_instance_loss, propagation_loss, select_positives};
pub use moco::{MocoEmbeddings, MocoLoss, MocoLossTerms};
pub use nce::{nce_loss, nce_normalizer, nce_softmax_loss};
pub use normalize::l2_normalize;
pub use nt_xent::nt_xent;
pub use swav::{SwavReverse, sinkhorn, swapped_prediction, swav_loss, swav_unmix_terms};
pub use unmix::{mixed_info_nce, unmix_combine};
