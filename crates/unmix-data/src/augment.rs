//! Augmentations with torchvision's semantics, and the MoCo CIFAR recipe (algorithms.md §1.6A):
//! `RandomResizedCrop(32)`, `RandomHorizontalFlip(0.5)`,
//! `RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), p=0.8)`, `RandomGrayscale(0.2)`, `Normalize`.
//!
//! Images are `f32` channel-major RGB in `[0, 1]` until normalisation. Resizing is bilinear with
//! half-pixel centres (torchvision's tensor path without antialiasing), written here rather than
//! taken from the `image` crate because crops are resampled straight into the batch buffer.
//!
//! `pixel_arithmetic = "pil_u8"` runs the same draws through [`crate::pil`] instead: the papers'
//! code augments 8-bit PIL images, and Pillow rounds after the crop and after every colour step
//! (its hue step through 8-bit HSV). Those bytes are reproduced exactly; the views differ from
//! the `f32` ones by about one level in 255 on average.

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::color_space::ColorSpace;
use crate::error::DataError;
use crate::pil;

/// Separable Gaussian blur with standard deviation `sigma` pixels, kernel radius `⌈3σ⌉`,
/// edges extended. PIL's `GaussianBlur`, which MoCo v2 and SimCLR use, approximates the same
/// Gaussian with three box blurs per axis; `pixel_arithmetic = "pil_u8"` reproduces that one
/// ([`crate::pil::gaussian_blur`]).
pub fn gaussian_blur(img: &mut Rgb, sigma: f32) {
    let radius = (3.0 * sigma).ceil().max(1.0) as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|d| (-((d * d) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let (h, w) = (img.height as isize, img.width as isize);
    let mut tmp = vec![0.0f32; img.data.len()];
    for c in 0..3 {
        let plane = c * (h * w) as usize;
        // Horizontal pass into tmp, vertical pass back.
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (i, k) in kernel.iter().enumerate() {
                    let xx = (x + i as isize - radius).clamp(0, w - 1);
                    acc += k * img.data[plane + (y * w + xx) as usize];
                }
                tmp[plane + (y * w + x) as usize] = acc;
            }
        }
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (i, k) in kernel.iter().enumerate() {
                    let yy = (y + i as isize - radius).clamp(0, h - 1);
                    acc += k * tmp[plane + (yy * w + x) as usize];
                }
                img.data[plane + (y * w + x) as usize] = acc;
            }
        }
    }
}

/// Solarisation: values at or above the threshold 0.5 (PIL's 128) are inverted.
pub fn solarize(img: &mut Rgb) {
    for v in &mut img.data {
        if *v >= 0.5 {
            *v = 1.0 - *v;
        }
    }
}

/// One view's augmentation pipeline (`[data.augmentation]` in a run config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentationConfig {
    /// Output side of the random resized crop (and of evaluation images).
    pub crop_size: usize,
    /// Range of the crop's share of the image area.
    pub crop_scale: [f64; 2],
    /// Range of the crop's aspect ratio (width / height).
    pub crop_ratio: [f64; 2],
    /// Probability of a horizontal flip.
    pub hflip_prob: f64,
    /// Probability that colour jitter is applied.
    pub jitter_prob: f64,
    /// Colour jitter strengths: brightness, contrast, saturation, hue.
    pub jitter: [f64; 4],
    /// Probability of converting to grey.
    pub grayscale_prob: f64,
    /// Which colour step comes first: `jitter_first` (the CIFAR demo, MoCo v2, SimCLR, SwAV) or
    /// `grayscale_first` (MoCo v1's `main_moco_unmix.py`: `RandomGrayscale`, then
    /// `ColorJitter`). The order changes the result: a hue shift before the conversion changes
    /// the luma, one after it does nothing to a grey image.
    pub color_order: ColorOrder,
    /// Probability of a Gaussian blur (MoCo v2's `--aug-plus`: 0.5; off in the CIFAR recipes).
    pub blur_prob: f64,
    /// Range of the blur's σ in pixels, drawn uniformly (MoCo v2: `[0.1, 2.0]`).
    pub blur_sigma: [f64; 2],
    /// Probability of solarisation (invert values >= 0.5; BYOL's second view: 0.2).
    pub solarize_prob: f64,
    /// The colour space the view is written in, converted after the augmentations and before
    /// `mean` / `std` (CMC's `Lab` or `YCbCr` views; `rgb` for every other method).
    pub color_space: ColorSpace,
    /// How pixels are computed: `float` (`f32` throughout, torchvision's tensor path) or
    /// `pil_u8` (the reference code's 8-bit PIL images, rounded as Pillow rounds after the
    /// crop and after every colour step; [`crate::pil`]). The random draws are the same.
    pub pixel_arithmetic: PixelArithmetic,
    /// Per-channel mean subtracted after the augmentations (in `color_space`'s units).
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by.
    pub std: [f32; 3],
}

/// The order of the colour steps of a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorOrder {
    /// Colour jitter (with `jitter_prob`), then random grayscale.
    #[default]
    JitterFirst,
    /// Random grayscale, then colour jitter.
    GrayscaleFirst,
}

