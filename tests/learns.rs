//! It must learn: for every method, with and without Un-Mix, a short pre-training on real
//! Fashion-MNIST images raises the weighted kNN accuracy clearly above the same encoder at
//! random initialisation. The exceptions, each explained below: SwAV does not yet (its kNN
//! tests are ignored and its loss must go down); BYOL needs longer than CI's budget (CI
//! checks its loss goes down; `cargo xtask test --full`, i.e. `UNMIX_LEARNS=full`, checks its
//! kNN gain and runs every test at the length docs/methods.md records); Invariance Propagation
//! learns only on the whole embedded set (`--full`); InsDis + Un-Mix does not on the configs'
//! seed; CMC needs colour images.
//!
//! CI runs each method's Un-Mix variant only (InsDis: the plain one): its loss is the plain
//! method's term plus the mixture's, so one run trains both, and the runs without Un-Mix
//! (`*_without_unmix_*`, ignored) would double CI's longest phase for a path that
//! `tests/methods.rs` and `tests/configs_run.rs` already exercise. `cargo xtask test --full`
//! runs them too.
//!
//! Each test runs the method's own config from `configs/fashion_mnist/` on part of the embedded
//! set for a few epochs. Margins are about half the gain observed with exactly these settings
//! (figures in docs/methods.md).
//!
//! The tests run concurrently (libtest's default: one per core). A training step on the flex
//! backend keeps about one core busy, so on CI's 2 cores two runs side by side take about as
//! long as one alone (docs/benchmarks.md, "Concurrent runs").
//!
//! A few tests judge against the random-init encoder with the data's batch-norm statistics
//! rather than the fresh one of the kNN monitor's first row, whose statistics are still 0 and 1
//! ([`random_init_knn`]): the CIFAR-demo settings, InsDis on 2,000 images, and Invariance
//! Propagation + Un-Mix. The fresh encoder scores 4–20 points above that baseline, by an amount
//! that depends on the seed, so against it those runs seemed to lose.
//!
//! BYOL learns more slowly than the contrastive methods (its kNN accuracy first dips below
//! random init), so its runs are the longest here and keep the config's warm-up, the setting
//! that held best over three seeds (docs/methods.md, BYOL).

use std::process::Command;

use unmix_data::fashion_mnist::Split;
use unmix_train::TrainConfig;
use unmix_train::run::metrics::{EpochRecord, MetricsFile};

#[path = "support/cifar_files.rs"]
mod cifar_files;
use cifar_files::{cifar_shaped, root, write_cifar10_dir};

/// Trains `configs/fashion_mnist/<name>.toml` on `per_class` images per class for `epochs`
/// epochs, with the config's warm-up capped at `max_warmup_steps` (`None`: as configured), and
/// returns the run's `metrics.csv` rows (kNN at random init in the first, after the last epoch
/// in the last).
fn train(
    name: &str,
    per_class: usize,
    epochs: usize,
    max_warmup_steps: Option<usize>,
) -> Vec<EpochRecord> {
    run(
        name,
        fashion_config(name, per_class, epochs, max_warmup_steps),
    )
}

/// `configs/fashion_mnist/<name>.toml` on `per_class` images per class (100 per class to test)
/// for `epochs` epochs, with the config's warm-up capped at `max_warmup_steps` (`None`: as
/// configured), without the online probe.
fn fashion_config(
    name: &str,
    per_class: usize,
    epochs: usize,
    max_warmup_steps: Option<usize>,
) -> TrainConfig {
    let mut config =
        TrainConfig::load(&root().join(format!("configs/fashion_mnist/{name}.toml"))).unwrap();
    config.data.path = root().join(&config.data.path);
    config.data.train_per_class = Some(per_class);
    config.data.test_per_class = Some(100);
    config.optim.epochs = epochs;
    // The online probe costs a forward of one view per step and never changes the run (tested
    // in tests/cli.rs); it is checked once, in `linear_evaluation_of_a_trained_encoder_…`.
    config.eval.online_probe = false;
    if let Some(cap) = max_warmup_steps {
        config.optim.warmup_steps = config.optim.warmup_steps.min(cap);
    }
    config
}

/// Runs `config` (kNN only at random init and after the last epoch) and returns its
/// `metrics.csv` rows. `UNMIX_LEARNS_SEED=N` replaces the config's seed, to measure a test's
/// gain over seeds when setting its margin.
///
/// Each run is its own `unmix train` process: Burn's seed is per device and process-wide, so
/// two runs in one process would draw each other's random numbers and stop being reproducible.
fn run(name: &str, config: TrainConfig) -> Vec<EpochRecord> {
    run_stopping(name, config, None)
}

