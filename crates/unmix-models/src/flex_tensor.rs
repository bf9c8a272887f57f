//! What our `flex` kernels ([`crate::batch_norm_train_fused`], [`crate::conv2d_im2col`]) share:
//! where they apply, and moving values between `FlexTensor`s and slices.

use burn::backend::DispatchDevice;
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::{DType, TensorData};

/// True for an f32 tensor on `flex`, with or without autodiff: where our CPU kernels run.
pub(crate) fn f32_on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32
        && matches!(
            x.device().as_dispatch().clone().inner(),
            DispatchDevice::Flex(_)
        )
}

/// The values of a tensor, contiguous, in row-major order (a copy only for a strided view).
pub(crate) fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().unwrap().to_vec()),
    }
}

/// A tensor owning `data`, row-major in `shape`.
pub(crate) fn tensor(data: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape.into()))
}

/// What the kernels' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use burn::prelude::*;

    /// A tensor's values as f32, row-major.
    pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// Every `|ours − reference| ≤ tol · scale(reference)`, naming the first value that is not.
    pub(crate) fn assert_close(
        ours: Vec<f32>,
        reference: Vec<f32>,
        tol: f32,
        scale: impl Fn(f32) -> f32,
        what: &str,
    ) {
        assert_eq!(ours.len(), reference.len(), "{what}: lengths");
        for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
            assert!(
                (a - b).abs() <= tol * scale(*b),
                "{what}[{i}]: ours {a} against the reference's {b}"
            );
        }
    }
}