/// How a recipe computes its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelArithmetic {
    /// `f32` from the source bytes to the normalised output (torchvision's tensor path).
    #[default]
    Float,
    /// `u8` images as the papers' code has them (`PIL.Image` through torchvision's
    /// transforms), byte for byte as Pillow computes them, converted to `f32` before
    /// normalisation (`ToTensor`).
    PilU8,
}

impl Default for AugmentationConfig {
    /// The MoCo CIFAR demo's recipe with its CIFAR normalisation.
    fn default() -> Self {
        Self {
            crop_size: 32,
            crop_scale: [0.08, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            hflip_prob: 0.5,
            jitter_prob: 0.8,
            jitter: [0.4, 0.4, 0.4, 0.1],
            grayscale_prob: 0.2,
            color_order: ColorOrder::JitterFirst,
            blur_prob: 0.0,
            blur_sigma: [0.1, 2.0],
            solarize_prob: 0.0,
            color_space: ColorSpace::Rgb,
            pixel_arithmetic: PixelArithmetic::Float,
            mean: [0.4914, 0.4822, 0.4465],
            std: [0.2023, 0.1994, 0.2010],
        }
    }
}

fn prob(key: &'static str, p: f64) -> Result<(), DataError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(DataError::Setting {
            owner: "AugmentationConfig",
            field: key,
            value: p.to_string(),
            expected: "expected a probability in [0, 1]",
        })
    }
}

impl AugmentationConfig {
    /// Checks every range; the error names the key.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |key, value: String, expected| {
            Err(DataError::Setting {
                owner: "AugmentationConfig",
                field: key,
                value,
                expected,
            })
        };
        if self.crop_size == 0 {
            return bad("crop_size", "0".into(), "expected a positive size");
        }
        let [s0, s1] = self.crop_scale;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
            return bad(
                "crop_scale",
                format!("{:?}", self.crop_scale),
                "expected [lo, hi] with 0 < lo <= hi <= 1",
            );
        }
        let [r0, r1] = self.crop_ratio;
        if !(r0 > 0.0 && r0 <= r1) {
            return bad(
                "crop_ratio",
                format!("{:?}", self.crop_ratio),
                "expected [lo, hi] with 0 < lo <= hi",
            );
        }
        prob("hflip_prob", self.hflip_prob)?;
        prob("jitter_prob", self.jitter_prob)?;
        prob("grayscale_prob", self.grayscale_prob)?;
        prob("blur_prob", self.blur_prob)?;
        prob("solarize_prob", self.solarize_prob)?;
        let [b0, b1] = self.blur_sigma;
        if !(b0 > 0.0 && b0 <= b1 && b1.is_finite()) {
            return bad(
                "blur_sigma",
                format!("{:?}", self.blur_sigma),
                "expected [lo, hi] with 0 < lo <= hi",
            );
        }
        let [b, c, s, h] = self.jitter;
        if !(b >= 0.0 && c >= 0.0 && s >= 0.0 && (0.0..=0.5).contains(&h)) {
            return bad(
                "jitter",
                format!("{:?}", self.jitter),
                "expected brightness, contrast, saturation >= 0 and hue in [0, 0.5]",
            );
        }
        if self.std.iter().any(|&v| v <= 0.0) {
            return bad("std", format!("{:?}", self.std), "expected positive values");
        }
        Ok(())
    }
}

/// An RGB `f32` image `[3, H, W]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgb {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `3·H·W` values, channel-major.
    pub data: Vec<f32>,
}

impl Rgb {
    /// From `u8` pixels `[C, H, W]` with one (grey, repeated) or three channels.
    pub fn from_u8(pixels: &[u8], channels: usize, height: usize, width: usize) -> Self {
        let plane = height * width;
        let mut data = Vec::with_capacity(3 * plane);
        for c in 0..3 {
            let src = if channels == 1 { 0 } else { c };
            data.extend(
                pixels[src * plane..(src + 1) * plane]
                    .iter()
                    .map(|&v| v as f32 / 255.0),
            );
        }
        Rgb {
            height,
            width,
            data,
        }
    }

    fn plane(&self) -> usize {
        self.height * self.width
    }

    /// ITU-R 601-2 luma of every pixel (PIL's `L` mode, as torchvision uses).
    pub fn luma(&self) -> Vec<f32> {
        let p = self.plane();
        (0..p)
            .map(|i| 0.299 * self.data[i] + 0.587 * self.data[p + i] + 0.114 * self.data[2 * p + i])
            .collect()
    }
}