/// [`run`], stopped after `stop_after` epochs of the config's schedule when given
/// (`unmix train --stop-after`: the learning-rate schedule keeps its whole length).
fn run_stopping(
    name: &str,
    mut config: TrainConfig,
    stop_after: Option<usize>,
) -> Vec<EpochRecord> {
    if let Ok(seed) = std::env::var("UNMIX_LEARNS_SEED") {
        config.run.seed = seed
            .parse()
            .expect("UNMIX_LEARNS_SEED: expected an integer");
        eprintln!("{name}: seed {}", config.run.seed);
    }
    config.eval.every_epochs = 0;
    let work = std::env::temp_dir().join(format!("unmix-learns-{name}-{}", std::process::id()));
    config.run.out_dir = work.join("runs");
    std::fs::create_dir_all(&work).unwrap();
    let config_path = work.join("config.toml");
    std::fs::write(&config_path, config.to_toml()).unwrap();
    let mut train = Command::new(env!("CARGO_BIN_EXE_unmix"));
    train.arg("train").arg("--config").arg(&config_path);
    if let Some(epochs) = stop_after {
        train.arg("--stop-after").arg(epochs.to_string());
    }
    let out = train.output().unwrap();
    assert!(
        out.status.success(),
        "{name}: unmix train failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = MetricsFile::read(
        &config
            .run
            .out_dir
            .join(&config.run.name)
            .join("metrics.csv"),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&work);
    rows
}

/// How long a learn run is and the gain it must show.
#[derive(Debug, Clone, Copy)]
struct Length {
    /// Training images per class.
    per_class: usize,
    /// Epochs.
    epochs: usize,
    /// Required gain: kNN points for the kNN tests, loss units for the SwAV loss tests.
    margin: f64,
}

const fn len(per_class: usize, epochs: usize, margin: f64) -> Length {
    Length {
        per_class,
        epochs,
        margin,
    }
}

/// What a learn test checks, at which length.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// The kNN top-1 gain over random init is at least `margin` points.
    Knn(Length, Option<usize>),
    /// The mean of the loss term `plain` falls by at least `margin` from the first epoch to
    /// the last.
    LossFalls(Length, Option<usize>),
}

/// Runs `short` unless `UNMIX_LEARNS=full` (`cargo xtask test --full`), then `full`. CI runs
/// the short checks; the full ones are those docs/methods.md records.
fn chosen(short: Check, full: Check) -> Check {
    if full_length() { full } else { short }
}

/// Whether `UNMIX_LEARNS=full` (`cargo xtask test --full`) asks for the full lengths.
fn full_length() -> bool {
    std::env::var("UNMIX_LEARNS").as_deref() == Ok("full")
}

/// Trains `configs/fashion_mnist/<name>.toml` at the chosen length and judges the run.
fn check(name: &str, short: Check, full: Check) {
    let check = chosen(short, full);
    let (length, warmup) = match check {
        Check::Knn(length, warmup) | Check::LossFalls(length, warmup) => (length, warmup),
    };
    let rows = train(name, length.per_class, length.epochs, warmup);
    judge(name, check, &rows);
}

/// Checks a finished run's rows: the kNN gain over random init, or the fall of the method's own
/// loss term (`plain`, without the Un-Mix terms) from the first epoch's mean to the last's.
/// Both figures are printed either way.
fn judge(name: &str, check: Check, rows: &[EpochRecord]) {
    // The method's own term where Un-Mix adds one; the total where the method names its terms
    // otherwise (Invariance Propagation's `instance` and `propagation`).
    let loss: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.term("plain").or(r.loss))
        .collect();
    let (first, last) = (loss[0], loss[loss.len() - 1]);
    let (random_init, trained) = first_and_last_knn(name, rows);
    let gain = trained - random_init;
    let (Check::Knn(length, _) | Check::LossFalls(length, _)) = check;
    let Length {
        per_class,
        epochs,
        margin,
    } = length;
    eprintln!(
        "{name} ({per_class}/class x {epochs} epochs): kNN top-1 random init {random_init:.2}%, trained {trained:.2}% ({gain:+.2} points); loss {first:.4} (epoch 1) -> {last:.4} (epoch {})",
        loss.len()
    );
    match check {
        Check::Knn(..) => assert!(
            gain >= margin,
            "{name}: kNN gain {gain:.2} points < {margin} (random init {random_init:.2}%, trained {trained:.2}%)"
        ),
        Check::LossFalls(..) => assert!(
            first - last >= margin,
            "{name}: the loss fell by {:.4} < {margin} ({first:.4} -> {last:.4})",
            first - last
        ),
    }
}

