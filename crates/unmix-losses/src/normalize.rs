use burn::Tensor;

/// Rows scaled to unit L2 norm (`F.normalize(x, dim=1)`, with its ε = 1e-12 floor).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    x.div(norm)
}
