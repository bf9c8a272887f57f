//! Learning-rate and momentum schedules, evaluated per step.

use super::{LrScaling, OptimConfig, ScheduleConfig};

/// `lr` after the batch-size scaling of `optim.lr_scaling`.
pub fn scaled_lr(o: &OptimConfig) -> f64 {
    let ratio = o.batch_size as f64 / o.reference_batch as f64;
    match o.lr_scaling {
        LrScaling::None => o.lr,
        LrScaling::Linear => o.lr * ratio,
        LrScaling::Sqrt => o.lr * ratio.sqrt(),
    }
}

/// Learning rate at global `step` (0-based) with `steps_per_epoch` steps per epoch.
///
/// Warm-up (when `warmup_epochs` or `warmup_steps` is set) rises linearly from
/// `warmup_start_lr` at step 0 to the scaled rate: on the last of its `n` steps for
/// `warmup_epochs` (SwAV, solo-learn), on step `n` for `warmup_steps` (htdt). After it:
/// - `cosine`: `lr·½(1 + cos(π·epoch/epochs))`, per epoch (MoCo `--cos`), the epoch counted
///   from `first_epoch`: 0 as `main_moco.py` (the first epoch uses the base rate), 1 as the CIFAR
///   demo (one epoch later on the same curve, reaching 0 in the last epoch).
/// - `cosine_step`: `min + (lr − min)·½(1 + cos(π·t/T))` over the `T` steps after warm-up
///   (solo-learn `warmup_cosine`, SwAV).
/// - `step`: `lr·gamma^k`, `k` the number of milestones `<=` the epoch.
pub fn learning_rate(o: &OptimConfig, step: u64, steps_per_epoch: usize) -> f64 {
    let base = scaled_lr(o);
    let per_epoch = steps_per_epoch.max(1) as f64;
    let warmup = o.warmup_steps as f64 + (o.warmup_epochs * per_epoch).round();
    let s = step as f64;
    if s < warmup {
        // htdt (`warmup_steps`): `lr·k/n`. SwAV's `main_swav.py` (`np.linspace(start, lr, n)`)
        // and solo-learn's `LinearWarmupCosineAnnealingLR` (`warmup_epochs`): `(lr − start)/(n − 1)`
        // per step, so the last warm-up step already runs at `lr`.
        let span = if o.warmup_steps > 0 {
            warmup
        } else {
            (warmup - 1.0).max(1.0)
        };
        return o.warmup_start_lr + (base - o.warmup_start_lr) * s / span;
    }
    let epoch = (s / per_epoch).floor();
    let pi = std::f64::consts::PI;
    match &o.schedule {
        ScheduleConfig::Constant {} => base,
        ScheduleConfig::Cosine { first_epoch } => {
            let e = epoch + f64::from(*first_epoch);
            base * 0.5 * (1.0 + (pi * e / o.epochs as f64).cos())
        }
        ScheduleConfig::CosineStep { min_lr } => {
            let total = (o.epochs as f64 * per_epoch - warmup).max(1.0);
            let t = (s - warmup).min(total);
            min_lr + (base - min_lr) * 0.5 * (1.0 + (pi * t / total).cos())
        }
        ScheduleConfig::Step { milestones, gamma } => {
            let k = milestones.iter().filter(|&&m| m as f64 <= epoch).count();
            base * gamma.powi(k as i32)
        }
    }
}

/// An EMA coefficient that rises from `base` to `end` along a half cosine of training progress
/// (BYOL §3.2: `τ = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2`; solo-learn's momentum schedule).
/// `base == end` is a constant momentum (MoCo).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MomentumSchedule {
    /// τ at the first step.
    pub base: f64,
    /// τ at the end of training.
    pub end: f64,
}

impl MomentumSchedule {
    /// A constant τ.
    pub fn constant(tau: f64) -> Self {
        Self {
            base: tau,
            end: tau,
        }
    }