/// Trains as [`train`] does and checks the kNN gain over random init (the ignored SwAV tests).
fn learns(name: &str, length: Length, max_warmup_steps: Option<usize>) {
    let rows = train(name, length.per_class, length.epochs, max_warmup_steps);
    judge(name, Check::Knn(length, max_warmup_steps), &rows);
}

/// kNN top-1 at random init (epoch 0) and after the last epoch.
fn first_and_last_knn(name: &str, rows: &[EpochRecord]) -> (f64, f64) {
    let knn: Vec<f64> = rows.iter().filter_map(|r| r.knn_top1).collect();
    assert!(knn.len() >= 2, "{name}: no kNN before and after training");
    (knn[0], knn[knn.len() - 1])
}

// Margins are about half the gain observed at exactly these settings (seed 0; docs/methods.md,
// "learns"). The contrastive methods cap warm-up at 50 steps: one sized for 16 epochs would take
// most of a run this short. BYOL at full length keeps its config's 500 steps (half of its
// 1,000-step run): over three seeds BYOL + Un-Mix gained +5.2/+6.2/+1.7 points with it against
// +5.5/+0.1/+0.3 with 50 (docs/methods.md, BYOL).
//
// CI's budget (20 minutes on 2 cores, build included) leaves about 5 minutes for these runs.
// BYOL needs about 1,000 steps before its kNN accuracy rises above random init (it first dips),
// more than 7 minutes per run here, so CI checks that BYOL's regression loss falls over a short
// run and `cargo xtask test --full` checks its kNN gain at full length. Against the random-init
// encoder with the data's batch-norm statistics ([`random_init_knn`]) the CI-length runs gain on
// three seeds of four but not on seed 0 (`byol` +0.20, `byol_unmix` −3.90; docs/methods.md,
// "The other learn tests against the data's statistics"), so that baseline does not make a kNN
// check possible at CI's length either.

// BYOL's regression loss (2 − 2·cos, both directions) over 200 images per class × 2 epochs fell
// by 0.287 and 0.246 (`byol`, seeds 0 and 1) and 0.279 (`byol_unmix`, seed 0), while its kNN
// accuracy dipped, as it does early in every BYOL run here.
const BYOL_FALL: f64 = 0.12;
const BYOL_UNMIX_FALL: f64 = 0.12;

/// The contrastive methods' warm-up cap.
const SHORT_WARMUP: Option<usize> = Some(50);
/// BYOL's at full length: none, the config's own warm-up.
const CONFIG_WARMUP: Option<usize> = None;

#[test]
fn byol_unmix_learns() {
    check(
        "byol_unmix",
        Check::LossFalls(len(200, 2, BYOL_UNMIX_FALL), SHORT_WARMUP),
        Check::Knn(len(400, 8, 2.6), CONFIG_WARMUP),
    );
}

#[test]
#[ignore = "CI runs the Un-Mix variant, which trains this loss too; `cargo xtask test --full` runs it (docs/methods.md)"]
fn byol_without_unmix_learns() {
    check(
        "byol",
        Check::LossFalls(len(200, 2, BYOL_FALL), SHORT_WARMUP),
        Check::Knn(len(400, 8, 2.2), CONFIG_WARMUP),
    );
}

#[test]
fn moco_unmix_learns() {
    check(
        "moco_unmix",
        Check::Knn(len(300, 4, 3.2), SHORT_WARMUP),
        Check::Knn(len(300, 8, 4.5), SHORT_WARMUP),
    );
}

#[test]
#[ignore = "CI runs the Un-Mix variant, which trains this loss too; `cargo xtask test --full` runs it (docs/methods.md)"]
fn moco_without_unmix_learns() {
    check(
        "moco",
        Check::Knn(len(300, 4, 4.3), SHORT_WARMUP),
        Check::Knn(len(300, 8, 6.0), SHORT_WARMUP),
    );
}

#[test]
fn simclr_unmix_learns() {
    let both = Check::Knn(len(200, 3, 4.4), SHORT_WARMUP);
    check("simclr_unmix", both, both);
}

#[test]
#[ignore = "CI runs the Un-Mix variant, which trains this loss too; `cargo xtask test --full` runs it (docs/methods.md)"]
fn simclr_without_unmix_learns() {
    let both = Check::Knn(len(200, 3, 3.5), SHORT_WARMUP);
    check("simclr", both, both);
}

