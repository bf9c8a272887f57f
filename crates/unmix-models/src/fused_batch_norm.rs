//! Training-mode batch norm as one fused operation on the CPU (`flex`) backend.
//!
//! Why our own: `burn-flex` 0.22.1 has no batch-norm kernel, so it inherits Burn's default
//! `batch_norm_train` (`burn-backend` `ops/modules/base.rs`), which computes the statistics
//! through `swap_dims(0, 1)` + `reshape` (a transposed copy of the activation, twice) and about
//! ten element-wise passes forward and back. Measured by layer that ran at 0.2–0.3× PyTorch's
//! speed and was a fifth of a CPU training step (`docs/benchmarks.md`, "The step by layer").
//! Here the forward reads the input twice (mean, then the centred variance, as Burn's default
//! and PyTorch compute it) and writes the output once; the backward reads three times and
//! writes once. Channels or images run in parallel on rayon's pool, which `flex` uses too.
//!
//! The operation is a Burn backend extension (`#[backend_extension]`) with an implementation for
//! `Flex` and a handwritten backward for `Autodiff<Flex>`; on every other backend, and for
//! dtypes other than f32, [`batch_norm_train_fused`] calls Burn's `batch_norm_train`.

use burn::prelude::*;
use burn::tensor::module::{BatchNormTrainOutput, batch_norm_train};

