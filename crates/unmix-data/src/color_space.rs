//! The colour space a view is written in: RGB, or CMC's `Lab` and `YCbCr` views
//! (`CMC_with_Image_Mixture/dataset.py`: `RGB2Lab` and `RGB2YCbCr` call scikit-image's
//! `color.rgb2lab` / `color.rgb2ycbcr` on the cropped, flipped image, before `Normalize`).
//!
//! The formulas and constants are scikit-image's (0.26, `skimage/color/colorconv.py`): sRGB
//! linearised with the 0.04045 threshold, XYZ through `xyz_from_rgb`, CIE Lab against the D65 /
//! 2° white `(0.95047, 1, 1.08883)` with the 0.008856 / 7.787 branch; YCbCr with ITU-R BT.601's
//! studio-swing matrix (Y in 16..235, Cb and Cr in 16..240). They are written out here rather
//! than taken from a colour crate because the values must be scikit-image's to the last digit
//! that matters (the `palette` crate, for one, uses the exact sRGB matrix and CIE's ε and κ,
//! which move `a` and `b` by up to about 0.01).

use serde::{Deserialize, Serialize};

/// The colour space of a view's three channels, converted after the augmentations and before
/// the per-channel `mean` / `std`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorSpace {
    /// RGB in `[0, 1]` (every method but CMC).
    #[default]
    Rgb,
    /// CIE Lab (L in `[0, 100]`, a and b about `[−86, 98]` and `[−108, 94]`): CMC's default
    /// view, L against ab.
    Lab,
    /// YCbCr, BT.601 studio swing (Y in `[16, 235]`, Cb and Cr in `[16, 240]`): CMC's
    /// `--view YCbCr`, Y against CbCr.
    Ycbcr,
}

/// scikit-image's `xyz_from_rgb` (sRGB primaries, D65).
const XYZ_FROM_RGB: [[f32; 3]; 3] = [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
];

/// The D65 white point for the 2° observer (`xyz_tristimulus_values('D65', '2')`).
const D65_WHITE: [f32; 3] = [0.95047, 1.0, 1.08883];

/// scikit-image's `ycbcr_from_rgb` (BT.601, inputs in `[0, 1]`).
const YCBCR_FROM_RGB: [[f32; 3]; 3] = [
    [65.481, 128.553, 24.966],
    [-37.797, -74.203, 112.0],
    [112.0, -93.786, -18.214],
];

/// The offsets added after [`YCBCR_FROM_RGB`].
const YCBCR_OFFSET: [f32; 3] = [16.0, 128.0, 128.0];

/// One RGB pixel in `[0, 1]` as CIE Lab (`skimage.color.rgb2lab`).
///
/// ```
/// use unmix_data::color_space::rgb_to_lab;
///
/// // Pure red, as scikit-image gives it: (53.2406, 80.0923, 67.2028).
/// let [l, a, b] = rgb_to_lab([1.0, 0.0, 0.0]);
/// assert!((l - 53.2406).abs() < 1e-3 && (a - 80.0923).abs() < 1e-3 && (b - 67.2028).abs() < 1e-3);
/// ```
pub fn rgb_to_lab(rgb: [f32; 3]) -> [f32; 3] {
    // Linear sRGB (`rgb2xyz`).
    let linear = rgb.map(|v| {
        if v > 0.04045 {
            ((v + 0.055) / 1.055).powf(2.4)
        } else {
            v / 12.92
        }
    });
    let mut f = [0.0f32; 3];
    for (c, row) in XYZ_FROM_RGB.iter().enumerate() {
        let xyz = row[0] * linear[0] + row[1] * linear[1] + row[2] * linear[2];
        let t = xyz / D65_WHITE[c];
        f[c] = if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        };
    }
    [
        116.0 * f[1] - 16.0,
        500.0 * (f[0] - f[1]),
        200.0 * (f[1] - f[2]),
    ]
}

/// One RGB pixel in `[0, 1]` as YCbCr (`skimage.color.rgb2ycbcr`).
///
/// ```
/// use unmix_data::color_space::rgb_to_ycbcr;
///
/// // Pure green: (144.553, 53.797, 34.214).
/// let [y, cb, cr] = rgb_to_ycbcr([0.0, 1.0, 0.0]);
/// assert!((y - 144.553).abs() < 1e-3 && (cb - 53.797).abs() < 1e-3 && (cr - 34.214).abs() < 1e-3);
/// ```
pub fn rgb_to_ycbcr(rgb: [f32; 3]) -> [f32; 3] {
    let mut out = [0.0f32; 3];
    for (c, row) in YCBCR_FROM_RGB.iter().enumerate() {
        out[c] = row[0] * rgb[0] + row[1] * rgb[1] + row[2] * rgb[2] + YCBCR_OFFSET[c];
    }
    out
}