// SwAV does not beat random init on kNN at this scale, with or without Un-Mix, although one
// step matches the PyTorch reference (tests/parity.rs): measured in docs/methods.md ("SwAV at CPU
// scale"). Against the random-init encoder with the data's batch-norm statistics
// ([`random_init_knn`]) it gains on seed 0 but not on seed 1 at 3 epochs, and at 6 on seeds 0
// and 2 but not on seed 1 without Un-Mix (+0.40; docs/methods.md, "The other learn tests against
// the data's statistics"). The kNN tests stay, ignored, for `cargo test -- --ignored`; until
// SwAV learns here, the tests below check the weaker property that its swapped-prediction loss
// goes down.
#[test]
#[ignore = "SwAV does not beat random init on kNN at CPU scale (docs/methods.md)"]
fn swav_unmix_learns() {
    learns("swav_unmix", len(200, 3, 2.5), SHORT_WARMUP);
}

#[test]
#[ignore = "SwAV does not beat random init on kNN at CPU scale (docs/methods.md)"]
fn swav_learns() {
    learns("swav", len(200, 3, 3.7), SHORT_WARMUP);
}

// Observed falls: 3 epochs, seeds 0 and 1: 0.349 and 0.337 (`swav`), 0.229 and 0.285
// (`swav_unmix`); 2 epochs, seed 0: 0.337 (`swav`), 0.198 (`swav_unmix`). At `f946670` the
// 2-epoch `swav` run fell by only 0.143 (4.6615 -> 4.5180) because `ResNet::feature_dim` read a
// parameter before the first forward and so reordered the seeded initial draws; with sizes read
// lazily it falls by 0.319 again (4.6232 -> 4.3043, as at `22abd17`).
#[test]
#[ignore = "CI runs the Un-Mix variant, which trains this loss too; `cargo xtask test --full` runs it (docs/methods.md)"]
fn swav_without_unmix_loss_goes_down() {
    check(
        "swav",
        Check::LossFalls(len(200, 2, 0.15), SHORT_WARMUP),
        Check::LossFalls(len(200, 3, 0.15), SHORT_WARMUP),
    );
}

#[test]
fn swav_unmix_loss_goes_down() {
    check(
        "swav_unmix",
        Check::LossFalls(len(200, 2, 0.10), SHORT_WARMUP),
        Check::LossFalls(len(200, 3, 0.12), SHORT_WARMUP),
    );
}

// Invariance Propagation collapses on the config's 4,000 images, ours and our PyTorch reference of
// its code alike (docs/methods.md, "Invariance Propagation at CPU scale"). It learns on the whole
// embedded set with CIFAR's share of the bank as background, the CIFAR config's head and batch and
// the reference's initialisation (docs/methods.md, "On the whole embedded set"): there ours went
// 54.95 → 62.15 at epoch 32 and 64.45 at epoch 40 (seed 0; the reference's code 54.85 → 61.60 at
// 33). That takes 32 epochs of 10,000 images (about 35 minutes a run on one core), far over CI's
// budget, so `invariance_propagation_learns` runs under `cargo xtask test --full` only. The
// margin is about half of the measured gain, as for the other learn tests. With Un-Mix (our
// definition for memory banks) the same setting stays below the fresh random-init encoder
// (seed 0: 48.20 at epoch 32, 51.95 at 40; docs/methods.md, "Measured: Invariance Propagation
// with and without Un-Mix") but gains over the random-init encoder with the data's batch-norm
// statistics ([`random_init_knn`]) on every seed of three by epoch 40: +4.65, +4.65 and +15.50
// (+0.90, +2.05 and +17.10 at 32; docs/methods.md, "The other learn tests against the data's
// statistics"). So its test runs 40 epochs (about 70 minutes on one core) against that
// baseline, with a margin of half seed 0's gain, under `--full` too.
const IP_EPOCHS: usize = 32;

/// `configs/fashion_mnist/<name>.toml` on all 10,000 embedded training images (the config's
/// 2,000 test images), without the online probe, which never changes the run.
fn on_the_whole_set(name: &str) -> TrainConfig {
    let mut config =
        TrainConfig::load(&root().join(format!("configs/fashion_mnist/{name}.toml"))).unwrap();
    config.data.path = root().join(&config.data.path);
    config.data.train_per_class = Some(1000);
    config.eval.online_probe = false;
    config
}

