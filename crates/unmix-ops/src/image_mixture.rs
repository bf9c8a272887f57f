//! The dataset-level image mixture of `CMC_with_Image_Mixture` (`IM/mixture.py`; SPEC §1, second
//! operator; algorithms.md §2.2–2.3): an augmentation applied per sample while the loader builds
//! it, with partners drawn from the whole dataset. Unlike [`UnMix`](crate::UnMix) it changes no
//! label and no loss: the mixed sample keeps its own index and its own memory-bank slot.
//!
//! Per sample, as the reference wraps its datasets:
//! - `global` (`GM`): `g_num` attempts, each firing with probability `g_prob`; a firing attempt
//!   draws a partner `j` uniformly over the dataset (itself included), a fresh augmentation of
//!   it, and `λ ~ Beta(g_alpha, g_alpha)`, and sets `x ← λ·x + (1−λ)·x_j`. Attempts are
//!   sequential, so two firings blend three images.
//! - `region` (`RM`): `r_num` attempts, each firing with probability `r_prob` (none when
//!   `r_beta <= 0`); a firing attempt draws `λ ~ Beta(r_beta, r_beta)`, a partner, and a CutMix
//!   box of side `sqrt(1−λ)`, scales the anchor by `r_pixel_decay` if it is the *first* attempt,
//!   then pastes the partner's box (not decayed). Later boxes overwrite earlier ones.
//! - `im`: `region` over `global`: the anchor is globally mixed first, and every region partner
//!   is itself a globally mixed sample.
//! - `cutout` and `random_erasing`: the baselines of the same file.
//!
//! Every view of a sample gets the same partner, λ and box: the reference mixes the two crops
//! as one 6-channel tensor. Every random choice comes from the generator the caller passes (the
//! loader's per-sample one), so results do not depend on loader threads.

use rand::Rng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use crate::error::OpsError;
use crate::region_mix::{CutBox, rand_bbox};

/// Which mixture (`--IM_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageMixtureKind {
    /// Global attempts, then region attempts (`IM`, the reference's default).
    Im,
    /// Global attempts only.
    Global,
    /// Region attempts only.
    Region,
    /// Cutout (DeVries & Taylor): one square of `mask_color`.
    Cutout,
    /// Random Erasing (Zhong et al.): one box of a random value.
    RandomErasing,
}

/// Dataset-level image mixture settings (`[data.image_mixture]` in a run config). Defaults are
/// `train_CMC.py`'s and `train_moco_ins.py`'s (identical in both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageMixtureConfig {
    /// `--IM`: off by default.
    pub enabled: bool,
    /// `--IM_type`.
    pub kind: ImageMixtureKind,
    /// `--g_alpha`: global `λ ~ Beta(g_alpha, g_alpha)`.
    pub g_alpha: f64,
    /// `--g_num`: global attempts per sample.
    pub g_num: usize,
    /// `--g_prob`: probability that a global attempt fires.
    pub g_prob: f64,
    /// `--r_beta`: region `λ ~ Beta(r_beta, r_beta)`; `<= 0` turns region attempts off.
    pub r_beta: f64,
    /// `--r_prob`: probability that a region attempt fires.
    pub r_prob: f64,
    /// `--r_num`: region attempts per sample.
    pub r_num: usize,
    /// `--r_pixel_decay`: scales the anchor when the first region attempt fires.
    pub r_pixel_decay: f64,
    /// `--mask_size`: Cutout's square side in pixels (50 is sized for 224-pixel crops).
    pub mask_size: usize,
    /// `--cutout_p`: probability of a Cutout.
    pub cutout_p: f64,
    /// `--cutout_inside`: keep Cutout's centre at least half a mask from the border.
    pub cutout_inside: bool,
    /// `--mask_color`: the value Cutout writes (into the normalised tensor, as the reference).
    pub mask_color: f32,
    /// `--area_ratio_range`: Random Erasing's share of the image, `[low, high)`.
    pub area_ratio_range: [f64; 2],
    /// `--random_erasing_prob`: probability of a Random Erasing.
    pub random_erasing_prob: f64,
    /// `--min_aspect_ratio`: aspect ratios are drawn in `[r, 1/r)`.
    pub min_aspect_ratio: f64,
    /// `--max_attempt`: box draws before Random Erasing gives up.
    pub max_attempt: usize,
}

