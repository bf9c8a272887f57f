//! One run's report: `report.md` in the run directory, linking the figures in `plots/` (each a
//! PNG and an SVG) with the results tables and the resolved config, and `report.toml`, the
//! figures a [comparison](super::compare) reads back.
//!
//! Figures: the loss and its named terms (per logged step from `steps.csv`, else per epoch),
//! the kNN monitor per epoch, the learning rate, the histogram of the Un-Mix λ of every step
//! taken (drawn again from the run's seeded sampler, which gives each step's λ exactly), the
//! flatness of the instance-discrimination predictions ([`crate::eval::flatness`]: the sorted
//! probabilities and the largest probability's histogram), and a 2-D PCA of the test images'
//! backbone features coloured by class.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use unmix_data::{ImageSet, ViewTransform};
use unmix_ops::MixKind;

use super::pca::principal_plane;
use super::plot::{Chart, Figure, Series, histogram};
use crate::config::TrainConfig;
use crate::device::parse_device;
use crate::error::TrainError;
use crate::eval::flatness::{self, Flatness, FlatnessConfig};
use crate::eval::{FeatureKind, Protocol, knn};
use crate::method::Method;
use crate::methods::MethodTask;
use crate::run::checkpoint;
use crate::run::metrics::{EpochRecord, MetricsFile, StepLog};

/// A field of a metrics row.
type Column = fn(&EpochRecord) -> Option<f64>;

/// Test images the PCA figure shows at most (the first of the test set).
pub const PCA_IMAGES: usize = 2000;
/// Bins of the λ histogram over `[0, 1]`.
pub const LAMBDA_BINS: usize = 20;

/// The figures of a report that [`super::compare`] reads back (`report.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    /// `run.name`.
    pub name: String,
    /// `method.kind`.
    pub method: String,
    /// Whether Un-Mix was on.
    pub unmix: bool,
    /// Epochs finished.
    pub epochs_done: usize,
    /// `optim.epochs`.
    pub epochs: usize,
    /// The kNN monitor, named with its parameters.
    pub knn_protocol: String,
    /// kNN top-1 (%) at random initialisation.
    pub knn_random_init: Option<f64>,
    /// kNN top-1 (%) at the last evaluated epoch.
    pub knn_final: Option<f64>,
    /// The flatness protocol, named with its parameters.
    pub flatness_protocol: String,
    /// The flatness of the final encoder.
    pub flatness: Flatness,
    /// Variance of the test features along the two PCA axes.
    pub pca_variance: [f64; 2],
    /// Mean Un-Mix λ over every step taken (absent when Un-Mix is off).
    pub lambda_mean: Option<f64>,
}

/// Paths of a written report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `report.md`.
    pub markdown: PathBuf,
    /// Every figure written (PNG and SVG).
    pub figures: Vec<PathBuf>,
}

/// The method's name in `[method] kind`.
pub(crate) fn method_kind(config: &TrainConfig) -> String {
    toml::Value::try_from(&config.method)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(str::to_string)))
        .unwrap_or_else(|| "?".into())
}

/// The λ of every step `0..steps` of a run, with its kind (what the loop mixed at each step).
fn lambdas<M: Method>(config: &TrainConfig, model: &M, steps: u64) -> Vec<(f64, MixKind)> {
    let Ok(unmix) = crate::run::unmix_sampler(config) else {
        return Vec::new();
    };
    if !config.unmix.enabled {
        return Vec::new();
    }
    let side = model.views()[0].apply(&config.data.augmentation).crop_size;
    (0..steps)
        .map(|s| {
            let draw = unmix.draw(s, side, side);
            (draw.mixed_lambda(side, side), draw.kind)
        })
        .collect()
}

fn column(
    rows: &[EpochRecord],
    x: impl Fn(&EpochRecord) -> f64,
    y: impl Fn(&EpochRecord) -> Option<f64>,
) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| y(r).map(|v| (x(r), v)))
        .collect()
}

