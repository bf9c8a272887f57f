//! Where a CPU run's own thread works: on one of rayon's workers, the pool that the CPU kernels
//! (Burn's `flex`, `gemm`, ours in `unmix-models`) split their loops over.
//!
//! Called from a thread outside the pool, every parallel loop is injected into the pool while
//! the caller sleeps on a latch until it ends: a futex round trip per operation, and a worker
//! woken for the share of the loop the caller could have run itself. A training step issues
//! thousands of such loops, most of them short. Started on a worker, a loop splits in place,
//! the worker runs its own half, and it takes the other half back if no idle worker has yet.
//! Measured (`docs/benchmarks.md`, "The run on the pool's thread"): the main job 3 min 46 s →
//! 3 min 26 s, 1.54 → 1.62 cores busy, every figure the same to the last digit.
//!
//! A run also waits outside rayon: for the second thread of [`crate::method::beside`] (the key
//! encoder's forward) and for the batch upload, whose loops need a free worker. So at most one
//! run at a time takes a worker, and only where the pool has a second one: a second run in the
//! same process (the tests) stays on its own thread, as every run did before. (Two runs on the
//! two workers of a 2-core machine, each waiting for its `beside` thread, never ended. A pool
//! of the run's own instead left the `beside` threads' loops to the global pool, four threads
//! on two cores: the main job fell to 1.13–1.17 cores busy.)

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a run is on one of the pool's workers now.
static A_RUN_ON_THE_POOL: AtomicBool = AtomicBool::new(false);

/// Clears [`A_RUN_ON_THE_POOL`] when the run ends, by return or by panic.
struct Leave;

impl Drop for Leave {
    fn drop(&mut self) {
        A_RUN_ON_THE_POOL.store(false, Ordering::SeqCst);
    }
}

/// Runs `work` on a worker of rayon's global pool and returns its result. It runs right here
/// instead where this thread is a worker already, where the pool has a single thread, or while
/// another call's `work` is on the pool. A panic in `work` resumes on the caller's thread.
///
/// ```
/// let on_worker = unmix_train::run::on_compute_pool(|| rayon::current_thread_index().is_some());
/// assert_eq!(on_worker, rayon::current_num_threads() > 1);
/// ```
pub fn on_compute_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let stay = rayon::current_thread_index().is_some()
        || rayon::current_num_threads() < 2
        || A_RUN_ON_THE_POOL.swap(true, Ordering::SeqCst);
    if stay {
        return work();
    }
    let _leave = Leave;
    rayon::scope(|_| work())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;
    use std::sync::{Arc, Barrier, mpsc};
    use std::time::Duration;

    #[test]
    fn work_returns_its_result_and_a_panic_reaches_the_caller() {
        let sum = on_compute_pool(|| (1..=100u64).into_par_iter().sum::<u64>());
        assert_eq!(sum, 5050);
        let caught = std::panic::catch_unwind(|| on_compute_pool(|| panic!("inside")));
        assert!(caught.is_err());
        // The panic left the pool free for the next run.
        if rayon::current_num_threads() > 1 {
            let mut on_worker = false;
            for _ in 0..100 {
                on_worker = on_compute_pool(|| rayon::current_thread_index().is_some());
                if on_worker {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10)); // another test's run
            }
            assert!(on_worker);
        }
    }

    /// Twice as many runs at once as the pool has workers, each waiting (outside rayon) for a
    /// thread of its own whose parallel loop needs a worker, as `beside` does. With every run
    /// on a worker this never ends.
    #[test]
    fn concurrent_runs_waiting_on_their_own_threads_finish() {
        let runs = 2 * rayon::current_num_threads();
        let barrier = Arc::new(Barrier::new(runs));
        let (done, finished) = mpsc::channel();
        for _ in 0..runs {
            let (barrier, done) = (barrier.clone(), done.clone());
            std::thread::spawn(move || {
                let sum = on_compute_pool(|| {
                    barrier.wait();
                    std::thread::scope(|s| {
                        s.spawn(|| (1..=1000u64).into_par_iter().sum::<u64>())
                            .join()
                            .unwrap()
                    })
                });
                done.send(sum).unwrap();
            });
        }
        for _ in 0..runs {
            let sum = finished.recv_timeout(Duration::from_secs(120));
            assert_eq!(sum, Ok(500_500), "a run never finished");
        }
    }
}