impl Default for ImageMixtureConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            kind: ImageMixtureKind::Im,
            g_alpha: 1.0,
            g_num: 2,
            g_prob: 0.1,
            r_beta: 1.0,
            r_prob: 0.1,
            r_num: 2,
            r_pixel_decay: 1.0,
            mask_size: 50,
            cutout_p: 0.1,
            cutout_inside: false,
            mask_color: 0.0,
            area_ratio_range: [0.02, 0.4],
            random_erasing_prob: 0.1,
            min_aspect_ratio: 0.3,
            max_attempt: 20,
        }
    }
}

fn setting(field: &'static str, value: impl ToString, expected: &'static str) -> OpsError {
    OpsError::Setting {
        owner: "ImageMixtureConfig",
        field,
        value: value.to_string(),
        expected,
    }
}

impl ImageMixtureConfig {
    /// Checks ranges; the error names the field and what it expects.
    pub fn validate(&self) -> Result<(), OpsError> {
        let probability = "expected a probability in [0, 1]";
        for (field, p) in [
            ("g_prob", self.g_prob),
            ("r_prob", self.r_prob),
            ("cutout_p", self.cutout_p),
            ("random_erasing_prob", self.random_erasing_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(setting(field, p, probability));
            }
        }
        if !(self.g_alpha.is_finite() && self.g_alpha > 0.0) {
            return Err(setting(
                "g_alpha",
                self.g_alpha,
                "expected a finite value > 0",
            ));
        }
        if !self.r_beta.is_finite() {
            return Err(setting(
                "r_beta",
                self.r_beta,
                "expected a finite value (<= 0 turns region attempts off)",
            ));
        }
        if !(self.r_pixel_decay.is_finite() && self.r_pixel_decay >= 0.0) {
            return Err(setting(
                "r_pixel_decay",
                self.r_pixel_decay,
                "expected a finite value >= 0",
            ));
        }
        if !self.mask_color.is_finite() {
            return Err(setting("mask_color", self.mask_color, "expected a number"));
        }
        let [low, high] = self.area_ratio_range;
        if !(0.0 < low && low < high && high <= 1.0) {
            return Err(setting(
                "area_ratio_range",
                format!("[{low}, {high}]"),
                "expected 0 < low < high <= 1",
            ));
        }
        if !(self.min_aspect_ratio > 0.0 && self.min_aspect_ratio <= 1.0) {
            return Err(setting(
                "min_aspect_ratio",
                self.min_aspect_ratio,
                "expected a value in (0, 1]",
            ));
        }
        Ok(())
    }
}

/// One sample's views as a loader builds them: `views[v]` is a `[C, side, side]` buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleViews {
    /// One buffer per view, channel-major.
    pub views: Vec<Vec<f32>>,
    /// Side of every view.
    pub side: usize,
}

impl SampleViews {
    fn channels(&self, v: usize) -> usize {
        self.views[v].len() / (self.side * self.side)
    }

    /// Sets every pixel of `cut` (rows × columns) in every channel of every view.
    fn fill_box(&mut self, cut: CutBox, value: impl Fn(usize, usize, usize, usize) -> f32) {
        let side = self.side;
        for v in 0..self.views.len() {
            for c in 0..self.channels(v) {
                for r in cut.row_start..cut.row_end {
                    for col in cut.col_start..cut.col_end {
                        let at = (c * side + r) * side + col;
                        self.views[v][at] = value(v, c, r, col);
                    }
                }
            }
        }
    }
}

