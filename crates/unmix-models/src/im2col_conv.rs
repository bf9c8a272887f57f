//! 2-D convolution as im2col + GEMM over tiles of images on the CPU (`flex`) backend.
//!
//! Why our own: measured by layer, `burn-flex` 0.22.1's convolution ran at 0.2–0.3× PyTorch's
//! speed and was three quarters of a CPU training step (`docs/benchmarks.md`, "The step by
//! layer"). Its forward converts the input to channels-last in one thread and multiplies one
//! image and 512-pixel tile at a time with the output channels as the only rows (8 at width 8);
//! its weight gradient is Burn's default, a convolution of the input with the output gradient as
//! the kernel, and its input gradient a transposed convolution.
//!
//! Here every pass works on a tile of whole images (one image where a feature map has 256
//! pixels or more, more images on the small maps of the last stages) in the NCHW layout the
//! network keeps:
//! - forward: the tile's im2col columns `[C_in·kh·kw, images·pixels]`, then one GEMM
//!   `W [C_out, C_in·kh·kw] × columns`;
//! - backward, from the same columns: the weight gradient `columns × dYᵀ` (as `[taps, C_out]`,
//!   accumulated over the tiles) and the input gradient `Wᵀ × dY` folded back onto the image
//!   (col2im).
//!
//! Tiles run in parallel on rayon's pool; each GEMM is the `gemm` crate `burn-flex` multiplies
//! with. The weight gradient is summed per fixed group of tiles and the groups added in order, so
//! a run gives the same bits every time on a given number of threads.
//!
//! The operation is a Burn backend extension (`#[backend_extension]`, as
//! [`crate::batch_norm_train_fused`]) with a handwritten backward for `Autodiff<Flex>`. Other
//! backends, other dtypes, dilation, groups and asymmetric padding use Burn's `Conv2d::forward`.

use burn::nn::conv::Conv2d;
use burn::prelude::*;

/// `conv.forward(x)`, as Burn computes it (same values up to float rounding, same gradients), as
/// im2col + GEMM over tiles of images on `flex` where the convolution has one group, no
/// dilation and the same padding on both sides of each axis; Burn's own op otherwise.
///
/// ```
/// use burn::nn::PaddingConfig2d;
/// use burn::nn::conv::Conv2dConfig;
/// use burn::prelude::*;
/// use unmix_models::conv2d_im2col;
///
/// let device = Device::flex();
/// let conv = Conv2dConfig::new([3, 8], [3, 3])
///     .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
///     .init(&device);
/// let x = Tensor::<4>::ones([2, 3, 16, 16], &device);
/// let ours = conv2d_im2col(&conv, x.clone());
/// let burn = conv.forward(x);
/// assert_eq!(ours.dims(), [2, 8, 16, 16]);
/// let gap: f32 = (ours - burn).abs().max().into_scalar();
/// assert!(gap < 1e-5);
/// ```
pub fn conv2d_im2col(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if let Some(geometry) = flex::geometry(conv, &x) {
        let weight = conv.weight.val();
        if crate::flex_tensor::f32_on_flex(&weight) {
            let out = flex::conv2d(x, weight, geometry);
            return match &conv.bias {
                Some(bias) => {
                    let bias = bias.val();
                    let c = bias.dims()[0];
                    out + bias.reshape([1, c, 1, 1])
                }
                None => out,
            };
        }
    }
    conv.forward(x)
}

#[cfg(feature = "flex")]
pub(crate) mod flex {
    use crate::flex_tensor::{f32_on_flex, tensor, values};
    use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2d;
    use burn::prelude::*;
    use rayon::prelude::*;
    use std::cell::RefCell;

    /// Columns (images × output pixels) a tile aims at: enough for the GEMMs to reach speed on
    /// the small maps of the last stages, while one image's columns stay a few MB on the large
    /// ones.
    const TILE_COLUMNS: usize = 256;

