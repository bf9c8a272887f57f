//! A 2-D principal-component projection of embeddings, for the report's picture of how classes
//! separate. The two leading eigenvectors of the covariance come from power iteration on
//! `Xᵀ(X v)` with the rows centred (never forming the `d × d` matrix), the second kept
//! orthogonal to the first; signs are fixed so that each axis's largest coordinate is positive
//! (the same picture on every run).

/// Rows of `data` (`n × dim`, row-major) projected on its two principal axes: `(pc1, pc2)` per
/// row, and the variance along each axis.
///
/// ```
/// use unmix_train::report::pca::principal_plane;
///
/// // Spread 2 along x, 1 along y: x is the first axis.
/// let data = [2.0f32, 0.0, -2.0, 0.0, 0.0, 1.0, 0.0, -1.0];
/// let (points, variances) = principal_plane(&data, 2);
/// assert!((points[0].0 - 2.0).abs() < 1e-9 && points[2].0.abs() < 1e-9);
/// assert!((variances[0] - 8.0 / 3.0).abs() < 1e-9 && (variances[1] - 2.0 / 3.0).abs() < 1e-9);
/// ```
pub fn principal_plane(data: &[f32], dim: usize) -> (Vec<(f64, f64)>, [f64; 2]) {
    let n = data.len().checked_div(dim).unwrap_or(0);
    if n == 0 {
        return (Vec::new(), [0.0; 2]);
    }
    let mut mean = vec![0.0f64; dim];
    for row in data.chunks(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let centred: Vec<f64> = data
        .chunks(dim)
        .flat_map(|row| row.iter().zip(&mean).map(|(&v, m)| v as f64 - m))
        .collect();
    let first = leading_axis(&centred, n, dim, None);
    let second = leading_axis(&centred, n, dim, Some(&first.0));
    let project = |axis: &[f64]| -> Vec<f64> {
        centred
            .chunks(dim)
            .map(|row| row.iter().zip(axis).map(|(a, b)| a * b).sum())
            .collect()
    };
    let (a, b) = (project(&first.0), project(&second.0));
    (a.into_iter().zip(b).collect(), [first.1, second.1])
}

/// The unit vector `v` maximising `|X v|²` (orthogonal to `avoid`), and `|X v|² / (n − 1)`.
fn leading_axis(x: &[f64], n: usize, dim: usize, avoid: Option<&[f64]>) -> (Vec<f64>, f64) {
    let orthogonalise = |v: &mut [f64]| {
        if let Some(u) = avoid {
            let d: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= d * b);
        }
    };
    let normalise = |v: &mut [f64]| {
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|a| *a /= norm);
        }
        norm
    };
    // A start that no axis of real data is orthogonal to in practice.
    let mut v: Vec<f64> = (0..dim).map(|j| 1.0 + (j as f64 * 0.618).fract()).collect();
    orthogonalise(&mut v);
    normalise(&mut v);
    let mut value = 0.0;
    for _ in 0..1000 {
        // w = Xᵀ (X v)
        let xv: Vec<f64> = x
            .chunks(dim)
            .map(|row| row.iter().zip(&v).map(|(a, b)| a * b).sum())
            .collect();
        let mut w = vec![0.0; dim];
        for (row, s) in x.chunks(dim).zip(&xv) {
            w.iter_mut().zip(row).for_each(|(acc, a)| *acc += a * s);
        }
        orthogonalise(&mut w);
        let next = normalise(&mut w);
        let change: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
        v = w;
        value = next;
        if change < 1e-12 || next == 0.0 {
            break;
        }
    }
    let largest = v
        .iter()
        .copied()
        .fold(0.0f64, |m, a| if a.abs() > m.abs() { a } else { m });
    if largest < 0.0 {
        v.iter_mut().for_each(|a| *a = -*a);
    }
    (v, value / (n.max(2) - 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_known_axes_and_variances_in_a_rotated_space() {
        // A 3 × 5 × 3 grid (uncorrelated coordinates, variances about 8.4, 3.6 and 0.98) along
        // three orthonormal axes of R⁴ that are not the standard basis.
        let s = 0.5f64;
        let axes = [[s, s, s, s], [s, -s, s, -s], [s, s, -s, -s]];
        let mut data = Vec::new();
        let mut coords = Vec::new();
        for a in [-1.0, 0.0, 1.0] {
            for b in [-2.0, -1.0, 0.0, 1.0, 2.0] {
                for c in [-1.0, 0.0, 1.0] {
                    let (a, b, c) = (a * 3.5, b * 1.4, c * 1.2);
                    coords.push((a, b));
                    data.extend(
                        (0..4).map(|j| (a * axes[0][j] + b * axes[1][j] + c * axes[2][j]) as f32),
                    );
                }
            }
        }
        let (points, var) = principal_plane(&data, 4);
        let n = coords.len() as f64;
        let sample_var =
            |f: fn(&(f64, f64)) -> f64| coords.iter().map(|p| f(p) * f(p)).sum::<f64>() / (n - 1.0);
        assert!((var[0] - sample_var(|p| p.0)).abs() < 1e-4, "{var:?}");
        assert!((var[1] - sample_var(|p| p.1)).abs() < 1e-4, "{var:?}");
        // The projections are the coordinates along the first two axes, up to sign.
        let sign0 = (points[0].0 / coords[0].0).signum();
        let sign1 = (points[0].1 / coords[0].1).signum();
        for (p, c) in points.iter().zip(&coords) {
            assert!((p.0 - sign0 * c.0).abs() < 1e-4 && (p.1 - sign1 * c.1).abs() < 1e-4);
        }
    }

    #[test]
    fn the_mean_is_removed_and_an_empty_set_gives_nothing() {
        let data = [10.0f32, 5.0, 12.0, 5.0];
        let (points, var) = principal_plane(&data, 2);
        assert!((points[0].0 + 1.0).abs() < 1e-9 && (points[1].0 - 1.0).abs() < 1e-9);
        assert!((var[0] - 2.0).abs() < 1e-9 && var[1].abs() < 1e-9);
        assert_eq!(principal_plane(&[], 3).0, Vec::new());
    }
}
