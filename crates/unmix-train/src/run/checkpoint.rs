//! Checkpoints: one folder per finished epoch (`checkpoints/epoch-0003/`) holding the method
//! (encoders, momentum encoder, queue: `model.bpk`), the optimiser state (`optim.bpk`), the
//! loop state (`state.json`) and the resolved config that produced it (`config.toml`, which
//! `--resume` compares with the config it is given). A checkpoint is written into `epoch-0003.tmp/` and renamed into
//! place, so a crash never leaves a half-written checkpoint under a final name.
//!
//! No random-generator state needs saving: every random choice is a function of the run seed and
//! the step, epoch or sample index, so the loop state is enough to resume exactly.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::TrainError;

/// The loop's state at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Epochs completed.
    pub epoch: usize,
    /// Steps completed.
    pub step: u64,
    /// The run's seed.
    pub seed: u64,
    /// kNN top-1 (%) of the encoder at random initialisation.
    pub knn_random_init: Option<f64>,
    /// kNN top-1 (%) at this epoch, when evaluated.
    pub knn_top1: Option<f64>,
}

/// How many finished checkpoints to keep.
pub const KEEP_LAST: usize = 2;

fn epoch_dir(run_dir: &Path, epoch: usize) -> PathBuf {
    run_dir
        .join("checkpoints")
        .join(format!("epoch-{epoch:04}"))
}

/// Writes a checkpoint atomically and prunes old ones. Returns its folder.
pub fn save<M: Module>(
    run_dir: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    state: &LoopState,
    config: &TrainConfig,
) -> Result<PathBuf, TrainError> {
    save_with(run_dir, model, optim, state, config, |_| Ok(()))
}

/// [`save`], with `extra` writing more files into the checkpoint's folder before it is renamed
/// into place (the online probe's).
pub fn save_with<M: Module>(
    run_dir: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    state: &LoopState,
    config: &TrainConfig,
    extra: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<PathBuf, TrainError> {
    let fin = epoch_dir(run_dir, state.epoch);
    let tmp = fin.with_extension("tmp");
    let ck = |message: String| TrainError::Checkpoint {
        path: tmp.clone(),
        message,
    };
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    // Batch norm's last running-statistics update waits beside the stored value until the next
    // read; a record taken now would miss it (methods without a momentum update, whose
    // `momentum_update` reads them, and any epoch that ends without an evaluation). Fold it in.
    unmix_models::sync_running_stats(model);
    model
        .clone()
        .into_record()
        .save(tmp.join("model.bpk"))
        .map_err(|e| ck(e.to_string()))?;
    optim
        .save(tmp.join("optim.bpk"))
        .map_err(|e| ck(e.to_string()))?;
    let json = serde_json::to_string_pretty(state).expect("state serialises");
    std::fs::write(tmp.join("state.json"), json).map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::write(tmp.join("config.toml"), config.to_toml())
        .map_err(|e| TrainError::io(&tmp, e))?;
    extra(&tmp)?;
    if fin.exists() {
        std::fs::remove_dir_all(&fin).map_err(|e| TrainError::io(&fin, e))?;
    }
    std::fs::rename(&tmp, &fin).map_err(|e| TrainError::io(&fin, e))?;
    for old in list(run_dir)?.into_iter().rev().skip(KEEP_LAST) {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    Ok(fin)
}

/// Finished checkpoints of a run, oldest first (unfinished `.tmp` folders are ignored).
pub fn list(run_dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let dir = run_dir.join("checkpoints");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let epoch = name.strip_prefix("epoch-")?.parse::<usize>().ok()?;
            Some((epoch, e.path()))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// The newest finished checkpoint.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>, TrainError> {
    Ok(list(run_dir)?.pop())
}

/// Reads a checkpoint's loop state.
pub fn read_state(dir: &Path) -> Result<LoopState, TrainError> {
    let p = dir.join("state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| TrainError::io(&p, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
        path: p,
        message: format!("unreadable loop state: {e}"),
    })
}

/// Loads the method's record into `model` (same architecture).
pub fn load_model<M: Module>(dir: &Path, model: M) -> Result<M, TrainError> {
    let p = dir.join("model.bpk");
    let record = ModuleRecord::load(&p).map_err(|e| TrainError::Checkpoint {
        path: p.clone(),
        message: e.to_string(),
    })?;
    model
        .try_load_record(record)
        .map_err(|e| TrainError::Checkpoint {
            path: p,
            message: format!("does not match the configured model: {e}"),
        })
}

/// Loads the optimiser state.
///
/// Burn 0.22 puts the state on its default device (`BURN_DEVICE`, else the first GPU backend
/// compiled in) and moves it to the parameters' device at the next step; a program with CUDA
/// compiled in that resumes on a machine without a GPU must set `BURN_DEVICE=flex` before
/// threads start (the `unmix` binary does).
pub fn load_optim(dir: &Path, optim: ModuleOptimizer) -> Result<ModuleOptimizer, TrainError> {
    let p = dir.join("optim.bpk");
    optim.load(&p).map_err(|e| TrainError::Checkpoint {
        path: p,
        message: e.to_string(),
    })
}

/// The config a checkpoint was written with (`None` for a checkpoint that predates recording
/// it).
pub fn read_config(dir: &Path) -> Result<Option<TrainConfig>, TrainError> {
    let p = dir.join("config.toml");
    if !p.exists() {
        return Ok(None);
    }
    TrainConfig::load(&p).map(Some)
}

/// The config to rebuild a checkpoint's method with: the checkpoint's own `config.toml`, or its
/// run's for a checkpoint that predates recording it, with `model.backbone.pretrained` cleared
/// (the checkpoint holds the weights; the file it started from may be gone).
pub fn config_of(dir: &Path) -> Result<TrainConfig, TrainError> {
    let mut config = match read_config(dir)? {
        Some(config) => config,
        None => {
            let run_dir =
                dir.parent()
                    .and_then(|p| p.parent())
                    .ok_or_else(|| TrainError::Checkpoint {
                        path: dir.to_path_buf(),
                        message: "expected <run>/checkpoints/epoch-NNNN".into(),
                    })?;
            TrainConfig::load(&run_dir.join("config.toml"))?
        }
    };
    config.model.backbone.pretrained = None;
    Ok(config)
}
