//! What a run logs: `metrics.csv`, one row per epoch (epoch 0 is the encoder at random
//! initialisation), and optionally `steps.csv`, one row every `run.log_every_steps` steps.
//!
//! Columns are the loop's own (`epoch`, `step`, `lr`, `loss`, `lambda`, `images_per_s`,
//! `online_probe_train_top1`, `online_probe_test_top1`, `knn_top1`) plus one `loss_<name>` column per named loss term the method returns, whatever
//! their names. An empty field means "not measured" (no kNN at that epoch, no Un-Mix λ); a
//! measured NaN is written as `NaN`.
//!
//! `metrics.csv` is rewritten whole (written beside and renamed) after each epoch, so it always
//! holds every finished epoch and nothing else; it is small (a row per epoch).

use std::path::{Path, PathBuf};

use crate::error::TrainError;

/// One epoch's summary. Epoch 0 is the encoder at random initialisation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EpochRecord {
    /// Epochs completed (0 = before training).
    pub epoch: usize,
    /// Steps completed.
    pub step: u64,
    /// Learning rate of the epoch's last step.
    pub lr: Option<f64>,
    /// Mean total loss.
    pub loss: Option<f64>,
    /// Mean of each named loss term, in the method's order.
    pub terms: Vec<(String, f64)>,
    /// Mean Un-Mix λ (absent when Un-Mix is off).
    pub lambda: Option<f64>,
    /// Training throughput.
    pub images_per_s: Option<f64>,
    /// The online probe's accuracy (%) on the epoch's training batches, each before its update
    /// (absent without a probe).
    pub online_probe_train_top1: Option<f64>,
    /// The online probe's accuracy (%) on the test images (at evaluated epochs).
    pub online_probe_test_top1: Option<f64>,
    /// Weighted kNN top-1 in % (absent when not evaluated at this epoch).
    pub knn_top1: Option<f64>,
}

impl EpochRecord {
    /// The mean of the loss term `name` (`plain`, `mixed`, ...), when the method logged one.
    pub fn term(&self, name: &str) -> Option<f64> {
        self.terms.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

const FIXED: [&str; 4] = ["epoch", "step", "lr", "loss"];
const TAIL: [&str; 5] = [
    "lambda",
    "images_per_s",
    "online_probe_train_top1",
    "online_probe_test_top1",
    "knn_top1",
];
const TERM_PREFIX: &str = "loss_";

fn field(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

fn parse(path: &Path, column: &str, text: &str) -> Result<Option<f64>, TrainError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<f64>()
        .map(Some)
        .map_err(|_| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: format!("column {column}: {text:?} is not a number"),
        })
}

/// `metrics.csv` of a run directory: the rows so far, written whole after each change.
#[derive(Debug)]
pub struct MetricsFile {
    path: PathBuf,
    rows: Vec<EpochRecord>,
}

impl MetricsFile {
    /// A new, empty file in `run_dir` (written at the first [`MetricsFile::push`]).
    pub fn create(run_dir: &Path) -> Self {
        Self {
            path: run_dir.join("metrics.csv"),
            rows: Vec::new(),
        }
    }

    /// The file of a run being resumed, keeping the rows up to `through_epoch` (the last
    /// checkpoint's; rows of an epoch it does not hold are dropped).
    pub fn resume(run_dir: &Path, through_epoch: usize) -> Result<Self, TrainError> {
        let path = run_dir.join("metrics.csv");
        let mut rows = Self::read(&path)?;
        rows.retain(|r| r.epoch <= through_epoch);
        Ok(Self { path, rows })
    }

    /// The rows so far.
    pub fn rows(&self) -> &[EpochRecord] {
        &self.rows
    }

    /// Adds a row and rewrites the file.
    pub fn push(&mut self, record: EpochRecord) -> Result<(), TrainError> {
        self.rows.push(record);
        self.write()
    }