/// `configs/fashion_mnist/<name>.toml` with the settings where Invariance Propagation learns on
/// the embedded set: all 10,000 training images, a background of 800 (8% of the bank, CIFAR's
/// 4,096 of 50,000), the 512 → 128 head and batch 128 of `configs/cifar10`, the 800-epoch
/// cosine (about constant here) with propagation from epoch 31 (the run is stopped early); kNN
/// on the projection over the config's 2,000 test images.
fn invariance_propagation_on_the_whole_set(name: &str) -> TrainConfig {
    let mut config = on_the_whole_set(name);
    if let unmix_models::HeadConfig::Mlp {
        hidden_dim,
        out_dim,
        ..
    } = &mut config.model.head
    {
        (*hidden_dim, *out_dim) = (512, 128);
    }
    config.optim.batch_size = 128;
    config.optim.epochs = 800;
    let unmix_train::methods::MethodConfig::InvariancePropagation(method) = &mut config.method
    else {
        panic!("{name}: not an Invariance Propagation config");
    };
    method.n_background = 800;
    method.ramp_epochs = 30;
    config
}

#[test]
#[ignore = "Invariance Propagation learns after ~35 minutes on the whole embedded set; `cargo xtask test --full` (docs/methods.md)"]
fn invariance_propagation_learns() {
    let name = "invariance_propagation";
    let config = invariance_propagation_on_the_whole_set(name);
    let rows = run_stopping(name, config, Some(IP_EPOCHS));
    judge(name, Check::Knn(len(1000, IP_EPOCHS, 3.5), None), &rows);
}

/// Invariance Propagation + Un-Mix's epochs on the whole set.
const IP_UNMIX_EPOCHS: usize = 40;

#[test]
#[ignore = "Invariance Propagation + Un-Mix learns after ~70 minutes on the whole embedded set; `cargo xtask test --full` (docs/methods.md)"]
fn invariance_propagation_unmix_learns() {
    let name = "invariance_propagation_unmix";
    let config = invariance_propagation_on_the_whole_set(name);
    let label = format!("{name} (1000/class x {IP_UNMIX_EPOCHS} epochs)");
    beats_calibrated_random_init(&label, name, config, Some(IP_UNMIX_EPOCHS), 2.3);
}

// InsDis (softmax-CE, the README's command) learns on two seeds of three at its config's length
// (4,000 images), ours and the reference's alike: +2.25 kNN points on average for ours, +5.10 for
// the reference, a gap within seed noise over three seeds (docs/methods.md, "InsDis"). On the
// whole embedded set with 4,096 noise rows it learns on every seed of three (docs/methods.md,
// "On the whole embedded set", seeds 0–2): +8.90, +4.65 and +5.65 points after the config's 16
// epochs. That is 160,000 images a run, over CI's budget, so `insdis_learns` runs under `cargo
// xtask test --full` only; the margin is about half of the smallest measured gain. With
// Un-Mix (our definition for memory banks) InsDis loses 7 points on average over three seeds
// of 2,000 images ("Measured: InsDis with and without each mixture"), so its test keeps the
// config's length and the gain the config is for, and stays ignored.

/// `configs/fashion_mnist/<name>.toml` on all 10,000 embedded training images with 4,096 noise
/// rows (41% of the bank; the config's 1,024 are 26% of its 4,000, the CIFAR config's 16,384
/// 33% of 50,000), everything else as configured: batch 32, 16 epochs with the ×0.1 steps at
/// 10, 13 and 15; kNN on the projection over the config's 2,000 test images.
fn insdis_learns_on_the_whole_set(name: &str, margin: f64) {
    let mut config = on_the_whole_set(name);
    let unmix_train::methods::MethodConfig::Insdis(method) = &mut config.method else {
        panic!("{name}: not an InsDis config");
    };
    method.nce_k = 4096;
    let epochs = config.optim.epochs;
    let rows = run(name, config);
    judge(name, Check::Knn(len(1000, epochs, margin), None), &rows);
}

#[test]
#[ignore = "InsDis learns on every seed on the whole embedded set, 16 epochs of 10,000 images; `cargo xtask test --full` (docs/methods.md)"]
fn insdis_learns() {
    insdis_learns_on_the_whole_set("insdis", 2.5);
}

