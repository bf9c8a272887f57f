//! The reference code's 8-bit augmentations: torchvision's PIL path, reproduced to the last bit.
//!
//! The papers' code augments `PIL.Image`s of `u8` pixels: every step of torchvision's
//! `RandomResizedCrop`, `ColorJitter`, `RandomGrayscale` (and MoCo v2's PIL `GaussianBlur`,
//! `RandomSolarize`) rounds or truncates to 1/255, and the hue step goes through Pillow's 8-bit
//! HSV. [`crate::augment`] computes in `f32` instead; `pixel_arithmetic = "pil_u8"` in a recipe
//! selects these functions, which give the same bytes as Pillow 13 (`libImaging/Resample.c`,
//! `Blend.c`, `Convert.c`, `BoxBlur.c`) driven by torchvision 0.29's `_functional_pil.py`, with
//! C's mix of `float` and `double` arithmetic kept where it decides a rounding.
//! `docs/reference/pil_augment.py` checks them against the installed Pillow.
//!
//! ```
//! use unmix_data::pil::{self, Rgb8};
//!
//! // Pillow's `ImageEnhance.Brightness(img).enhance(1.5)`: 0 + 1.5·(v − 0), truncated, clipped.
//! let mut img = Rgb8 { height: 1, width: 2, data: vec![10, 200, 10, 200, 10, 200] };
//! pil::adjust_brightness(&mut img, 1.5);
//! assert_eq!(img.data, vec![15, 255, 15, 255, 15, 255]);
//! ```

use crate::augment::{Rgb, fill_channels, hsv_sector, mirror_rows};

/// An RGB `u8` image `[3, H, W]`, channel-major (a PIL `RGB` image's pixels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `3·H·W` values, channel-major.
    pub data: Vec<u8>,
}

impl Rgb8 {
    /// From an [`Rgb`] whose values are multiples of 1/255 (as [`Rgb::from_u8`] makes them):
    /// each value is rounded to the nearest step.
    pub fn from_rgb(img: &Rgb) -> Self {
        Rgb8 {
            height: img.height,
            width: img.width,
            data: img
                .data
                .iter()
                .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
                .collect(),
        }
    }

    /// As `ToTensor` makes it: every value divided by 255.
    pub fn to_rgb(&self) -> Rgb {
        Rgb {
            height: self.height,
            width: self.width,
            data: self.data.iter().map(|&v| v as f32 / 255.0).collect(),
        }
    }

    fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Pillow's `convert("L")` of every pixel: `(19595·R + 38470·G + 7471·B + 2¹⁵) >> 16`
    /// (`Convert.c`, `L24`).
    pub fn luma(&self) -> Vec<u8> {
        let p = self.plane();
        (0..p)
            .map(|i| {
                let (r, g, b) = (
                    self.data[i] as u32,
                    self.data[p + i] as u32,
                    self.data[2 * p + i] as u32,
                );
                ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8
            })
            .collect()
    }
}

/// Pillow's fixed-point precision for 8-bit resampling (`Resample.c`: `32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// One axis of Pillow's `precompute_coeffs` for the bilinear filter (support 1, widened by the
/// scale when shrinking, which is Pillow's antialiasing), normalised to integers as
/// `normalize_coeffs_8bpc` does: per output index, the first input index and the weights.
fn bilinear_coeffs(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    // `(double)(in1 - in0) / outSize` with the box (0, in_size) as floats.
    let scale = in_size as f32 as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    let inv_filterscale = 1.0 / filterscale;
    let filter = |x: f64| {
        let x = x.abs();
        if x < 1.0 { 1.0 - x } else { 0.0 }
    };
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's `(int)` truncates towards zero.
            let xmin = ((center - support + 0.5) as i32).max(0) as usize;
            let xmax = ((center + support + 0.5) as i32).min(in_size as i32) as usize;
            let weights: Vec<f64> = (xmin..xmax)
                .map(|x| filter((x as f64 - center + 0.5) * inv_filterscale))
                .collect();
            let total: f64 = weights.iter().sum();
            let one = (1u32 << PRECISION_BITS) as f64;
            let ints = weights
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    if w < 0.0 {
                        (-0.5 + w * one) as i32
                    } else {
                        (0.5 + w * one) as i32
                    }
                })
                .collect();
            (xmin, ints)
        })
        .collect()
}

