use burn::Tensor;
use burn::prelude::s;
use rand::Rng;

use crate::flip::flip_batch;

/// A CutMix box: rows `row_start..row_end` (axis 2) and columns `col_start..col_end` (axis 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutBox {
    /// First row (inclusive).
    pub row_start: usize,
    /// Last row (exclusive).
    pub row_end: usize,
    /// First column (inclusive).
    pub col_start: usize,
    /// Last column (exclusive).
    pub col_end: usize,
}

impl CutBox {
    /// Number of pixels inside the box.
    pub fn area(&self) -> usize {
        (self.row_end - self.row_start) * (self.col_end - self.col_start)
    }
}

/// The reference `rand_bbox` (Un-Mix `utils.py`, from CutMix) for an `h × w` image.
///
/// Side `int(extent·sqrt(1-λ))` per axis (truncation), centre uniform over the image
/// (`randint(0, extent)`, exclusive), half-sides by floor division, clipped to the image. The
/// reference names axis 2 "W"; here axis 2 is `h` (rows) and axis 3 is `w` (columns), which is
/// the same computation with honest names. The centre row is drawn before the centre column.
pub fn rand_bbox<R: Rng + ?Sized>(h: usize, w: usize, lambda: f64, rng: &mut R) -> CutBox {
    let cy = rng.random_range(0..h.max(1));
    let cx = rng.random_range(0..w.max(1));
    bbox_at(h, w, lambda, cy, cx)
}

/// The deterministic part of [`rand_bbox`]: the clipped box of side `sqrt(1-λ)` centred at
/// row `cy`, column `cx`.
pub fn bbox_at(h: usize, w: usize, lambda: f64, cy: usize, cx: usize) -> CutBox {
    let cut_rat = (1.0 - lambda).max(0.0).sqrt();
    let cut_h = (h as f64 * cut_rat) as i64;
    let cut_w = (w as f64 * cut_rat) as i64;
    let (cy, cx) = (cy as i64, cx as i64);
    let clip = |v: i64, hi: usize| v.clamp(0, hi as i64) as usize;
    CutBox {
        row_start: clip(cy - cut_h / 2, h),
        row_end: clip(cy + cut_h / 2, h),
        col_start: clip(cx - cut_w / 2, w),
        col_end: clip(cx + cut_w / 2, w),
    }
}

/// Region mixture of a batch `[N, C, H, W]`: a copy of `x` whose box `cut` comes from
/// `flip(x)`, with the exact share of each sample's own pixels, `1 - area/(H·W)`.
///
/// The same box is used for every sample, as in the reference code.
pub fn region_mix(x: Tensor<4>, cut: CutBox) -> (Tensor<4>, f64) {
    let [_, _, h, w] = x.dims();
    let lambda = 1.0 - cut.area() as f64 / (h * w) as f64;
    if cut.area() == 0 {
        return (x, lambda);
    }
    let rows = cut.row_start..cut.row_end;
    let cols = cut.col_start..cut.col_end;
    let patch = flip_batch(x.clone()).slice(s![.., .., rows.clone(), cols.clone()]);
    (x.slice_assign(s![.., .., rows, cols], patch), lambda)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn lambda_one_gives_an_empty_box() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..100 {
            let cut = rand_bbox(32, 28, 1.0, &mut rng);
            assert_eq!(cut.area(), 0);
        }
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 1, 5, 5], burn::tensor::Distribution::Default, &device);
        let (m, lam) = region_mix(x.clone(), rand_bbox(5, 5, 1.0, &mut rng));
        assert_eq!(lam, 1.0);
        assert_eq!(m.to_data(), x.to_data());
    }

    #[test]
    fn box_matches_rand_bbox_by_hand() {
        // λ = 0.75 on a 10×8 image: cut_rat = 0.5, cut_h = int(5.0) = 5, cut_w = int(4.0) = 4,
        // half sides 5//2 = 2 and 4//2 = 2. Centre (1, 6): rows clip(-1)=0..3, cols 4..clip(8)=8.
        let cut = bbox_at(10, 8, 0.75, 1, 6);
        assert_eq!(
            cut,
            CutBox {
                row_start: 0,
                row_end: 3,
                col_start: 4,
                col_end: 8
            }
        );
        assert_eq!(cut.area(), 12);
        // Centre (5, 4), λ = 0.5: cut_h = int(7.07) = 7 → half 3, cut_w = int(5.66) = 5 → half 2.
        let cut = bbox_at(10, 8, 0.5, 5, 4);
        assert_eq!(
            cut,
            CutBox {
                row_start: 2,
                row_end: 8,
                col_start: 2,
                col_end: 6
            }
        );
    }

    #[test]
    fn lambda_is_the_pixel_share_counted_on_the_output() {
        let device = Device::flex();
        let (n, h, w) = (6, 9, 7);
        // Sample i is the constant image i + 1, so each output pixel names its source.
        let values: Vec<f32> = (0..n)
            .flat_map(|i| vec![(i + 1) as f32; 2 * h * w])
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [n, 2, h, w]), &device);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for step in 0..50 {
            let lam_draw = (step as f64 + 0.5) / 50.0;
            let cut = rand_bbox(h, w, lam_draw, &mut rng);
            let (m, lam) = region_mix(x.clone(), cut);
            let out = m.to_data().try_to_vec::<f32>().unwrap();
            for i in 0..n {
                let img = &out[i * 2 * h * w..(i + 1) * 2 * h * w];
                let own = img.iter().filter(|&&v| v == (i + 1) as f32).count();
                let partner = img.iter().filter(|&&v| v == (n - i) as f32).count();
                assert_eq!(own + partner, 2 * h * w);
                let share = own as f64 / (2 * h * w) as f64;
                assert!((share - lam).abs() < 1e-12, "sample {i}: {share} vs {lam}");
            }
        }
    }
}
