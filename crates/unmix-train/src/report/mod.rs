//! What people look at after a run: [`run_report`] writes `report.md` with its figures into the
//! run directory at the end of every run, [`compare`] puts runs side by side; [`plot`] draws the
//! figures (PNG and SVG) and [`pca`] gives the 2-D projection of embeddings.

pub mod compare;
pub mod pca;
pub mod plot;
pub mod run_report;

pub use compare::write_comparison;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::TrainError;

/// Writes each `(stem, what, figure)` into `plots` (PNG and SVG) and returns the files written
/// with the markdown that shows them, a heading per figure.
pub(crate) fn save_figures(
    figures: &[(&str, &str, plot::Figure)],
    plots: &Path,
) -> Result<(Vec<PathBuf>, String), TrainError> {
    let mut written = Vec::new();
    let mut links = String::new();
    for (stem, what, fig) in figures {
        written.extend(fig.save(&plots.join(stem))?);
        let _ = writeln!(
            links,
            "### {what}\n\n![{what}](plots/{stem}.png)\n\n[SVG](plots/{stem}.svg)\n"
        );
    }
    Ok((written, links))
}
pub use run_report::{Report, ReportSummary, write_report};
