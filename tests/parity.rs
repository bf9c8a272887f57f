//! Step-level parity with our PyTorch references (`docs/reference/`): from identical weights,
//! inputs, mixture and shuffle-BN permutations, one training step of ours and of the reference
//! give the same loss, gradients, updated parameters, running statistics and queue, and our
//! initial weights follow the reference's initial distributions (`docs/reference/parity.py`
//! states the tolerances, and tells a float32 tie at a ReLU from a real difference).
//!
//! Each case runs `unmix parity-step` on a config built from `configs/fashion_mnist/<base>.toml`
//! (real images) and replays the record in Python. Skipped, with a message, when `python3` with
//! `torch` is absent (CI installs no PyTorch). `cargo xtask parity` runs this test and prints the
//! tables.

use std::path::PathBuf;
use std::process::Command;

use unmix_train::TrainConfig;
use unmix_train::method::ViewForward;
use unmix_train::methods::MethodConfig;
use unmix_train::methods::byol::MixBranch;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether `python3 -c code` succeeds; says the test is skipped (`missing`) when not.
fn python_runs(code: &str, missing: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", code])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: {missing}");
    }
    found
}

/// Whether `python3` with `torch` is installed; says the test is skipped when not.
fn torch_available() -> bool {
    python_runs(
        "import torch",
        "python3 with torch is not installed (pip install torch)",
    )
}

/// Records step 0 of `config` and replays it in the reference; panics with the reference's
/// table when anything differs.
fn check(name: &str, config: TrainConfig) {
    check_after(name, config, 0);
}