    fn write(&self) -> Result<(), TrainError> {
        let io = |e: std::io::Error| TrainError::io(&self.path, e);
        let csv_err = |e: csv::Error| TrainError::io(&self.path, std::io::Error::other(e));
        // Term columns in order of first appearance.
        let mut terms: Vec<&str> = Vec::new();
        for r in &self.rows {
            for (name, _) in &r.terms {
                if !terms.contains(&name.as_str()) {
                    terms.push(name);
                }
            }
        }
        let tmp = self.path.with_extension("csv.tmp");
        let mut w = csv::Writer::from_path(&tmp).map_err(csv_err)?;
        let header: Vec<String> = FIXED
            .iter()
            .map(|s| s.to_string())
            .chain(terms.iter().map(|t| format!("{TERM_PREFIX}{t}")))
            .chain(TAIL.iter().map(|s| s.to_string()))
            .collect();
        w.write_record(&header).map_err(csv_err)?;
        for r in &self.rows {
            let row: Vec<String> = [r.epoch.to_string(), r.step.to_string(), field(r.lr)]
                .into_iter()
                .chain([field(r.loss)])
                .chain(terms.iter().map(|t| field(r.term(t))))
                .chain([
                    field(r.lambda),
                    field(r.images_per_s),
                    field(r.online_probe_train_top1),
                    field(r.online_probe_test_top1),
                    field(r.knn_top1),
                ])
                .collect();
            w.write_record(&row).map_err(csv_err)?;
        }
        w.flush().map_err(io)?;
        drop(w);
        std::fs::rename(&tmp, &self.path).map_err(io)
    }

    /// All rows of a metrics file (none when it does not exist).
    pub fn read(path: &Path) -> Result<Vec<EpochRecord>, TrainError> {
        let mut reader = match csv::Reader::from_path(path) {
            Ok(r) => r,
            Err(e) => {
                if let csv::ErrorKind::Io(io) = e.kind()
                    && io.kind() == std::io::ErrorKind::NotFound
                {
                    return Ok(Vec::new());
                }
                return Err(TrainError::io(path, std::io::Error::other(e)));
            }
        };
        let csv_err = |e: csv::Error| TrainError::io(path, std::io::Error::other(e));
        let header: Vec<String> = reader
            .headers()
            .map_err(csv_err)?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(csv_err)?;
            let mut r = EpochRecord::default();
            for (column, text) in header.iter().zip(record.iter()) {
                let v = parse(path, column, text)?;
                match column.as_str() {
                    "epoch" => r.epoch = v.unwrap_or(0.0) as usize,
                    "step" => r.step = v.unwrap_or(0.0) as u64,
                    "lr" => r.lr = v,
                    "loss" => r.loss = v,
                    "lambda" => r.lambda = v,
                    "images_per_s" => r.images_per_s = v,
                    "knn_top1" => r.knn_top1 = v,
                    "online_probe_train_top1" => r.online_probe_train_top1 = v,
                    "online_probe_test_top1" => r.online_probe_test_top1 = v,
                    other => {
                        if let (Some(name), Some(v)) = (other.strip_prefix(TERM_PREFIX), v) {
                            r.terms.push((name.to_string(), v));
                        }
                    }
                }
            }
            rows.push(r);
        }
        Ok(rows)
    }
}

/// `steps.csv`: the loss of every `every`-th step, appended as the run goes (for loss curves).
/// Columns: `step`, `lr`, `loss`, `loss_<term>`..., `lambda`.
#[derive(Debug)]
pub struct StepLog {
    every: u64,
    path: PathBuf,
    header_written: bool,
}

impl StepLog {
    /// Logs every `every` steps into `run_dir/steps.csv` (nothing when `every` is 0). A fresh
    /// run starts the file; a resumed one keeps its rows before `resume_step` (steps of an
    /// epoch no checkpoint holds are dropped, as they will be run again).
    pub fn open(run_dir: &Path, every: u64, resume_step: Option<u64>) -> Result<Self, TrainError> {
        let path = run_dir.join("steps.csv");
        let mut log = Self {
            every,
            path,
            header_written: false,
        };
        if every == 0 {
            return Ok(log);
        }
        let mut text = String::new();
        if let Some(s) = resume_step
            && let Ok(old) = std::fs::read_to_string(&log.path)
        {
            let mut lines = old.lines();
            if let Some(header) = lines.next() {
                text.push_str(header);
                text.push('\n');
                log.header_written = true;
                for l in lines.filter(|l| {
                    l.split(',')
                        .next()
                        .and_then(|f| f.parse::<u64>().ok())
                        .is_some_and(|step| step < s)
                }) {
                    text.push_str(l);
                    text.push('\n');
                }
            }
        }
        std::fs::write(&log.path, text).map_err(|e| TrainError::io(&log.path, e))?;
        Ok(log)
    }

