//! What a run shows on the terminal: a progress bar over the invocation's steps with the last
//! loss, λ and throughput, and one line per finished epoch.

use indicatif::{ProgressBar, ProgressStyle};

use super::metrics::EpochRecord;

/// The terminal display of a run (hidden when quiet).
pub(crate) struct Progress {
    bar: ProgressBar,
    quiet: bool,
    epochs: usize,
    batch_size: usize,
}

impl Progress {
    /// A bar over `steps` steps of a run of `epochs` epochs.
    pub(crate) fn new(quiet: bool, steps: u64, epochs: usize, batch_size: usize) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new(steps);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            bar
        };
        Self {
            bar,
            quiet,
            epochs,
            batch_size,
        }
    }

    /// A line above the bar (nothing when quiet).
    pub(crate) fn line(&self, text: &str) {
        if self.quiet {
        } else if self.bar.is_hidden() {
            println!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    /// Epoch `epoch` (0-based) begins.
    pub(crate) fn start_epoch(&self, epoch: usize) {
        self.bar
            .set_prefix(format!("epoch {}/{}", epoch + 1, self.epochs));
    }

    /// `steps` steps done, their mean loss `loss`.
    pub(crate) fn steps(&self, steps: usize, loss: f64, lambda: Option<f64>) {
        self.bar.inc(steps as u64);
        let ips = self.bar.position() as f64 * self.batch_size as f64
            / self.bar.elapsed().as_secs_f64().max(1e-9);
        let lambda = lambda.map_or_else(String::new, |l| format!(" λ {l:.2}"));
        self.bar
            .set_message(format!("loss {loss:.3}{lambda} {ips:.0} img/s"));
    }

    /// The summary line of a finished epoch.
    pub(crate) fn epoch_done(&self, r: &EpochRecord) {
        let knn = r.knn_top1.map_or("-".to_string(), |k| format!("{k:.2}%"));
        let probe = match (r.online_probe_train_top1, r.online_probe_test_top1) {
            (Some(train), Some(test)) => {
                format!(", online probe {train:.2}% train / {test:.2}% test")
            }
            (Some(train), None) => format!(", online probe {train:.2}% train"),
            _ => String::new(),
        };
        self.line(&format!(
            "epoch {}/{}: loss {:.4} lr {:.4} {:.0} img/s kNN {knn}{probe}",
            r.epoch,
            self.epochs,
            r.loss.unwrap_or(f64::NAN),
            r.lr.unwrap_or(f64::NAN),
            r.images_per_s.unwrap_or(f64::NAN),
        ));
    }

    /// Clears the bar.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