/// What happened to one sample, in order: the draws, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum MixtureEvent {
    /// A global attempt fired with partner `partner` and weight `lambda` on the sample so far.
    Global {
        /// Dataset index of the partner.
        partner: usize,
        /// Weight of the sample so far.
        lambda: f64,
    },
    /// Region attempt `attempt` (0-based) fired: `cut` comes from `partner`.
    Region {
        /// Which attempt (the first one decays the anchor).
        attempt: usize,
        /// Dataset index of the partner.
        partner: usize,
        /// The drawn λ (the box has side `sqrt(1−λ)`).
        lambda: f64,
        /// The pasted box.
        cut: CutBox,
    },
    /// Cutout wrote `mask_color` into `cut`.
    Cutout {
        /// The masked box.
        cut: CutBox,
    },
    /// Random Erasing wrote `value` into `cut`.
    Erased {
        /// The erased box.
        cut: CutBox,
        /// The value written.
        value: f32,
    },
}

/// The dataset-level image mixture, ready to apply.
///
/// ```
/// use rand::SeedableRng;
/// use unmix_ops::{ImageMixture, ImageMixtureConfig, ImageMixtureKind, SampleViews};
///
/// // Always blend once with a partner: every pixel is λ·anchor + (1−λ)·partner.
/// let mixture = ImageMixture::new(ImageMixtureConfig {
///     enabled: true,
///     kind: ImageMixtureKind::Global,
///     g_num: 1,
///     g_prob: 1.0,
///     ..ImageMixtureConfig::default()
/// })
/// .unwrap();
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let mut sample = SampleViews { views: vec![vec![1.0; 3 * 4 * 4]], side: 4 };
/// // The partner of index j: a (here constant) augmentation of dataset image j.
/// let mut fetch = |_j: usize, _rng: &mut rand_chacha::ChaCha8Rng| SampleViews {
///     views: vec![vec![3.0; 3 * 4 * 4]],
///     side: 4,
/// };
/// let events = mixture.apply(&mut sample, 10, &mut rng, &mut fetch);
/// let unmix_ops::MixtureEvent::Global { lambda, .. } = events[0] else { unreachable!() };
/// let expected = (lambda + 3.0 * (1.0 - lambda)) as f32;
/// assert!(sample.views[0].iter().all(|&p| (p - expected).abs() < 1e-5));
/// ```
#[derive(Debug, Clone)]
pub struct ImageMixture {
    config: ImageMixtureConfig,
}

impl ImageMixture {
    /// Validates `config`.
    pub fn new(config: ImageMixtureConfig) -> Result<Self, OpsError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The settings.
    pub fn config(&self) -> &ImageMixtureConfig {
        &self.config
    }

    /// Checks that views of side `side` can be mixed (Cutout inside the image needs a mask no
    /// larger than the image).
    pub fn check_side(&self, side: usize) -> Result<(), OpsError> {
        let c = &self.config;
        if c.enabled && c.kind == ImageMixtureKind::Cutout && c.cutout_inside && c.mask_size > side
        {
            return Err(setting(
                "mask_size",
                c.mask_size,
                "expected at most the crop size when cutout_inside is set",
            ));
        }
        Ok(())
    }

    /// Mixes `sample` in place and returns what fired. `len` is the dataset's size;
    /// `fetch(j, rng)` returns a fresh augmentation of dataset image `j` (every view, drawn
    /// from `rng`). Does nothing when the mixture is disabled.
    pub fn apply<R: Rng>(
        &self,
        sample: &mut SampleViews,
        len: usize,
        rng: &mut R,
        fetch: &mut dyn FnMut(usize, &mut R) -> SampleViews,
    ) -> Vec<MixtureEvent> {
        let mut events = Vec::new();
        if !self.config.enabled || len == 0 {
            return events;
        }
        match self.config.kind {
            ImageMixtureKind::Global => self.global(sample, len, rng, fetch, &mut events),
            ImageMixtureKind::Region => self.region(sample, len, rng, fetch, false, &mut events),
            ImageMixtureKind::Im => {
                self.global(sample, len, rng, fetch, &mut events);
                self.region(sample, len, rng, fetch, true, &mut events);
            }
            ImageMixtureKind::Cutout => self.cutout(sample, rng, &mut events),
            ImageMixtureKind::RandomErasing => self.random_erasing(sample, rng, &mut events),
        }
        events
    }