    /// Stride and padding, `[height, width]` each.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Geometry {
        pub stride: [usize; 2],
        pub padding: [usize; 2],
    }

    /// The geometry where the kernel applies: an f32 input on `flex`, one group, no dilation,
    /// a stride of at least 1, the same padding before and after along each axis, and a padded
    /// input at least the kernel's size. Burn's op takes (and reports) everything else.
    pub(crate) fn geometry(conv: &Conv2d, x: &Tensor<4>) -> Option<Geometry> {
        if !f32_on_flex(x)
            || conv.groups != 1
            || conv.dilation != [1, 1]
            || conv.stride.contains(&0)
        {
            return None;
        }
        // `Same` (asymmetric where the kernel is even) goes to Burn's op as well.
        let padding = match conv.padding {
            PaddingConfig2d::Valid => [0, 0],
            PaddingConfig2d::Explicit(top, left, bottom, right)
                if top == bottom && left == right =>
            {
                [top, left]
            }
            _ => return None,
        };
        let [_, _, h, w] = x.dims();
        let fits = |size: usize, pad: usize, k: usize| size + 2 * pad >= k;
        if !fits(h, padding[0], conv.kernel_size[0]) || !fits(w, padding[1], conv.kernel_size[1]) {
            return None;
        }
        Some(Geometry {
            stride: conv.stride,
            padding,
        })
    }

    pub(crate) fn conv2d(x: Tensor<4>, weight: Tensor<4>, geometry: Geometry) -> Tensor<4> {
        Tensor::from_dispatch(<Dispatch as Im2colConv>::im2col_conv2d(
            x.into_dispatch(),
            weight.into_dispatch(),
            geometry.stride,
            geometry.padding,
        ))
    }

    /// The extension: a convolution without bias. Only the forward crosses Burn's dispatch; the
    /// autodiff node below calls [`backward`] on the `flex` tensors directly.
    #[backend_extension(Flex, Autodiff)]
    pub trait Im2colConv: Backend {
        /// `x [N, C_in, H, W]` convolved with `weight [C_out, C_in, kh, kw]`.
        fn im2col_conv2d(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FloatTensor<Self>;
    }

    /// Every size of one convolution.
    #[derive(Clone, Copy, Debug)]
    struct Dims {
        n: usize,
        c_in: usize,
        h: usize,
        w: usize,
        c_out: usize,
        kh: usize,
        kw: usize,
        stride: [usize; 2],
        padding: [usize; 2],
        ho: usize,
        wo: usize,
    }

    impl Dims {
        fn new(
            x: &FlexTensor,
            weight: &FlexTensor,
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> Self {
            let [n, c_in, h, w] = dims4(x);
            let [c_out, _, kh, kw] = dims4(weight);
            let out = |size: usize, k: usize, s: usize, p: usize| (size + 2 * p - k) / s + 1;
            Self {
                n,
                c_in,
                h,
                w,
                c_out,
                kh,
                kw,
                stride,
                padding,
                ho: out(h, kh, stride[0], padding[0]),
                wo: out(w, kw, stride[1], padding[1]),
            }
        }
        /// Output pixels of one image.
        fn pixels(&self) -> usize {
            self.ho * self.wo
        }
        /// Rows of the im2col columns: one per input channel and kernel tap.
        fn taps(&self) -> usize {
            self.c_in * self.kh * self.kw
        }
        fn image_len(&self) -> usize {
            self.c_in * self.h * self.w
        }
        /// Stride 1 with `2·pad = k − 1` on both axes: the output grid is the input's.
        fn same_grid(&self) -> bool {
            self.stride == [1, 1] && self.ho == self.h && self.wo == self.w
        }
        /// Images per tile.
        fn tile_images(&self) -> usize {
            (TILE_COLUMNS / self.pixels().max(1)).clamp(1, self.n.max(1))
        }
    }

    fn dims4(t: &FlexTensor) -> [usize; 4] {
        let shape = t.shape();
        let d = shape.as_slice();
        [d[0], d[1], d[2], d[3]]
    }

    /// Output positions `o` in `0..out` whose input index `o·stride + k − pad` lies in
    /// `0..size`, as a half-open range.
    fn valid(out: usize, stride: usize, k: usize, pad: usize, size: usize) -> (usize, usize) {
        let lo = if pad > k {
            (pad - k).div_ceil(stride)
        } else {
            0
        };
        let hi = if size + pad > k {
            ((size + pad - k - 1) / stride + 1).min(out)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// Stride 1 with `2·pad = k − 1` on both axes (every 3×3 convolution of a ResNet but the
    /// downsampling ones): the output grid is the input's, so column row `(c, i, j)` is channel
    /// `c`'s plane read at a constant offset `δ = (i − ph)·W + (j − pw)`, one contiguous copy,
    /// where the general path below makes one per output row. Entries whose flat index falls
    /// off the plane are the top and bottom padding; those whose column wrapped into the
    /// neighbouring row are the left and right padding, zeroed after the copy.
    struct Shift {
        /// The constant offset δ.
        delta: isize,
        /// Output pixels whose input lies on the plane: `lo..hi`.
        lo: usize,
        hi: usize,
        /// The horizontal offset `j − pw`.
        dj: isize,
    }

    impl Shift {
        fn new(d: &Dims, i: usize, j: usize) -> Option<Self> {
            if !d.same_grid() {
                return None;
            }
            let hw = (d.h * d.w) as isize;
            let di = i as isize - d.padding[0] as isize;
            let dj = j as isize - d.padding[1] as isize;
            let delta = di * d.w as isize + dj;
            let lo = (-delta).clamp(0, hw) as usize;
            let hi = (hw - delta).clamp(lo as isize, hw) as usize;
            Some(Self { delta, lo, hi, dj })
        }

        /// The plane index output pixel `q` reads (for `q` in `lo..hi`).
        fn source(&self, q: usize) -> usize {
            (q as isize + self.delta) as usize
        }

        /// Zeroes, in each output row of `row` (length `w` each), the pixels whose input column
        /// `ow + dj` is off the plane.
        fn zero_wrapped(&self, row: &mut [f32], w: usize) {
            let reach = self.dj.unsigned_abs().min(w);
            if reach == 0 {
                return;
            }
            let columns = if self.dj < 0 { 0..reach } else { w - reach..w };
            for line in row.chunks_exact_mut(w) {
                for v in &mut line[columns.clone()] {
                    *v = 0.0;
                }
            }
        }
    }

    /// The im2col columns of one image (`[C_in, H, W]`) into `columns`: row `(c, i, j)` (row
    /// length `ld`) from column `offset` holds the input that kernel tap `(i, j)` of channel `c`
    /// meets at each output pixel, zero in the padding.
    fn im2col(d: &Dims, image: &[f32], columns: &mut [f32], ld: usize, offset: usize) {
        let ([sh, sw], [ph, pw]) = (d.stride, d.padding);
        for (c, plane) in image.chunks_exact(d.h * d.w).enumerate() {
            for i in 0..d.kh {
                for j in 0..d.kw {
                    let row = (c * d.kh + i) * d.kw + j;
                    let dst = &mut columns[row * ld + offset..][..d.pixels()];
                    if let Some(shift) = Shift::new(d, i, j) {
                        dst[..shift.lo].fill(0.0);
                        dst[shift.hi..].fill(0.0);
                        if shift.lo < shift.hi {
                            let src = &plane[shift.source(shift.lo)..][..shift.hi - shift.lo];
                            dst[shift.lo..shift.hi].copy_from_slice(src);
                        }
                        shift.zero_wrapped(dst, d.w);
                        continue;
                    }
                    let (lo, hi) = valid(d.wo, sw, j, pw, d.w);
                    for (oh, out_row) in dst.chunks_exact_mut(d.wo).enumerate() {
                        let ih = (oh * sh + i) as isize - ph as isize;
                        if ih < 0 || ih >= d.h as isize || lo == hi {
                            out_row.fill(0.0);
                            continue;
                        }
                        let src = &plane[ih as usize * d.w..][..d.w];
                        out_row[..lo].fill(0.0);
                        out_row[hi..].fill(0.0);
                        if sw == 1 {
                            let start = lo + j - pw;
                            out_row[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
                        } else {
                            for (ow, v) in out_row[lo..hi].iter_mut().enumerate() {
                                *v = src[(lo + ow) * sw + j - pw];
                            }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of [`im2col`]: adds each column entry back onto the input pixel it was read
    /// from (`image_grad` is one image's `[C_in, H, W]`).
    /// (The columns are scratch: the fast path zeroes their entries that fell in the padding.)
    fn col2im(d: &Dims, columns: &mut [f32], ld: usize, offset: usize, image_grad: &mut [f32]) {
        let ([sh, sw], [ph, pw]) = (d.stride, d.padding);
        for (c, plane) in image_grad.chunks_exact_mut(d.h * d.w).enumerate() {
            for i in 0..d.kh {
                for j in 0..d.kw {
                    let row = (c * d.kh + i) * d.kw + j;
                    let src = &mut columns[row * ld + offset..][..d.pixels()];
                    if let Some(shift) = Shift::new(d, i, j) {
                        shift.zero_wrapped(src, d.w);
                        if shift.lo == shift.hi {
                            continue;
                        }
                        let dst = &mut plane[shift.source(shift.lo)..][..shift.hi - shift.lo];
                        for (g, &v) in dst.iter_mut().zip(&src[shift.lo..shift.hi]) {
                            *g += v;
                        }
                        continue;
                    }
                    let src = &*src;
                    let (lo, hi) = valid(d.wo, sw, j, pw, d.w);
                    for (oh, col_row) in src.chunks_exact(d.wo).enumerate() {
                        let ih = (oh * sh + i) as isize - ph as isize;
                        if ih < 0 || ih >= d.h as isize || lo == hi {
                            continue;
                        }
                        let dst = &mut plane[ih as usize * d.w..][..d.w];
                        if sw == 1 {
                            let start = lo + j - pw;
                            for (g, &v) in
                                dst[start..start + hi - lo].iter_mut().zip(&col_row[lo..hi])
                            {
                                *g += v;
                            }
                        } else {
                            for (ow, &v) in col_row[lo..hi].iter().enumerate() {
                                dst[(lo + ow) * sw + j - pw] += v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// A matrix in a slice: element `(r, c)` at `r·rs + c·cs`.
    #[derive(Clone, Copy)]
    struct Strided {
        rs: usize,
        cs: usize,
    }

    /// `dst [m, n]` (row-major, row length `dst_rs`) `= lhs · rhs`, or `+=` with `accumulate`.
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        (m, n, k): (usize, usize, usize),
        dst: &mut [f32],
        dst_rs: usize,
        accumulate: bool,
        lhs: &[f32],
        l: Strided,
        rhs: &[f32],
        r: Strided,
        parallelism: gemm::Parallelism,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        let last = |s: Strided, rows: usize, cols: usize| (rows - 1) * s.rs + (cols - 1) * s.cs;
        assert!(last(Strided { rs: dst_rs, cs: 1 }, m, n) < dst.len());
        if k > 0 {
            assert!(last(l, m, k) < lhs.len() && last(r, k, n) < rhs.len());
        }
        // SAFETY: the asserts keep every element the GEMM reads or writes inside its slice, and
        // `dst` is borrowed mutably, so it aliases neither operand.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                dst_rs as isize,
                accumulate,
                lhs.as_ptr(),
                l.cs as isize,
                l.rs as isize,
                rhs.as_ptr(),
                r.cs as isize,
                r.rs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            )
        }
    }

    thread_local! {
        static SCRATCH: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    }

    /// A work buffer of at least the asked length, its contents left from earlier use (each
    /// user writes what it then reads), back to its thread's pool when dropped. A tile's
    /// columns are megabytes on the large maps: taking fresh zeroed buffers for every call
    /// made `memset` a tenth of a width-8 step.
    struct Scratch(Vec<f32>);

    impl Scratch {
        fn take(len: usize) -> Self {
            let mut buf = SCRATCH
                .with(|pool| pool.borrow_mut().pop())
                .unwrap_or_default();
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            Self(buf)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let buf = std::mem::take(&mut self.0);
            SCRATCH.with(|pool| {
                let mut pool = pool.borrow_mut();
                // Three buffers serve a backward; a fourth covers a nested call.
                if pool.len() < 4 {
                    pool.push(buf);
                }
            });
        }
    }

    impl std::ops::Deref for Scratch {
        type Target = [f32];
        fn deref(&self) -> &[f32] {
            &self.0
        }
    }

    impl std::ops::DerefMut for Scratch {
        fn deref_mut(&mut self) -> &mut [f32] {
            &mut self.0
        }
    }

    /// GEMMs run on one thread inside a parallel loop over tiles, on all threads where there
    /// are fewer tiles than threads.
    fn parallelism(tasks: usize) -> gemm::Parallelism {
        if tasks < rayon::current_num_threads() {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        }
    }

    /// The forward: `[N, C_out, Ho, Wo]`.
    fn forward(d: &Dims, x: &[f32], weight: &[f32]) -> Vec<f32> {
        let (p, taps, b) = (d.pixels(), d.taps(), d.tile_images());
        let out_image = d.c_out * p;
        let mut out = vec![0.0f32; d.n * out_image];
        if out.is_empty() {
            return out;
        }
        let par = parallelism(d.n.div_ceil(b));
        // Several images per tile go through a channel-major buffer; one goes straight to `out`.
        let staged_len = if b > 1 { out_image * b } else { 0 };
        out.par_chunks_mut(b * out_image).enumerate().for_each_init(
            || (Scratch::take(taps * b * p), Scratch::take(staged_len)),
            |(columns, staged), (t, out_tile)| {
                let images = out_tile.len() / out_image;
                let ld = images * p;
                for i in 0..images {
                    let image = &x[(t * b + i) * d.image_len()..][..d.image_len()];
                    im2col(d, image, columns, ld, i * p);
                }
                let w = Strided { rs: taps, cs: 1 };
                let cols = Strided { rs: ld, cs: 1 };
                let shape = (d.c_out, ld, taps);
                if images == 1 {
                    matmul(shape, out_tile, ld, false, weight, w, columns, cols, par);
                } else {
                    // [C_out, images·pixels] → the images' [C_out, pixels] each.
                    matmul(shape, staged, ld, false, weight, w, columns, cols, par);
                    for (i, image_out) in out_tile.chunks_exact_mut(out_image).enumerate() {
                        for (co, plane) in image_out.chunks_exact_mut(p).enumerate() {
                            plane.copy_from_slice(&staged[co * ld + i * p..][..p]);
                        }
                    }
                }
            },
        );
        out
    }

    /// The gradients of input and weight (each only where asked for) from the output's.
    pub(crate) fn backward(
        x: &FlexTensor,
        weight: &FlexTensor,
        output_grad: &FlexTensor,
        stride: [usize; 2],
        padding: [usize; 2],
        (want_x, want_weight): (bool, bool),
    ) -> (Option<FlexTensor>, Option<FlexTensor>) {
        let d = Dims::new(x, weight, stride, padding);
        let (xv, wv, dyv) = (values(x), values(weight), values(output_grad));
        let (p, taps, b) = (d.pixels(), d.taps(), d.tile_images());
        let out_image = d.c_out * p;
        // Tiles are dealt to a fixed number of groups (one per thread), each summing its own
        // (transposed) weight gradient; the groups' sums are added in order below, so the
        // result does not depend on which thread ran what.
        let tiles = d.n.div_ceil(b).max(1);
        let groups = rayon::current_num_threads().clamp(1, tiles);
        let group_images = tiles.div_ceil(groups) * b;
        let groups = d.n.div_ceil(group_images).max(1);
        let par = parallelism(groups);
        let group = |g: usize, mut dx: Option<&mut [f32]>| -> Vec<f32> {
            let first = g * group_images;
            let count = group_images.min(d.n - first);
            let mut columns = Scratch::take(taps * b * p);
            // dY of several images regrouped channel-major; one image's is used in place.
            let mut staged = Scratch::take(if b > 1 { out_image * b } else { 0 });
            let mut column_grad = Scratch::take(if want_x { taps * b * p } else { 0 });
            let mut weight_grad = vec![0.0f32; if want_weight { d.c_out * taps } else { 0 }];
            for (t, start) in (0..count).step_by(b).enumerate() {
                let images = b.min(count - start);
                let ld = images * p;
                let dy_tile = &dyv[(first + start) * out_image..][..images * out_image];
                // dY as [C_out, images·pixels].
                let dy: &[f32] = if images == 1 {
                    dy_tile
                } else {
                    for (i, image) in dy_tile.chunks_exact(out_image).enumerate() {
                        for (co, plane) in image.chunks_exact(p).enumerate() {
                            staged[co * ld + i * p..][..p].copy_from_slice(plane);
                        }
                    }
                    &staged
                };
                let dy_m = Strided { rs: ld, cs: 1 };
                if want_weight {
                    for i in 0..images {
                        let image = &xv[(first + start + i) * d.image_len()..][..d.image_len()];
                        im2col(&d, image, &mut columns, ld, i * p);
                    }
                    // dWᵀ [taps, C_out] += columns · dYᵀ: in this orientation the `gemm`
                    // crate ran 1.1–2.3× faster than dW = dY · columnsᵀ on ResNet's shapes
                    // (docs/benchmarks.md, "The im2col convolution").
                    let columns_m = Strided { rs: ld, cs: 1 };
                    let dy_t = Strided { rs: 1, cs: ld };
                    let shape = (taps, d.c_out, ld);
                    let (dw, acc) = (&mut weight_grad, t > 0);
                    matmul(shape, dw, d.c_out, acc, &columns, columns_m, dy, dy_t, par);
                }
                if let Some(dx) = dx.as_deref_mut() {
                    // dColumns [taps, images·pixels] = Wᵀ · dY, folded back onto each image.
                    let weight_t = Strided { rs: 1, cs: taps };
                    let shape = (taps, ld, d.c_out);
                    matmul(
                        shape,
                        &mut column_grad,
                        ld,
                        false,
                        &wv,
                        weight_t,
                        dy,
                        dy_m,
                        par,
                    );
                    for i in 0..images {
                        let image_grad = &mut dx[(start + i) * d.image_len()..][..d.image_len()];
                        col2im(&d, &mut column_grad, ld, i * p, image_grad);
                    }
                }
            }
            weight_grad
        };
        let mut x_grad = vec![0.0f32; if want_x { d.n * d.image_len() } else { 0 }];
        let parts: Vec<Vec<f32>> = if want_x && !x_grad.is_empty() {
            x_grad
                .par_chunks_mut(group_images * d.image_len())
                .enumerate()
                .map(|(g, dx)| group(g, Some(dx)))
                .collect()
        } else {
            (0..groups)
                .into_par_iter()
                .map(|g| group(g, None))
                .collect()
        };
        let weight_grad = want_weight.then(|| {
            let mut parts = parts.into_iter();
            let mut sum_t = parts.next().unwrap_or_else(|| vec![0.0; d.c_out * taps]);
            for part in parts {
                sum_t.iter_mut().zip(&part).for_each(|(s, v)| *s += v);
            }
            // [taps, C_out] → the weight's [C_out, taps].
            let mut sum = vec![0.0f32; d.c_out * taps];
            for (r, row) in sum_t.chunks_exact(d.c_out).enumerate() {
                for (co, &v) in row.iter().enumerate() {
                    sum[co * taps + r] = v;
                }
            }
            tensor(sum, weight.shape())
        });
        (want_x.then(|| tensor(x_grad, x.shape())), weight_grad)
    }

    impl Im2colConv for Flex {
        fn im2col_conv2d(
            x: FlexTensor,
            weight: FlexTensor,
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FlexTensor {
            let d = Dims::new(&x, &weight, stride, padding);
            let out = forward(&d, &values(&x), &values(&weight));
            tensor(out, [d.n, d.c_out, d.ho, d.wo])
        }
    }

    /// The autodiff node.
    #[derive(Debug)]
    struct Im2colConvBackward;

    impl Backward<Flex, 2> for Im2colConvBackward {
        /// x, weight, stride, padding.
        type State = (FlexTensor, FlexTensor, [usize; 2], [usize; 2]);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_weight] = ops.parents;
            let output_grad = grads.consume::<Flex>(&ops.node);
            let (x, weight, stride, padding) = ops.state;
            let want = (node_x.is_some(), node_weight.is_some());
            let (x_grad, weight_grad) = backward(&x, &weight, &output_grad, stride, padding, want);
            for (node, grad) in [(node_x, x_grad), (node_weight, weight_grad)] {
                if let (Some(node), Some(grad)) = (node, grad) {
                    grads.register::<Flex>(node.id, grad);
                }
            }
        }
    }

    impl<C: CheckpointStrategy> Im2colConv for Autodiff<Flex, C> {
        fn im2col_conv2d(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            stride: [usize; 2],
            padding: [usize; 2],
        ) -> FloatTensor<Self> {
            let prep = Im2colConvBackward
                .prepare::<C>([x.node(), weight.node()])
                .compute_bound()
                .stateful();
            let (x, weight) = (x.into_primitive(), weight.into_primitive());
            let output = Flex::im2col_conv2d(x.clone(), weight.clone(), stride, padding);
            match prep {
                OpsKind::Tracked(prep) => prep.finish((x, weight, stride, padding), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::flex_tensor::testing::{self, values};
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    /// Within `tol` relative to the largest of Burn's values (at least 1).
    fn assert_close(ours: Vec<f32>, burn: Vec<f32>, tol: f32, what: &str) {
        let scale = burn.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        testing::assert_close(ours, burn, tol, |_| scale, what);
    }

    /// Output and the three gradients against Burn's own convolution (`burn-flex`'s forward,
    /// Burn's backward: the reference the step-parity tests hold against PyTorch), for an
    /// arbitrary upstream gradient.
    fn check(conv: Conv2dConfig, x_dims: [usize; 4]) {
        let device = Device::flex().autodiff();
        let conv = conv.init(&device);
        let x0 = Tensor::<4>::random(x_dims, Distribution::Normal(0.5, 1.0), &device);
        let geometry = flex::geometry(&conv, &x0);
        assert!(geometry.is_some(), "the kernel applies to {conv:?}");
        let run = |ours: bool| {
            let x = x0.clone().detach().require_grad();
            let out = if ours {
                conv2d_im2col(&conv, x.clone())
            } else {
                conv.forward(x.clone())
            };
            // The same upstream on both sides (up to rounding): a function of the output.
            let upstream = out.clone().detach().sin();
            let grads = (out.clone() * upstream).sum().backward();
            let bias = conv.bias.as_ref().map(|b| values(b.grad(&grads).unwrap()));
            (
                values(out),
                values(x.grad(&grads).unwrap()),
                values(conv.weight.grad(&grads).unwrap()),
                bias,
            )
        };
        let (ours, burn) = (run(true), run(false));
        assert_close(ours.0, burn.0, 1e-5, "output");
        assert_close(ours.1, burn.1, 1e-5, "input gradient");
        assert_close(ours.2, burn.2, 1e-5, "weight gradient");
        if let (Some(a), Some(b)) = (ours.3, burn.3) {
            assert_close(a, b, 1e-5, "bias gradient");
        }
    }

    fn padded(
        channels: [usize; 2],
        k: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 2],
    ) -> Conv2dConfig {
        Conv2dConfig::new(channels, k)
            .with_stride(stride)
            .with_padding(PaddingConfig2d::Explicit(pad[0], pad[1], pad[0], pad[1]))
            .with_bias(false)
    }

    #[test]
    fn matches_burns_convolution_on_resnet_layers() {
        // 3×3 on a large map (one image per tile), stride 2, the 1×1 stride-2 shortcut, and a
        // 4×4 map (many images per tile, the last tile short: 37 images).
        check(padded([3, 8], [3, 3], [1, 1], [1, 1]), [3, 3, 16, 16]);
        check(padded([8, 16], [3, 3], [2, 2], [1, 1]), [3, 8, 16, 16]);
        check(padded([8, 16], [1, 1], [2, 2], [0, 0]), [3, 8, 16, 16]);
        check(padded([16, 12], [3, 3], [1, 1], [1, 1]), [37, 16, 4, 4]);
    }

    #[test]
    fn matches_burns_convolution_on_other_shapes() {
        // The ImageNet stem's 7×7 stride 2 pad 3; a rectangular kernel, stride and padding; no
        // padding with a map that the stride does not divide; a bias.
        check(padded([3, 4], [7, 7], [2, 2], [3, 3]), [2, 3, 19, 17]);
        check(padded([2, 3], [3, 2], [2, 1], [1, 0]), [5, 2, 9, 7]);
        check(padded([2, 3], [3, 3], [3, 3], [0, 0]), [4, 2, 11, 10]);
        // 'Same' grids on the fast path: 1×1, 5×5 (two columns wrap on each side), a
        // rectangular kernel, and a map narrower than the kernel's reach.
        check(padded([3, 4], [1, 1], [1, 1], [0, 0]), [2, 3, 5, 5]);
        check(padded([3, 4], [5, 5], [1, 1], [2, 2]), [2, 3, 7, 6]);
        check(padded([3, 4], [3, 5], [1, 1], [1, 2]), [2, 3, 6, 9]);
        check(padded([3, 4], [5, 5], [1, 1], [2, 2]), [3, 3, 2, 1]);
        check(
            padded([2, 5], [3, 3], [1, 1], [1, 1]).with_bias(true),
            [3, 2, 6, 6],
        );
    }

    /// Worked by hand: one 3×3 channel holding 1..9, the 2×2 kernel [[1, 0], [0, −1]], no
    /// padding: each output is x[i, j] − x[i+1, j+1] = −4. With an upstream gradient of ones the
    /// input gradient counts the taps that meet each pixel (+1 for the top-left tap, −1 for
    /// the bottom-right), and the weight gradient sums the input under each tap: the top-left
    /// 2×2 window 1+2+4+5 = 12, the top-right 16, bottom-left 24, bottom-right 28.
    #[test]
    fn hand_worked_values() {
        let device = Device::flex().autodiff();
        let mut conv = padded([1, 1], [2, 2], [1, 1], [0, 0]).init(&device);
        conv.weight = burn::module::Param::from_tensor(Tensor::<4>::from_floats(
            [[[[1.0, 0.0], [0.0, -1.0]]]],
            &device,
        ));
        let x = Tensor::<4>::from_floats(
            [[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]],
            &device,
        )
        .require_grad();
        let out = conv2d_im2col(&conv, x.clone());
        assert_eq!(values(out.clone()), vec![-4.0; 4]);
        let grads = out.sum().backward();
        assert_eq!(
            values(x.grad(&grads).unwrap()),
            vec![1.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, -1.0, -1.0]
        );
        assert_eq!(
            values(conv.weight.grad(&grads).unwrap()),
            vec![12.0, 16.0, 24.0, 28.0]
        );
    }

    /// The weight gradient is summed in a fixed order: the same bits on every run.
    #[test]
    fn the_weight_gradient_is_the_same_on_every_run() {
        let device = Device::flex().autodiff();
        let conv = padded([8, 8], [3, 3], [1, 1], [1, 1]).init(&device);
        let x = Tensor::<4>::random([9, 8, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let grad = || {
            let out = conv2d_im2col(&conv, x.clone());
            values(
                conv.weight
                    .grad(&out.powi_scalar(2).sum().backward())
                    .unwrap(),
            )
        };
        let first = grad();
        for _ in 0..4 {
            assert_eq!(grad(), first);
        }
    }

    #[test]
    fn burns_op_runs_where_the_kernel_does_not_apply() {
        let device = Device::flex();
        let x = Tensor::<4>::zeros([1, 4, 6, 6], &device);
        let dilated = Conv2dConfig::new([4, 4], [3, 3])
            .with_dilation([2, 2])
            .init(&device);
        let grouped = Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(2)
            .init(&device);
        let lopsided = Conv2dConfig::new([4, 4], [2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 0, 0))
            .init(&device);
        for conv in [dilated, grouped, lopsided] {
            assert!(flex::geometry(&conv, &x).is_none());
            assert_eq!(
                conv2d_im2col(&conv, x.clone()).dims(),
                conv.forward(x.clone()).dims()
            );
        }
        let plain = Conv2dConfig::new([4, 4], [3, 3]).init(&device);
        assert!(flex::geometry(&plain, &x).is_some());
        // A kernel larger than the padded input is Burn's to report, not ours to underflow on.
        let too_large = Conv2dConfig::new([4, 4], [9, 9])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        assert!(flex::geometry(&too_large, &x).is_none());
        assert!(flex::geometry(&plain, &x.cast(burn::tensor::DType::F64)).is_none());
    }

    #[test]
    fn runs_without_autodiff() {
        let device = Device::flex();
        let conv = padded([3, 6], [3, 3], [1, 1], [1, 1]).init(&device);
        let x = Tensor::<4>::random([5, 3, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        assert_close(
            values(conv2d_im2col(&conv, x.clone())),
            values(conv.forward(x)),
            1e-5,
            "output",
        );
    }
}