/// InsDis (`configs/fashion_mnist/insdis.toml`) on 2,000 images for 8 epochs (16 under
/// `--full`, the config's), against the random-init encoder with the data's batch-norm
/// statistics ([`random_init_knn`]): the fresh encoder scores 13–19 points above that baseline
/// here, which hid InsDis' learning at this length (docs/methods.md, "The other learn tests
/// against the data's statistics"). Measured, baseline → trained, on two machines on which the
/// same seed trains differently ("Learn tests on another machine" there):
/// 8 epochs, seeds 0–3, +12.80, +13.70, +20.90, +11.60 on one and +6.20, +7.90, +20.00, +6.70 on
/// the other; 16 epochs +16.50, +19.90, +19.70 (seeds 0–2) and +11.70, +11.40 (seeds 0 and 3).
/// Margins about half of the smallest gain at each length. CI runs InsDis without Un-Mix, which
/// loses on seed 0 (below).
#[test]
fn insdis_learns_against_calibrated_random_init() {
    let (epochs, margin) = if full_length() { (16, 5.5) } else { (8, 3.0) };
    let label = format!("insdis (200/class x {epochs} epochs)");
    let config = fashion_config("insdis", 200, epochs, None);
    beats_calibrated_random_init(&label, "insdis_part", config, None, margin);
}

#[test]
#[ignore = "InsDis + Un-Mix loses kNN on seed 0 at CPU scale, against either random-init baseline (docs/methods.md)"]
fn insdis_unmix_learns() {
    learns("insdis_unmix", len(400, 16, 2.0), None);
}

// CMC contrasts an image's colour channels with its luma; Fashion-MNIST is grey, so the second
// encoder sees a constant image and there is nothing to learn across views (docs/methods.md,
// "CMC at CPU scale"). The tests ask for the kNN gain its configs are for and stay ignored until
// colour images are at hand.
#[test]
#[ignore = "CMC's colour view is empty on grey Fashion-MNIST (docs/methods.md)"]
fn cmc_learns() {
    learns("cmc", len(400, 16, 2.0), None);
}

#[test]
#[ignore = "CMC's colour view is empty on grey Fashion-MNIST (docs/methods.md)"]
fn cmc_unmix_learns() {
    learns("cmc_unmix", len(400, 16, 2.0), None);
}

/// `configs/cifar10/<name>.toml` as written but for the CPU scale (width 8, `batch`, `epochs`),
/// on `per_class` real Fashion-MNIST images per class (and 100 per class to test) written as
/// CIFAR-10 binary files in a fresh folder, which is returned with the config for removal.
fn demo_settings(
    name: &str,
    per_class: usize,
    batch: usize,
    epochs: usize,
) -> (std::path::PathBuf, TrainConfig) {
    // Named by length too: `--include-ignored` runs the 6-epoch and the quick test of a config
    // side by side in one process.
    let work = std::env::temp_dir().join(format!(
        "unmix-learns-data-{name}-{per_class}x{epochs}-{}",
        std::process::id()
    ));
    let data = work.join("cifar-10-batches-bin");
    write_cifar10_dir(
        &data,
        &cifar_shaped(Split::Train, per_class),
        &cifar_shaped(Split::Test, 100),
    );
    let mut config =
        TrainConfig::load(&root().join(format!("configs/cifar10/{name}.toml"))).unwrap();
    config.data.path = data;
    config.data.num_workers = 1;
    config.run.device = "cpu".into();
    config.model.backbone.width = 8;
    config.optim.batch_size = batch;
    config.optim.epochs = epochs;
    (work, config)
}

/// kNN top-1 of `config`'s encoder at random initialisation: fresh (the monitor's epoch-0 row)
/// and with its batch norms' running statistics estimated from the data. The second is the same
/// config and seed at learning rate 1e-12 (the weights unchanged to f32 precision; the config
/// checks for a positive rate), stopped after its first epoch, as
/// `linear_evaluation_of_a_trained_encoder_beats_random_init` builds its baseline.
///
/// Why that baseline: a fresh encoder's running statistics are still 0 and 1, so every batch
/// norm is close to the identity in evaluation mode, while a trained encoder is evaluated with
/// statistics of the data; the two then differ in more than the trained weights. At the demo's
/// settings the fresh encoder scores 45–61%, 8–19 points above the same weights with the data's
/// statistics (34–48%), by an amount that depends on the seed, which is how seed 1 seemed to
/// lose points there (docs/methods.md, "The demo's settings at CPU scale").
fn random_init_knn(name: &str, config: &TrainConfig) -> (f64, f64) {
    let mut baseline = config.clone();
    baseline.optim.lr = 1e-12;
    // Stopped rather than shortened, so that the schedule (and Invariance Propagation's 800-epoch
    // cosine with its ramp) is the trained run's.
    let rows = run_stopping(&format!("{name}_random_init"), baseline, Some(1));
    first_and_last_knn(name, &rows)
}