    /// `GM.__getitem__`: draws in the reference's order (fire?, partner, its augmentation, λ).
    fn global<R: Rng>(
        &self,
        sample: &mut SampleViews,
        len: usize,
        rng: &mut R,
        fetch: &mut dyn FnMut(usize, &mut R) -> SampleViews,
        events: &mut Vec<MixtureEvent>,
    ) {
        let c = &self.config;
        let beta = Beta::new(c.g_alpha, c.g_alpha).expect("g_alpha validated");
        for _ in 0..c.g_num {
            // `if p > prob: continue`: fires when p <= prob.
            if rng.random::<f64>() > c.g_prob {
                continue;
            }
            let partner = rng.random_range(0..len);
            let other = fetch(partner, rng);
            let lambda: f64 = beta.sample(rng);
            let (a, b) = (lambda as f32, (1.0 - lambda) as f32);
            for (x, y) in sample.views.iter_mut().zip(&other.views) {
                for (p, q) in x.iter_mut().zip(y) {
                    *p = *p * a + *q * b;
                }
            }
            events.push(MixtureEvent::Global { partner, lambda });
        }
    }

    /// `RM.__getitem__`; with `global_partners` (`im`) each partner is first globally mixed,
    /// as `RM` wraps `GM` there. Draw order: fire?, λ, partner, its augmentation, box.
    fn region<R: Rng>(
        &self,
        sample: &mut SampleViews,
        len: usize,
        rng: &mut R,
        fetch: &mut dyn FnMut(usize, &mut R) -> SampleViews,
        global_partners: bool,
        events: &mut Vec<MixtureEvent>,
    ) {
        let c = &self.config;
        for attempt in 0..c.r_num {
            if c.r_beta <= 0.0 || rng.random::<f64>() > c.r_prob {
                continue;
            }
            let lambda: f64 = Beta::new(c.r_beta, c.r_beta)
                .expect("r_beta > 0 here")
                .sample(rng);
            let partner = rng.random_range(0..len);
            let mut other = fetch(partner, rng);
            if global_partners {
                // The partner's own global draws are not the anchor's events.
                self.global(&mut other, len, rng, fetch, &mut Vec::new());
            }
            let cut = rand_bbox(sample.side, sample.side, lambda, rng);
            if attempt == 0 {
                // Pixel decay sits after the `continue`: only a firing first attempt decays.
                let decay = c.r_pixel_decay as f32;
                for p in sample.views.iter_mut().flatten() {
                    *p *= decay;
                }
            }
            let side = sample.side;
            sample.fill_box(cut, |v, ch, r, col| {
                other.views[v][(ch * side + r) * side + col]
            });
            events.push(MixtureEvent::Region {
                attempt,
                partner,
                lambda,
                cut,
            });
        }
    }

    /// `Cutout.__getitem__`: centre uniform over `[0, side + offset)` (or kept inside), the
    /// square clipped to the image.
    fn cutout<R: Rng>(
        &self,
        sample: &mut SampleViews,
        rng: &mut R,
        events: &mut Vec<MixtureEvent>,
    ) {
        let c = &self.config;
        if rng.random::<f64>() > c.cutout_p {
            return;
        }
        let side = sample.side as i64;
        let size = c.mask_size as i64;
        let half = size / 2;
        let offset = i64::from(size % 2 == 0);
        let (lo, hi) = if c.cutout_inside {
            (half, side + offset - half)
        } else {
            (0, side + offset)
        };
        let cx = rng.random_range(lo..hi.max(lo + 1));
        let cy = rng.random_range(lo..hi.max(lo + 1));
        let (x0, y0) = (cx - half, cy - half);
        let clip = |v: i64| v.clamp(0, side) as usize;
        // The reference indexes `data[0][:, x, y]`: x runs along rows.
        let cut = CutBox {
            row_start: clip(x0),
            row_end: clip(x0 + size),
            col_start: clip(y0),
            col_end: clip(y0 + size),
        };
        let color = c.mask_color;
        sample.fill_box(cut, |_, _, _, _| color);
        events.push(MixtureEvent::Cutout { cut });
    }

