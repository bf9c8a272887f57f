//! Inputs shared by the loss tests.

use burn::prelude::*;

/// `sin(α·j + 0.3)` reshaped to `[n, d]`, as `fixed` in the reference snippets
/// (`/tmp/ref/losses.py`, quoted in each test).
pub fn fixed(n: usize, d: usize, alpha: f64, device: &Device) -> Tensor<2> {
    let v: Vec<f32> = (0..n * d)
        .map(|j| (alpha * j as f64 + 0.3).sin() as f32)
        .collect();
    Tensor::from_data(TensorData::new(v, [n, d]), device)
}