/// Loss curves: total and named terms, per logged step when `steps` has rows, else per epoch.
pub(crate) fn loss_series(
    rows: &[EpochRecord],
    steps: &[EpochRecord],
    prefix: &str,
) -> (Vec<Series>, &'static str) {
    let (rows, x_name, x): (Vec<&EpochRecord>, _, fn(&EpochRecord) -> f64) = if steps.is_empty() {
        (
            rows.iter().filter(|r| r.epoch > 0).collect(),
            "epoch",
            |r| r.epoch as f64,
        )
    } else {
        (steps.iter().collect(), "step", |r| r.step as f64)
    };
    let mut names: Vec<String> = Vec::new();
    for r in &rows {
        for (n, _) in &r.terms {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let mut series = vec![Series::new(
        format!("{prefix}loss"),
        rows.iter()
            .filter_map(|r| r.loss.map(|l| (x(r), l)))
            .collect(),
    )];
    for n in names {
        series.push(Series::new(
            format!("{prefix}{n}"),
            rows.iter()
                .filter_map(|r| r.term(&n).map(|v| (x(r), v)))
                .collect(),
        ));
    }
    (series, x_name)
}

/// Writes the report of the run in `dir` for `model` (its encoder as trained so far) and
/// returns its paths.
pub(crate) fn write<M: Method>(
    dir: &Path,
    config: &TrainConfig,
    model: &M,
    test_set: &ImageSet,
    device: &Device,
) -> Result<Report, TrainError> {
    let rows = MetricsFile::read(&dir.join("metrics.csv"))?;
    let steps = StepLog::read(&dir.join("steps.csv"))?;
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| TrainError::io(&plots, e))?;
    let transform = ViewTransform::new(config.data.augmentation.clone())?;
    let flat_config = FlatnessConfig::default();
    let flat = flatness::flatness(
        model,
        test_set,
        &transform,
        &flat_config,
        config.run.seed,
        device,
    );
    let shown: Vec<usize> = (0..test_set.len().min(PCA_IMAGES)).collect();
    let shown_set = test_set.subset(&shown);
    let features = knn::extract_features(
        model,
        &shown_set,
        &transform,
        FeatureKind::Backbone,
        false,
        device,
    );
    let (points, pca_variance) = principal_plane(&features.data, features.dim);
    let done_steps = rows.last().map_or(0, |r| r.step);
    let mixes = lambdas(config, model, done_steps);

    let mut figures: Vec<(&str, &str, Figure)> = Vec::new();
    let figure = |title: String, x: &str, y: &str, chart| Figure {
        title,
        x_label: x.into(),
        y_label: y.into(),
        chart,
    };
    let (loss, x_name) = loss_series(&rows, &steps, "");
    figures.push((
        "loss",
        "loss and its named terms",
        figure(
            format!("{}: loss", config.run.name),
            x_name,
            "loss",
            Chart::Lines(loss),
        ),
    ));
    let knn_name = Protocol::WeightedKnn.describe(config);
    let mut accuracy = vec![Series::new(
        "kNN top-1",
        column(&rows, |r| r.epoch as f64, |r| r.knn_top1),
    )];
    let probe_columns: [(&str, Column); 2] = [
        ("online probe, test", |r| r.online_probe_test_top1),
        ("online probe, training batches", |r| {
            r.online_probe_train_top1
        }),
    ];
    for (name, of) in probe_columns {
        let points = column(&rows, |r| r.epoch as f64, of);
        if !points.is_empty() {
            accuracy.push(Series::new(name, points));
        }
    }
    figures.push((
        "knn",
        "kNN top-1 and the online probe per epoch (epoch 0: random init)",
        figure(
            format!("{}: accuracy", config.run.name),
            "epoch",
            "top-1 (%)",
            Chart::Lines(accuracy),
        ),
    ));
    let lr = if steps.is_empty() {
        column(&rows, |r| r.epoch as f64, |r| r.lr)
    } else {
        column(&steps, |r| r.step as f64, |r| r.lr)
    };
    figures.push((
        "lr",
        "learning rate",
        figure(
            format!("{}: learning rate", config.run.name),
            if steps.is_empty() { "epoch" } else { "step" },
            "learning rate",
            Chart::Lines(vec![Series::new("", lr)]),
        ),
    ));
    if !mixes.is_empty() {
        let of = |kind: MixKind| -> Vec<f64> {
            mixes.iter().filter(|m| m.1 == kind).map(|m| m.0).collect()
        };
        let share = |kind: MixKind| {
            let v = of(kind);
            let n = v.len() as f64 / mixes.len() as f64;
            histogram(&v, (0.0, 1.0), LAMBDA_BINS)
                .into_iter()
                .enumerate()
                .map(|(b, f)| (b as f64, f * n))
                .collect::<Vec<_>>()
        };
        figures.push((
            "lambda",
            "the Un-Mix λ of every step taken",
            figure(
                format!("{}: Un-Mix λ over {} steps", config.run.name, mixes.len()),
                "λ (share of the image's own content)",
                "fraction of steps",
                Chart::Bars {
                    range: (0.0, 1.0),
                    bins: LAMBDA_BINS,
                    series: vec![
                        Series::new("global (mixup)", share(MixKind::Global)),
                        Series::new("region (CutMix box)", share(MixKind::Region)),
                    ],
                },
            ),
        ));
    }
    figures.push((
        "flatness",
        "instance-discrimination predictions, sorted (the Un-Mix paper's Figure 3)",
        figure(
            format!(
                "{}: sorted instance probabilities ({} images)",
                config.run.name, flat.images
            ),
            "rank",
            "mean probability",
            Chart::Lines(vec![Series::new(
                "",
                flat.sorted_probabilities
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| ((i + 1) as f64, p))
                    .collect(),
            )]),
        ),
    ));
    figures.push((
        "flatness_largest_p",
        "histogram of each prediction's largest probability",
        figure(
            format!("{}: largest instance probability", config.run.name),
            "largest probability",
            "fraction of images",
            Chart::Bars {
                range: (0.0, 1.0),
                bins: flat.max_probability_histogram.len(),
                series: vec![Series::new(
                    "",
                    flat.max_probability_histogram
                        .iter()
                        .enumerate()
                        .map(|(b, &f)| (b as f64, f))
                        .collect(),
                )],
            },
        ),
    ));
    let labels = shown_set.labels.clone().unwrap_or_default();
    let classes = shown_set.class_names.len().max(1);
    let by_class: Vec<Series> = (0..classes)
        .map(|c| {
            let name = shown_set.class_names.get(c).cloned().unwrap_or_default();
            let pts = points
                .iter()
                .zip(
                    labels
                        .iter()
                        .map(|&l| l as usize)
                        .chain(std::iter::repeat(0)),
                )
                .filter(|(_, l)| *l == c)
                .map(|(p, _)| *p)
                .collect();
            Series::new(name, pts)
        })
        .collect();
    figures.push((
        "pca",
        "2-D PCA of the test images' backbone features, coloured by class",
        figure(
            format!(
                "{}: PCA of {} test images' backbone features",
                config.run.name,
                points.len()
            ),
            &format!("PC 1 (variance {:.3})", pca_variance[0]),
            &format!("PC 2 (variance {:.3})", pca_variance[1]),
            Chart::Scatter(by_class),
        ),
    ));

    let (written, links) = super::save_figures(&figures, &plots)?;

    let summary = ReportSummary {
        name: config.run.name.clone(),
        method: method_kind(config),
        unmix: config.unmix.enabled,
        epochs_done: rows.last().map_or(0, |r| r.epoch),
        epochs: config.optim.epochs,
        knn_protocol: knn_name,
        knn_random_init: rows
            .first()
            .filter(|r| r.epoch == 0)
            .and_then(|r| r.knn_top1),
        knn_final: rows.iter().rev().find_map(|r| r.knn_top1),
        flatness_protocol: Protocol::Flatness.describe(config),
        flatness: flat,
        pca_variance,
        lambda_mean: (!mixes.is_empty())
            .then(|| mixes.iter().map(|m| m.0).sum::<f64>() / mixes.len() as f64),
    };
    let summary_path = dir.join("report.toml");
    let text = toml::to_string(&summary).map_err(|e| TrainError::Report {
        path: summary_path.clone(),
        message: e.to_string(),
    })?;
    std::fs::write(&summary_path, text).map_err(|e| TrainError::io(&summary_path, e))?;

    let markdown = dir.join("report.md");
    let text = markdown_text(config, &summary, &rows, &links, test_set.len());
    std::fs::write(&markdown, text).map_err(|e| TrainError::io(&markdown, e))?;
    Ok(Report {
        markdown,
        figures: written,
    })
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.2}%"))
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.4}"))
}

