use burn::Tensor;

/// Reverses a batch along its first axis: sample `i` becomes sample `N-1-i`.
///
/// This is how Un-Mix pairs images (`torch.flip(x, (0,))` in the reference code). It is an
/// involution, and under batch norm flipping the embeddings of one forward pass equals a second
/// forward pass of the flipped images.
pub fn flip_batch<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.flip([0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;

    #[test]
    fn flip_reverses_and_is_an_involution() {
        let device = Device::flex();
        let x = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], &device);
        let flipped = flip_batch(x.clone());
        assert_eq!(
            flipped.to_data().try_to_vec::<f32>().unwrap(),
            vec![5.0, 6.0, 3.0, 4.0, 1.0, 2.0]
        );
        let back = flip_batch(flipped);
        assert_eq!(back.to_data(), x.to_data());
    }
}