impl ColorSpace {
    /// Converts a planar `[3, H, W]` RGB image in place (`plane` = `H·W`).
    pub fn convert_planar(self, data: &mut [f32], plane: usize) {
        let convert = match self {
            ColorSpace::Rgb => return,
            ColorSpace::Lab => rgb_to_lab,
            ColorSpace::Ycbcr => rgb_to_ycbcr,
        };
        for p in 0..plane {
            let out = convert([data[p], data[plane + p], data[2 * plane + p]]);
            for (c, v) in out.into_iter().enumerate() {
                data[c * plane + p] = v;
            }
        }
    }

    /// CMC's per-channel normalisation for this space (`train_CMC.py::get_train_loader`): Lab
    /// maps each channel's range to `[−1, 1]` (`mean = (lo + hi)/2`, `std = (hi − lo)/2` with
    /// L in `[0, 100]`, a in `[−86.183, 98.233]`, b in `[−107.857, 94.478]`); YCbCr uses
    /// measured statistics. `None` for RGB, whose statistics belong to the dataset.
    pub fn cmc_mean_std(self) -> Option<([f32; 3], [f32; 3])> {
        match self {
            ColorSpace::Rgb => None,
            ColorSpace::Lab => Some((
                [
                    (0.0 + 100.0) / 2.0,
                    (-86.183 + 98.233) / 2.0,
                    (-107.857 + 94.478) / 2.0,
                ],
                [
                    (100.0 - 0.0) / 2.0,
                    (86.183 + 98.233) / 2.0,
                    (107.857 + 94.478) / 2.0,
                ],
            )),
            ColorSpace::Ycbcr => Some(([116.151, 121.080, 132.342], [109.500, 111.855, 111.964])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scikit-image 0.26 on uint8 pixels (divided by 255 before the conversion):
    /// ```python
    /// import numpy as np; from skimage import color
    /// px = np.array([[[255,0,0],[0,255,0],[0,0,255],[128,128,128],[10,200,30],[3,3,3]]], np.uint8)
    /// print(color.rgb2lab(px)); print(color.rgb2ycbcr(px))
    /// ```
    const PIXELS: [[u8; 3]; 6] = [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [128, 128, 128],
        [10, 200, 30],
        [3, 3, 3],
    ];
    const LAB: [[f64; 3]; 6] = [
        [53.240588, 80.092308, 67.202751],
        [87.735099, -86.18303, 83.179703],
        [32.295673, 79.185591, -107.8573],
        [53.585013, -0.001473, 0.002791],
        [70.500132, -70.513831, 64.94084],
        [0.82252, -0.000052, 0.000099],
    ];
    const YCBCR: [[f64; 3]; 6] = [
        [81.481, 90.203, 240.0],
        [144.553, 53.797, 34.214],
        [40.966, 240.0, 109.786],
        [125.929412, 128.0, 128.0],
        [122.330941, 81.495804, 56.691686],
        [18.576471, 128.0, 128.0],
    ];

    fn unit(p: [u8; 3]) -> [f32; 3] {
        p.map(|v| v as f32 / 255.0)
    }

    #[test]
    fn lab_matches_scikit_image() {
        for (p, want) in PIXELS.iter().zip(LAB) {
            let got = rgb_to_lab(unit(*p));
            for c in 0..3 {
                assert!(
                    (got[c] as f64 - want[c]).abs() < 2e-3,
                    "{p:?}: {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn ycbcr_matches_scikit_image() {
        for (p, want) in PIXELS.iter().zip(YCBCR) {
            let got = rgb_to_ycbcr(unit(*p));
            for c in 0..3 {
                assert!(
                    (got[c] as f64 - want[c]).abs() < 1e-3,
                    "{p:?}: {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn planar_conversion_converts_every_pixel_and_rgb_is_identity() {
        // Two pixels, red then grey, as planes R = [1, .5], G = [0, .5], B = [0, .5].
        let rgb = vec![1.0, 0.5, 0.0, 0.5, 0.0, 0.5];
        let mut lab = rgb.clone();
        ColorSpace::Lab.convert_planar(&mut lab, 2);
        let red = rgb_to_lab([1.0, 0.0, 0.0]);
        let grey = rgb_to_lab([0.5, 0.5, 0.5]);
        assert_eq!(lab, vec![red[0], grey[0], red[1], grey[1], red[2], grey[2]]);
        let mut same = rgb.clone();
        ColorSpace::Rgb.convert_planar(&mut same, 2);
        assert_eq!(same, rgb);
    }

    #[test]
    fn cmc_lab_normalisation_maps_the_ranges_to_unit_interval() {
        let (mean, std) = ColorSpace::Lab.cmc_mean_std().unwrap();
        // L 0 -> -1, L 100 -> 1; a -86.183 -> -1; b 94.478 -> 1.
        assert!(((0.0 - mean[0]) / std[0] + 1.0).abs() < 1e-6);
        assert!(((100.0 - mean[0]) / std[0] - 1.0).abs() < 1e-6);
        assert!(((-86.183 - mean[1]) / std[1] + 1.0).abs() < 1e-5);
        assert!(((94.478 - mean[2]) / std[2] - 1.0).abs() < 1e-5);
        assert!(ColorSpace::Rgb.cmc_mean_std().is_none());
    }
}