/// Crop `rows top..top+h`, `cols left..left+w` resized to `size × size`, bilinear with half-pixel
/// centres.
pub fn resized_crop(img: &Rgb, top: usize, left: usize, h: usize, w: usize, size: usize) -> Rgb {
    let mut data = vec![0f32; 3 * size * size];
    let sy = h as f32 / size as f32;
    let sx = w as f32 / size as f32;
    let coords = |o: usize, scale: f32, len: usize| {
        let src = ((o as f32 + 0.5) * scale - 0.5).clamp(0.0, (len - 1) as f32);
        let i0 = src.floor() as usize;
        let i1 = (i0 + 1).min(len - 1);
        (i0, i1, src - i0 as f32)
    };
    let xs: Vec<_> = (0..size).map(|x| coords(x, sx, w)).collect();
    for y in 0..size {
        let (y0, y1, fy) = coords(y, sy, h);
        for c in 0..3 {
            let base = c * img.plane();
            let row0 = base + (top + y0) * img.width + left;
            let row1 = base + (top + y1) * img.width + left;
            for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
                let a = img.data[row0 + x0] * (1.0 - fx) + img.data[row0 + x1] * fx;
                let b = img.data[row1 + x0] * (1.0 - fx) + img.data[row1 + x1] * fx;
                data[(c * size + y) * size + x] = a * (1.0 - fy) + b * fy;
            }
        }
    }
    Rgb {
        height: size,
        width: size,
        data,
    }
}

/// torchvision's `RandomResizedCrop.get_params`: `(top, left, height, width)`.
pub fn random_crop_box<R: Rng + ?Sized>(
    height: usize,
    width: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut R,
) -> (usize, usize, usize, usize) {
    let area = (height * width) as f64;
    let (lr0, lr1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale[0]..=scale[1]);
        let aspect = rng.random_range(lr0..=lr1).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (top, left, h, w);
        }
    }
    // Fallback: a centre crop with the ratio clamped into range.
    let in_ratio = width as f64 / height as f64;
    let (h, w) = if in_ratio < ratio[0] {
        ((width as f64 / ratio[0]).round() as usize, width)
    } else if in_ratio > ratio[1] {
        (height, (height as f64 * ratio[1]).round() as usize)
    } else {
        (height, width)
    };
    ((height - h) / 2, (width - w) / 2, h, w)
}

fn blend(a: f32, b: f32, ratio: f32) -> f32 {
    (ratio * a + (1.0 - ratio) * b).clamp(0.0, 1.0)
}

/// `adjust_brightness`: scale and clamp.
pub fn adjust_brightness(img: &mut Rgb, factor: f32) {
    img.data
        .iter_mut()
        .for_each(|v| *v = (*v * factor).clamp(0.0, 1.0));
}

/// `adjust_contrast`: blend with the mean luma of the image.
pub fn adjust_contrast(img: &mut Rgb, factor: f32) {
    let luma = img.luma();
    let mean = luma.iter().sum::<f32>() / luma.len() as f32;
    img.data
        .iter_mut()
        .for_each(|v| *v = blend(*v, mean, factor));
}

/// `adjust_saturation`: blend with the per-pixel luma.
pub fn adjust_saturation(img: &mut Rgb, factor: f32) {
    let luma = img.luma();
    let p = luma.len();
    for (i, v) in img.data.iter_mut().enumerate() {
        *v = blend(*v, luma[i % p], factor);
    }
}

/// `adjust_hue`: rotate the hue by `shift` turns (in `[-0.5, 0.5]`) in HSV space.
pub fn adjust_hue(img: &mut Rgb, shift: f32) {
    let p = img.plane();
    for i in 0..p {
        let (r, g, b) = (img.data[i], img.data[p + i], img.data[2 * p + i]);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        let mut h = if delta == 0.0 {
            0.0
        } else if max == r {
            ((g - b) / delta).rem_euclid(6.0) / 6.0
        } else if max == g {
            ((b - r) / delta + 2.0) / 6.0
        } else {
            ((r - g) / delta + 4.0) / 6.0
        };
        let s = if max == 0.0 { 0.0 } else { delta / max };
        h = (h + shift).rem_euclid(1.0);
        let (r, g, b) = hsv_to_rgb(h, s, max);
        img.data[i] = r;
        img.data[p + i] = g;
        img.data[2 * p + i] = b;
    }
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = h * 6.0;
    let sector = (h6.floor() as i32).rem_euclid(6);
    let f = h6 - h6.floor();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    hsv_sector(sector, v, p, q, t)
}