/// `clip8`: the fixed-point sum back to a byte, clamped.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples a `[rows, cols_in]` plane along its rows to `cols_out` columns with `coeffs`
/// (one Pillow horizontal pass).
fn resample_rows(src: &[u8], cols_in: usize, coeffs: &[(usize, Vec<i32>)]) -> Vec<u8> {
    let cols_out = coeffs.len();
    let mut out = vec![0u8; src.len() / cols_in * cols_out];
    for (line, out_line) in src
        .chunks_exact(cols_in)
        .zip(out.chunks_exact_mut(cols_out))
    {
        for ((xmin, k), o) in coeffs.iter().zip(out_line.iter_mut()) {
            let taps = &line[*xmin..*xmin + k.len()];
            let acc = taps
                .iter()
                .zip(k)
                .fold(1i32 << (PRECISION_BITS - 1), |acc, (&v, &w)| {
                    acc + v as i32 * w
                });
            *o = clip8(acc);
        }
    }
    out
}

/// Resamples a `[rows_in, cols]` plane along its columns to `coeffs.len()` rows (Pillow's
/// vertical pass).
fn resample_columns(src: &[u8], cols: usize, coeffs: &[(usize, Vec<i32>)]) -> Vec<u8> {
    let mut out = vec![0u8; coeffs.len() * cols];
    let mut acc = vec![0i32; cols];
    for ((ymin, k), out_row) in coeffs.iter().zip(out.chunks_exact_mut(cols)) {
        acc.fill(1i32 << (PRECISION_BITS - 1));
        for (i, &w) in k.iter().enumerate() {
            let row = &src[(ymin + i) * cols..(ymin + i + 1) * cols];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v as i32 * w;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// torchvision's `resized_crop` of a PIL image: `img.crop((left, top, left + w, top + h))`,
/// then `resize((size, size), BILINEAR)`, which Pillow does as two passes, each rounded to
/// bytes; a pass whose size does not change is skipped. The horizontal pass goes first, except
/// (since Pillow 13, `Resample.c`'s `horizontal_first`) when the height shrinks by more than
/// twice as many pixels as the width (a rule found by probing Pillow 13.0 and checked on
/// random shapes by `tests/pil_augment.rs`). Older Pillows always went horizontally first; the
/// orders can differ only when the height shrinks, never for crops of a 32×32 CIFAR image
/// resized to 32.
pub fn resized_crop(img: &Rgb8, top: usize, left: usize, h: usize, w: usize, size: usize) -> Rgb8 {
    let mut data = Vec::with_capacity(3 * size * size);
    let (shrink_h, shrink_w) = (h as isize - size as isize, w as isize - size as isize);
    let horizontal_first = !(shrink_h > 0 && 2 * shrink_w < shrink_h);
    // The coefficients depend on the sizes only: once for the three channels.
    let across = (w != size).then(|| bilinear_coeffs(w, size));
    let down = (h != size).then(|| bilinear_coeffs(h, size));
    for c in 0..3 {
        let plane = &img.data[c * img.plane()..(c + 1) * img.plane()];
        let mut crop: Vec<u8> = (top..top + h)
            .flat_map(|y| {
                plane[y * img.width + left..y * img.width + left + w]
                    .iter()
                    .copied()
            })
            .collect();
        if horizontal_first {
            if let Some(k) = &across {
                crop = resample_rows(&crop, w, k);
            }
            if let Some(k) = &down {
                crop = resample_columns(&crop, size, k);
            }
        } else {
            if let Some(k) = &down {
                crop = resample_columns(&crop, w, k);
            }
            if let Some(k) = &across {
                crop = resample_rows(&crop, w, k);
            }
        }
        data.extend(crop);
    }
    Rgb8 {
        height: size,
        width: size,
        data,
    }
}

/// `Image.blend(degenerate, img, alpha)` (`Blend.c`): `in1 + alpha·(in2 − in1)` in `float`,
/// truncated to a byte and clipped. `degenerate(i)` is the first image's value at index `i`.
fn blend(img: &mut Rgb8, alpha: f32, degenerate: impl Fn(usize) -> u8) {
    for (i, v) in img.data.iter_mut().enumerate() {
        let d = degenerate(i) as f32;
        // `as u8` truncates and saturates, as Blend.c's two branches do.
        *v = (d + alpha * (*v as f32 - d)) as u8;
    }
}

/// `ImageEnhance.Brightness(img).enhance(factor)`: a blend with black.
pub fn adjust_brightness(img: &mut Rgb8, factor: f32) {
    blend(img, factor, |_| 0);
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: a blend with the mean of the `L` image,
/// rounded to an integer (`int(mean + 0.5)`).
pub fn adjust_contrast(img: &mut Rgb8, factor: f32) {
    let luma = img.luma();
    let sum: u64 = luma.iter().map(|&v| v as u64).sum();
    let mean = (sum as f64 / luma.len() as f64 + 0.5) as u8;
    blend(img, factor, |_| mean);
}

/// `ImageEnhance.Color(img).enhance(factor)`: a blend with the `L` image.
pub fn adjust_saturation(img: &mut Rgb8, factor: f32) {
    let luma = img.luma();
    let p = luma.len();
    blend(img, factor, |i| luma[i % p]);
}

/// Pillow's `rgb2hsv_row` (`Convert.c`): hue and saturation truncated to bytes.
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    if maxc == minc {
        return (0, 0, maxc);
    }
    let cr = (maxc - minc) as f32;
    let s = cr / maxc as f32;
    let rc = (maxc - r) as f32 / cr;
    let gc = (maxc - g) as f32 / cr;
    let bc = (maxc - b) as f32 / cr;
    // `2.0 + rc - bc` is evaluated in double (the literal is a double), then stored as float.
    let h: f32 = if r == maxc {
        bc - gc
    } else if g == maxc {
        (2.0 + rc as f64 - bc as f64) as f32
    } else {
        (4.0 + gc as f64 - rc as f64) as f32
    };
    let h = ((h as f64 / 6.0 + 1.0) % 1.0) as f32;
    let byte = |x: f32| ((x as f64 * 255.0) as i32).clamp(0, 255) as u8;
    (byte(h), byte(s), maxc)
}

/// Pillow's `hsv2rgb` (`Convert.c`), rounding half away from zero.
fn hsv_to_rgb(h: u8, s: u8, v: u8) -> (u8, u8, u8) {
    if s == 0 {
        return (v, v, v);
    }
    let h6 = h as f64 * 6.0 / 255.0;
    let i = h6.floor() as i32;
    let f = (h6 - i as f64) as f32;
    let fs = (s as f64 / 255.0) as f32;
    let v64 = v as f64;
    let byte = |x: f64| (x.round() as i32).clamp(0, 255) as u8;
    let p = byte(v64 * (1.0 - fs as f64));
    // `fs * f` is a float product; `fs * (1.0 - f)` a double one.
    let q = byte(v64 * (1.0 - (fs * f) as f64));
    let t = byte(v64 * (1.0 - fs as f64 * (1.0 - f as f64)));
    // `i` is 0..=6 (h = 255 gives 6, which C's `i % 6` sends to sector 0).
    hsv_sector(i % 6, v, p, q, t)
}

/// torchvision's PIL `adjust_hue`: to Pillow's 8-bit HSV, `h += uint8(int32(shift·255))`
/// wrapping around, back to RGB. The round trip itself moves colours even when the shift
/// truncates to 0.
pub fn adjust_hue(img: &mut Rgb8, shift: f32) {
    let step = ((shift as f64 * 255.0) as i32) as u8;
    let p = img.plane();
    for i in 0..p {
        let (h, s, v) = rgb_to_hsv(img.data[i], img.data[p + i], img.data[2 * p + i]);
        let (r, g, b) = hsv_to_rgb(h.wrapping_add(step), s, v);
        img.data[i] = r;
        img.data[p + i] = g;
        img.data[2 * p + i] = b;
    }
}

/// torchvision's PIL `rgb_to_grayscale(img, 3)`: `convert("L")` copied to three channels.
pub fn to_grayscale(img: &mut Rgb8) {
    let luma = img.luma();
    fill_channels(&mut img.data, &luma);
}

/// Mirrors the columns (`Image.transpose(FLIP_LEFT_RIGHT)`).
pub fn hflip(img: &mut Rgb8) {
    mirror_rows(&mut img.data, img.width);
}

/// `ImageOps.solarize(img, 128)`: bytes at or above 128 become `255 − v`.
pub fn solarize(img: &mut Rgb8) {
    for v in &mut img.data {
        if *v >= 128 {
            *v = 255 - *v;
        }
    }
}

/// Pillow's `_gaussian_blur_radius`: the box radius whose `passes` box blurs have the variance
/// of a Gaussian of standard deviation `sigma` (Gwosdek et al., 2011), in `float`.
fn box_radius(sigma: f32, passes: u32) -> f32 {
    let sigma2 = sigma * sigma / passes as f32;
    let big_l = ((12.0 * sigma2 as f64 + 1.0).sqrt()) as f32;
    let l = ((big_l as f64 - 1.0) / 2.0).floor() as f32;
    let mut a = (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2);
    a /= 6.0 * (sigma2 - (l + 1.0) * (l + 1.0));
    l + a
}

/// One `ImagingLineBoxBlur8` pass over a line: a box of `2·radius + 1` whole pixels plus the
/// two next ones weighted by the fractional part, in 8.24 fixed point, edges extended.
fn box_blur_line(line: &[u8], out: &mut [u8], radius_f: f32) {
    let radius = radius_f as usize;
    let ww = (16_777_216.0f32 / (radius_f * 2.0 + 1.0)) as u32;
    let fw = ((1u32 << 24).wrapping_sub((radius as u32 * 2 + 1).wrapping_mul(ww))) / 2;
    let n = line.len();
    let last = n - 1;
    let edge_a = (radius + 1).min(n);
    let edge_b = n.saturating_sub(radius + 1);
    let px = |i: usize| line[i] as u32;
    let mut acc = px(0) * (radius as u32 + 1);
    for x in 0..edge_a.saturating_sub(1) {
        acc += px(x);
    }
    acc += px(last) * (radius + 1 - edge_a) as u32;
    let mut step = |x: usize, sub: usize, add: usize, left: usize, right: usize| {
        acc = acc.wrapping_add(px(add)).wrapping_sub(px(sub));
        let bulk = acc
            .wrapping_mul(ww)
            .wrapping_add((px(left) + px(right)).wrapping_mul(fw));
        out[x] = (bulk.wrapping_add(1 << 23) >> 24) as u8;
    };
    if edge_a <= edge_b {
        for x in 0..edge_a {
            step(x, 0, x + radius, 0, x + radius + 1);
        }
        for x in edge_a..edge_b {
            step(
                x,
                x - radius - 1,
                x + radius,
                x - radius - 1,
                x + radius + 1,
            );
        }
        for x in edge_b..=last {
            step(x, x - radius - 1, last, x - radius - 1, last);
        }
    } else {
        for x in 0..edge_b {
            step(x, 0, x + radius, 0, x + radius + 1);
        }
        for x in edge_b..edge_a {
            step(x, 0, last, 0, last);
        }
        for x in edge_a..=last {
            step(x, x - radius - 1, last, x - radius - 1, last);
        }
    }
}

/// `img.filter(ImageFilter.GaussianBlur(sigma))` (MoCo v2's and SimCLR's PIL blur): Pillow's
/// three box blurs per axis (`BoxBlur.c`), rows first, then columns.
pub fn gaussian_blur(img: &mut Rgb8, sigma: f32) {
    let radius = box_radius(sigma, 3);
    if radius == 0.0 {
        return;
    }
    let (h, w) = (img.height, img.width);
    let mut line = vec![0u8; h.max(w)];
    let mut out = vec![0u8; h.max(w)];
    for plane in img.data.chunks_exact_mut(h * w) {
        for _ in 0..3 {
            for row in plane.chunks_exact_mut(w) {
                box_blur_line(row, &mut out[..w], radius);
                row.copy_from_slice(&out[..w]);
            }
        }
        for _ in 0..3 {
            for x in 0..w {
                for y in 0..h {
                    line[y] = plane[y * w + x];
                }
                box_blur_line(&line[..h], &mut out[..h], radius);
                for y in 0..h {
                    plane[y * w + x] = out[y];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb8(data: &[u8], h: usize, w: usize) -> Rgb8 {
        Rgb8 {
            height: h,
            width: w,
            data: data.to_vec(),
        }
    }

    /// The same fixture as `augment`'s float test, now byte for byte. Reference (Pillow 13,
    /// torchvision 0.29):
    /// ```python
    /// v = np.array([(37*i + 11) % 256 for i in range(36)], np.uint8).reshape(6, 6)
    /// out = TF.resized_crop(Image.fromarray(v), 1, 2, 3, 4, [5, 5], interpolation=BILINEAR)
    /// ```
    #[test]
    fn resized_crop_is_torchvisions_on_pil() {
        let src: Vec<u8> = (0..36).map(|i| ((37 * i + 11) % 256) as u8).collect();
        let grey = Rgb8 {
            height: 6,
            width: 6,
            data: [src.clone(), src.clone(), src].concat(),
        };
        let out = resized_crop(&grey, 1, 2, 3, 4, 5);
        let want: [u8; 25] = [
            51, 77, 107, 136, 162, 37, 63, 93, 122, 148, 17, 43, 73, 102, 128, 150, 69, 53, 82,
            108, 239, 86, 39, 68, 94,
        ];
        for c in 0..3 {
            assert_eq!(&out.data[c * 25..(c + 1) * 25], &want);
        }
        // The whole image at its own size is a copy.
        assert_eq!(resized_crop(&grey, 0, 0, 6, 6, 6), grey);
    }

    /// Values worked out from Pillow's formulas for the pixel (128, 64, 250):
    /// `L = (128·19595 + 64·38470 + 250·7471 + 32768) >> 16 = 104`; checked against Pillow 13
    /// (`TF.adjust_brightness(im, 0.7)` etc. on `Image.new("RGB", (1, 1), (128, 64, 250))`).
    #[test]
    fn enhancers_truncate_as_blend_does() {
        let base = rgb8(&[128, 64, 250], 1, 1);
        assert_eq!(base.luma(), vec![104]);
        let mut a = base.clone();
        // 0.7·128 = 89.6 → 89; 0.7·64 = 44.8 → 44; 0.7·250 = 175.
        adjust_brightness(&mut a, 0.7);
        assert_eq!(a.data, vec![89, 44, 175]);
        let mut a = base.clone();
        // 104 + 0.5·(v − 104): 116, 84, 177.
        adjust_saturation(&mut a, 0.5);
        assert_eq!(a.data, vec![116, 84, 177]);
        let mut a = base.clone();
        // One pixel: its own luma is the mean; 1.6 extrapolates and clips.
        // 104 + 1.6·24 = 142.4 → 142; 104 − 1.6·40 = 40; 104 + 1.6·146 = 337.6 → 255.
        adjust_contrast(&mut a, 1.6);
        assert_eq!(a.data, vec![142, 40, 255]);
        let mut g = base.clone();
        to_grayscale(&mut g);
        assert_eq!(g.data, vec![104, 104, 104]);
        let mut s = base;
        solarize(&mut s);
        assert_eq!(s.data, vec![127, 64, 5]);
    }

    /// Reference (Pillow 13):
    /// ```python
    /// im = Image.new("RGB", (1, 1), (128, 64, 250))
    /// im.convert("HSV").getpixel((0, 0))                       # (184, 189, 250)
    /// TF.adjust_hue(im, 0.25).getpixel((0, 0))                 # (250, 65, 100)
    /// TF.adjust_hue(im, 0.001).getpixel((0, 0))                # (126, 65, 250)
    /// TF.adjust_hue(im, -0.3).getpixel((0, 0))                 # (65, 250, 165)
    /// ```
    #[test]
    fn hue_goes_through_pillows_8bit_hsv() {
        assert_eq!(rgb_to_hsv(128, 64, 250), (184, 189, 250));
        let at = |shift: f32| {
            let mut a = rgb8(&[128, 64, 250], 1, 1);
            adjust_hue(&mut a, shift);
            a.data
        };
        assert_eq!(at(0.25), vec![250, 65, 100]);
        // A shift that truncates to 0 still round-trips through 8-bit HSV: (128, 64) → (126, 65).
        assert_eq!(at(0.001), vec![126, 65, 250]);
        assert_eq!(at(-0.3), vec![65, 250, 165]);
        // Greys have no hue and come back unchanged.
        let mut g = rgb8(&[77, 77, 77], 1, 1);
        adjust_hue(&mut g, 0.4);
        assert_eq!(g.data, vec![77, 77, 77]);
    }

    /// Reference (Pillow 13): a 1×9 line with one bright pixel,
    /// ```python
    /// im = Image.frombytes("L", (9, 1), bytes([0, 0, 0, 0, 200, 0, 0, 0, 0]))
    /// list(im.filter(ImageFilter.GaussianBlur(1.0)).getdata())
    /// ```
    /// blurred along the row only (one row: the vertical passes see constant columns).
    #[test]
    fn gaussian_blur_is_pillows_box_approximation() {
        let line = [0u8, 0, 0, 0, 200, 0, 0, 0, 0];
        let mut im = rgb8(&[line, line, line].concat(), 1, 9);
        gaussian_blur(&mut im, 1.0);
        assert_eq!(&im.data[..9], &[0, 1, 11, 47, 81, 47, 11, 1, 0]);
        // A flat image stays flat.
        let mut flat = rgb8(&[90; 3 * 25], 5, 5);
        gaussian_blur(&mut flat, 1.7);
        assert!(flat.data.iter().all(|&v| v == 90));
    }
}