/// The flatness table's header and one row.
pub(crate) fn flatness_table(rows: &[(&str, &Flatness)]) -> String {
    let mut t = String::from(
        "| run | entropy (nats) | entropy / ln N | largest p | own view ranked first | p at ranks 1, 2, 5, 10 |\n|---|---|---|---|---|---|\n",
    );
    for (name, f) in rows {
        let rank = |r: usize| {
            f.sorted_probabilities
                .get(r - 1)
                .map_or("–".into(), |p| format!("{p:.4}"))
        };
        let _ = writeln!(
            t,
            "| {name} | {:.3} | {:.3} | {:.3} | {:.2}% | {}, {}, {}, {} |",
            f.entropy,
            f.relative_entropy,
            f.max_probability,
            100.0 * f.instance_top1,
            rank(1),
            rank(2),
            rank(5),
            rank(10)
        );
    }
    t
}

fn markdown_text(
    config: &TrainConfig,
    s: &ReportSummary,
    rows: &[EpochRecord],
    links: &str,
    test_images: usize,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Run report: {}\n", s.name);
    let _ = writeln!(
        md,
        "Method `{}`{}, dataset `{}`, {} of {} epochs, seed {}, device `{}`. Written by `unmix` at \
         the end of the run (again with `unmix report --run <dir>`).\n",
        s.method,
        if s.unmix { " + Un-Mix" } else { "" },
        config.data.path.display(),
        s.epochs_done,
        s.epochs,
        config.run.seed,
        config.run.device,
    );
    let _ = writeln!(
        md,
        "## Results\n\n| encoder | {} |\n|---|---|",
        s.knn_protocol
    );
    let _ = writeln!(md, "| random init | {} |", pct(s.knn_random_init));
    let _ = writeln!(
        md,
        "| after epoch {} | {} |",
        s.epochs_done,
        pct(s.knn_final)
    );
    if let (Some(a), Some(b)) = (s.knn_random_init, s.knn_final) {
        let _ = writeln!(md, "\nGain: {:+.2} points.", b - a);
    }
    if let Some(l) = s.lambda_mean {
        let _ = writeln!(md, "\nMean Un-Mix λ over the steps taken: {l:.4}.");
    }
    let _ = writeln!(
        md,
        "\nMore protocols (W-MSE's k-NN and linear evaluation, linear evaluation by MoCo's and SwAV's recipes, semi-supervised fine-tuning): `cargo xtask eval --checkpoint {} --protocol all`.\n",
        config.run.out_dir.join(&config.run.name).display()
    );
    let _ = writeln!(
        md,
        "## Flatness\n\n{} on {} of the {test_images} test images.\n",
        s.flatness_protocol, s.flatness.images
    );
    md.push_str(&flatness_table(&[(s.name.as_str(), &s.flatness)]));
    let _ = writeln!(md, "\n## Per epoch (`metrics.csv`)\n");
    let mut terms: Vec<&str> = Vec::new();
    for r in rows {
        for (n, _) in &r.terms {
            if !terms.contains(&n.as_str()) {
                terms.push(n);
            }
        }
    }
    let _ = write!(md, "| epoch | step | lr | loss |");
    terms.iter().for_each(|t| {
        let _ = write!(md, " {t} |");
    });
    let _ = writeln!(
        md,
        " mean λ | images/s | online probe, train | online probe, test | kNN top-1 |"
    );
    let _ = writeln!(md, "{}", "|---".repeat(9 + terms.len()) + "|");
    for r in rows {
        let _ = write!(
            md,
            "| {} | {} | {} | {} |",
            r.epoch,
            r.step,
            num(r.lr),
            num(r.loss)
        );
        terms.iter().for_each(|t| {
            let _ = write!(md, " {} |", num(r.term(t)));
        });
        let _ = writeln!(
            md,
            " {} | {} | {} | {} | {} |",
            num(r.lambda),
            r.images_per_s.map_or("–".into(), |v| format!("{v:.1}")),
            pct(r.online_probe_train_top1),
            pct(r.online_probe_test_top1),
            pct(r.knn_top1)
        );
    }
    let _ = writeln!(
        md,
        "\n## Figures\n\n{links}## Resolved config (`config.toml`)\n\n```toml\n{}```",
        config.to_toml()
    );
    md
}