/// Batch norm with the batch's own statistics, as Burn's
/// [`batch_norm_train`](burn::tensor::module::batch_norm_train) (same shapes, same values up to
/// float rounding, gradients through the statistics), fused into one operation on `flex`.
///
/// `x` is `[N, C, ...]`; `gamma` and `beta` are `[C]`.
///
/// ```
/// use burn::prelude::*;
/// use unmix_models::batch_norm_train_fused;
///
/// let device = Device::flex();
/// let x = Tensor::<4>::from_floats([[[[1.0, 3.0]]], [[[5.0, 7.0]]]], &device);
/// let out = batch_norm_train_fused(x, Tensor::ones([1], &device), Tensor::zeros([1], &device), 0.0);
/// assert_eq!(out.mean.into_scalar::<f32>(), 4.0);
/// assert_eq!(out.variance.into_scalar::<f32>(), 5.0);
/// ```
pub fn batch_norm_train_fused<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> BatchNormTrainOutput<D> {
    #[cfg(feature = "flex")]
    if flex::applies(&x) {
        return flex::batch_norm_train(x, gamma, beta, epsilon);
    }
    batch_norm_train(x, gamma, beta, epsilon)
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{
        Autodiff, AutodiffBackend, Backend, Dispatch, Flex, TensorMetadata, backend_extension,
    };
    use burn::prelude::*;
    use burn::tensor::module::BatchNormTrainOutput;
    use rayon::prelude::*;

    use crate::flex_tensor::{f32_on_flex, tensor, values};

    /// True where the fused kernel runs: an f32 tensor on `flex`, with or without autodiff.
    pub(super) fn applies<const D: usize>(x: &Tensor<D>) -> bool {
        D >= 2 && f32_on_flex(x)
    }

    pub(super) fn batch_norm_train<const D: usize>(
        x: Tensor<D>,
        gamma: Tensor<1>,
        beta: Tensor<1>,
        epsilon: f64,
    ) -> BatchNormTrainOutput<D> {
        let (output, mean, variance) = <Dispatch as FusedBatchNorm>::fused_batch_norm_train(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            epsilon,
        );
        BatchNormTrainOutput {
            output: Tensor::from_dispatch(output),
            mean: Tensor::from_dispatch(mean),
            variance: Tensor::from_dispatch(variance),
        }
    }

    /// The extension: `(output, mean, biased variance)`. Only the forward crosses Burn's
    /// dispatch; the autodiff node below calls [`backward`] on the `flex` tensors directly.
    #[backend_extension(Flex, Autodiff)]
    pub trait FusedBatchNorm: Backend {
        /// Forward with the batch's statistics.
        fn fused_batch_norm_train(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            epsilon: f64,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    }

    /// `[N, C, S]` view of `[N, C, ...]`: (N, C, S).
    fn nc_s(shape: &Shape) -> (usize, usize, usize) {
        let dims = shape.as_slice();
        let n = dims[0];
        let c = dims[1];
        (n, c, dims[2..].iter().product())
    }

    /// `Σ f(a_i, b_i)` over two equally long slices: eight f32 lanes (independent, so the
    /// compiler vectorises them) over one plane of at most a few thousand values, returned
    /// in f64 for the sum over planes.
    fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
        let mut lanes = [0.0f32; 8];
        let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (a8.remainder(), b8.remainder());
        for (ca, cb) in a8.zip(b8) {
            for k in 0..8 {
                lanes[k] += f(ca[k], cb[k]);
            }
        }
        let tail: f32 = ra.iter().zip(rb).map(|(&x, &y)| f(x, y)).sum();
        lanes.iter().map(|&l| l as f64).sum::<f64>() + tail as f64
    }

    /// Per-channel sums over the batch of `f(channel, range of one image's plane)`, in f64,
    /// channels in parallel.
    fn per_channel<F>(n: usize, c: usize, s: usize, f: F) -> Vec<f64>
    where
        F: Fn(usize, std::ops::Range<usize>) -> f64 + Sync,
    {
        (0..c)
            .into_par_iter()
            .map(|ch| {
                (0..n)
                    .map(|i| {
                        let start = (i * c + ch) * s;
                        f(ch, start..start + s)
                    })
                    .sum()
            })
            .collect()
    }

    /// A new `[N, C, S]` buffer, `f(image, channel, plane)` filling each plane.
    fn per_image_write<F>(n: usize, c: usize, s: usize, f: F) -> Vec<f32>
    where
        F: Fn(usize, usize, &mut [f32]) + Sync,
    {
        let mut out = vec![0.0f32; n * c * s];
        per_image_update(&mut out, c, s, f);
        out
    }

    /// `f(image, channel, plane)` on each plane of an `[N, C, S]` buffer, images in parallel.
    fn per_image_update<F>(buf: &mut [f32], c: usize, s: usize, f: F)
    where
        F: Fn(usize, usize, &mut [f32]) + Sync,
    {
        if buf.is_empty() {
            return;
        }
        buf.par_chunks_mut(c * s)
            .enumerate()
            .for_each(|(i, image)| {
                for (ch, plane) in image.chunks_mut(s).enumerate() {
                    f(i, ch, plane);
                }
            });
    }

    impl FusedBatchNorm for Flex {
        fn fused_batch_norm_train(
            x: FlexTensor,
            gamma: FlexTensor,
            beta: FlexTensor,
            epsilon: f64,
        ) -> (FlexTensor, FlexTensor, FlexTensor) {
            // f32 only: `applies` sends every other dtype to Burn's op.
            let shape = x.shape();
            let (n, c, s) = nc_s(&shape);
            let xv = values(&x);
            let (gv, bv) = (values(&gamma), values(&beta));
            let count = (n * s) as f64;
            // Two passes, as Burn's default and PyTorch's CPU kernel: the mean, then the mean
            // of the squared deviations (no E[x²] − E[x]² cancellation).
            let mean: Vec<f64> =
                per_channel(n, c, s, |_, r| lane_sum(&xv[r.clone()], &xv[r], |v, _| v))
                    .into_iter()
                    .map(|sum| sum / count)
                    .collect();
            let variance: Vec<f64> = per_channel(n, c, s, |ch, r| {
                let m = mean[ch] as f32;
                lane_sum(&xv[r.clone()], &xv[r], |v, _| (v - m) * (v - m))
            })
            .into_iter()
            .map(|sum| sum / count)
            .collect();
            // y = (x − mean) · a + β with a = γ / sqrt(var + ε).
            let scale: Vec<f32> = (0..c)
                .map(|ch| (gv[ch] as f64 / (variance[ch] + epsilon).sqrt()) as f32)
                .collect();
            let out = per_image_write(n, c, s, |i, ch, plane| {
                let start = (i * c + ch) * s;
                let (m, a, b) = (mean[ch] as f32, scale[ch], bv[ch]);
                for (o, &v) in plane.iter_mut().zip(&xv[start..start + s]) {
                    *o = (v - m) * a + b;
                }
            });
            let stat = |v: Vec<f64>| tensor(v.into_iter().map(|m| m as f32).collect(), [c]);
            (tensor(out, shape), stat(mean), stat(variance))
        }
    }

    /// Gradients `(x, γ, β)` given the output's gradient and the forward's statistics.
    pub(super) fn backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        output_grad: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        // Only reached from an f32 forward: `applies` sends every other dtype to Burn's op.
        let shape = x.shape();
        let (n, c, s) = nc_s(&shape);
        let (xv, dyv) = (values(&x), values(&output_grad));
        let (gv, mv, vv) = (values(&gamma), values(&mean), values(&variance));
        let inv_std: Vec<f64> = (0..c)
            .map(|ch| 1.0 / (vv[ch] as f64 + epsilon).sqrt())
            .collect();
        // Σ dy (β's gradient) and Σ dy · x̂ (γ's gradient).
        let sum_dy = per_channel(n, c, s, |_, r| {
            lane_sum(&dyv[r.clone()], &dyv[r], |dy, _| dy)
        });
        let sum_dy_xhat = per_channel(n, c, s, |ch, r| {
            let m = mv[ch];
            lane_sum(&dyv[r.clone()], &xv[r], |dy, v| dy * (v - m)) * inv_std[ch]
        });
        let sums: Vec<(f64, f64)> = sum_dy.into_iter().zip(sum_dy_xhat).collect();
        // dx = γ / σ · (dy − mean(dy) − x̂ · mean(dy · x̂)), the gradient through the
        // statistics included (PyTorch's `batch_norm_backward_cpu`).
        let count = (n * s) as f64;
        let coeffs: Vec<(f32, f32, f32)> = (0..c)
            .map(|ch| {
                let (sum_dy, sum_dy_xhat) = sums[ch];
                let k = inv_std[ch];
                let scale = gv[ch] as f64 * k;
                // dx = a · dy + b · (x − mean) + d
                let a = scale;
                let b = -scale * k * sum_dy_xhat / count;
                let d = -scale * sum_dy / count;
                (a as f32, b as f32, d as f32)
            })
            .collect();
        let gamma_grad = sums.iter().map(|&(_, t)| t as f32).collect();
        let beta_grad = sums.iter().map(|&(d, _)| d as f32).collect();
        drop(dyv);
        // dx replaces dy in dy's buffer, copied first only where something else holds it or
        // it is a strided view (in a backward pass it is usually a fresh, owned buffer).
        let mut dx = output_grad;
        let owned_whole = dx.is_unique()
            && dx
                .as_slice::<f32>()
                .is_some_and(|v| v.len() == dx.storage::<f32>().len());
        if !owned_whole {
            dx = tensor(values(&dx).into_owned(), shape);
        }
        per_image_update(dx.storage_mut::<f32>(), c, s, |i, ch, plane| {
            let start = (i * c + ch) * s;
            let ((a, b, d), m) = (coeffs[ch], mv[ch]);
            for (o, &v) in plane.iter_mut().zip(&xv[start..start + s]) {
                *o = a * *o + b * (v - m) + d;
            }
        });
        (dx, tensor(gamma_grad, [c]), tensor(beta_grad, [c]))
    }

    /// The autodiff node: the statistics' dependence on `x` is in [`backward`]'s formula.
    #[derive(Debug)]
    struct FusedBatchNormBackward;

    impl Backward<Flex, 3> for FusedBatchNormBackward {
        /// x, γ, the batch mean and variance, ε.
        type State = (FlexTensor, FlexTensor, FlexTensor, FlexTensor, f64);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_gamma, node_beta] = ops.parents;
            let output_grad = grads.consume::<Flex>(&ops.node);
            let (x, gamma, mean, variance, epsilon) = ops.state;
            let (x_grad, gamma_grad, beta_grad) =
                backward(x, gamma, mean, variance, output_grad, epsilon);
            for (node, grad) in [
                (node_x, x_grad),
                (node_gamma, gamma_grad),
                (node_beta, beta_grad),
            ] {
                if let Some(node) = node {
                    grads.register::<Flex>(node.id, grad);
                }
            }
        }
    }

    impl<C: CheckpointStrategy> FusedBatchNorm for Autodiff<Flex, C> {
        fn fused_batch_norm_train(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            epsilon: f64,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
            let prep = FusedBatchNormBackward
                .prepare::<C>([x.node(), gamma.node(), beta.node()])
                .compute_bound()
                .stateful();
            let (x, gamma) = (x.into_primitive(), gamma.into_primitive());
            let (output, mean, variance) = Flex::fused_batch_norm_train(
                x.clone(),
                gamma.clone(),
                beta.into_primitive(),
                epsilon,
            );
            let output = match prep {
                OpsKind::Tracked(prep) => {
                    prep.finish((x, gamma, mean.clone(), variance.clone(), epsilon), output)
                }
                OpsKind::UnTracked(prep) => prep.finish(output),
            };
            // The statistics leave detached, as Burn's `batch_norm_train` returns them.
            (output, Self::from_inner(mean), Self::from_inner(variance))
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::flex_tensor::testing::{self, values};
    use burn::tensor::Distribution;

    /// Within `tol` relative to `1 + |Burn's value|`.
    fn assert_close(ours: Vec<f32>, burn: Vec<f32>, tol: f32, what: &str) {
        testing::assert_close(ours, burn, tol, |b| 1.0 + b.abs(), what);
    }

    /// Output, statistics and the three gradients against Burn's own `batch_norm_train` (the
    /// reference: its backward is `burn-backend`'s `batch_norm_train_backward`), for an
    /// input whose mean is far from 0 (so the centring matters) and an arbitrary upstream
    /// gradient (so the statistics' terms of the input gradient matter).
    fn check<const D: usize>(x0: Tensor<D>) {
        let device = x0.device();
        let c = x0.dims()[1];
        let upstream = Tensor::<D>::random(x0.dims(), Distribution::Normal(0.0, 1.0), &device);
        let gamma0 = Tensor::<1>::random([c], Distribution::Normal(1.0, 0.5), &device);
        let beta0 = Tensor::<1>::random([c], Distribution::Normal(0.0, 0.5), &device);

        // Weighted by `upstream`, the output's gradient is a fresh buffer that the backward
        // overwrites in place; from a plain sum it is a broadcast, and dx gets its own buffer.
        let run = |fused: bool, weighted: bool| {
            let x = x0.clone().detach().require_grad();
            let gamma = gamma0.clone().detach().require_grad();
            let beta = beta0.clone().detach().require_grad();
            let (output, mean, variance) = if fused {
                let out = batch_norm_train_fused(x.clone(), gamma.clone(), beta.clone(), 1e-5);
                (out.output, out.mean, out.variance)
            } else {
                let out = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5);
                (out.output, out.mean, out.variance)
            };
            let grads = if weighted {
                (output.clone() * upstream.clone()).sum().backward()
            } else {
                output.clone().sum().backward()
            };
            (
                values(output),
                values(mean),
                values(variance),
                values(x.grad(&grads).unwrap()),
                values(gamma.grad(&grads).unwrap()),
                values(beta.grad(&grads).unwrap()),
            )
        };
        for weighted in [true, false] {
            let ours = run(true, weighted);
            let burn = run(false, weighted);
            assert_close(ours.0, burn.0, 1e-5, "output");
            assert_close(ours.1, burn.1, 1e-5, "mean");
            assert_close(ours.2, burn.2, 1e-5, "variance");
            assert_close(ours.3, burn.3, 1e-4, "x gradient");
            assert_close(ours.4, burn.4, 1e-4, "gamma gradient");
            assert_close(ours.5, burn.5, 1e-4, "beta gradient");
        }
    }

    #[test]
    fn matches_burns_batch_norm_on_images() {
        let device = Device::flex().autodiff();
        check(Tensor::<4>::random(
            [6, 3, 5, 4],
            Distribution::Normal(3.0, 2.0),
            &device,
        ));
    }

    #[test]
    fn matches_burns_batch_norm_on_a_non_contiguous_input() {
        // Channels-last storage seen as [N, C, H, W]: a strided view, not a contiguous buffer.
        let device = Device::flex().autodiff();
        let nhwc = Tensor::<4>::random([4, 3, 2, 5], Distribution::Normal(3.0, 2.0), &device);
        check(nhwc.permute([0, 3, 1, 2]));
    }

    #[test]
    fn matches_burns_batch_norm_on_feature_vectors() {
        let device = Device::flex().autodiff();
        check(Tensor::<2>::random(
            [16, 7],
            Distribution::Normal(3.0, 2.0),
            &device,
        ));
    }

    /// Worked by hand: one channel holding 1, 3, 5, 7 (mean 4, biased variance 5), γ 2, β 1,
    /// ε 0, so x̂ = (−3, −1, 1, 3) / √5 and y = 2 x̂ + 1. With the upstream gradient
    /// (1, 0, 0, 0): β's gradient Σ dy = 1, γ's Σ dy · x̂ = x̂₀, and the input's
    /// γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)) with mean(dy) = 1/4, mean(dy · x̂) = x̂₀/4.
    #[test]
    fn hand_worked_values() {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::from_floats([[1.0], [3.0], [5.0], [7.0]], &device).require_grad();
        let gamma = Tensor::<1>::from_floats([2.0], &device).require_grad();
        let beta = Tensor::<1>::from_floats([1.0], &device).require_grad();
        let out = batch_norm_train_fused(x.clone(), gamma.clone(), beta.clone(), 0.0);
        let sigma = 5.0f32.sqrt();
        let xhat = [-3.0 / sigma, -1.0 / sigma, 1.0 / sigma, 3.0 / sigma];
        let expected: Vec<f32> = xhat.iter().map(|h| 2.0 * h + 1.0).collect();
        assert_close(values(out.output.clone()), expected, 1e-6, "output");
        assert_eq!(values(out.mean), vec![4.0]);
        assert_eq!(values(out.variance), vec![5.0]);

        let upstream = Tensor::<2>::from_floats([[1.0], [0.0], [0.0], [0.0]], &device);
        let grads = (out.output * upstream).sum().backward();
        let mean_dy = 0.25f32;
        let mean_dy_xhat = xhat[0] / 4.0;
        let dx: Vec<f32> = (0..4)
            .map(|i| {
                let dy = if i == 0 { 1.0 } else { 0.0 };
                2.0 / sigma * (dy - mean_dy - xhat[i] * mean_dy_xhat)
            })
            .collect();
        assert_close(values(x.grad(&grads).unwrap()), dx, 1e-6, "x gradient");
        assert_close(
            values(gamma.grad(&grads).unwrap()),
            vec![xhat[0]],
            1e-6,
            "gamma",
        );
        assert_close(values(beta.grad(&grads).unwrap()), vec![1.0], 1e-6, "beta");
    }

    /// The backward writes dx over dy's buffer when it owns it, and over a copy when dy is
    /// shared: both give the same values, and the shared dy is left as it was.
    #[test]
    fn backward_in_place_and_into_a_new_buffer_agree() {
        use super::flex::FusedBatchNorm;
        use burn::backend::Flex;
        use burn::backend::flex::FlexTensor;
        use burn::tensor::TensorData;

        let shape = [3, 2, 4];
        let wave = |k: usize, f: f32| (0..k).map(|i| (i as f32 * f).sin() * 2.0 + 1.0).collect();
        let t = |v: Vec<f32>, shape: Vec<usize>| FlexTensor::from_data(TensorData::new(v, shape));
        let x = t(wave(24, 0.7), shape.to_vec());
        let (gamma, beta) = (t(vec![1.5, -0.5], vec![2]), t(vec![0.1, 0.2], vec![2]));
        let (_, mean, variance) =
            <Flex as FusedBatchNorm>::fused_batch_norm_train(x.clone(), gamma.clone(), beta, 1e-5);
        let backward = |dy: FlexTensor| {
            let (dx, _, _) = super::flex::backward(
                x.clone(),
                gamma.clone(),
                mean.clone(),
                variance.clone(),
                dy,
                1e-5,
            );
            dx.into_data().try_to_vec::<f32>().unwrap()
        };
        let owned = backward(t(wave(24, 1.3), shape.to_vec()));
        let shared_dy = t(wave(24, 1.3), shape.to_vec());
        let kept = shared_dy.clone();
        let shared = backward(shared_dy);
        assert_eq!(owned, shared);
        // The shared buffer was not overwritten.
        assert_eq!(kept.into_data().try_to_vec::<f32>().unwrap(), wave(24, 1.3));
        assert!(owned.iter().any(|v| v.abs() > 1e-3));
    }

    #[test]
    fn the_fused_kernel_is_what_runs_on_flex() {
        let x = |device: &Device| Tensor::<4>::zeros([2, 1, 1, 1], device);
        assert!(flex::applies(&x(&Device::flex())));
        assert!(flex::applies(&x(&Device::flex().autodiff())));
        assert!(!flex::applies(&Tensor::<1>::zeros([2], &Device::flex())));
    }

    #[test]
    fn runs_without_autodiff() {
        let device = Device::flex();
        let x = Tensor::<4>::random([4, 2, 3, 3], Distribution::Normal(1.0, 1.0), &device);
        let gamma = Tensor::<1>::ones([2], &device);
        let beta = Tensor::<1>::zeros([2], &device);
        let ours = batch_norm_train_fused(x.clone(), gamma.clone(), beta.clone(), 1e-5);
        let burn = batch_norm_train(x, gamma, beta, 1e-5);
        assert_close(values(ours.output), values(burn.output), 1e-5, "output");
    }
}
