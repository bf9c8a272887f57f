//! The `unmix` binary: config errors, device errors, train → checkpoint → eval, and resume.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unmix(args: &[&str]) -> (bool, String) {
    let (code, text) = unmix_code(args);
    (code == Some(0), text)
}

/// The exit code and everything printed.
fn unmix_code(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_unmix"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
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

/// Without the `cuda` feature the error names it; with it (CI's build), on a machine without
/// the NVIDIA driver the error names the library rather than panicking in the CUDA runtime.
#[test]
fn a_backend_not_compiled_in_or_not_installed_is_named() {
    let driver_installed = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/local/cuda/lib64",
    ]
    .iter()
    .any(|d| Path::new(d).join("libcuda.so.1").exists());
    if cfg!(feature = "cuda") && driver_installed {
        eprintln!("skipped: this machine has a CUDA driver");
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
    if cfg!(feature = "cuda") {
        assert!(
            text.contains("libcuda.so") && !text.contains("panicked"),
            "{text}"
        );
    } else {
        assert!(text.contains("--features cuda"), "{text}");
    }
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
    let last_knn: f64 = full[3].rsplit(',').next().unwrap().parse().unwrap();
    assert!(
        text.contains(&format!("{last_knn:.2}%")),
        "{text} vs {last_knn}"
    );
    // W-MSE's protocols are named as such, with their parameters, and give percentages.
    let eval_as = |protocol: &str| {
        unmix(&[
            "eval",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--protocol",
            protocol,
        ])
    };
    let (ok, text) = eval_as("wmse-knn");
    assert!(ok, "{text}");
    assert!(
        text.contains("| W-MSE k-NN (5-NN majority vote, Euclidean, un-normalised backbone"),
        "{text}"
    );
    assert!(!text.contains("weighted kNN"), "{text}");
    // The linear evaluation reports top-1 and top-5.
    let (ok, text) = eval_as("wmse-linear");
    assert!(ok, "{text}");
    assert!(
        text.contains("| W-MSE linear (frozen un-normalised backbone features"),
        "{text}"
    );
    let row = text.lines().last().unwrap();
    assert_eq!(row.matches('%').count(), 2, "top-1 and top-5: {row}");
    // Flatness: a table of its own, one row per checkpoint, side by side.
    let ck1 = run.join("checkpoints/epoch-0001");
    let (ok, flat) = unmix(&[
        "eval",
        "--checkpoint",
        ck1.to_str().unwrap(),
        "--checkpoint",
        ck.to_str().unwrap(),
        "--protocol",
        "flatness",
    ]);
    assert!(ok, "{flat}");
    assert!(
        flat.contains("flatness (instance discrimination among up to 1000 held-out"),
        "{flat}"
    );
    assert!(flat.contains("means over the 100 images"), "{flat}");
    let flat_rows: Vec<&str> = flat.lines().filter(|l| l.contains("/epoch-000")).collect();
    assert_eq!(flat_rows.len(), 2, "{flat}");
    assert!(flat_rows[0].contains("epoch-0001") && flat_rows[1].contains("epoch-0002"));
    // Entropy / ln N lies in [0, 1]: the third column.
    for r in &flat_rows {
        let rel: f64 = r.split('|').nth(3).unwrap().trim().parse().unwrap();
        assert!((0.0..=1.0).contains(&rel), "{r}");
    }
    // `all`: one row per protocol, the same figures as one at a time, then flatness (the
    // trained protocols at one epoch).
    let (ok, all) = unmix(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--protocol",
        "all",
        "--epochs",
        "1",
    ]);
    assert!(ok, "{all}");
    let rows: Vec<&str> = all.lines().filter(|l| l.contains("images |")).collect();
    assert_eq!(rows.len(), 6, "{all}");
    assert!(
        rows[0].contains("weighted kNN") && rows[1].contains("W-MSE k-NN"),
        "{all}"
    );
    assert_eq!(rows[2], row, "the linear row as run alone");
    assert!(
        rows[3].contains("| linear, MoCo's recipe (frozen trunk in eval mode")
            && rows[3].contains("SGD lr 30,"),
        "{all}"
    );
    assert!(
        rows[4].contains("| linear, SwAV's recipe")
            && rows[4].contains("cosine to 0, 1 epochs, batch 32"),
        "{all}"
    );
    // 10% of the 200 training images, two from each class.
    assert!(rows[5].contains("| semi-supervised fine-tuning, SwAV's recipe (10% of the labels, class-balanced, seed 3") && rows[5].contains("| 20 images |"), "{all}");
    for r in &rows[3..] {
        assert_eq!(
            r.matches('%').count(),
            2 + usize::from(r.contains("10%")),
            "top-1 and top-5: {r}"
        );
    }
    assert!(all.contains(flat_rows[1]), "{all}");
    // A label list that names a file name instead of an index is named with its line.
    let list = dir.join("subset.txt");
    std::fs::write(&list, "0\nn01440764_10026.JPEG\n").unwrap();
    let (ok, text) = unmix(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--protocol",
        "semi",
        "--labels",
        list.to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    assert!(
        !ok && text.contains("subset.txt") && text.contains("line 2"),
        "{text}"
    );
    let (ok, text) = eval_as("x");
    assert!(!ok && text.contains("--protocol"), "{text}");
}

/// CMC's two encoders under the trained protocols: the L half reads the first channel, the ab
/// half the other two, and the head sees both features (CMC's evaluation); one epoch each.
#[test]
fn cmc_trained_protocols_read_both_halves() {
    let dir = tmp("cmc-eval");
    let cfg = dir.join("cmc.toml");
    let text = std::fs::read_to_string(tiny_config(&dir, ""))
        .unwrap()
        .replace(
            "kind = \"moco\"\nqueue_len = 256",
            "kind = \"cmc\"\nnce_k = 64\nfirst_channels = 1",
        )
        .replace("bn_splits = 2", "")
        .replace("epochs = 2", "epochs = 1")
        .replace(
            "mean = [0.286, 0.286, 0.286]\nstd = [0.353, 0.353, 0.353]",
            "color_space = \"ycbcr\"\nmean = [116.151, 121.080, 132.342]\n\
             std = [109.500, 111.855, 111.964]",
        );
    assert!(text.contains("\"cmc\"") && text.contains("ycbcr"), "{text}");
    std::fs::write(&cfg, text).unwrap();
    let (ok, text) = unmix(&["train", "--config", cfg.to_str().unwrap()]);
    assert!(ok, "{text}");
    let run = dir.join("tiny");
    for protocol in ["linear", "semi"] {
        let (ok, text) = unmix(&[
            "eval",
            "--checkpoint",
            run.to_str().unwrap(),
            "--protocol",
            protocol,
            "--epochs",
            "1",
        ]);
        assert!(ok, "{protocol}: {text}");
        let row = text.lines().find(|l| l.contains("images |")).unwrap();
        assert!(row.ends_with('|') && row.matches('%').count() >= 2, "{row}");
    }
}

/// Everything under `dir` with its contents, to show a refused command changed nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != ".lock") {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A directory holding a finished one-epoch run of `tiny_config(dir, extra)`.
fn one_finished_epoch(name: &str, extra: &str) -> (PathBuf, String) {
    let dir = tmp(name);
    let cfg = tiny_config(&dir, extra).to_str().unwrap().to_string();
    let (ok, text) = unmix(&["train", "--config", &cfg, "--stop-after", "1"]);
    assert!(ok, "{text}");
    (dir, cfg)
}

/// A fresh `train` on a directory holding another run refuses and names the ways out; with
/// `--overwrite` the old run is moved aside, whole.
#[test]
fn a_fresh_run_never_overwrites_another_run() {
    let (dir, cfg) = one_finished_epoch("occupied", "");
    let before = snapshot(&dir.join("tiny"));
    let (ok, text) = unmix(&["train", "--config", &cfg]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("--resume") && text.contains("--overwrite") && text.contains("run.name"),
        "{text}"
    );
    assert_eq!(
        snapshot(&dir.join("tiny")),
        before,
        "the refused run touched the old one"
    );

    let (ok, text) = unmix(&[
        "train",
        "--config",
        &cfg,
        "--overwrite",
        "--stop-after",
        "1",
    ]);
    assert!(ok, "{text}");
    let aside: Vec<(PathBuf, Vec<u8>)> = snapshot(&dir.join("tiny.old-1"))
        .into_iter()
        .map(|(p, b)| {
            (
                dir.join("tiny")
                    .join(p.strip_prefix(dir.join("tiny.old-1")).unwrap()),
                b,
            )
        })
        .collect();
    assert_eq!(aside, before, "the old run was not moved aside intact");
    assert!(dir.join("tiny/checkpoints/epoch-0001").is_dir());
}

/// `--resume` needs a checkpoint, and refuses settings that would change the run, naming the
/// keys, or fewer epochs than were run; more epochs are fine. A refused resume changes nothing.
#[test]
fn resume_refuses_what_would_lose_or_change_the_run() {
    let dir = tmp("resume-empty");
    let cfg = tiny_config(&dir, "");
    let (ok, text) = unmix(&["train", "--config", cfg.to_str().unwrap(), "--resume"]);
    assert!(!ok);
    assert!(text.contains("nothing to resume"), "{text}");
    assert!(!dir.join("tiny/metrics.csv").exists());

    let (dir, _) = one_finished_epoch("resume-changed", "");
    let before = snapshot(&dir.join("tiny"));
    let changed = tiny_config(&dir, "temperature = 0.5");
    let text = std::fs::read_to_string(&changed)
        .unwrap()
        .replace("lr = 0.06", "lr = 0.1");
    std::fs::write(&changed, text).unwrap();
    let (ok, text) = unmix(&["train", "--config", changed.to_str().unwrap(), "--resume"]);
    assert!(!ok);
    assert!(
        text.contains("method.temperature: 0.1 -> 0.5") && text.contains("optim.lr: 0.06 -> 0.1"),
        "{text}"
    );
    assert_eq!(snapshot(&dir.join("tiny")), before);

    let shorter = tiny_config(&dir, "");
    let text = std::fs::read_to_string(&shorter)
        .unwrap()
        .replace("epochs = 2", "epochs = 1")
        .replace("[eval]", "[eval]\nevery_epochs = 3");
    std::fs::write(&shorter, &text).unwrap();
    let (ok, out) = unmix(&["train", "--config", shorter.to_str().unwrap(), "--resume"]);
    assert!(ok, "one epoch of one is done: nothing to run, {out}");
    std::fs::write(&shorter, text.replace("epochs = 1", "epochs = 3")).unwrap();
    let (ok, out) = unmix(&["train", "--config", shorter.to_str().unwrap(), "--resume"]);
    assert!(ok, "{out}");
    assert!(dir.join("tiny/checkpoints/epoch-0003").is_dir());
    std::fs::write(&shorter, text.replace("epochs = 1", "epochs = 2")).unwrap();
    let (ok, out) = unmix(&["train", "--config", shorter.to_str().unwrap(), "--resume"]);
    assert!(!ok);
    assert!(
        out.contains("optim.epochs = 2") && out.contains("at least 3"),
        "{out}"
    );
}

/// A run whose loss turns NaN stops within one step with exit code 3, keeps the checkpoint of
/// the last good epoch and writes none for the bad one. The learning rate is multiplied by
/// 1e30 after epoch 1 (a step schedule), which makes the weights overflow.
#[test]
fn a_diverging_run_stops_and_keeps_its_good_checkpoint() {
    let dir = tmp("diverge");
    let cfg = tiny_config(&dir, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "lr = 0.06",
        "lr = 0.06\n\n[optim.schedule]\nkind = \"step\"\nmilestones = [1]\ngamma = 1e30\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let (code, text) = unmix_code(&["train", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("training diverged") && text.contains("(epoch 2)"),
        "{text}"
    );
    let run = dir.join("tiny");
    assert!(run.join("checkpoints/epoch-0001/model.bpk").exists());
    assert!(!run.join("checkpoints/epoch-0002").exists());
    assert_eq!(metrics(&run).len(), 3, "{:?}", metrics(&run)); // header, init, epoch 1
}

#[test]
fn a_run_name_cannot_leave_out_dir() {
    let dir = tmp("escape");
    let cfg = tiny_config(&dir, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("name = \"tiny\"", "name = \"../../escaped\"");
    std::fs::write(&cfg, text).unwrap();
    let (ok, text) = unmix(&["train", "--config", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert!(text.contains("run.name"), "{text}");
    assert!(!dir.join("../../escaped").exists());
}

/// `unmix export` writes a checkpoint's backbone under torchvision's names, and a new run that
/// starts from it (`[model.backbone.pretrained]`) starts from that backbone: its kNN on backbone
/// features before any step equals the checkpoint's. (That PyTorch's torchvision loads such a
/// file and computes the same features is `unmix-models`' `torchvision_weights` test.)
#[test]
fn a_checkpoint_exports_and_a_new_run_starts_from_the_export() {
    let dir = tmp("export");
    let cfg = tiny_config(&dir, "");
    let cfg = cfg.to_str().unwrap();
    // kNN on backbone features of 1,000 test images, fine enough to tell the two encoders apart.
    let one_epoch = |more: &[&str]| {
        let args = ["train", "--config", cfg, "--stop-after", "1", "--set"];
        let knn_settings = [
            "eval.features=\"backbone\"",
            "--set",
            "data.test_per_class=100",
        ];
        unmix(&[&args[..], &knn_settings[..], more].concat())
    };
    let (ok, text) = one_epoch(&[]);
    assert!(ok, "{text}");
    let knn = |run: &str, row: usize| {
        let rows = metrics(&dir.join(run));
        rows[row].rsplit(',').next().unwrap().to_string()
    };
    let out = dir.join("exported/backbone.safetensors");
    let (ok, text) = unmix(&[
        "export",
        "--checkpoint",
        dir.join("tiny").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    // Width 4: 100 tensors (20 convolutions, 20 batch norms × 4), 32-d features; torchvision's
    // constructors are width 64, which the note says.
    assert!(
        text.contains("| backbone |") && text.contains("| 100 | 32 |"),
        "{text}"
    );
    assert!(text.contains("width 4"), "{text}");
    let bytes = std::fs::read(&out).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8_lossy(&bytes[8..8 + header_len]);
    assert!(
        header.contains("\"layer2.0.downsample.1.running_var\""),
        "{header}"
    );

    let from = format!("model.backbone.pretrained.path=\"{}\"", out.display());
    let (ok, text) = one_epoch(&["--set", "run.name=\"from-export\"", "--set", &from]);
    assert!(ok, "{text}");
    assert_ne!(
        knn("tiny", 1),
        knn("tiny", 2),
        "the epoch changed the encoder"
    );
    assert_eq!(knn("from-export", 1), knn("tiny", 2));
    let resolved = std::fs::read_to_string(dir.join("from-export/config.toml")).unwrap();
    assert!(
        resolved.contains("[model.backbone.pretrained]"),
        "{resolved}"
    );

    // A file that is not there is named.
    let (ok, text) = unmix(&[
        "train",
        "--config",
        cfg,
        "--set",
        "run.name=\"missing\"",
        "--set",
        "model.backbone.pretrained.path=\"no/such.safetensors\"",
    ]);
    assert!(
        !ok && text.contains("no/such.safetensors") && text.contains("no such file"),
        "{text}"
    );
}

/// The dataset-level image mixture (`[data.image_mixture]`) runs end to end in a training run
/// and is recorded in the resolved config; a method whose views differ in size (SwAV's
/// multi-crop) is refused with the key and the crop sizes.
#[test]
fn image_mixture_trains_and_refuses_multi_crop() {
    let (dir, _) = one_finished_epoch(
        "image-mixture",
        "[data.image_mixture]\nenabled = true\nkind = \"im\"\ng_prob = 0.5\nr_prob = 0.5",
    );
    let resolved = std::fs::read_to_string(dir.join("tiny/config.toml")).unwrap();
    assert!(
        resolved.contains("[data.image_mixture]") && resolved.contains("g_prob = 0.5"),
        "{resolved}"
    );
    assert_eq!(
        metrics(&dir.join("tiny")).len(),
        3,
        "random init and one epoch"
    );
    let out = dir.join("swav");
    let (ok, text) = unmix(&[
        "train",
        "--config",
        "configs/fashion_mnist/swav.toml",
        "--set",
        &format!("run.out_dir=\"{}\"", out.display()),
        "--set",
        "data.image_mixture.enabled=true",
    ]);
    assert!(!ok);
    assert!(
        text.contains("data.image_mixture.enabled = true") && text.contains("[28, 28, 12, 12]"),
        "{text}"
    );
}

/// Runs `script --cpu` (`scripts/gpu_kit.sh` or its device wrapper) with this build's binary, its
/// results in `out` and `env` set: whether it succeeded, and what it printed.
fn gpu_kit_cpu_mode(script: &str, out: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let run = Command::new("bash")
        .args([script, "--cpu"])
        .env("UNMIX_BIN", env!("CARGO_BIN_EXE_unmix"))
        .env("OUT", out)
        .envs(env.iter().copied())
        .current_dir(root())
        .output()
        .expect("bash runs");
    let text =
        String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    (run.status.success(), text)
}

/// The GPU run kit in its CPU mode (`scripts/gpu_kit.sh --cpu`, with this build's binary): the
/// backend check, a step timing of each siamese method (and PyTorch's where torch is
/// installed), a one-epoch pre-training, and the report that holds them.
#[test]
fn the_gpu_kit_runs_in_cpu_mode() {
    let out = tmp("gpu-kit");
    let (ok, text) = gpu_kit_cpu_mode("scripts/gpu_kit.sh", &out, &[]);
    assert!(ok, "{text}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## 1. Backend check"), "{report}");
    assert!(
        !report.contains("**no**"),
        "a backend check failed:\n{report}"
    );
    // The row that starts with `prefix`, and its images/s (the third column in both tables:
    // `| method | batch | images/s | …` and `| dtype | s/step | images/s | vs f32 |`).
    let row = |prefix: &str| {
        let row = report
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no row {prefix}:\n{report}"));
        let rate: f64 = row.split('|').nth(3).unwrap().trim().parse().unwrap();
        assert!(rate > 0.0, "{row}");
        row
    };
    for name in ["moco", "moco_unmix", "simclr", "byol_unmix", "swav_unmix"] {
        row(&format!("| {name} | 16 |"));
    }
    for dtype in ["bf16", "f16"] {
        row(&format!("| {dtype} | "));
    }
    let f32_row = row("| f32 | ");
    assert!(f32_row.ends_with("| 1.00× |"), "{f32_row}");
    assert!(report.contains("Wall time:"), "{report}");
    assert!(
        out.join("runs").is_dir(),
        "no pre-training run in {}",
        out.display()
    );
}

/// The kit under a time budget, through its wrapper for a GPU machine lent by the minute
/// (`scripts/gpu_device_run.sh`, which copies the kit's files to the folder that comes back): a
/// command that runs past the budget is stopped and named in the report, a step row that would
/// eat into the pre-training's reserve is written as skipped, and the kit says it did not finish
/// by its exit status.
#[test]
fn the_gpu_kit_keeps_to_its_time_budget() {
    let out = tmp("gpu-kit-budget");
    let kit_dir = tmp("gpu-kit-budget-work");
    // The backend check trains 16 configs: well past 5 s on any CPU. Without Python the kit's
    // set-up takes milliseconds, so the check starts inside the budget and is stopped by it (CI
    // once spent 2 s importing torch, and the check was never started).
    let (ok, text) = gpu_kit_cpu_mode(
        "scripts/gpu_device_run.sh",
        &out,
        &[
            ("KIT_DIR", kit_dir.to_str().unwrap()),
            ("KIT_BUDGET_S", "5"),
            ("KIT_RESERVE_S", "1"),
            ("PYTHON", "false"),
        ],
    );
    assert!(!ok, "{text}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("check-backend: out of time"), "{report}");
    let skipped = ["moco", "simclr_unmix", "byol", "swav_unmix"];
    for name in skipped {
        assert!(
            report.contains(&format!("| {name} | 16 | skipped (time budget) |")),
            "{name}:\n{report}"
        );
    }
    assert!(
        report.contains("| bf16 | skipped (time budget) |"),
        "{report}"
    );
    assert!(report.contains("Kit's wall time:"), "{report}");
    assert!(text.contains("kit exit status: 1"), "{text}");
    let log = std::fs::read_to_string(out.join("log.txt")).unwrap();
    assert!(
        log.contains("check-backend --device cpu") && log.contains("# exit 124"),
        "{log}"
    );
}

/// Size of a PNG file.
fn png_size(path: &Path) -> (u32, u32) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let info = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap()
        .info()
        .clone();
    (info.width, info.height)
}

/// The figures `report.md` (or `compare.md`) links, each checked as a PNG of the stated size
/// with its SVG beside it.
fn check_figures(dir: &Path, markdown: &str) -> Vec<String> {
    let stems: Vec<String> = markdown
        .lines()
        .filter(|l| l.starts_with("!["))
        .map(|l| {
            let rest = l.split("](plots/").nth(1).unwrap();
            rest.split(".png)").next().unwrap().to_string()
        })
        .collect();
    for stem in &stems {
        let png = dir.join("plots").join(format!("{stem}.png"));
        assert_eq!(png_size(&png), (800, 480), "{}", png.display());
        let svg = std::fs::read_to_string(dir.join("plots").join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("width=\"800\""),
            "{stem}.svg"
        );
    }
    stems
}

#[test]
fn every_run_writes_a_report_and_runs_compare_side_by_side() {
    let dir = tmp("report");
    let cfg = tiny_config(&dir, "\n[unmix]\nenabled = true");
    let cfg = cfg.to_str().unwrap();
    let (ok, text) = unmix(&[
        "train",
        "--config",
        cfg,
        "--set",
        "run.name=\"mixed\"",
        "--set",
        "run.log_every_steps=2",
    ]);
    assert!(ok, "{text}");
    let mixed = dir.join("mixed");
    assert!(
        text.contains(&format!("report: {}", mixed.join("report.md").display())),
        "the main job prints its report's path: {text}"
    );
    let md = std::fs::read_to_string(mixed.join("report.md")).unwrap();
    for part in [
        "# Run report: mixed",
        "## Results",
        "| random init |",
        "## Flatness",
        "## Per epoch",
        "```toml",
    ] {
        assert!(md.contains(part), "{part} in {md}");
    }
    let stems = check_figures(&mixed, &md);
    assert_eq!(
        stems,
        [
            "loss",
            "knn",
            "lr",
            "lambda",
            "flatness",
            "flatness_largest_p",
            "pca"
        ],
        "{md}"
    );
    // The λ of every step, drawn again from the seeded sampler, has the mean the loop logged
    // (metrics.csv: the mean λ of each epoch, both epochs of equal length).
    let summary: toml::Table =
        toml::from_str(&std::fs::read_to_string(mixed.join("report.toml")).unwrap()).unwrap();
    let lambda_mean = summary["lambda_mean"].as_float().unwrap();
    let rows = metrics(&mixed);
    let lambda_col = rows[0].split(',').position(|c| c == "lambda").unwrap();
    let logged: Vec<f64> = rows[2..]
        .iter()
        .map(|r| r.split(',').nth(lambda_col).unwrap().parse().unwrap())
        .collect();
    let logged_mean = logged.iter().sum::<f64>() / logged.len() as f64;
    assert!(
        (lambda_mean - logged_mean).abs() < 1e-9,
        "{lambda_mean} vs {logged_mean}"
    );
    // The report written again from the checkpoint gives the same figures.
    let before = std::fs::read_to_string(mixed.join("report.toml")).unwrap();
    let (ok, text) = unmix(&["report", "--run", mixed.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert_eq!(
        std::fs::read_to_string(mixed.join("report.toml")).unwrap(),
        before
    );

    // The same run without Un-Mix: no λ figure; then both side by side.
    let (ok, text) = unmix(&[
        "train",
        "--config",
        cfg,
        "--set",
        "run.name=\"base\"",
        "--set",
        "unmix.enabled=false",
    ]);
    assert!(ok, "{text}");
    let base = dir.join("base");
    let base_md = std::fs::read_to_string(base.join("report.md")).unwrap();
    assert!(!check_figures(&base, &base_md).contains(&"lambda".to_string()));
    let out = dir.join("side-by-side");
    let (ok, text) = unmix(&[
        "compare",
        base.to_str().unwrap(),
        mixed.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let cmp = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(
        cmp.contains("| base | moco | off |") && cmp.contains("| mixed | moco | on |"),
        "{cmp}"
    );
    assert!(
        cmp.contains("| `unmix.enabled` | `false` | `true` |"),
        "{cmp}"
    );
    assert!(cmp.contains("| `run.name` |"), "{cmp}");
    assert_eq!(
        check_figures(&out, &cmp),
        ["loss", "knn", "flatness", "flatness_largest_p"]
    );
    // Something that is not a run is named.
    let (ok, text) = unmix(&["compare", base.to_str().unwrap(), dir.to_str().unwrap()]);
    assert!(!ok && text.contains("report.toml"), "{text}");
}

/// The online probe reports its own columns and leaves the run exactly as it is without it
/// (loss, λ and kNN equal). That it learns is `tests/learns.rs`' to show: a run this short
/// barely moves it.
#[test]
fn the_online_probe_learns_beside_the_run_and_never_changes_it() {
    let dir = tmp("probe");
    let cfg = tiny_config(&dir, "");
    let cfg = cfg.to_str().unwrap();
    let run = |name: &str, probe: &str| {
        let (ok, text) = unmix(&[
            "train",
            "--config",
            cfg,
            "--set",
            &format!("run.name=\"{name}\""),
            "--set",
            &format!("eval.online_probe={probe}"),
        ]);
        assert!(ok, "{text}");
        text
    };
    assert!(run("with", "true").contains("online probe"));
    assert!(!run("without", "false").contains("online probe"));
    let (with, without) = (metrics(&dir.join("with")), metrics(&dir.join("without")));
    let header: Vec<&str> = with[0].split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let (train, test) = (
        col("online_probe_train_top1"),
        col("online_probe_test_top1"),
    );
    for (a, b) in with.iter().zip(&without).skip(1) {
        let fields: Vec<&str> = a.split(',').collect();
        let other: Vec<&str> = b.split(',').collect();
        for (i, name) in header.iter().enumerate() {
            if ![train, test, col("images_per_s")].contains(&i) {
                assert_eq!(fields[i], other[i], "{name}: {a} vs {b}");
            }
        }
        assert!(other[train].is_empty() && other[test].is_empty(), "{b}");
    }
    let last_row = with.last().unwrap();
    let last: Vec<f64> = last_row
        .split(',')
        .map(|f| f.parse().unwrap_or(f64::NAN))
        .collect();
    for v in [last[train], last[test]] {
        assert!((0.0..=100.0).contains(&v), "{last_row}");
    }
    // Random init has no probe figures.
    assert!(
        with[1].split(',').nth(train).unwrap().is_empty(),
        "{}",
        with[1]
    );
}

/// `unmix bench <extra> --pytorch` at width 4, batch 4, one step; its output, once it succeeded.
fn tiny_bench(extra: &[&str]) -> String {
    let mut args = vec!["bench"];
    args.extend(extra);
    args.extend(["--width", "4", "--batch", "4", "--steps", "1", "--pytorch"]);
    let (ok, text) = unmix(&args);
    assert!(ok, "{text}");
    text
}

/// `unmix bench` splits the step into forward, backward and update, whose times add up to the
/// step's; with `--pytorch` it times the same step in PyTorch eager and prints the ratio, or
/// says it skipped it where Python with torch is absent.
#[test]
fn bench_splits_the_step_and_compares_with_pytorch() {
    let text = tiny_bench(&[]);
    let ours = text
        .lines()
        .find(|l| l.starts_with("| cpu |"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<f64> = ours
        .split('|')
        .skip(4)
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let [forward, backward, update, step, images_per_second] = cells[..] else {
        panic!("expected forward, backward, update, s/step and images/s in {ours:?}")
    };
    assert!(forward > 0.0 && backward > 0.0 && update > 0.0, "{ours}");
    assert!(
        (forward + backward + update - step).abs() <= 1e-3,
        "the phases add up to the step: {ours}"
    );
    assert!((images_per_second - 4.0 / step).abs() / images_per_second < 0.01);
    let compared = text.contains("| pytorch eager") && text.contains("ours / PyTorch eager:");
    let skipped = text.contains("PyTorch side skipped");
    assert!(compared ^ skipped, "{text}");
}

/// The cells of the first `**sum**` row of `table` (a part of `text`, shown on failure).
fn sum_row<'a>(table: &'a str, text: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.starts_with("| **sum** |"))
        .unwrap_or_else(|| panic!("no **sum** row: {text}"))
        .split('|')
        .map(str::trim)
        .collect()
}

/// `unmix bench --layers` times each distinct layer of the ResNet-18 alone: the counts cover
/// the network (20 convolutions, 20 batch norms, 17 ReLUs, 8 residual sums), the shares add up
/// to 100%, and with `--pytorch` every row has PyTorch's columns, or it says it skipped them;
/// each convolution's backward is also timed as its input's and its weight's gradient alone.
#[test]
fn bench_layers_splits_the_network_by_layer() {
    let text = tiny_bench(&["--layers"]);
    let (layers, conv_split) = text
        .split_once("Convolution backward, each gradient alone")
        .unwrap_or_else(|| panic!("no convolution backward split: {text}"));
    let rows: Vec<Vec<&str>> = layers
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains(" @"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let count = |kind: &str| -> usize {
        rows.iter()
            .filter(|r| r[1].starts_with(kind))
            .map(|r| r[2].parse::<usize>().unwrap())
            .sum()
    };
    assert_eq!(
        [
            count("conv"),
            count("batchnorm"),
            count("relu"),
            count("add")
        ],
        [20, 20, 17, 8],
        "{text}"
    );
    let share: f64 = rows
        .iter()
        .map(|r| r[8].trim_end_matches('%').parse::<f64>().unwrap())
        .sum();
    assert!(
        (share - 100.0).abs() < 0.5,
        "shares add up to {share}: {text}"
    );
    for r in &rows {
        assert!(r[3].parse::<f64>().unwrap() >= 0.0, "{r:?}");
        assert!(r[4].parse::<f64>().unwrap() >= 0.0, "{r:?}");
    }
    let sum = sum_row(layers, &text);
    assert!(sum[2].parse::<f64>().unwrap() > 0.0, "{sum:?}");
    assert!(sum[3].parse::<f64>().unwrap() > 0.0, "{sum:?}");
    let compared = rows.iter().all(|r| r[5].parse::<f64>().is_ok());
    let skipped = text.contains("PyTorch side skipped") && rows.iter().all(|r| r[5] == "–");
    assert!(compared ^ skipped, "{text}");
    // The convolutions' backward split: one row per distinct convolution, 20 in all by count;
    // the stem's input needs no gradient.
    let split: Vec<Vec<&str>> = conv_split
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains(" @"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(
        split
            .iter()
            .map(|r| r[2].parse::<usize>().unwrap())
            .sum::<usize>(),
        20,
        "{text}"
    );
    for r in &split {
        let stem = r[1].contains(" 3->");
        assert_eq!(r[3] == "–", stem, "{r:?}");
        assert!(r[4].parse::<f64>().unwrap() >= 0.0, "{r:?}");
        assert_eq!(r[5] == "–", skipped || stem, "{r:?}");
        assert_eq!(r[6].parse::<f64>().is_ok(), compared, "{r:?}");
    }
    let split_sum = sum_row(conv_split, &text);
    assert!(split_sum[3].parse::<f64>().unwrap() > 0.0, "{split_sum:?}");
    assert!(split_sum[4].parse::<f64>().unwrap() > 0.0, "{split_sum:?}");
}