    /// The rows of a `steps.csv` (none when it does not exist): `epoch` is 0 in each, the other
    /// fields as logged.
    pub fn read(path: &Path) -> Result<Vec<EpochRecord>, TrainError> {
        MetricsFile::read(path)
    }

    /// Whether step `step` is one to log.
    pub fn wants(&self, step: u64) -> bool {
        self.every != 0 && step.is_multiple_of(self.every)
    }

    /// Appends step `step`'s row when it is one to log.
    pub fn log(
        &mut self,
        step: u64,
        lr: f64,
        loss: f64,
        terms: &[(String, f64)],
        lambda: Option<f64>,
    ) -> Result<(), TrainError> {
        if !self.wants(step) {
            return Ok(());
        }
        let io = |e: std::io::Error| TrainError::io(&self.path, e);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        let csv_err = |e: csv::Error| TrainError::io(&self.path, std::io::Error::other(e));
        if !self.header_written {
            let header: Vec<String> = ["step", "lr", "loss"]
                .iter()
                .map(|s| s.to_string())
                .chain(terms.iter().map(|(t, _)| format!("{TERM_PREFIX}{t}")))
                .chain(["lambda".to_string()])
                .collect();
            w.write_record(&header).map_err(csv_err)?;
            self.header_written = true;
        }
        let row: Vec<String> = [step.to_string(), lr.to_string(), loss.to_string()]
            .into_iter()
            .chain(terms.iter().map(|(_, v)| v.to_string()))
            .chain([field(lambda)])
            .collect();
        w.write_record(&row).map_err(csv_err)?;
        w.flush().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("unmix-metrics-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Random init has no loss and no terms; later epochs have whatever terms the method
    /// names; "not evaluated" comes back as absent and a measured NaN as NaN.
    #[test]
    fn rows_round_trip_with_the_methods_terms_and_absent_values() {
        let d = dir("roundtrip");
        let mut m = MetricsFile::create(&d);
        let init = EpochRecord {
            knn_top1: Some(55.5),
            ..EpochRecord::default()
        };
        let one = EpochRecord {
            epoch: 1,
            step: 10,
            lr: Some(0.03),
            loss: Some(f64::NAN),
            terms: vec![("plain".into(), 4.5), ("mixed".into(), 1.25)],
            lambda: Some(0.5),
            images_per_s: Some(100.0),
            online_probe_train_top1: Some(31.25),
            online_probe_test_top1: None,
            knn_top1: None,
        };
        m.push(init.clone()).unwrap();
        m.push(one.clone()).unwrap();
        let text = std::fs::read_to_string(d.join("metrics.csv")).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "epoch,step,lr,loss,loss_plain,loss_mixed,lambda,images_per_s,\
             online_probe_train_top1,online_probe_test_top1,knn_top1"
        );
        let rows = MetricsFile::read(&d.join("metrics.csv")).unwrap();
        assert_eq!(rows[0], init);
        assert!(rows[1].loss.unwrap().is_nan());
        assert_eq!(rows[1].knn_top1, None);
        assert_eq!(rows[1].online_probe_train_top1, Some(31.25));
        assert_eq!(rows[1].term("mixed"), Some(1.25));
        assert_eq!(rows[1].terms, one.terms);
        let resumed = MetricsFile::resume(&d, 0).unwrap();
        assert_eq!(resumed.rows(), &[init]);
    }

    #[test]
    fn the_step_log_keeps_only_steps_a_checkpoint_holds_on_resume() {
        let d = dir("steps");
        let terms = vec![("plain".to_string(), 1.0)];
        let mut log = StepLog::open(&d, 2, None).unwrap();
        for step in 0..6 {
            log.log(step, 0.1, 1.0, &terms, None).unwrap();
        }
        let mut log = StepLog::open(&d, 2, Some(3)).unwrap();
        log.log(4, 0.1, 2.0, &terms, None).unwrap();
        let text = std::fs::read_to_string(d.join("steps.csv")).unwrap();
        let steps: Vec<&str> = text.lines().map(|l| l.split(',').next().unwrap()).collect();
        assert_eq!(steps, ["step", "0", "2", "4"]);
    }
}
