//! Learning-rate schedules.

use crate::config::Schedule;

/// Learning rate of `epoch` (0-based) out of `epochs`.
///
/// Cosine: `lr·½(1 + cos(π·epoch/epochs))`, the MoCo ImageNet `--cos` schedule, applied per
/// epoch. The CIFAR demo counts epochs from 1, which shifts it by one epoch; we count from 0 so
/// the first epoch uses the base rate.
pub fn learning_rate(schedule: Schedule, base: f64, epoch: usize, epochs: usize) -> f64 {
    match schedule {
        Schedule::Constant => base,
        Schedule::Cosine => {
            base * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_values() {
        assert_eq!(learning_rate(Schedule::Cosine, 0.06, 0, 10), 0.06);
        assert!((learning_rate(Schedule::Cosine, 0.06, 5, 10) - 0.03).abs() < 1e-12);
        // cos(0.9π) = -0.951057: 0.06·0.5·0.048943 = 0.00146830
        assert!((learning_rate(Schedule::Cosine, 0.06, 9, 10) - 0.0014683).abs() < 1e-6);
        assert_eq!(learning_rate(Schedule::Constant, 0.1, 9, 10), 0.1);
    }
}
