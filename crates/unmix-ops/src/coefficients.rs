use rand::Rng;
use rand_distr::{Beta, Distribution};

use crate::region_mix::{CutBox, rand_bbox};

/// Which mixture fired on a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixKind {
    /// `λ·x + (1-λ)·flip(x)` (mixup).
    Global,
    /// One CutMix box pasted from `flip(x)`.
    Region,
}

impl MixKind {
    /// Short name for logs and CSV files.
    pub fn as_str(self) -> &'static str {
        match self {
            MixKind::Global => "global",
            MixKind::Region => "region",
        }
    }
}

/// The random decisions of one Un-Mix step, shared by the whole batch (SPEC §1 steps 1 and 3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixDraw {
    /// Global or region mixture (`r < p_global` selects global).
    pub kind: MixKind,
    /// The sampled `λ ~ Beta(β, β)`, before any region recomputation.
    pub lambda: f64,
    /// The CutMix box, for a region mixture.
    pub cut: Option<CutBox>,
}

impl MixDraw {
    /// The λ the mixture carries for `h × w` images: the drawn one for a global mixture, the
    /// exact share of each sample's own pixels after the box is cut for a region one (as
    /// [`crate::region_mix`] returns it).
    ///
    /// ```
    /// use unmix_ops::{CutBox, MixDraw, MixKind};
    ///
    /// let cut = CutBox { row_start: 0, row_end: 2, col_start: 0, col_end: 2 };
    /// let draw = MixDraw { kind: MixKind::Region, lambda: 0.8, cut: Some(cut) };
    /// assert_eq!(draw.mixed_lambda(4, 4), 0.75); // 4 of 16 pixels come from the partner
    /// ```
    pub fn mixed_lambda(&self, h: usize, w: usize) -> f64 {
        match (self.kind, self.cut) {
            (MixKind::Region, Some(cut)) => 1.0 - cut.area() as f64 / (h * w) as f64,
            _ => self.lambda,
        }
    }

    /// Draws `r ~ U(0,1)`, `λ ~ Beta(β,β)` and, for a region mixture, the box for an `h × w`
    /// image, in that order (the reference code's order).
    ///
    /// # Panics
    /// If `beta` is not positive and finite; [`crate::UnMixConfig::validate`] rules that out.
    pub fn sample<R: Rng + ?Sized>(
        rng: &mut R,
        p_global: f64,
        beta: f64,
        h: usize,
        w: usize,
    ) -> Self {
        let r: f64 = rng.random();
        let lambda = Beta::new(beta, beta)
            .expect("beta validated by UnMixConfig")
            .sample(rng);
        if r < p_global {
            MixDraw {
                kind: MixKind::Global,
                lambda,
                cut: None,
            }
        } else {
            let cut = rand_bbox(h, w, lambda, rng);
            MixDraw {
                kind: MixKind::Region,
                lambda,
                cut: Some(cut),
            }
        }
    }
}