/// The RGB of HSV's sixth `sector` of the hue circle from its four levels (`colorsys`'s table,
/// which Pillow's `hsv2rgb` follows too).
pub(crate) fn hsv_sector<T>(sector: i32, v: T, p: T, q: T, t: T) -> (T, T, T) {
    match sector {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// Replaces every channel with the luma.
pub fn to_grayscale(img: &mut Rgb) {
    let luma = img.luma();
    fill_channels(&mut img.data, &luma);
}

/// Mirrors the columns.
pub fn hflip(img: &mut Rgb) {
    mirror_rows(&mut img.data, img.width);
}

/// Writes `plane` into each of the three channel planes of `data` (any pixel type).
pub(crate) fn fill_channels<T: Copy>(data: &mut [T], plane: &[T]) {
    data.chunks_exact_mut(plane.len())
        .for_each(|c| c.copy_from_slice(plane));
}

/// Reverses every row of `width` values (any pixel type).
pub(crate) fn mirror_rows<T>(data: &mut [T], width: usize) {
    data.chunks_exact_mut(width).for_each(|row| row.reverse());
}

/// The steps of a recipe on one pixel type: `f32` ([`Rgb`]) or Pillow's bytes ([`pil::Rgb8`]).
trait Pixels: Sized {
    fn size(&self) -> (usize, usize);
    fn resized_crop(&self, top: usize, left: usize, h: usize, w: usize, size: usize) -> Self;
    fn hflip(&mut self);
    fn brightness(&mut self, factor: f32);
    fn contrast(&mut self, factor: f32);
    fn saturation(&mut self, factor: f32);
    fn hue(&mut self, shift: f32);
    fn grayscale(&mut self);
    fn blur(&mut self, sigma: f32);
    fn solarize(&mut self);
}

impl Pixels for Rgb {
    fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }
    fn resized_crop(&self, top: usize, left: usize, h: usize, w: usize, size: usize) -> Self {
        resized_crop(self, top, left, h, w, size)
    }
    fn hflip(&mut self) {
        hflip(self)
    }
    fn brightness(&mut self, factor: f32) {
        adjust_brightness(self, factor)
    }
    fn contrast(&mut self, factor: f32) {
        adjust_contrast(self, factor)
    }
    fn saturation(&mut self, factor: f32) {
        adjust_saturation(self, factor)
    }
    fn hue(&mut self, shift: f32) {
        adjust_hue(self, shift)
    }
    fn grayscale(&mut self) {
        to_grayscale(self)
    }
    fn blur(&mut self, sigma: f32) {
        gaussian_blur(self, sigma)
    }
    fn solarize(&mut self) {
        solarize(self)
    }
}

impl Pixels for pil::Rgb8 {
    fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }
    fn resized_crop(&self, top: usize, left: usize, h: usize, w: usize, size: usize) -> Self {
        pil::resized_crop(self, top, left, h, w, size)
    }
    fn hflip(&mut self) {
        pil::hflip(self)
    }
    fn brightness(&mut self, factor: f32) {
        pil::adjust_brightness(self, factor)
    }
    fn contrast(&mut self, factor: f32) {
        pil::adjust_contrast(self, factor)
    }
    fn saturation(&mut self, factor: f32) {
        pil::adjust_saturation(self, factor)
    }
    fn hue(&mut self, shift: f32) {
        pil::adjust_hue(self, shift)
    }
    fn grayscale(&mut self) {
        pil::to_grayscale(self)
    }
    fn blur(&mut self, sigma: f32) {
        pil::gaussian_blur(self, sigma)
    }
    fn solarize(&mut self) {
        pil::solarize(self)
    }
}

/// An augmentation pipeline built from an [`AugmentationConfig`].
///
/// ```
/// use rand::SeedableRng;
/// use unmix_data::augment::Rgb;
/// use unmix_data::{AugmentationConfig, ViewTransform};
///
/// // Crop and resize only (no flip, colour or blur), normalised with mean 0.5 and std 0.5.
/// let t = ViewTransform::new(AugmentationConfig {
///     crop_size: 8,
///     hflip_prob: 0.0,
///     jitter_prob: 0.0,
///     grayscale_prob: 0.0,
///     mean: [0.5; 3],
///     std: [0.5; 3],
///     ..AugmentationConfig::default()
/// })
/// .unwrap();
/// let grey = Rgb::from_u8(&[128u8; 3 * 16 * 16], 3, 16, 16);
/// let mut out = vec![0.0; t.output_len()];
/// t.augment(&grey, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0), &mut out);
/// // Any crop of a flat image is flat: (128/255 − 0.5) / 0.5 everywhere.
/// assert_eq!(out.len(), 3 * 8 * 8);
/// assert!(out.iter().all(|v| (v - (128.0 / 255.0 - 0.5) / 0.5).abs() < 1e-5));
/// ```
#[derive(Debug, Clone)]
pub struct ViewTransform {
    config: AugmentationConfig,
}

impl ViewTransform {
    /// Validates the config and builds the pipeline.
    pub fn new(config: AugmentationConfig) -> Result<Self, DataError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The settings.
    pub fn config(&self) -> &AugmentationConfig {
        &self.config
    }

    /// Output values per image (`3·size²`).
    pub fn output_len(&self) -> usize {
        3 * self.config.crop_size * self.config.crop_size
    }

    /// One random view of `img`, normalised, written into `out` (`3·size²` values).
    pub fn augment<R: Rng + ?Sized>(&self, img: &Rgb, rng: &mut R, out: &mut [f32]) {
        match self.config.pixel_arithmetic {
            PixelArithmetic::Float => {
                let view = self.augment_as(img, rng);
                self.normalize(&view, out);
            }
            PixelArithmetic::PilU8 => {
                let view = self.augment_as(&pil::Rgb8::from_rgb(img), rng);
                self.normalize(&view.to_rgb(), out);
            }
        }
    }