/// Writes the report of the run in `run_dir` again from its latest checkpoint (its config and
/// weights), on `device` (default: the run's `run.device`).
pub fn write_report(run_dir: &Path, device: Option<&str>) -> Result<Report, TrainError> {
    let ck = checkpoint::latest(run_dir)?.ok_or_else(|| TrainError::RunDir {
        path: run_dir.to_path_buf(),
        message: "no finished checkpoint in checkpoints/ to report on".into(),
    })?;
    let config = checkpoint::config_of(&ck)?;
    let device = parse_device(device.unwrap_or(&config.run.device))?;
    let (train_set, test_set) = config.data.load()?;
    struct Task<'a> {
        dir: &'a Path,
        ck: &'a Path,
        config: &'a TrainConfig,
        test_set: &'a ImageSet,
        device: &'a Device,
    }
    impl MethodTask for Task<'_> {
        type Output = Report;
        fn run<M: Method>(self, model: M) -> Result<Report, TrainError> {
            let model = checkpoint::load_model(self.ck, model)?;
            write(self.dir, self.config, &model, self.test_set, self.device)
        }
    }
    config.method.build(
        &config.model,
        train_set.len(),
        &device,
        Task {
            dir: run_dir,
            ck: &ck,
            config: &config,
            test_set: &test_set,
            device: &device,
        },
    )
}
