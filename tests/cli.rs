//! The `unmix` binary: config errors, device errors, train → checkpoint → eval, and resume.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unmix(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_unmix"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("unmix-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny MoCo + Un-Mix run: 20 images per class, width 4, two epochs.
fn tiny_config(dir: &Path, extra: &str) -> PathBuf {
    let text = format!(
        r#"
[run]
name = "tiny"
out_dir = "{out}"
seed = 3

[data]
dataset = "fashion_mnist"
path = "datasets/fashion-mnist"
train_per_class = 20
test_per_class = 10

[data.augmentation]
crop_size = 16
mean = [0.286, 0.286, 0.286]
std = [0.353, 0.353, 0.353]

[model.backbone]
layers = [2, 2, 2, 2]
width = 4
stem = "cifar"
bn_splits = 2

[model.head]
kind = "mlp"
hidden_dim = 32
out_dim = 16

[method]
kind = "moco"
queue_len = 256
{extra}

[optim]
epochs = 2
batch_size = 32
lr = 0.06

[eval]
knn_k = 20
"#,
        out = dir.display()
    );
    let p = dir.join("tiny.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn an_unknown_key_is_named_with_the_file() {
    let dir = tmp("badkey");
    let cfg = tiny_config(&dir, "queue_size = 12");
    let (ok, text) = unmix(&["train", "--config", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        text.contains("queue_size") && text.contains("tiny.toml"),
        "{text}"
    );
}

#[test]
fn a_bad_value_is_named_with_what_was_expected() {
    let dir = tmp("badvalue");
    let cfg = tiny_config(&dir, "momentum = 1.5");
    let (ok, text) = unmix(&["train", "--config", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert!(text.contains("method.momentum = 1.5"), "{text}");
}

#[test]
fn a_backend_not_compiled_in_names_its_feature() {
    if cfg!(feature = "cuda") {
        return;
    }
    let dir = tmp("device");
    let cfg = tiny_config(&dir, "");
    let (ok, text) = unmix(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--device",
        "cuda",
    ]);
    assert!(!ok);
    assert!(text.contains("--features cuda"), "{text}");
}

fn metrics(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn train_writes_a_run_directory_and_resume_reproduces_an_uninterrupted_run() {
    let dir = tmp("resume");
    let cfg = tiny_config(&dir, "");
    let cfg = cfg.to_str().unwrap();
    let (ok, text) = unmix(&["train", "--config", cfg]);
    assert!(ok, "{text}");
    assert!(text.contains("| random init |"), "{text}");
    let run = dir.join("tiny");
    assert!(run.join("config.toml").exists());
    let full = metrics(&run);
    assert_eq!(full.len(), 4, "{full:?}"); // header, random init, 2 epochs
    assert!(run.join("checkpoints/epoch-0002/model.bpk").exists());
    assert!(run.join("checkpoints/epoch-0002/optim.bpk").exists());

    // The same run interrupted after one epoch and resumed.
    let dir2 = tmp("resume2");
    let cfg2 = tiny_config(&dir2, "");
    let cfg2 = cfg2.to_str().unwrap();
    let (ok, text) = unmix(&["train", "--config", cfg2, "--stop-after", "1"]);
    assert!(ok, "{text}");
    let run2 = dir2.join("tiny");
    assert_eq!(metrics(&run2).len(), 3);
    let (ok, text) = unmix(&["train", "--config", cfg2, "--resume"]);
    assert!(ok, "{text}");
    assert!(text.contains("resuming from"), "{text}");
    let resumed = metrics(&run2);
    assert_eq!(resumed.len(), 4);
    // Loss, λ and kNN of the resumed epoch equal the uninterrupted run's (throughput aside).
    let strip = |row: &str| {
        let mut f: Vec<&str> = row.split(',').collect();
        f.remove(7);
        f.join(",")
    };
    for (a, b) in full.iter().zip(&resumed) {
        assert_eq!(strip(a), strip(b));
    }

    // Evaluating the checkpoint prints a markdown table naming the protocol.
    let ck = run.join("checkpoints/epoch-0002");
    let (ok, text) = unmix(&["eval", "--checkpoint", ck.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("| weighted kNN"), "{text}");
    let last_knn = full[3].rsplit(',').next().unwrap();
    assert!(
        text.contains(&format!("{last_knn}%")),
        "{text} vs {last_knn}"
    );
}