    /// The recipe's draws and steps on either pixel type: both arithmetics draw the same
    /// numbers in the same order.
    fn augment_as<P: Pixels, R: Rng + ?Sized>(&self, img: &P, rng: &mut R) -> P {
        let c = &self.config;
        let (height, width) = img.size();
        let (top, left, h, w) = random_crop_box(height, width, c.crop_scale, c.crop_ratio, rng);
        let mut view = img.resized_crop(top, left, h, w, c.crop_size);
        if rng.random::<f64>() < c.hflip_prob {
            view.hflip();
        }
        // Flipping commutes with the colour steps (they act per pixel or on image-wide means),
        // so only the order of those two matters (MoCo v1 flips last).
        match c.color_order {
            ColorOrder::JitterFirst => {
                if rng.random::<f64>() < c.jitter_prob {
                    self.color_jitter(&mut view, rng);
                }
                if rng.random::<f64>() < c.grayscale_prob {
                    view.grayscale();
                }
            }
            ColorOrder::GrayscaleFirst => {
                if rng.random::<f64>() < c.grayscale_prob {
                    view.grayscale();
                }
                if rng.random::<f64>() < c.jitter_prob {
                    self.color_jitter(&mut view, rng);
                }
            }
        }
        // Drawn only when enabled, so recipes without blur or solarisation keep their streams.
        if c.blur_prob > 0.0 && rng.random::<f64>() < c.blur_prob {
            let sigma = rng.random_range(c.blur_sigma[0]..=c.blur_sigma[1]);
            view.blur(sigma as f32);
        }
        if c.solarize_prob > 0.0 && rng.random::<f64>() < c.solarize_prob {
            view.solarize();
        }
        view
    }

    /// The evaluation view: resized to the crop size when needed, normalised.
    pub fn evaluate(&self, img: &Rgb, out: &mut [f32]) {
        let size = self.config.crop_size;
        if img.height == size && img.width == size {
            self.normalize(img, out);
            return;
        }
        match self.config.pixel_arithmetic {
            PixelArithmetic::Float => {
                self.normalize(&resized_crop(img, 0, 0, img.height, img.width, size), out)
            }
            PixelArithmetic::PilU8 => {
                let resized =
                    pil::resized_crop(&pil::Rgb8::from_rgb(img), 0, 0, img.height, img.width, size);
                self.normalize(&resized.to_rgb(), out);
            }
        }
    }

    /// `ColorJitter`: factors drawn first, then the four adjustments in a random order.
    fn color_jitter<P: Pixels, R: Rng + ?Sized>(&self, img: &mut P, rng: &mut R) {
        let [b, c, s, h] = self.config.jitter;
        let mut order = [0usize, 1, 2, 3];
        order.shuffle(rng);
        let factor = |rng: &mut R, x: f64| {
            if x > 0.0 {
                rng.random_range((1.0 - x).max(0.0)..=1.0 + x) as f32
            } else {
                1.0
            }
        };
        let fb = factor(rng, b);
        let fc = factor(rng, c);
        let fs = factor(rng, s);
        let fh = if h > 0.0 {
            rng.random_range(-h..=h) as f32
        } else {
            0.0
        };
        for op in order {
            match op {
                0 if b > 0.0 => img.brightness(fb),
                1 if c > 0.0 => img.contrast(fc),
                2 if s > 0.0 => img.saturation(fs),
                3 if h > 0.0 => img.hue(fh),
                _ => {}
            }
        }
    }

