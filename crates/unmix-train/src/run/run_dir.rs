//! A run directory belongs to one run: `<out_dir>/<name>`, the name a single folder inside
//! `out_dir`, held under an exclusive lock for as long as the run goes on.
//!
//! A fresh run refuses a directory that holds another run's files (the ways out are `--resume`,
//! another `run.name`, or `--overwrite`, which moves the old run aside, never deletes it); a
//! resumed run needs a finished checkpoint to resume from.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use crate::error::TrainError;

/// Files that mark a directory as holding a run.
const RUN_FILES: [&str; 4] = ["metrics.csv", "config.toml", "checkpoints", "steps.csv"];
const LOCK: &str = ".lock";

/// How a run takes its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A new run: the directory must not hold another run.
    Fresh,
    /// A new run; an existing run there is first moved aside to `<name>.old-<n>`.
    Overwrite,
    /// Continue the run there from its latest checkpoint.
    Resume,
}

/// A claimed run directory; the lock is released when it is dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: File,
}

impl RunDir {
    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Resolves `<out_dir>/<name>`, takes its lock and checks it suits `claim`.
    pub fn claim(out_dir: &Path, name: &str, claim: Claim) -> Result<Self, TrainError> {
        let path = out_dir.join(check_name(name)?);
        if claim == Claim::Overwrite && holds_a_run(&path) {
            // Hold the old run's lock while moving it, so a live run is never moved.
            let old_lock = lock(&path)?;
            let aside = (1..)
                .map(|n| out_dir.join(format!("{name}.old-{n}")))
                .find(|p| !p.exists())
                .expect("an unused name");
            std::fs::rename(&path, &aside).map_err(|e| TrainError::io(&path, e))?;
            drop(old_lock);
            eprintln!(
                "moved the previous run in {} to {}",
                path.display(),
                aside.display()
            );
        }
        std::fs::create_dir_all(&path).map_err(|e| TrainError::io(&path, e))?;
        let lock = lock(&path)?;
        match claim {
            Claim::Fresh if holds_a_run(&path) => Err(TrainError::RunDir {
                path,
                message: "already holds a run; continue it with --resume, choose another \
                          run.name, or pass --overwrite to move it aside"
                    .into(),
            }),
            Claim::Resume if !path.join("checkpoints").is_dir() => Err(TrainError::RunDir {
                path,
                message: "nothing to resume: no checkpoints/ folder (start the run without \
                          --resume)"
                    .into(),
            }),
            _ => Ok(Self { path, _lock: lock }),
        }
    }
}

/// A run name is one folder inside `out_dir`: not empty, no separators, no `..`.
fn check_name(name: &str) -> Result<&str, TrainError> {
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) if !name.contains(['/', '\\']) => Ok(name),
        _ => Err(TrainError::value(
            "run.name",
            format!("{name:?}"),
            "expected a single folder name inside run.out_dir (no '/', '..' or absolute path)",
        )),
    }
}

fn holds_a_run(path: &Path) -> bool {
    RUN_FILES.iter().any(|f| path.join(f).exists())
}

/// An exclusive advisory lock on `<path>/.lock`, released by the OS when the process ends, so a
/// crash never leaves a stale lock behind.
fn lock(path: &Path) -> Result<File, TrainError> {
    let p = path.join(LOCK);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| TrainError::io(&p, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(TrainError::RunDir {
            path: path.to_path_buf(),
            message: "another process is running in this directory (its lock is held)".into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(TrainError::io(&p, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("unmix-rundir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn names_stay_inside_out_dir() {
        let d = out_dir("names");
        for bad in ["../../x", "..", "a/b", "/tmp/x", ""] {
            let err = RunDir::claim(&d, bad, Claim::Fresh)
                .unwrap_err()
                .to_string();
            assert!(err.contains("run.name"), "{bad}: {err}");
        }
        assert!(!d.join("../x").exists());
        RunDir::claim(&d, "fine-name_1", Claim::Fresh).unwrap();
    }

    #[test]
    fn a_held_directory_refuses_a_second_claim() {
        let d = out_dir("lock");
        let first = RunDir::claim(&d, "r", Claim::Fresh).unwrap();
        let err = RunDir::claim(&d, "r", Claim::Fresh)
            .unwrap_err()
            .to_string();
        assert!(err.contains("another process"), "{err}");
        drop(first);
        RunDir::claim(&d, "r", Claim::Fresh).unwrap();
    }

    #[test]
    fn overwrite_moves_the_old_run_aside() {
        let d = out_dir("overwrite");
        std::fs::create_dir_all(d.join("r/checkpoints")).unwrap();
        std::fs::write(d.join("r/metrics.csv"), "old").unwrap();
        let err = RunDir::claim(&d, "r", Claim::Fresh)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--resume") && err.contains("--overwrite") && err.contains("run.name"),
            "{err}"
        );
        let run = RunDir::claim(&d, "r", Claim::Overwrite).unwrap();
        assert!(!run.path().join("metrics.csv").exists());
        assert_eq!(
            std::fs::read_to_string(d.join("r.old-1/metrics.csv")).unwrap(),
            "old"
        );
    }

    #[test]
    fn resume_needs_checkpoints() {
        let d = out_dir("resume");
        let err = RunDir::claim(&d, "r", Claim::Resume)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing to resume"), "{err}");
    }
}