    /// `RandomErasing.__getitem__`: up to `max_attempt` draws of area and aspect ratio until
    /// the box fits; one `U(0, 1)` value for the whole box.
    fn random_erasing<R: Rng>(
        &self,
        sample: &mut SampleViews,
        rng: &mut R,
        events: &mut Vec<MixtureEvent>,
    ) {
        let c = &self.config;
        if rng.random::<f64>() > c.random_erasing_prob {
            return;
        }
        let side = sample.side;
        let area = (side * side) as f64;
        let [low, high] = c.area_ratio_range;
        let (rl, rh) = (c.min_aspect_ratio, 1.0 / c.min_aspect_ratio);
        for _ in 0..c.max_attempt {
            let mask_area = rng.random_range(low..high) * area;
            let aspect = if rl < rh {
                rng.random_range(rl..rh)
            } else {
                rl
            };
            let mask_h = (mask_area * aspect).sqrt() as usize;
            let mask_w = (mask_area / aspect).sqrt() as usize;
            if mask_w < side && mask_h < side {
                let x0 = rng.random_range(0..side - mask_w);
                let y0 = rng.random_range(0..side - mask_h);
                let value: f32 = rng.random();
                // `data[0][:, x0:x1, y0:y1]`: x (width `mask_w`) runs along rows.
                let cut = CutBox {
                    row_start: x0,
                    row_end: x0 + mask_w,
                    col_start: y0,
                    col_end: y0 + mask_h,
                };
                sample.fill_box(cut, |_, _, _, _| value);
                events.push(MixtureEvent::Erased { cut, value });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SIDE: usize = 8;

    /// A sample of two 1-channel views holding `a` and `a + 100`, so views can be told apart.
    fn constant(a: f32) -> SampleViews {
        SampleViews {
            views: vec![vec![a; SIDE * SIDE], vec![a + 100.0; SIDE * SIDE]],
            side: SIDE,
        }
    }

    /// Partners are constant images whose value is `10 + j` (their augmentation draws nothing).
    fn fetch(j: usize, _: &mut ChaCha8Rng) -> SampleViews {
        constant(10.0 + j as f32)
    }

    fn mixture(config: ImageMixtureConfig) -> ImageMixture {
        ImageMixture::new(ImageMixtureConfig {
            enabled: true,
            ..config
        })
        .unwrap()
    }

    fn at(sample: &SampleViews, v: usize, r: usize, c: usize) -> f32 {
        sample.views[v][r * SIDE + c]
    }

    fn inside(cut: &CutBox, r: usize, c: usize) -> bool {
        (cut.row_start..cut.row_end).contains(&r) && (cut.col_start..cut.col_end).contains(&c)
    }

    #[test]
    fn two_global_attempts_blend_three_images() {
        let m = mixture(ImageMixtureConfig {
            kind: ImageMixtureKind::Global,
            g_prob: 1.0,
            ..Default::default()
        });
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = constant(1.0);
        let events = m.apply(&mut s, 50, &mut rng, &mut fetch);
        let [
            MixtureEvent::Global {
                partner: j1,
                lambda: l1,
            },
            MixtureEvent::Global {
                partner: j2,
                lambda: l2,
            },
        ] = events[..]
        else {
            panic!("expected two global events, got {events:?}");
        };
        // x = l2·(l1·a + (1−l1)·b) + (1−l2)·c; the anchor keeps weight l1·l2.
        for (v, a) in [(0, 1.0), (1, 101.0)] {
            let b = 10.0 + j1 as f64 + 100.0 * v as f64;
            let c = 10.0 + j2 as f64 + 100.0 * v as f64;
            let want = l2 * (l1 * a + (1.0 - l1) * b) + (1.0 - l2) * c;
            for p in &s.views[v] {
                assert!((*p as f64 - want).abs() < 1e-3, "view {v}: {p} vs {want}");
            }
        }
    }

    #[test]
    fn a_region_attempt_pastes_the_partners_box_into_every_view() {
        let m = mixture(ImageMixtureConfig {
            kind: ImageMixtureKind::Region,
            r_num: 1,
            r_prob: 1.0,
            r_pixel_decay: 0.5,
            ..Default::default()
        });
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut s = constant(1.0);
        let events = m.apply(&mut s, 50, &mut rng, &mut fetch);
        let [
            MixtureEvent::Region {
                attempt: 0,
                partner,
                cut,
                ..
            },
        ] = events[..]
        else {
            panic!("expected one region event, got {events:?}");
        };
        for v in 0..2 {
            for r in 0..SIDE {
                for c in 0..SIDE {
                    // Outside the box the decayed anchor, inside the partner, not decayed.
                    let want = if inside(&cut, r, c) {
                        10.0 + partner as f32 + 100.0 * v as f32
                    } else {
                        0.5 * (1.0 + 100.0 * v as f32)
                    };
                    assert_eq!(at(&s, v, r, c), want, "view {v} ({r}, {c}), box {cut:?}");
                }
            }
        }
    }

    /// `r_pixel_decay` scales the anchor only when attempt 0 fires; a sample whose only firing
    /// attempt is the second keeps its pixels outside the box.
    #[test]
    fn pixel_decay_applies_only_when_the_first_region_attempt_fires() {
        let m = mixture(ImageMixtureConfig {
            kind: ImageMixtureKind::Region,
            r_prob: 0.5,
            r_pixel_decay: 0.5,
            ..Default::default()
        });
        let (mut first, mut second_only) = (0, 0);
        for seed in 0..200 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut s = constant(1.0);
            let events = m.apply(&mut s, 50, &mut rng, &mut fetch);
            let cuts: Vec<(usize, CutBox)> = events
                .iter()
                .map(|e| match e {
                    MixtureEvent::Region { attempt, cut, .. } => (*attempt, *cut),
                    other => panic!("{other:?}"),
                })
                .collect();
            let Some(&(attempt, _)) = cuts.first() else {
                continue;
            };
            let outside = (0..SIDE * SIDE)
                .map(|i| (i / SIDE, i % SIDE))
                .find(|&(r, c)| cuts.iter().all(|(_, cut)| !inside(cut, r, c)));
            let Some((r, c)) = outside else { continue };
            let want = if attempt == 0 { 0.5 } else { 1.0 };
            assert_eq!(at(&s, 0, r, c), want, "seed {seed}: {cuts:?}");
            if attempt == 0 {
                first += 1;
            } else {
                second_only += 1;
            }
        }
        assert!(first > 20 && second_only > 20, "{first} / {second_only}");
    }

    /// With `im`, region partners are themselves globally mixed: with `g_prob = 1` no pasted
    /// pixel equals a plain partner image.
    #[test]
    fn im_region_partners_are_globally_mixed() {
        let m = mixture(ImageMixtureConfig {
            kind: ImageMixtureKind::Im,
            g_prob: 1.0,
            r_prob: 1.0,
            r_num: 1,
            ..Default::default()
        });
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut s = constant(1.0);
        let events = m.apply(&mut s, 50, &mut rng, &mut fetch);
        assert_eq!(events.len(), 3, "{events:?}");
        let MixtureEvent::Region { partner, cut, .. } = events[2] else {
            panic!("{events:?}")
        };
        assert!(cut.area() > 0, "draw another seed: empty box");
        let pasted = at(&s, 0, cut.row_start, cut.col_start);
        assert_ne!(pasted, 10.0 + partner as f32);
        // Still a convex blend of partner images (values 10 .. 59).
        assert!((10.0..60.0).contains(&pasted), "{pasted}");
    }

    /// Hand-worked Cutout: mask 4 on an 8×8 image, centre drawn in [0, 9): the square
    /// `[c − 2, c + 2)` per axis, clipped, holds `mask_color` in every view.
    #[test]
    fn cutout_masks_a_clipped_square() {
        let m = mixture(ImageMixtureConfig {
            kind: ImageMixtureKind::Cutout,
            mask_size: 4,
            cutout_p: 1.0,
            mask_color: -7.0,
            ..Default::default()
        });
        let mut seen_clipped = false;
        for seed in 0..50 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut s = constant(1.0);
            let events = m.apply(&mut s, 50, &mut rng, &mut fetch);
            let [MixtureEvent::Cutout { cut }] = events[..] else {
                panic!("{events:?}")
            };
            let rows = cut.row_end - cut.row_start;
            let cols = cut.col_end - cut.col_start;
            assert!(rows <= 4 && cols <= 4, "{cut:?}");
            // A square of side 4 loses at most 2 pixels per axis to the border.
            assert!(rows >= 2 && cols >= 2, "{cut:?}");
            seen_clipped |= rows < 4 || cols < 4;
            for v in 0..2 {
                for r in 0..SIDE {
                    for c in 0..SIDE {
                        let want = if inside(&cut, r, c) {
                            -7.0
                        } else {
                            1.0 + 100.0 * v as f32
                        };
                        assert_eq!(at(&s, v, r, c), want);
                    }
                }
            }
        }
        assert!(seen_clipped);
    }

    #[test]
    fn random_erasing_writes_one_value_into_a_box_of_the_allowed_area() {
        let m = mixture(ImageMixtureConfig {
            kind: ImageMixtureKind::RandomErasing,
            random_erasing_prob: 1.0,
            ..Default::default()
        });
        for seed in 0..50 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut s = constant(1.0);
            let events = m.apply(&mut s, 50, &mut rng, &mut fetch);
            let [MixtureEvent::Erased { cut, value }] = events[..] else {
                panic!("seed {seed}: {events:?}")
            };
            assert!((0.0..1.0).contains(&value));
            // int() of sides whose product is below 0.4·64: the box is at most 25 pixels.
            assert!(cut.area() as f64 <= 0.4 * 64.0, "{cut:?}");
            assert!(cut.row_end <= SIDE && cut.col_end <= SIDE);
            for v in 0..2 {
                for r in 0..SIDE {
                    for c in 0..SIDE {
                        let want = if inside(&cut, r, c) {
                            value
                        } else {
                            1.0 + 100.0 * v as f32
                        };
                        assert_eq!(at(&s, v, r, c), want);
                    }
                }
            }
        }
    }