    /// τ at `progress` ∈ [0, 1].
    pub fn at(&self, progress: f64) -> f64 {
        let p = progress.clamp(0.0, 1.0);
        self.end - (self.end - self.base) * ((std::f64::consts::PI * p).cos() + 1.0) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn optim(schedule: ScheduleConfig) -> OptimConfig {
        OptimConfig {
            epochs: 10,
            lr: 0.06,
            schedule,
            ..OptimConfig::default()
        }
    }

    #[test]
    fn per_epoch_cosine_and_constant() {
        let o = optim(ScheduleConfig::Cosine { first_epoch: 0 });
        // 7 steps per epoch: every step of an epoch shares its rate.
        assert_eq!(learning_rate(&o, 0, 7), 0.06);
        assert_eq!(learning_rate(&o, 6, 7), 0.06);
        assert!((learning_rate(&o, 35, 7) - 0.03).abs() < 1e-12);
        // cos(0.9π) = -0.951057: 0.06·0.5·0.048943 = 0.00146830
        assert!((learning_rate(&o, 63, 7) - 0.0014683).abs() < 1e-6);
        assert_eq!(
            learning_rate(&optim(ScheduleConfig::Constant {}), 63, 7),
            0.06
        );
    }

    /// The CIFAR demo's `adjust_learning_rate(optimizer, epoch, args)` with its loop
    /// `for epoch in range(1, args.epochs + 1)`: `lr *= 0.5 * (1 + cos(pi * epoch / epochs))`.
    #[test]
    fn cosine_counted_from_one_is_the_demo_schedule() {
        let o = optim(ScheduleConfig::Cosine { first_epoch: 1 });
        // python: [0.06 * 0.5 * (1 + math.cos(math.pi * e / 10)) for e in (1, 5, 10)]
        //   = [0.058531695488854, 0.03, 0.0]
        assert!((learning_rate(&o, 0, 7) - 0.058531695488854).abs() < 1e-12);
        assert!((learning_rate(&o, 6, 7) - 0.058531695488854).abs() < 1e-12);
        assert!((learning_rate(&o, 28, 7) - 0.03).abs() < 1e-12);
        assert!(learning_rate(&o, 63, 7).abs() < 1e-12);
        let bad = OptimConfig {
            schedule: ScheduleConfig::Cosine { first_epoch: 2 },
            ..OptimConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.starts_with("optim.schedule.first_epoch = 2"), "{err}");
    }

    #[test]
    fn warmup_then_cosine_per_step() {
        // 10 epochs × 10 steps, 2 warm-up epochs from 0 to 0.4·512/256 = 0.8, cosine to 0.008.
        let o = OptimConfig {
            lr: 0.4,
            lr_scaling: LrScaling::Linear,
            batch_size: 512,
            warmup_epochs: 2.0,
            ..optim(ScheduleConfig::CosineStep { min_lr: 0.008 })
        };
        assert_eq!(scaled_lr(&o), 0.8);
        // SwAV's warm-up, `np.linspace(0, 0.8, 20)`: [0.0, 0.04210526315789474, ...,
        // 0.4210526315789474 (step 10), ..., 0.8 (step 19)]; then the cosine from 0.8.
        assert_eq!(learning_rate(&o, 0, 10), 0.0);
        assert!((learning_rate(&o, 1, 10) - 0.04210526315789474).abs() < 1e-12);
        assert!((learning_rate(&o, 10, 10) - 0.4210526315789474).abs() < 1e-12);
        assert!((learning_rate(&o, 19, 10) - 0.8).abs() < 1e-12);
        assert!((learning_rate(&o, 20, 10) - 0.8).abs() < 1e-12);
        // Half-way through the 80 cosine steps: (0.8 + 0.008) / 2.
        assert!((learning_rate(&o, 60, 10) - 0.404).abs() < 1e-12);
        assert!((learning_rate(&o, 100, 10) - 0.008).abs() < 1e-12);
        let sqrt = OptimConfig {
            lr_scaling: LrScaling::Sqrt,
            batch_size: 1024,
            ..o
        };
        assert!((scaled_lr(&sqrt) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn step_schedule_with_warmup_steps() {
        // MoCo v1: ×0.1 at epochs 6 and 8 (of 10); htdt-style 5-step warm-up.
        let o = OptimConfig {
            warmup_steps: 5,
            ..optim(ScheduleConfig::Step {
                milestones: vec![6, 8],
                gamma: 0.1,
            })
        };
        // htdt's `lr·k/n`: 0.06·1/5 at step 1, the full rate from step 5.
        assert!((learning_rate(&o, 1, 10) - 0.012).abs() < 1e-12);
        assert!((learning_rate(&o, 4, 10) - 0.048).abs() < 1e-12);
        assert_eq!(learning_rate(&o, 5, 10), 0.06);
        assert_eq!(learning_rate(&o, 59, 10), 0.06);
        assert!((learning_rate(&o, 60, 10) - 0.006).abs() < 1e-12);
        assert!((learning_rate(&o, 85, 10) - 0.0006).abs() < 1e-12);
    }

    /// One warm-up step is `np.linspace(start, lr, 1) = [start]`; both warm-up keys at once is
    /// an error that names them.
    #[test]
    fn one_step_warmup_and_both_warmup_keys() {
        let o = OptimConfig {
            warmup_epochs: 0.1,
            warmup_start_lr: 0.01,
            ..optim(ScheduleConfig::Constant {})
        };
        assert_eq!(learning_rate(&o, 0, 10), 0.01);
        assert_eq!(learning_rate(&o, 1, 10), 0.06);
        let both = OptimConfig {
            warmup_steps: 500,
            warmup_epochs: 1.0,
            ..OptimConfig::default()
        };
        let err = both.validate().unwrap_err().to_string();
        assert!(err.starts_with("optim.warmup_steps = 500"), "{err}");
        assert!(err.contains("optim.warmup_epochs"), "{err}");
    }

    #[test]
    fn byol_tau_schedule() {
        let s = MomentumSchedule {
            base: 0.99,
            end: 1.0,
        };
        assert_eq!(s.at(0.0), 0.99);
        assert!((s.at(0.5) - 0.995).abs() < 1e-12);
        assert_eq!(s.at(1.0), 1.0);
        // cos(0.25π) = 0.7071068: 1 − 0.01·1.7071068/2 = 0.99146447
        assert!((s.at(0.25) - 0.991464466).abs() < 1e-9);
        assert_eq!(MomentumSchedule::constant(0.99).at(0.7), 0.99);
    }
}
