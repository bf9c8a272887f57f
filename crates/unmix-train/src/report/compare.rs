//! Runs side by side (`cargo xtask compare RUN_A RUN_B`): `compare.md` with the results and
//! flatness of each, the config keys whose values differ, and figures overlaying the runs (loss
//! and kNN per epoch, sorted instance probabilities, the largest probability's histogram). It
//! reads what each run wrote (`metrics.csv`, `config.toml`, `report.toml`); nothing is
//! recomputed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::plot::{Chart, Figure, Series};
use super::run_report::{Report, ReportSummary, flatness_table, loss_series};
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::run::metrics::{EpochRecord, MetricsFile};

struct Run {
    label: String,
    summary: ReportSummary,
    rows: Vec<EpochRecord>,
    config: BTreeMap<String, String>,
}

fn read_run(dir: &Path) -> Result<Run, TrainError> {
    let summary_path = dir.join("report.toml");
    let text = std::fs::read_to_string(&summary_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            TrainError::Report {
                path: summary_path.clone(),
                message: format!(
                    "not found: is {} a run directory? A run written before reports existed gets \
                     one with `cargo xtask report --run {}`",
                    dir.display(),
                    dir.display()
                ),
            }
        } else {
            TrainError::io(&summary_path, e)
        }
    })?;
    let summary: ReportSummary = toml::from_str(&text).map_err(|e| TrainError::Report {
        path: summary_path.clone(),
        message: e.to_string(),
    })?;
    // Read as the type, so that a run written before a key existed shows that key's default.
    let config = TrainConfig::load(&dir.join("config.toml"))?
        .leaves()
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    let label = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(Run {
        label,
        summary,
        rows: MetricsFile::read(&dir.join("metrics.csv"))?,
        config,
    })
}

/// Writes `out/compare.md` and its figures (`out/plots/`) for the runs in `runs` (at least
/// two run directories, each with its `report.toml`).
pub fn write_comparison(runs: &[PathBuf], out: &Path) -> Result<Report, TrainError> {
    if runs.len() < 2 {
        return Err(TrainError::value(
            "runs",
            runs.len(),
            "expected at least two run directories",
        ));
    }
    let runs = runs
        .iter()
        .map(|d| read_run(d))
        .collect::<Result<Vec<_>, _>>()?;
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| TrainError::io(&plots, e))?;
    let figure = |title: &str, x: &str, y: &str, chart| Figure {
        title: title.into(),
        x_label: x.into(),
        y_label: y.into(),
        chart,
    };
    let per_run = |f: &dyn Fn(&Run) -> Vec<(f64, f64)>| -> Vec<Series> {
        runs.iter()
            .map(|r| Series::new(r.label.clone(), f(r)))
            .collect()
    };
    let figures = [
        (
            "loss",
            "loss per epoch",
            figure(
                "loss per epoch",
                "epoch",
                "mean loss",
                Chart::Lines(
                    runs.iter()
                        .map(|r| {
                            let (mut s, _) = loss_series(&r.rows, &[], "");
                            Series::new(r.label.clone(), s.swap_remove(0).points)
                        })
                        .collect(),
                ),
            ),
        ),
        (
            "knn",
            "kNN top-1 per epoch",
            figure(
                "kNN top-1 per epoch",
                "epoch",
                "kNN top-1 (%)",
                Chart::Lines(per_run(&|r| {
                    r.rows
                        .iter()
                        .filter_map(|e| e.knn_top1.map(|k| (e.epoch as f64, k)))
                        .collect()
                })),
            ),
        ),
        (
            "flatness",
            "sorted instance probabilities (the Un-Mix paper's Figure 3)",
            figure(
                "sorted instance probabilities",
                "rank",
                "mean probability",
                Chart::Lines(per_run(&|r| {
                    (r.summary.flatness.sorted_probabilities.iter())
                        .enumerate()
                        .map(|(i, &p)| ((i + 1) as f64, p))
                        .collect()
                })),
            ),
        ),
        (
            "flatness_largest_p",
            "histogram of each prediction's largest probability",
            figure(
                "largest instance probability",
                "largest probability",
                "fraction of images",
                Chart::Bars {
                    range: (0.0, 1.0),
                    bins: runs[0].summary.flatness.max_probability_histogram.len(),
                    series: per_run(&|r| {
                        (r.summary.flatness.max_probability_histogram.iter())
                            .enumerate()
                            .map(|(b, &f)| (b as f64, f))
                            .collect()
                    }),
                },
            ),
        ),
    ];
    let (written, links) = super::save_figures(&figures, &plots)?;

    let mut md = String::from("# Runs side by side\n\n");
    let _ = writeln!(md, "kNN: {}.\n", runs[0].summary.knn_protocol);
    md.push_str("| run | method | Un-Mix | epochs | kNN random init | kNN final | gain |\n|---|---|---|---|---|---|---|\n");
    for r in &runs {
        let s = &r.summary;
        let pct = |v: Option<f64>| v.map_or_else(|| "–".into(), |v| format!("{v:.2}%"));
        let gain = match (s.knn_random_init, s.knn_final) {
            (Some(a), Some(b)) => format!("{:+.2}", b - a),
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} / {} | {} | {} | {gain} |",
            r.label,
            s.method,
            if s.unmix { "on" } else { "off" },
            s.epochs_done,
            s.epochs,
            pct(s.knn_random_init),
            pct(s.knn_final)
        );
    }
    let _ = writeln!(
        md,
        "\n## Flatness\n\n{}.\n",
        runs[0].summary.flatness_protocol
    );
    let flat: Vec<(&str, &crate::eval::flatness::Flatness)> = runs
        .iter()
        .map(|r| (r.label.as_str(), &r.summary.flatness))
        .collect();
    md.push_str(&flatness_table(&flat));
    md.push_str("\n## Config keys that differ\n\n| key |");
    runs.iter().for_each(|r| {
        let _ = write!(md, " {} |", r.label);
    });
    let _ = writeln!(md, "\n{}|", "|---".repeat(runs.len() + 1));
    let keys: std::collections::BTreeSet<&String> =
        runs.iter().flat_map(|r| r.config.keys()).collect();
    for key in keys {
        let values: Vec<&str> = runs
            .iter()
            .map(|r| r.config.get(key).map_or("(absent)", String::as_str))
            .collect();
        if values.iter().any(|v| *v != values[0]) {
            let _ = write!(md, "| `{key}` |");
            values.iter().for_each(|v| {
                let _ = write!(md, " `{v}` |");
            });
            md.push('\n');
        }
    }
    let _ = writeln!(md, "\n## Figures\n\n{links}");
    let markdown = out.join("compare.md");
    std::fs::write(&markdown, md).map_err(|e| TrainError::io(&markdown, e))?;
    Ok(Report {
        markdown,
        figures: written,
    })
}
