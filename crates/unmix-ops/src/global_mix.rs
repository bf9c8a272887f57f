use burn::Tensor;

use crate::flip::flip_batch;

/// Global mixture `λ·x + (1-λ)·flip(x)` of a batch `[N, C, H, W]` with its reverse.
pub fn global_mix(x: Tensor<4>, lambda: f64) -> Tensor<4> {
    let rev = flip_batch(x.clone());
    x.mul_scalar(lambda).add(rev.mul_scalar(1.0 - lambda))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;

    #[test]
    fn lambda_one_is_identity_and_values_match_hand_arithmetic() {
        let device = Device::flex();
        let x = Tensor::<4>::from_floats([[[[1.0]]], [[[3.0]]]], &device);
        assert_eq!(global_mix(x.clone(), 1.0).to_data(), x.to_data());
        // 0.25·1 + 0.75·3 = 2.5 and 0.25·3 + 0.75·1 = 1.5
        let m = global_mix(x, 0.25).to_data().try_to_vec::<f32>().unwrap();
        assert_eq!(m, vec![2.5, 1.5]);
    }
}