/// Trains `config` (stopped after `stop_after` epochs when given) and checks that its kNN top-1
/// gains at least `margin` points over the same encoder at random initialisation with the data's
/// batch-norm statistics ([`random_init_knn`]); prints both baselines under `label`.
fn beats_calibrated_random_init(
    label: &str,
    name: &str,
    config: TrainConfig,
    stop_after: Option<usize>,
    margin: f64,
) {
    let (fresh, calibrated) = random_init_knn(name, &config);
    let (_, trained) = first_and_last_knn(name, &run_stopping(name, config, stop_after));
    let gain = trained - calibrated;
    eprintln!(
        "{label}: kNN top-1 random init {calibrated:.2}% with the data's batch-norm statistics ({fresh:.2}% with fresh ones), trained {trained:.2}% ({gain:+.2} points)"
    );
    assert!(
        gain >= margin,
        "{label}: kNN gain {gain:.2} points < {margin} (random init with the data's batch-norm statistics {calibrated:.2}%, trained {trained:.2}%)"
    );
}

/// The authors' CIFAR-demo settings on the CIFAR binary path (issue 11, item 7):
/// `configs/cifar10/<name>.toml` as written (symmetric loss, linear head to 128-d, K 4,096, m
/// 0.99, T 0.1, split BN 8 with shuffle-BN, the demo's stem initialisation, SGD 0.06 with wd
/// 5e-4, cosine counted from 1, kNN k 200 t 0.1 on the projection) on `per_class` real
/// Fashion-MNIST images per class written as CIFAR-10 binary files (`support/cifar_files.rs`),
/// width 8, 1,000 test images, judged against the random-init encoder with the data's
/// batch-norm statistics ([`random_init_knn`]).
fn demo_settings_beat_calibrated_random_init(
    name: &str,
    (per_class, batch, epochs): (usize, usize, usize),
    margin: f64,
) {
    let (work, config) = demo_settings(name, per_class, batch, epochs);
    beats_calibrated_random_init(
        &format!(
            "cifar10/{name} at the demo's settings ({per_class}/class x {epochs} epochs, batch {batch})"
        ),
        // Named by length: `--include-ignored` runs both lengths of a config side by side.
        &format!("cifar10_{name}_{per_class}x{epochs}"),
        config,
        None,
        margin,
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// The demo's settings at CI's length: images per class, batch, epochs (96 steps).
///
/// Measured over seeds 0–7 (docs/methods.md, "The demo's settings at CPU scale"), random init
/// with the data's statistics → 3 epochs: MoCo gains +13.70 (seed 0), +15.50, +10.40, +11.70,
/// +6.40, +0.00, +11.70, +5.60; with Un-Mix +12.90 (seed 0), +9.30, +20.00, +14.00, +7.40,
/// +1.40, +19.50, +2.30. The margins are about 40% of seed 0's gains; seed 5 (and seed 7 with
/// Un-Mix) would fail them at this length and pass at 6 epochs (MoCo +7.60 and +5.70, Un-Mix
/// +8.30 and +8.10), twice CI's time.
const DEMO_QUICK_LENGTH: (usize, usize, usize) = (200, 64, 3);

#[test]
#[ignore = "CI runs the Un-Mix variant, which trains this loss too; `cargo xtask test --full` runs it (docs/methods.md)"]
fn moco_demo_settings_learn_quickly_on_cifar_files() {
    demo_settings_beat_calibrated_random_init("moco", DEMO_QUICK_LENGTH, 5.0);
}

#[test]
fn moco_unmix_demo_settings_learn_quickly_on_cifar_files() {
    demo_settings_beat_calibrated_random_init("moco_unmix", DEMO_QUICK_LENGTH, 4.5);
}

/// The demo's settings at the CPU scale of the whole runs: images per class, batch,
/// epochs (234 steps), about 15 minutes a run on 2 cores, so `cargo xtask test --full` only.
///
/// Measured (docs/methods.md, "The demo's settings at CPU scale"), random init with the data's
/// statistics → 6 epochs (2026-12-06): MoCo 39.40 → 63.10 (+23.70) on seed 0 and 43.00 →
/// 58.50 (+15.50) on seed 1; with Un-Mix 39.00 → 65.00 (+26.00) and 42.80 → 62.30 (+19.50).
/// Against the monitor's fresh encoder (51.80% and 61.50%) the same runs gain +11.30 and +13.20
/// on seed 0 but −3.00 and +0.80 on seed 1. The margins are about half of seed 0's gains.
const DEMO_LENGTH: (usize, usize, usize) = (500, 128, 6);

#[test]
#[ignore = "about 15 minutes per run on 2 cores, over CI's budget: `cargo xtask test --full` runs it (docs/methods.md)"]
fn moco_demo_settings_learn_on_cifar_files() {
    demo_settings_beat_calibrated_random_init("moco", DEMO_LENGTH, 11.5);
}

#[test]
#[ignore = "about 15 minutes per run on 2 cores, over CI's budget: `cargo xtask test --full` runs it (docs/methods.md)"]
fn moco_unmix_demo_settings_learn_on_cifar_files() {
    demo_settings_beat_calibrated_random_init("moco_unmix", DEMO_LENGTH, 13.0);
}

/// Top-1 (%) of `unmix eval --protocol <protocol> --epochs <epochs>` on the run in `run_dir`.
fn eval_top1(run_dir: &std::path::Path, protocol: &str, epochs: usize) -> f64 {
    let out = Command::new(env!("CARGO_BIN_EXE_unmix"))
        .args(["eval", "--checkpoint"])
        .arg(run_dir)
        .args(["--protocol", protocol, "--epochs", &epochs.to_string()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let row = text
        .lines()
        .rfind(|l| l.contains("images |"))
        .unwrap_or_else(|| panic!("{text}"));
    row.split('|')
        .nth(5)
        .unwrap()
        .trim()
        .trim_end_matches('%')
        .parse()
        .unwrap()
}

/// The augmented linear protocol (MoCo's recipe, 10 epochs) scores a MoCo + Un-Mix encoder
/// trained 4 epochs on 100 images per class above the same encoder at its random
/// initialisation. The baseline is the same config and seed run one epoch at learning rate
/// 1e-12 (the config checks for a positive rate): the same initial weights to f32 precision,
/// with batch-norm statistics of the data (a fresh encoder's are 0 and 1, a weaker baseline).
#[test]
fn linear_evaluation_of_a_trained_encoder_beats_random_init() {
    let work = std::env::temp_dir().join(format!("unmix-learns-linear-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let mut config =
        TrainConfig::load(&root().join("configs/fashion_mnist/moco_unmix.toml")).unwrap();
    config.data.path = root().join(&config.data.path);
    config.data.train_per_class = Some(100);
    config.data.test_per_class = Some(100);
    config.optim.warmup_steps = config.optim.warmup_steps.min(50);
    config.eval.every_epochs = 0;
    config.run.out_dir = work.join("runs");
    let mut top1 = Vec::new();
    for (name, epochs, lr) in [("random_init", 1, 1e-12), ("trained", 4, config.optim.lr)] {
        let mut c = config.clone();
        c.run.name = name.into();
        c.optim.epochs = epochs;
        c.optim.lr = lr;
        std::fs::create_dir_all(&work).unwrap();
        let path = work.join(format!("{name}.toml"));
        std::fs::write(&path, c.to_toml()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_unmix"))
            .args(["train", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        top1.push(eval_top1(&c.run.out_dir.join(name), "linear", 10));
    }
    // The online probe of the trained run (solo-learn's online accuracy) learned too: well above
    // the 10% of chance on the test images.
    let rows = MetricsFile::read(&config.run.out_dir.join("trained").join("metrics.csv")).unwrap();
    let probe = rows.last().and_then(|r| r.online_probe_test_top1).unwrap();
    eprintln!("online probe after 4 epochs: {probe:.2}% on the test images");
    assert!(probe >= ONLINE_PROBE_AT_LEAST, "online probe {probe:.2}%");
    let (random_init, trained) = (top1[0], top1[1]);
    eprintln!(
        "linear (MoCo's recipe, 10 epochs): random init {random_init:.2}%, trained {trained:.2}%"
    );
    assert!(
        trained >= random_init + LINEAR_MARGIN,
        "{trained:.2}% vs {random_init:.2}%"
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// About half the smallest gain measured with these settings: 17.50% at random init, 32.70%
/// trained before the fused batch norm (+15.20), 25.50% with it (+8.00; seeds 1 and 2 of the
/// same settings by `--set run.seed`: +16.70 and +8.40; docs/evaluation.md).
const LINEAR_MARGIN: f64 = 4.0;
/// Well above chance (10%), below the 35.00% measured with exactly these settings.
const ONLINE_PROBE_AT_LEAST: f64 = 25.0;