    fn normalize(&self, img: &Rgb, out: &mut [f32]) {
        let p = img.plane();
        let converted;
        let img = match self.config.color_space {
            ColorSpace::Rgb => img,
            // CMC converts the cropped, flipped image (`RGB2Lab` / `RGB2YCbCr`), then
            // normalises. It converts the crop's uint8 pixels; ours are rounded first only with
            // `pixel_arithmetic = "pil_u8"`.
            space => {
                let mut c = img.clone();
                space.convert_planar(&mut c.data, p);
                converted = c;
                &converted
            }
        };
        for c in 0..3 {
            let (m, s) = (self.config.mean[c], self.config.std[c]);
            for (o, v) in out[c * p..(c + 1) * p]
                .iter_mut()
                .zip(&img.data[c * p..(c + 1) * p])
            {
                *o = (v - m) / s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn img(values: &[f32], h: usize, w: usize) -> Rgb {
        Rgb {
            height: h,
            width: w,
            data: values.to_vec(),
        }
    }

    #[test]
    fn crop_boxes_stay_inside_and_follow_scale() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut areas = 0.0;
        for _ in 0..2000 {
            let (t, l, h, w) = random_crop_box(28, 28, [0.08, 1.0], [0.75, 4.0 / 3.0], &mut rng);
            assert!(t + h <= 28 && l + w <= 28 && h > 0 && w > 0);
            areas += (h * w) as f64 / 784.0;
        }
        // Accepted areas are U(0.08, 1) shares, biased slightly low by rejections: mean ≈ 0.5.
        let mean = areas / 2000.0;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }

    #[test]
    fn identity_resize_and_bilinear_midpoints() {
        let a = img(&(0..12).map(|v| v as f32).collect::<Vec<_>>(), 2, 2);
        assert_eq!(resized_crop(&a, 0, 0, 2, 2, 2), a);
        // 1×2 → 1×4 upsampling of [0, 1]: source x = (o+0.5)/2 - 0.5 → 0, 0.25, 0.75, 1.
        let b = img(&[0.0, 1.0, 0.0, 1.0, 0.0, 1.0], 1, 2);
        let r = resized_crop(&b, 0, 0, 1, 2, 4);
        assert_eq!(&r.data[..4], &[0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn colour_ops_match_torchvision_formulas() {
        // One pixel (0.5, 0.25, 1.0); luma = 0.299·0.5 + 0.587·0.25 + 0.114·1 = 0.41025.
        let base = img(&[0.5, 0.25, 1.0], 1, 1);
        let mut a = base.clone();
        adjust_brightness(&mut a, 1.5);
        assert_eq!(a.data, vec![0.75, 0.375, 1.0]);
        let mut a = base.clone();
        adjust_saturation(&mut a, 0.0);
        assert!(a.data.iter().all(|&v| (v - 0.41025).abs() < 1e-6));
        let mut a = base.clone();
        adjust_contrast(&mut a, 0.5);
        // 0.5·x + 0.5·0.41025
        let e = [0.455125, 0.330125, 0.705125];
        assert!(a.data.iter().zip(e).all(|(v, e)| (v - e).abs() < 1e-6));
        // Reference (Python's colorsys, the same HSV model as torchvision's adjust_hue):
        //   h, s, v = colorsys.rgb_to_hsv(0.5, 0.25, 1.0)          # (0.7222, 0.75, 1.0)
        //   colorsys.hsv_to_rgb((h + 0.25) % 1, s, v)              # (1.0, 0.25, 0.375)
        let mut a = base.clone();
        adjust_hue(&mut a, 0.25);
        let e = [1.0, 0.25, 0.375];
        assert!(
            a.data.iter().zip(e).all(|(v, e)| (v - e).abs() < 1e-5),
            "{:?}",
            a.data
        );
        let mut a = base;
        adjust_hue(&mut a, 0.0);
        assert!(
            a.data
                .iter()
                .zip([0.5, 0.25, 1.0])
                .all(|(v, e)| (v - e).abs() < 1e-6)
        );
    }

    #[test]
    fn blur_keeps_constants_and_mass_and_solarize_inverts_highlights() {
        let mut flat = img(&[0.25; 3 * 5 * 5], 5, 5);
        gaussian_blur(&mut flat, 1.0);
        assert!(flat.data.iter().all(|v| (v - 0.25).abs() < 1e-6));
        // A centred impulse spreads symmetrically and keeps its mass (no edge reached).
        let mut v = vec![0.0; 3 * 9 * 9];
        v[4 * 9 + 4] = 1.0;
        let mut im = img(&v, 9, 9);
        gaussian_blur(&mut im, 0.8);
        let plane = &im.data[..81];
        assert!((plane.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!((plane[4 * 9 + 3] - plane[4 * 9 + 5]).abs() < 1e-7);
        assert!((plane[3 * 9 + 4] - plane[4 * 9 + 3]).abs() < 1e-7);
        assert!(plane[4 * 9 + 4] > plane[4 * 9 + 3]);
        // Weight of the neighbour relative to the centre: exp(-1 / (2·0.8²)) per axis.
        let want = (-1.0f32 / (2.0 * 0.64)).exp();
        assert!((plane[4 * 9 + 3] / plane[4 * 9 + 4] - want).abs() < 1e-5);
        let mut s = img(&[0.2, 0.5, 0.9], 1, 1);
        solarize(&mut s);
        assert_eq!(s.data, vec![0.2, 0.5, 1.0 - 0.9]);
    }

    #[test]
    fn grey_images_and_flips() {
        let mut a = img(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 1, 2);
        hflip(&mut a);
        assert_eq!(a.data, vec![0.2, 0.1, 0.4, 0.3, 0.6, 0.5]);
        let g = Rgb::from_u8(&[0, 255], 1, 1, 2);
        assert_eq!(g.data, vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    }

    /// A crop resized as torchvision resizes a PIL image (`TF.resized_crop(img, 1, 2, 3, 4,
    /// [5, 5], BILINEAR)`; PIL rounds to `u8`, so within 1.5/255). Reference (torchvision 0.2x):
    /// ```python
    /// v = np.array([(37*i + 11) % 256 for i in range(36)], np.uint8).reshape(6, 6)
    /// out = TF.resized_crop(Image.fromarray(v), 1, 2, 3, 4, [5, 5], interpolation=BILINEAR)
    /// ```
    #[test]
    fn resized_crop_matches_torchvision_on_pil() {
        let src: Vec<u8> = (0..36).map(|i| ((37 * i + 11) % 256) as u8).collect();
        let out = resized_crop(&Rgb::from_u8(&src, 1, 6, 6), 1, 2, 3, 4, 5);
        let want = [
            51, 77, 107, 136, 162, 37, 63, 93, 122, 148, 17, 43, 73, 102, 128, 150, 69, 53, 82,
            108, 239, 86, 39, 68, 94,
        ];
        for (i, (&got, &w)) in out.data[..25].iter().zip(&want).enumerate() {
            assert!(
                (got * 255.0 - w as f32).abs() <= 1.5,
                "pixel {i}: {} vs torchvision {w}",
                got * 255.0
            );
        }
    }

    /// The distribution of `RandomResizedCrop(32)` boxes on a 32×32 source over 200,000 draws
    /// matches torchvision's `get_params` (means and standard deviations of height, width, area,
    /// top, left, and the share of full-image fallbacks; reference values from
    /// `[rrc.get_params(Image.new("L", (32, 32)), (0.08, 1), (3/4, 4/3)) for _ in range(200000)]`
    /// with `torch.manual_seed(0)`). Tolerances are about 5 standard errors of the difference of
    /// two such samples.
    #[test]
    fn crop_box_distribution_matches_torchvision() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let n = 200_000;
        let boxes: Vec<[f64; 6]> = (0..n)
            .map(|_| {
                let (t, l, h, w) =
                    random_crop_box(32, 32, [0.08, 1.0], [3.0 / 4.0, 4.0 / 3.0], &mut rng);
                let (t, l, h, w) = (t as f64, l as f64, h as f64, w as f64);
                let full = if h == 32.0 && w == 32.0 { 1.0 } else { 0.0 };
                [h, w, h * w, t, l, full]
            })
            .collect();
        // (name, torchvision mean, std, tolerance of the mean, of the std)
        let reference = [
            ("h", 21.6866, 6.1472, 0.1, 0.1),
            ("w", 21.6861, 6.1624, 0.1, 0.1),
            ("area", 502.14, 246.1803, 4.0, 3.0),
            ("top", 5.1553, 4.8258, 0.08, 0.08),
            ("left", 5.1493, 4.8235, 0.08, 0.08),
            ("full", 0.0021, 0.0459, 0.0008, 0.01),
        ];
        for (k, (name, mean, std, tol_mean, tol_std)) in reference.into_iter().enumerate() {
            let m = boxes.iter().map(|b| b[k]).sum::<f64>() / n as f64;
            let sd = (boxes.iter().map(|b| (b[k] - m).powi(2)).sum::<f64>() / n as f64).sqrt();
            assert!((m - mean).abs() < tol_mean, "{name}: mean {m} vs {mean}");
            assert!((sd - std).abs() < tol_std, "{name}: std {sd} vs {std}");
        }
    }

    /// Pure red, hue jitter and grayscale both always applied: grey first leaves the luma of red
    /// (0.299) everywhere, since a hue shift does nothing to grey; jitter first shifts the hue,
    /// which changes the luma before the conversion.
    #[test]
    fn color_order_decides_whether_hue_reaches_the_grey_image() {
        let red = img(
            &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            2,
            2,
        );
        let view = |color_order| {
            let t = ViewTransform::new(AugmentationConfig {
                crop_size: 2,
                crop_scale: [1.0, 1.0],
                crop_ratio: [1.0, 1.0],
                jitter_prob: 1.0,
                jitter: [0.0, 0.0, 0.0, 0.5],
                grayscale_prob: 1.0,
                color_order,
                mean: [0.0; 3],
                std: [1.0; 3],
                ..Default::default()
            })
            .unwrap();
            let mut out = vec![0.0; t.output_len()];
            t.augment(&red, &mut ChaCha8Rng::seed_from_u64(3), &mut out);
            out
        };
        let grey_first = view(ColorOrder::GrayscaleFirst);
        assert!(
            grey_first.iter().all(|v| (v - 0.299).abs() < 1e-5),
            "{grey_first:?}"
        );
        let jitter_first = view(ColorOrder::JitterFirst);
        assert!(
            jitter_first.iter().all(|v| (v - 0.299).abs() > 1e-3),
            "{jitter_first:?}"
        );
        // Still grey: every channel equal.
        assert!(
            jitter_first
                .iter()
                .all(|v| (v - jitter_first[0]).abs() < 1e-6)
        );
    }

    #[test]
    fn same_seed_same_view_and_bad_config_is_named() {
        let t = ViewTransform::new(AugmentationConfig {
            crop_size: 8,
            ..Default::default()
        })
        .unwrap();
        let src = Rgb::from_u8(
            &(0..=255u8).cycle().take(3 * 100).collect::<Vec<_>>(),
            3,
            10,
            10,
        );
        let mut a = vec![0.0; t.output_len()];
        let mut b = vec![0.0; t.output_len()];
        t.augment(&src, &mut ChaCha8Rng::seed_from_u64(4), &mut a);
        t.augment(&src, &mut ChaCha8Rng::seed_from_u64(4), &mut b);
        assert_eq!(a, b);
        let err = ViewTransform::new(AugmentationConfig {
            grayscale_prob: 2.0,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "AugmentationConfig.grayscale_prob = 2: expected a probability in [0, 1]"
        );
    }

    fn colourful(h: usize, w: usize) -> Rgb {
        // Bytes that cover every hue and level: a fixed pseudo-random sequence.
        let bytes: Vec<u8> = (0..3 * h * w)
            .map(|i| ((i * 7919 + 13) % 251) as u8)
            .collect();
        Rgb::from_u8(&bytes, 3, h, w)
    }

    /// `pil_u8` draws what `float` draws and applies Pillow's steps in the same order: replaying
    /// the draws by hand through `crate::pil` gives the same view, every value a byte / 255.
    #[test]
    fn pil_u8_views_replay_the_float_recipes_draws_through_pillows_steps() {
        let config = AugmentationConfig {
            hflip_prob: 1.0,
            jitter_prob: 1.0,
            grayscale_prob: 0.0,
            pixel_arithmetic: PixelArithmetic::PilU8,
            mean: [0.0; 3],
            std: [1.0; 3],
            ..AugmentationConfig::default()
        };
        let t = ViewTransform::new(config.clone()).unwrap();
        let src = colourful(32, 32);
        for seed in 0..20 {
            let mut out = vec![0.0; t.output_len()];
            t.augment(&src, &mut ChaCha8Rng::seed_from_u64(seed), &mut out);

            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (top, left, h, w) =
                random_crop_box(32, 32, config.crop_scale, config.crop_ratio, &mut rng);
            let mut view = pil::resized_crop(&pil::Rgb8::from_rgb(&src), top, left, h, w, 32);
            assert!(rng.random::<f64>() < 1.0);
            pil::hflip(&mut view);
            assert!(rng.random::<f64>() < 1.0);
            let mut order = [0usize, 1, 2, 3];
            order.shuffle(&mut rng);
            let fb = rng.random_range(0.6..=1.4) as f32;
            let fc = rng.random_range(0.6..=1.4) as f32;
            let fs = rng.random_range(0.6..=1.4) as f32;
            let fh = rng.random_range(-0.1..=0.1) as f32;
            for op in order {
                match op {
                    0 => pil::adjust_brightness(&mut view, fb),
                    1 => pil::adjust_contrast(&mut view, fc),
                    2 => pil::adjust_saturation(&mut view, fs),
                    _ => pil::adjust_hue(&mut view, fh),
                }
            }
            assert_eq!(out, view.to_rgb().data, "seed {seed}");
            assert!(
                out.iter()
                    .all(|v| (v * 255.0 - (v * 255.0).round()).abs() < 1e-3)
            );
        }
    }

    /// Over the default recipe the two arithmetics differ by Pillow's roundings only: a mean
    /// absolute difference of about a byte, and the same views otherwise.
    #[test]
    fn pil_u8_and_float_views_differ_by_roundings() {
        let config = AugmentationConfig {
            mean: [0.0; 3],
            std: [1.0; 3],
            ..AugmentationConfig::default()
        };
        let float = ViewTransform::new(config.clone()).unwrap();
        let bytes = ViewTransform::new(AugmentationConfig {
            pixel_arithmetic: PixelArithmetic::PilU8,
            ..config
        })
        .unwrap();
        let src = colourful(32, 32);
        let (mut total, mut n) = (0.0f64, 0usize);
        for seed in 0..50 {
            let mut a = vec![0.0; float.output_len()];
            let mut b = vec![0.0; float.output_len()];
            float.augment(&src, &mut ChaCha8Rng::seed_from_u64(seed), &mut a);
            bytes.augment(&src, &mut ChaCha8Rng::seed_from_u64(seed), &mut b);
            total += a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs() as f64)
                .sum::<f64>();
            n += a.len();
        }
        let mean = total / n as f64 * 255.0;
        assert!(
            (0.5..2.0).contains(&mean),
            "mean |float − pil_u8| = {mean} / 255"
        );
    }

    #[test]
    fn colour_space_is_converted_before_the_normalisation() {
        // A flat pure-red 4×4 image, evaluated in Lab and in YCbCr with CMC's statistics:
        // every pixel is (value − mean) / std of the converted red.
        let red: Vec<u8> = [[255u8; 16], [0; 16], [0; 16]].concat();
        let src = Rgb::from_u8(&red, 3, 4, 4);
        for space in [ColorSpace::Lab, ColorSpace::Ycbcr] {
            let (mean, std) = space.cmc_mean_std().unwrap();
            let t = ViewTransform::new(AugmentationConfig {
                crop_size: 4,
                color_space: space,
                mean,
                std,
                ..Default::default()
            })
            .unwrap();
            let mut out = vec![0.0; t.output_len()];
            t.evaluate(&src, &mut out);
            let mut want = [1.0f32, 0.0, 0.0];
            let mut planar = want.to_vec();
            space.convert_planar(&mut planar, 1);
            want.copy_from_slice(&planar);
            for c in 0..3 {
                let expected = (want[c] - mean[c]) / std[c];
                assert!(
                    out[c * 16..(c + 1) * 16]
                        .iter()
                        .all(|v| (v - expected).abs() < 1e-6),
                    "{space:?} channel {c}: {:?} vs {expected}",
                    &out[c * 16..c * 16 + 2]
                );
            }
        }
    }
}
