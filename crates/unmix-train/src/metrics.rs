//! The per-epoch metrics file of a run (`metrics.csv`).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::TrainError;

/// One epoch's summary. Epoch 0 is the encoder at random initialisation.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRecord {
    /// Epochs completed (0 = before training).
    pub epoch: usize,
    /// Steps completed.
    pub step: u64,
    /// Learning rate used in the epoch.
    pub lr: f64,
    /// Mean total loss.
    pub loss: f64,
    /// Mean of the base method's terms.
    pub loss_plain: f64,
    /// Mean of the Un-Mix terms (NaN when off).
    pub loss_mixed: f64,
    /// Mean λ (NaN when off).
    pub lambda: f64,
    /// Training throughput.
    pub images_per_s: f64,
    /// Weighted kNN top-1 in % (NaN when not evaluated).
    pub knn_top1: f64,
}

const HEADER: &str = "epoch,step,lr,loss,loss_plain,loss_mixed,lambda,images_per_s,knn_top1";

impl EpochRecord {
    fn to_csv(&self) -> String {
        format!(
            "{},{},{:.6},{:.5},{:.5},{:.5},{:.4},{:.1},{:.2}",
            self.epoch,
            self.step,
            self.lr,
            self.loss,
            self.loss_plain,
            self.loss_mixed,
            self.lambda,
            self.images_per_s,
            self.knn_top1
        )
    }

    fn from_csv(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 {
            return None;
        }
        let p = |i: usize| f[i].parse::<f64>().ok();
        Some(Self {
            epoch: f[0].parse().ok()?,
            step: f[1].parse().ok()?,
            lr: p(2)?,
            loss: p(3)?,
            loss_plain: p(4)?,
            loss_mixed: p(5)?,
            lambda: p(6)?,
            images_per_s: p(7)?,
            knn_top1: p(8)?,
        })
    }
}

/// `metrics.csv` in a run directory.
#[derive(Debug)]
pub struct MetricsFile {
    path: PathBuf,
}

impl MetricsFile {
    /// Opens the file, keeping only rows up to `keep_through_epoch` (rows of an interrupted
    /// epoch are dropped on resume), creating it with its header when absent.
    pub fn open(run_dir: &Path, keep_through_epoch: Option<usize>) -> Result<Self, TrainError> {
        let path = run_dir.join("metrics.csv");
        let rows: Vec<EpochRecord> = match keep_through_epoch {
            Some(e) => Self::read(&path)?
                .into_iter()
                .filter(|r| r.epoch <= e)
                .collect(),
            None => Vec::new(),
        };
        let mut text = format!("{HEADER}\n");
        for r in rows {
            text.push_str(&r.to_csv());
            text.push('\n');
        }
        std::fs::write(&path, text).map_err(|e| TrainError::io(&path, e))?;
        Ok(Self { path })
    }

    /// Appends one row.
    pub fn append(&self, record: &EpochRecord) -> Result<(), TrainError> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| TrainError::io(&self.path, e))?;
        writeln!(f, "{}", record.to_csv()).map_err(|e| TrainError::io(&self.path, e))
    }

    /// All rows of a metrics file (none when it does not exist).
    pub fn read(path: &Path) -> Result<Vec<EpochRecord>, TrainError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(text
                .lines()
                .skip(1)
                .filter_map(EpochRecord::from_csv)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(TrainError::io(path, e)),
        }
    }
}
