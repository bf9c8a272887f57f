//! Where a run's own thread works: on one of rayon's workers, the pool that the CPU kernels
//! (Burn's `flex`, `gemm`, ours in `unmix-models`) split their loops over.
//!
//! Called from a thread outside the pool, every parallel loop is injected into the pool while
//! the caller sleeps on a latch until it ends: a futex round trip per operation, and a worker
//! woken for the share of the loop the caller could have run itself. A training step issues
//! thousands of such loops, most of them short. Started on a worker, a loop splits in place,
//! the worker runs its own half, and it takes back the other half if no idle worker has yet.
//! Measured (`docs/benchmarks.md`, "The run on the pool's thread"): two epochs of the main job
//! 34.7 s → 30.6 s, 1.52 → 1.61 cores busy, every figure the same to the last digit.

/// Runs `work` on a thread of rayon's global pool (or right here if this is one) and returns
/// its result; a panic in `work` resumes on the caller's thread.
///
/// ```
/// let on_worker = unmix_train::run::on_compute_pool(|| rayon::current_thread_index().is_some());
/// assert!(on_worker);
/// ```
pub fn on_compute_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_on_a_worker_and_returns_its_result() {
        assert!(rayon::current_thread_index().is_none());
        let (index, sum) = on_compute_pool(|| {
            let sum: u64 = rayon::iter::ParallelIterator::sum(
                rayon::iter::IntoParallelIterator::into_par_iter(1..=100u64),
            );
            (rayon::current_thread_index(), sum)
        });
        assert!(index.is_some());
        assert_eq!(sum, 5050);
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| on_compute_pool(|| panic!("inside")));
        assert!(caught.is_err());
    }
}