/// As [`check`], for the first step after `warm_epochs` epochs of training (`unmix parity-step
/// --warm-epochs`).
fn check_after(name: &str, mut config: TrainConfig, warm_epochs: usize) {
    let work = std::env::temp_dir().join(format!("unmix-parity-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    config.data.path = root().join(&config.data.path);
    config.run.out_dir = work.join("runs");
    let config_path = work.join("config.toml");
    std::fs::write(&config_path, config.to_toml()).unwrap();
    let record = work.join("step.safetensors");
    let ours = Command::new(env!("CARGO_BIN_EXE_unmix"))
        .arg("parity-step")
        .arg("--config")
        .arg(&config_path)
        .arg("--out")
        .arg(&record)
        .arg("--warm-epochs")
        .arg(warm_epochs.to_string())
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "{name}: unmix parity-step failed:\n{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let reference = Command::new("python3")
        .arg(root().join("docs/reference/parity.py"))
        .arg(&record)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&reference.stdout);
    println!("{name}:{table}");
    assert!(
        reference.status.success(),
        "{name}: the step differs from the PyTorch reference:\n{table}\n{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    std::fs::remove_dir_all(&work).ok();
}

fn config(base: &str) -> TrainConfig {
    let mut c =
        TrainConfig::load(&root().join(format!("configs/fashion_mnist/{base}.toml"))).unwrap();
    c.data.train_per_class = Some(10);
    c.data.test_per_class = Some(1);
    c
}

/// The CIFAR demo's MoCo (symmetric, linear head, T 0.1, split BN 8, shuffle-BN) at width 8.
fn moco_demo(unmix: bool) -> TrainConfig {
    let mut c = config("moco_unmix");
    c.unmix.enabled = unmix;
    c.model.backbone.bn_splits = 8;
    c.model.backbone.stem_init = Some(unmix_models::ConvInit::PytorchDefault);
    c.model.head = unmix_models::HeadConfig::Linear { out_dim: 128 };
    if let MethodConfig::Moco(m) = &mut c.method {
        m.symmetric = true;
        m.temperature = 0.1;
        m.queue_len = 128;
    }
    c
}

#[test]
fn moco_steps_match_the_pytorch_reference() {
    if !torch_available() {
        return;
    }
    check("moco_demo", moco_demo(false));
    check("moco_demo_unmix", moco_demo(true));
    // The embedded set's MoCo: asymmetric, MLP head, split BN 2.
    check("moco_fashion_mnist", config("moco"));
    check("moco_fashion_mnist_unmix", config("moco_unmix"));
}

/// SwAV at the embedded set's settings (LARS, two small crops), without warm-up so that step 0
/// has a learning rate, and with the prototypes trained from step 0 unless `frozen`.
fn swav(base: &str, frozen: bool) -> TrainConfig {
    let mut c = config(base);
    c.optim.warmup_epochs = 0.0;
    if let MethodConfig::Swav(m) = &mut c.method
        && !frozen
    {
        m.freeze_prototypes_steps = 0;
    }
    c
}

#[test]
fn swav_steps_match_the_pytorch_reference() {
    if !torch_available() {
        return;
    }
    check("swav_fashion_mnist", swav("swav", false));
    check("swav_fashion_mnist_unmix", swav("swav_unmix", false));
    check("swav_fashion_mnist_unmix_frozen", swav("swav_unmix", true));
    // The reverse term as the authors' formula states it, and split batch norm.
    let mut formula = swav("swav_unmix", false);
    formula.model.backbone.bn_splits = 2;
    if let MethodConfig::Swav(m) = &mut formula.method {
        m.reverse = unmix_losses::SwavReverse::Formula;
    }
    check("swav_fashion_mnist_unmix_formula_split_bn", formula);
}

/// SimCLR or BYOL at the embedded set's settings (Adam; BYOL's predictor at 10× the learning
/// rate, τ 0.996), crops through the network as `forward` says, without warm-up so that step 0
/// has a learning rate.
fn two_view(base: &str, forward: ViewForward) -> TrainConfig {
    let mut c = config(base);
    c.optim.warmup_steps = 0;
    match &mut c.method {
        MethodConfig::Simclr(m) => m.forward = forward,
        MethodConfig::Byol(m) => m.forward = forward,
        other => panic!("{base}: not SimCLR or BYOL: {other:?}"),
    }
    c
}

#[test]
fn simclr_steps_match_the_pytorch_reference() {
    if !torch_available() {
        return;
    }
    for (name, forward) in [
        ("joint", ViewForward::Joint),
        ("per_view", ViewForward::PerView),
    ] {
        check(&format!("simclr_{name}"), two_view("simclr", forward));
        check(
            &format!("simclr_{name}_unmix"),
            two_view("simclr_unmix", forward),
        );
    }
}

#[test]
fn byol_steps_match_the_pytorch_reference() {
    if !torch_available() {
        return;
    }
    for (name, forward) in [
        ("joint", ViewForward::Joint),
        ("per_view", ViewForward::PerView),
    ] {
        check(&format!("byol_{name}"), two_view("byol", forward));
        check(
            &format!("byol_{name}_unmix"),
            two_view("byol_unmix", forward),
        );
    }
    // Un-Mix through one branch only (Un-Mix issue #8).
    for branch in [MixBranch::Online, MixBranch::Target] {
        let mut c = two_view("byol_unmix", ViewForward::PerView);
        if let MethodConfig::Byol(m) = &mut c.method {
            m.mix_branch = branch;
        }
        check(&format!("byol_per_view_unmix_{branch:?}"), c);
    }
}

/// Invariance Propagation (`configs/fashion_mnist/invariance_propagation[_unmix].toml`, with and
/// without Un-Mix) with a background of 32 of the 100 bank rows, `ramp` and `ramp_epochs` as
/// given, on the first step after `warm_epochs` epochs.
fn check_invariance_propagation(
    ramp: unmix_train::methods::PropagationRamp,
    ramp_epochs: usize,
    warm_epochs: usize,
) {
    if !torch_available() {
        return;
    }
    for base in ["invariance_propagation", "invariance_propagation_unmix"] {
        let mut c = config(base);
        if let MethodConfig::InvariancePropagation(m) = &mut c.method {
            m.n_background = 32;
            m.ramp = ramp;
            m.ramp_epochs = ramp_epochs;
        }
        check_after(
            &format!("{base}_after_{warm_epochs}_epochs"),
            c,
            warm_epochs,
        );
    }
}

/// Step 0, with the propagation loss on from the first step (`ramp = "zero"`: with the binary
/// ramp step 0 has `L_ins` alone). At step 0 the graph is the reference's zeros, so every
/// candidate is id 0; the graph update is compared exactly.
#[test]
fn invariance_propagation_steps_match_the_pytorch_reference() {
    check_invariance_propagation(unmix_train::methods::PropagationRamp::Zero, 4, 0);
}

/// After two epochs on the 100 images (three steps each): the recorded step starts from a
/// written bank and a filled neighbour graph (`parity.py` checks that every graph row of the
/// batch is filled), so its propagated candidates are real neighbours of real neighbours, not
/// the zeros of step 0, and the binary ramp (at epoch 2) has turned the propagation term on in
/// epoch 3. Added when whole runs of the two sides parted after the propagation term came in
/// (docs/methods.md, "Invariance Propagation at CPU scale").
#[test]
fn invariance_propagation_steps_over_a_filled_graph_match_the_pytorch_reference() {
    check_invariance_propagation(unmix_train::methods::PropagationRamp::Binary, 2, 2);
}

/// InsDis (`configs/fashion_mnist/insdis[_unmix].toml`, 100 images, 1,024 noise rows drawn as our
/// step draws them and recorded) with the softmax loss of its configs and with NCE, whose
/// normaliser the first batch sets.
#[test]
fn insdis_steps_match_the_pytorch_reference() {
    if !torch_available() {
        return;
    }
    for base in ["insdis", "insdis_unmix"] {
        check(base, config(base));
    }
    let mut c = config("insdis");
    if let MethodConfig::Insdis(m) = &mut c.method {
        m.softmax = false;
    }
    check("insdis_nce", c);
}

/// CMC (`configs/fashion_mnist/cmc[_unmix].toml`, 100 images, 1,024 noise rows drawn as our step
/// draws them and recorded), softmax (the configs') and NCE. The images are read in RGB here:
/// Fashion-MNIST is grey, so its CbCr (or Lab ab) channels are constant up to rounding, and a step
/// whose batch norm divides rounding noise by its own spread compares rounding, not the method.
/// The colour conversion has its own tests against scikit-image (`unmix-data`, `color_space.rs`).
#[test]
fn cmc_steps_match_the_pytorch_reference() {
    if !torch_available() {
        return;
    }
    let rgb = |base: &str| {
        let mut c = config(base);
        let a = &mut c.data.augmentation;
        a.color_space = unmix_data::ColorSpace::Rgb;
        a.mean = [0.2860; 3];
        a.std = [0.3530; 3];
        c
    };
    for base in ["cmc", "cmc_unmix"] {
        check(base, rgb(base));
    }
    let mut c = rgb("cmc");
    if let MethodConfig::Cmc(m) = &mut c.method {
        m.softmax = false;
    }
    check("cmc_nce", c);
}

/// W-MSE's evaluation protocols against our PyTorch reference of its code
/// (`docs/reference/wmse_eval.py`) on the same features: a one-epoch SimCLR run on 1,000 real
/// images, `unmix eval --protocol wmse-knn|wmse-linear --save-features`, and the reference's
/// `eval_knn` and `eval_sgd` on the saved features. The 5-NN vote is deterministic and must
/// agree exactly; the linear probe's random order and initialisation differ, so ours must lie
/// within 3 points of the reference's mean over two seeds (its two seeds differed by 2.2 points,
/// ours lay 0.1 from their mean: 2026-12-02).
#[test]
fn wmse_protocols_match_the_pytorch_reference() {
    if !torch_available() {
        return;
    }
    let work = std::env::temp_dir().join(format!("unmix-parity-wmse-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let mut c = config("simclr");
    c.data.path = root().join(&c.data.path);
    c.data.train_per_class = Some(100);
    c.data.test_per_class = Some(50);
    c.optim.epochs = 1;
    c.eval.every_epochs = 0;
    c.run.out_dir = work.join("runs");
    let config_path = work.join("config.toml");
    std::fs::write(&config_path, c.to_toml()).unwrap();
    let unmix = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_unmix"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "unmix {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    unmix(&["train", "--config", config_path.to_str().unwrap()]);
    let run = work.join("runs").join(&c.run.name);
    let features = work.join("features.safetensors");
    // The table's last row: `| checkpoint | protocol | train | test | top-1 | top-5 |`.
    let scores = |protocol: &str| -> Vec<f64> {
        let text = unmix(&[
            "eval",
            "--checkpoint",
            run.to_str().unwrap(),
            "--protocol",
            protocol,
            "--save-features",
            features.to_str().unwrap(),
        ]);
        let row = text.lines().last().unwrap().to_string();
        row.split('|')
            .filter_map(|cell| cell.trim().strip_suffix('%')?.parse().ok())
            .collect()
    };
    let knn = scores("wmse-knn")[0];
    let linear = scores("wmse-linear");
    let reference = Command::new("python3")
        .arg(root().join("docs/reference/wmse_eval.py"))
        .arg(&features)
        .args(["0", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&reference.stdout);
    println!("ours: k-NN {knn:.2}%, linear {linear:?}\nreference:\n{text}");
    assert!(reference.status.success(), "{text}");
    let number_after = |line: &str, key: &str| -> f64 {
        let rest = &line[line.find(key).unwrap() + key.len()..];
        rest.trim().split('%').next().unwrap().parse().unwrap()
    };
    let lines: Vec<&str> = text.lines().collect();
    let ref_knn = number_after(lines[0], ":");
    assert_eq!(format!("{knn:.2}"), format!("{ref_knn:.2}"), "5-NN vote");
    let ref_top1: Vec<f64> = lines[1..]
        .iter()
        .map(|l| number_after(l, "top-1"))
        .collect();
    let mean = ref_top1.iter().sum::<f64>() / ref_top1.len() as f64;
    assert!(
        (linear[0] - mean).abs() <= 3.0,
        "linear top-1: ours {} against the reference's {ref_top1:?}",
        linear[0]
    );
    std::fs::remove_dir_all(&work).ok();
}

/// Whether `python3` is installed (the run-level harness's planning and table need no torch);
/// says the test is skipped when not.
fn python_available() -> bool {
    python_runs("pass", "python3 is not installed")
}

/// `docs/reference/run_parity.py --unmix-bin unmix_bin` with `args`, from the repository root.
fn run_parity(unmix_bin: &str, args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .current_dir(root())
        .args(["docs/reference/run_parity.py", "--unmix-bin", unmix_bin])
        .args(args)
        .output()
        .unwrap()
}

/// The commands `run_parity.py --dry-run` plans with `args` (it must succeed).
fn planned(args: &[&str]) -> String {
    let out = run_parity("/bin/unmix", &[args, &["--dry-run"]].concat());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

/// The run-level harness (`cargo xtask parity --runs`, `docs/reference/run_parity.py`) plans one
/// run of ours and one of the reference for each method, Un-Mix setting and seed, with the same
/// data, width, batch, epochs and seed on both sides, each on one thread; an unknown method is
/// an error naming it.
#[test]
fn run_parity_plans_ours_and_the_reference_alike() {
    if !python_available() {
        return;
    }
    let text = planned(&[
        "--methods",
        "moco,simclr,byol,swav",
        "--seeds",
        "0,1",
        "--epochs",
        "3",
        "--data",
        "/data/fm",
    ]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        32,
        "2 sides x 2 Un-Mix settings x 4 methods x 2 seeds:\n{text}"
    );
    for method in ["moco", "simclr", "byol", "swav"] {
        for unmix in [false, true] {
            let suffix = if unmix { "_unmix" } else { "" };
            let config = format!("configs/cifar10/{method}{suffix}.toml");
            assert!(root().join(&config).exists(), "{config}");
            for seed in [0, 1] {
                let ours: Vec<_> = (lines.iter())
                    .filter(|l| l.contains(&format!("--config {config} ")))
                    .filter(|l| l.contains(&format!("run.seed={seed}")))
                    .collect();
                assert_eq!(ours.len(), 1, "{method}{suffix} seed {seed}:\n{text}");
                for set in [
                    "data.path=\"/data/fm\"",
                    "model.backbone.width=8",
                    "optim.batch_size=128",
                    "optim.epochs=3",
                    "eval.every_epochs=3",
                    "run.device=\"cpu\"",
                ] {
                    assert!(ours[0].contains(set), "{set} in {}", ours[0]);
                }
                assert!(ours[0].starts_with("RAYON_NUM_THREADS=1 /bin/unmix train"));
                let script = match method {
                    "moco" => "moco_demo_train.py /data/fm".to_string(),
                    "swav" => "swav_demo_train.py /data/fm".to_string(),
                    _ => format!("siamese_demo_train.py {method} /data/fm"),
                };
                let reference: Vec<_> = (lines.iter())
                    .filter(|l| l.contains(&format!("{script} {seed} ")))
                    .filter(|l| l.contains("--unmix") == unmix)
                    .collect();
                assert_eq!(reference.len(), 1, "{script} {seed}{suffix}:\n{text}");
                for arg in ["--epochs 3", "--width 8", "--batch 128", "--threads 1"] {
                    assert!(reference[0].contains(arg), "{arg} in {}", reference[0]);
                }
            }
        }
    }
    let bad = run_parity("/bin/unmix", &["--methods", "simclr,dino", "--dry-run"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown method 'dino'"), "{err}");
}

/// `--same-init`: before each reference run, `unmix parity-step` records the weights ours starts
/// from, with exactly the config and settings of ours' run of that seed; the reference loads
/// that record (`--init`) and keeps its result apart from the runs from its own initialisation.
#[test]
fn run_parity_same_init_starts_the_reference_from_our_weights() {
    if !python_available() {
        return;
    }
    let args = ["--methods", "moco,byol", "--seeds", "3", "--data", "/d"];
    let text = planned(&[&args[..], &["--same-init"]].concat());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        12,
        "4 runs of ours, 4 records, 4 references:\n{text}"
    );
    // Without --same-init the reference starts from its own weights.
    let plain = planned(&args);
    assert!(
        !plain.contains("parity-step") && !plain.contains("--init"),
        "{plain}"
    );
    let records = (lines.iter()).filter(|l| l.contains("parity-step")).count();
    assert_eq!(records, 4, "one record per reference run:\n{text}");
    for (i, line) in lines.iter().enumerate() {
        let Some(settings) = line.strip_prefix(" /bin/unmix parity-step ") else {
            continue;
        };
        let (settings, record) = settings.split_once(" --out ").unwrap();
        let train = (lines.iter())
            .filter_map(|l| l.strip_prefix("RAYON_NUM_THREADS=1 /bin/unmix train "))
            .filter_map(|l| l.split_once(" --out-dir "))
            .filter(|(s, _)| *s == settings)
            .count();
        assert_eq!(train, 1, "ours trains once with {settings}:\n{text}");
        assert!(
            record.ends_with("_s3_sameinit.init.safetensors"),
            "{record}"
        );
        let reference = lines[i + 1];
        assert!(
            reference.ends_with(&format!("_sameinit.json --init {record}")),
            "the next command loads the record: {reference}"
        );
        assert_eq!(
            reference.contains("--unmix"),
            settings.contains("_unmix.toml"),
            "{reference}"
        );
    }
}

/// `run_parity.py`'s arguments for MoCo at one seed from our weights, on data `/d`.
fn moco_same_init(seed: &'static str) -> [&'static str; 7] {
    [
        "--methods",
        "moco",
        "--seeds",
        seed,
        "--data",
        "/d",
        "--same-init",
    ]
}

/// `--reference-float-aug` (the diagnostic of docs/methods.md, "MoCo from the same initial
/// weights"): the reference is asked for float augmentation, its result is kept apart from the
/// demo's 8-bit runs, it loads the same record of our weights, and ours' runs are unchanged;
/// other methods' references have no such option, which is an error naming it.
#[test]
fn run_parity_float_aug_keeps_the_diagnostic_runs_apart() {
    if !python_available() {
        return;
    }
    let args = moco_same_init("2");
    let demo = planned(&args);
    let float = planned(&[&args[..], &["--reference-float-aug"]].concat());
    let ours = |text: &str| -> Vec<String> {
        (text.lines())
            .filter(|l| !l.contains("moco_demo_train.py"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        ours(&demo),
        ours(&float),
        "ours and the records are unchanged"
    );
    let references: Vec<&str> = (float.lines())
        .filter(|l| l.contains("moco_demo_train.py"))
        .collect();
    assert_eq!(references.len(), 2, "{float}");
    for line in references {
        assert!(line.contains(" --float-aug"), "{line}");
        let out = line
            .split(" --out ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        assert!(out.ends_with("_s2_sameinit_floataug.json"), "{out}");
        assert!(
            line.contains(&format!(
                "--init {}",
                out.replace("_floataug.json", ".init.safetensors")
            )),
            "{line}"
        );
    }
    assert!(!demo.contains("--float-aug"), "{demo}");
    let bad = run_parity(
        "/bin/unmix",
        &[
            "--methods",
            "moco,simclr",
            "--reference-float-aug",
            "--dry-run",
        ],
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("--reference-float-aug"), "{err}");
}

/// `--ours-pil-u8`: ours augments with the demo's 8-bit arithmetic (`pixel_arithmetic` set on
/// its command line only, not on the record of its weights), its runs are kept apart from the
/// float ones, and the reference's runs are unchanged; other methods are an error naming it.
#[test]
fn run_parity_ours_pil_u8_keeps_its_runs_apart() {
    if !python_available() {
        return;
    }
    let args = moco_same_init("1");
    let float = planned(&args);
    let bytes = planned(&[&args[..], &["--ours-pil-u8"]].concat());
    let lines = |text: &str, ours: bool| -> Vec<String> {
        (text.lines())
            .filter(|l| l.contains(" train ") == ours)
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        lines(&float, false),
        lines(&bytes, false),
        "the reference is unchanged"
    );
    let trains = lines(&bytes, true);
    assert_eq!(trains.len(), 2, "{bytes}");
    for line in &trains {
        assert!(
            line.contains(r#"--set data.augmentation.pixel_arithmetic="pil_u8""#),
            "{line}"
        );
        let out = line.split(" --out-dir ").nth(1).unwrap();
        assert!(
            out.split(' ').next().unwrap().ends_with("_s1_pilu8"),
            "{line}"
        );
    }
    assert!(!float.contains("pil_u8"), "{float}");
    let bad = run_parity(
        "/bin/unmix",
        &["--methods", "moco,byol", "--ours-pil-u8", "--dry-run"],
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("--ours-pil-u8"), "{err}");
}

/// Writes what a finished 2-epoch run `run` of `side` leaves under `out`, as `run_parity.py`
/// reads it: ours' `metrics.csv` (kNN at epochs 0 and 2), the reference's result JSON.
fn write_finished_run(out: &std::path::Path, side: &str, run: &str, init: f64, last: f64) {
    if side == "ours" {
        let dir = out.join("ours").join(run).join("cifar10_run");
        std::fs::create_dir_all(&dir).unwrap();
        let csv = format!("epoch,step,knn_top1\n0,0,{init}\n1,39,\n2,78,{last}\n");
        std::fs::write(dir.join("metrics.csv"), csv).unwrap();
    } else {
        let dir = out.join("reference");
        std::fs::create_dir_all(&dir).unwrap();
        let json = format!("{{\"knn\": [[0, {init}], [2, {last}]]}}\n");
        std::fs::write(dir.join(format!("{run}.json")), json).unwrap();
    }
}

/// With every run's result already in its output directory the harness runs nothing and writes
/// the table: per-seed cells, means ± sample standard deviations, the Un-Mix gain over the plain
/// run of the same seed, and ours − reference (expected values worked out by hand below).
#[test]
fn run_parity_resumes_and_tabulates_finished_runs() {
    if !python_available() {
        return;
    }
    let work = std::env::temp_dir().join(format!("unmix-run-parity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("test_batch.bin"), b"").unwrap();
    // (random init, epoch 2) per seed 0 and 1.
    let runs = [
        ("ours", "simclr", [(50.0, 60.0), (52.0, 62.0)]),
        ("ours", "simclr_unmix", [(50.0, 61.0), (52.0, 64.0)]),
        ("reference", "simclr", [(55.0, 59.0), (53.0, 63.0)]),
        ("reference", "simclr_unmix", [(55.0, 60.0), (53.0, 63.0)]),
    ];
    for (side, name, results) in runs {
        for (seed, (init, last)) in results.into_iter().enumerate() {
            let run = format!("{name}_w8_b128_e2_s{seed}");
            write_finished_run(&work.join("out"), side, &run, init, last);
        }
    }
    let (data, out_dir) = (data.to_str().unwrap(), work.join("out"));
    let out = run_parity(
        "/bin/false",
        &[
            "--methods",
            "simclr",
            "--seeds",
            "0,1",
            "--epochs",
            "2",
            "--data",
            data,
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("8 of 8 runs already done; running 0"),
        "{text}"
    );
    let table = std::fs::read_to_string(work.join("out/table.md")).unwrap();
    assert!(
        table.contains(
            "| simclr | 0 | 50.00 → 60.00 | 50.00 → 61.00 | 55.00 → 59.00 | 55.00 → 60.00 |"
        ),
        "{table}"
    );
    // Means 61, 62.5, 61, 61.5; sd of (60, 62) = √2 = 1.41, of (61, 64) = 2.12, of (59, 63) = 2.83.
    assert!(
        table.contains("| simclr | mean ± sd | **61.00** ± 1.41 | **62.50** ± 2.12 | **61.00** ± 2.83 | **61.50** ± 2.12 |"),
        "{table}"
    );
    // Gains: ours (1, 2) → +1.50 ± 0.71; reference (1, 0) → +0.50 ± 0.71.
    assert!(
        table.contains("| simclr | Un-Mix gain | +1.50 ± 0.71 | | +0.50 ± 0.71 | |"),
        "{table}"
    );
    assert!(
        table.contains("| simclr | ours − reference | +0.00 | +1.00 | | |"),
        "{table}"
    );
    std::fs::remove_dir_all(&work).ok();
}

/// `--variants plain` plans only the runs without Un-Mix (ours and the reference), `--knn-every`
/// evaluates on both sides every so many epochs, and the table of such runs leaves the Un-Mix
/// columns, the gain and that gap empty; a bad variant or an interval that misses the last epoch
/// is an error naming it.
#[test]
fn run_parity_runs_one_variant_with_knn_every() {
    if !python_available() {
        return;
    }
    let args = ["--methods", "moco", "--seeds", "0", "--epochs", "4"];
    let text = planned(&[&args[..], &["--variants", "plain", "--knn-every", "2"]].concat());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one run of ours, one reference:\n{text}");
    assert!(
        lines[0].contains("--config configs/cifar10/moco.toml ")
            && lines[0].contains("eval.every_epochs=2 "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("moco_demo_train.py")
            && lines[1].contains("--knn-every 2 ")
            && !lines[1].contains("--unmix"),
        "{}",
        lines[1]
    );
    let unmix = planned(&[&args[..], &["--variants", "unmix"]].concat());
    assert!(
        unmix.lines().count() == 2 && unmix.lines().all(|l| l.contains("unmix ")),
        "{unmix}"
    );
    for (flag, value, message) in [
        ("--variants", "mixed", "unknown variant 'mixed'"),
        (
            "--knn-every",
            "3",
            "--knn-every 3: expected a divisor of --epochs 4",
        ),
    ] {
        let bad = run_parity(
            "/bin/unmix",
            &[&args[..], &[flag, value, "--dry-run"]].concat(),
        );
        let err = String::from_utf8_lossy(&bad.stderr);
        assert_eq!(bad.status.code(), Some(2), "{err}");
        assert!(err.contains(message), "{err}");
    }

    let work = std::env::temp_dir().join(format!("unmix-run-variant-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("data")).unwrap();
    std::fs::write(work.join("data/test_batch.bin"), b"").unwrap();
    for (seed, (ours, reference)) in [(60.0, 60.0), (61.0, 62.0)].into_iter().enumerate() {
        let run = format!("moco_w8_b128_e2_s{seed}");
        write_finished_run(&work.join("out"), "ours", &run, 50.0, ours);
        let same_init = format!("{run}_sameinit");
        write_finished_run(&work.join("out"), "reference", &same_init, 50.0, reference);
    }
    // The table of the finished runs of `seeds`, none run again.
    let tabulate = |seeds: &str, runs: usize| {
        let out = run_parity(
            "/bin/false",
            &[
                "--methods",
                "moco",
                "--seeds",
                seeds,
                "--epochs",
                "2",
                "--variants",
                "plain",
                "--knn-every",
                "1",
                "--same-init",
                "--data",
                work.join("data").to_str().unwrap(),
                "--out",
                work.join("out").to_str().unwrap(),
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains(&format!("{runs} of {runs} runs already done")),
            "{text}"
        );
        std::fs::read_to_string(work.join("out/table.md")).unwrap()
    };
    let table = tabulate("0,1", 4);
    // Means 60.5 and 61; sd of (60, 61) = 0.71, of (60, 62) = 1.41.
    for row in [
        "| moco | 1 | 50.00 → 61.00 | – | 50.00 → 62.00 | – |",
        "| moco | mean ± sd | **60.50** ± 0.71 | – | **61.00** ± 1.41 | – |",
        "| moco | Un-Mix gain | – | | – | |",
        "| moco | ours − reference | -0.50 | – | | |",
    ] {
        assert!(table.contains(row), "{row} in\n{table}");
    }
    // Over one seed the standard deviation is undefined, not 0.
    let table = tabulate("1", 2);
    let row = "| moco | mean ± sd | **61.00** ± – | – | **62.00** ± – | – |";
    assert!(table.contains(row), "{row} in\n{table}");
    std::fs::remove_dir_all(&work).ok();
}