    /// With the defaults each of the four attempts fires with probability 0.1, so a sample
    /// stays unmixed with probability 0.9⁴ = 0.6561 (algorithms.md §2.3). 20,000 draws: the
    /// standard error is 0.0034; the bound is 4 of them.
    #[test]
    fn with_the_defaults_the_unmixed_share_is_0_9_to_the_4th() {
        let m = mixture(ImageMixtureConfig::default());
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let n = 20_000;
        let mut unmixed = 0;
        for _ in 0..n {
            let mut s = constant(1.0);
            if m.apply(&mut s, 1000, &mut rng, &mut fetch).is_empty() {
                assert_eq!(s, constant(1.0));
                unmixed += 1;
            }
        }
        let share = unmixed as f64 / n as f64;
        assert!((share - 0.9f64.powi(4)).abs() < 4.0 * 0.0034, "{share}");
    }

    #[test]
    fn disabled_or_region_off_changes_nothing() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let off = ImageMixture::new(ImageMixtureConfig {
            g_prob: 1.0,
            ..Default::default()
        })
        .unwrap();
        let mut s = constant(1.0);
        assert!(off.apply(&mut s, 10, &mut rng, &mut fetch).is_empty());
        let no_region = mixture(ImageMixtureConfig {
            kind: ImageMixtureKind::Region,
            r_beta: 0.0,
            r_prob: 1.0,
            ..Default::default()
        });
        assert!(no_region.apply(&mut s, 10, &mut rng, &mut fetch).is_empty());
        assert_eq!(s, constant(1.0));
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let err = ImageMixture::new(ImageMixtureConfig {
            g_prob: 1.5,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ImageMixtureConfig.g_prob = 1.5: expected a probability in [0, 1]"
        );
        let err = ImageMixture::new(ImageMixtureConfig {
            area_ratio_range: [0.5, 0.2],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ImageMixtureConfig.area_ratio_range")
        );
        let inside = mixture(ImageMixtureConfig {
            kind: ImageMixtureKind::Cutout,
            cutout_inside: true,
            ..Default::default()
        });
        assert!(inside.check_side(32).is_err());
        assert!(inside.check_side(64).is_ok());
    }
}
