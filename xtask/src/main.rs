//! `cargo xtask <task>`: the project's commands, as thin wrappers around cargo.
//!
//! - `train --config FILE [--device D] [--resume] [...]`: builds `unmix` with the backend the
//!   device needs (`--device cuda` → `--features cuda`) and runs `unmix train`.
//! - `eval --checkpoint DIR [--device D]`: runs `unmix eval`.
//! - `cut-dataset [--source DIR]`: re-cuts the embedded Fashion-MNIST subset.
//! - `bench`: the backend and training-step benchmarks (`docs/benchmarks.md`); `bench data`:
//!   the input pipeline against the step for every recipe (`bench_data.rs`).
//! - `parity`: step-level parity of our methods with the PyTorch references in
//!   `docs/reference/` (`tests/parity.rs`; skipped with a message without Python and torch).
//!   `parity --runs [...]`: whole runs of ours and of the references over seeds, with and
//!   without Un-Mix, and one table (`docs/reference/run_parity.py`).
//! - `gpu-kit`: the release binary with every backend and the GPU run kit's files in
//!   `target/gpu-kit/` (`scripts/gpu_kit.sh`), and the binary packed for the device tool
//!   (`unmix.xz`, `scripts/gpu_device_run.sh`).
//! - `test [--full]`: the whole CI: fmt, then one build of every target with every backend
//!   (CPU, CUDA, wgpu) under clippy (`-D warnings`) that also runs every test, wgpu's on Mesa's
//!   software Vulkan driver (installed with apt when missing); `--full` runs the learn tests at
//!   full length, with the methods without Un-Mix, the CIFAR-demo-settings ones, and Invariance
//!   Propagation and InsDis on the whole embedded set.

use std::process::{Command, ExitCode};

mod bench_data;

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Cargo's target directory.
fn target_dir() -> String {
    std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())
}

/// A failed command: its message and the exit code to pass on (`unmix` exits 3 when a run
/// diverges; scripts can tell that from other failures).
struct Failed(String, u8);

fn run(mut cmd: Command) -> Result<(), Failed> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| Failed(format!("could not start {cmd:?}: {e}"), 1))?;
    if status.success() {
        Ok(())
    } else {
        let code = status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1);
        Err(Failed(format!("{cmd:?} failed with {status}"), code))
    }
}

/// The value after `flag` in `args`, if any.
fn option<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// Where `build_unmix` leaves the binary.
fn unmix_path(release: bool) -> std::path::PathBuf {
    let profile = if release { "release" } else { "debug" };
    std::path::Path::new(&target_dir())
        .join(profile)
        .join("unmix")
}

/// The cargo feature a `--device` value needs.
fn feature_for(device: &str) -> Option<&'static str> {
    match device.split(':').next().unwrap_or("") {
        "cuda" => Some("cuda"),
        "wgpu" => Some("wgpu"),
        _ => None,
    }
}

/// Builds the `unmix` binary (`target/<profile>/unmix`) with `feature` if given.
fn build_unmix(release: bool, feature: Option<&str>) -> Result<(), Failed> {
    // Build first, with cargo's own progress (crate count and the crate being compiled): on a
    // fresh clone Burn takes minutes to build, and a silent screen looks like a hang.
    let mut build = cargo();
    build.args(["build", "-p", "unmix-train", "--bin", "unmix"]);
    if release {
        build.arg("--release");
    }
    if let Some(f) = feature {
        build.args(["--features", f]);
    }
    let target = target_dir();
    if !std::path::Path::new(&target)
        .join("debug")
        .join("unmix")
        .exists()
        && !release
    {
        eprintln!(
            "building unmix: the first build compiles Burn and takes about 10 minutes on 2 cores; \
             later runs start at once"
        );
    }
    run(build)
}

fn unmix(args: &[String], release: bool) -> Result<(), Failed> {
    let device = option(args, "--device");
    build_unmix(release, device.and_then(feature_for))?;
    let mut cmd = cargo();
    cmd.args(["run", "--quiet", "-p", "unmix-train", "--bin", "unmix"]);
    if release {
        cmd.arg("--release");
    }
    if let Some(f) = device.and_then(feature_for) {
        cmd.args(["--features", f]);
    }
    cmd.arg("--").args(args);
    run(cmd)
}

/// `parity --runs`: whole runs of ours and of the PyTorch references on the same data, settings
/// and seeds, with and without Un-Mix, and one table (`docs/reference/run_parity.py`, which
/// documents the options; written to `target/parity-runs/table.md`). Skipped with a message
/// without Python and torch, except `--dry-run`, which prints the runs' commands only.
fn parity_runs(args: &[String], release: bool) -> Result<(), Failed> {
    let dry_run = args.iter().any(|a| a == "--dry-run");
    let torch = Command::new("python3")
        .args(["-c", "import torch, torchvision"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !torch && !dry_run {
        eprintln!(
            "skipped: the run-level parity needs python3 with torch and torchvision \
             (pip install torch torchvision)"
        );
        return Ok(());
    }
    if !dry_run {
        build_unmix(release, None)?;
    }
    let bin = unmix_path(release);
    let mut cmd = Command::new("python3");
    cmd.arg("docs/reference/run_parity.py")
        .arg("--unmix-bin")
        .arg(bin)
        .args(args.iter().filter(|a| *a != "--runs"));
    run(cmd)
}

/// The whole CI, on one build of the workspace.
///
/// Lints come from building the tests under `clippy-driver` (as `RUSTC_WORKSPACE_WRAPPER`, the
/// way `cargo clippy` itself runs it, with `-D warnings`): one compilation of every target both
/// lints and produces the test binaries, where `cargo clippy` followed by `cargo test` compiled
/// the dependency tree twice (check mode, then code generation). `full` also runs the
/// full-length learn tests (`UNMIX_LEARNS=full`, see `tests/learns.rs`), then the ignored
/// ones: the methods without Un-Mix and the CIFAR-demo settings.
fn test(full: bool) -> Result<(), Failed> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;
    let wgpu_driver = ensure_vulkan_driver();
    let tests = |args: &[&str]| -> Result<Command, Failed> {
        let mut tests = linted_cargo()?;
        tests.args(["test", "--workspace", "--features", ALL_BACKENDS]);
        tests.args(args);
        if wgpu_driver {
            // `tests/backends.rs` fails rather than skips when the adapter is missing.
            tests.env("UNMIX_REQUIRE_WGPU", "1");
        }
        // CubeCL's autotuner times several kernels per new shape; on the software driver each
        // is a shader compilation (the wgpu tests take 6 minutes at the default level, 1.5 at
        // this).
        tests.env("CUBECL_AUTOTUNE_LEVEL", "minimal");
        if full {
            tests.env("UNMIX_LEARNS", "full");
        }
        Ok(tests)
    };
    // One compilation of every target: the lints and the test binaries.
    run(tests(&["--no-run"])?)?;
    // The wgpu checks spend their minutes compiling shaders on the software driver, most of it
    // on one core: they run beside the other tests (alone, they took 316 s of the 1308 s of a
    // fresh-clone rehearsal), their output kept in a file and printed when they end.
    let log_path = std::path::Path::new(&target_dir()).join("wgpu-tests.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| Failed(format!("could not create {}: {e}", log_path.display()), 1))?;
    let mut wgpu = tests(&["--test", "backends", "--", "--nocapture"])?;
    let err_log = log
        .try_clone()
        .map_err(|e| Failed(format!("{}: {e}", log_path.display()), 1))?;
    wgpu.stdout(log).stderr(err_log);
    eprintln!("$ {wgpu:?} > {} (in the background)", log_path.display());
    let mut wgpu = wgpu
        .spawn()
        .map_err(|e| Failed(format!("could not start the wgpu tests: {e}"), 1))?;
    let rest = run(tests(&["--", "--skip", "wgpu_"])?);
    let wgpu_status = wgpu
        .wait()
        .map_err(|e| Failed(format!("the wgpu tests: {e}"), 1))?;
    eprintln!("--- {} ---", log_path.display());
    eprint!("{}", std::fs::read_to_string(&log_path).unwrap_or_default());
    rest?;
    if !wgpu_status.success() {
        return Err(Failed(
            format!(
                "the wgpu tests (`--test backends`) failed with {wgpu_status}: {}",
                log_path.display()
            ),
            1,
        ));
    }
    if full {
        // Learn tests ignored in CI's run: the CIFAR-demo settings (about 15 minutes each), the
        // methods without Un-Mix (CI runs the Un-Mix variants, whose loss contains the plain
        // one), and Invariance Propagation with and without Un-Mix (about 35 and 70 minutes)
        // and InsDis on the whole embedded set (tests/learns.rs). The same build runs them here.
        let mut ignored = linted_cargo()?;
        ignored.args(["test", "-p", "unmix-train", "--features", ALL_BACKENDS]);
        ignored.args(["--test", "learns", "--"]);
        ignored.args([
            "--ignored",
            "without_unmix",
            "demo_settings",
            "invariance_propagation_learns",
            "invariance_propagation_unmix_learns",
            "insdis_learns",
        ]);
        ignored.env("UNMIX_LEARNS", "full");
        run(ignored)?;
    }
    Ok(())
}

/// Every backend, compiled into the one test build: CUDA (kernels by NVRTC at run time; the
/// workspace's `patches/cubecl-llvm` keeps LLVM out of the build) and wgpu, so CI builds and
/// lints both for real, and runs wgpu on Mesa's software Vulkan driver (`tests/backends.rs`).
const ALL_BACKENDS: &str = "unmix-train/cuda,unmix-train/wgpu";

/// Mesa's software Vulkan driver (lavapipe) for the wgpu tests: already there, or installed
/// with apt when we are root (Debian's `mesa-vulkan-drivers`, refreshing the package lists if
/// the first try fails). Returns whether a Vulkan driver is installed now; when not, the wgpu
/// tests say they skip.
fn ensure_vulkan_driver() -> bool {
    let installed = || {
        ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
            .iter()
            .any(|d| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()))
    };
    if installed() {
        return true;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        let apt = |args: &[&str]| {
            let mut c = Command::new("apt-get");
            c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            run(c).is_ok()
        };
        let install = ["install", "-y", "-q", "mesa-vulkan-drivers"];
        let _ = apt(&install) || (apt(&["update", "-q"]) && apt(&install));
    }
    if !installed() {
        eprintln!(
            "warning: no Vulkan driver, and `apt-get install mesa-vulkan-drivers` was not \
             possible here: the wgpu tests (tests/backends.rs) will skip"
        );
    }
    installed()
}

/// `cargo` whose workspace crates are compiled by `clippy-driver` with `-D warnings`: the
/// same build lints and produces the binaries (see [`test`]).
fn linted_cargo() -> Result<Command, Failed> {
    let mut c = cargo();
    c.env("RUSTC_WORKSPACE_WRAPPER", clippy_driver()?);
    c.env(
        "CLIPPY_ARGS",
        "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__",
    );
    Ok(c)
}

/// `clippy-driver` of the active toolchain.
fn clippy_driver() -> Result<std::path::PathBuf, Failed> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| Failed(format!("could not run {rustc}: {e}"), 1))?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let driver = std::path::Path::new(&sysroot)
        .join("bin")
        .join(format!("clippy-driver{}", std::env::consts::EXE_SUFFIX));
    if driver.exists() {
        Ok(driver)
    } else {
        Err(Failed(
            format!(
                "{} not found: install clippy (`rustup component add clippy`)",
                driver.display()
            ),
            1,
        ))
    }
}

/// The GPU run kit (`scripts/gpu_kit.sh`): the release binary with every backend, and what the
/// script reads (`configs/`, `datasets/`, `docs/reference/`), copied to `target/gpu-kit/` for a
/// machine without Rust. There: `bash scripts/gpu_kit.sh`.
fn gpu_kit() -> Result<(), Failed> {
    let mut build = cargo();
    build.args(["build", "--release", "-p", "unmix-train", "--bin", "unmix"]);
    build.args(["--features", "cuda,wgpu"]);
    // Without `nvcc` here, `cudarc` would target the newest CUDA API it knows (13.4), whose
    // entry points an older driver lacks; the kit targets CUDA 13.0's, which every CUDA 13
    // driver (580 and later) has. `CUDARC_CUDA_VERSION=12080` (say) builds for a CUDA 12 machine.
    let cuda_api = std::env::var("CUDARC_CUDA_VERSION").unwrap_or_else(|_| "13000".into());
    eprintln!("gpu-kit: CUDA API {cuda_api} (CUDARC_CUDA_VERSION)");
    build.env("CUDARC_CUDA_VERSION", &cuda_api);
    run(build)?;
    let target = target_dir();
    let kit = std::path::Path::new(&target).join("gpu-kit");
    let _ = std::fs::remove_dir_all(&kit);
    let fail = |what: &str, e: std::io::Error| Failed(format!("gpu-kit: {what}: {e}"), 1);
    std::fs::create_dir_all(kit.join("docs")).map_err(|e| fail("create", e))?;
    let binary = std::path::Path::new(&target).join("release").join("unmix");
    std::fs::copy(&binary, kit.join("unmix")).map_err(|e| fail("copy the binary", e))?;
    for (from, to) in [
        ("configs", "configs"),
        ("datasets", "datasets"),
        ("docs/reference", "docs/reference"),
        ("scripts", "scripts"),
    ] {
        let mut cp = Command::new("cp");
        cp.args(["-r", from]).arg(kit.join(to));
        run(cp)?;
    }
    pack(&kit)?;
    eprintln!(
        "kit in {}: copy it to the GPU machine and run `bash scripts/gpu_kit.sh` there \
         (or, with the device tool, carry {}/unmix.xz and run `bash scripts/gpu_device_run.sh`)",
        kit.display(),
        kit.display()
    );
    Ok(())
}

/// `unmix.xz` beside the kit's binary: stripped and xz-compressed (152 MB → about 20 MB), for the
/// device tool, which carries at most 64 MiB (`scripts/gpu_device_run.sh` unpacks it). Skipped,
/// with a message, where `strip` or `xz` is missing.
fn pack(kit: &std::path::Path) -> Result<(), Failed> {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("strip") || !have("xz") {
        eprintln!("gpu-kit: no `strip` or `xz` here, so no unmix.xz for the device tool");
        return Ok(());
    }
    let stripped = kit.join("unmix.stripped");
    let mut strip = Command::new("strip");
    strip.arg("-o").arg(&stripped).arg(kit.join("unmix"));
    run(strip)?;
    let mut xz = Command::new("xz");
    xz.args(["-T2", "-6", "--force"]).arg(&stripped);
    run(xz)?;
    std::fs::rename(kit.join("unmix.stripped.xz"), kit.join("unmix.xz")).map_err(|e| {
        Failed(
            format!("gpu-kit: {}: {e}", kit.join("unmix.xz").display()),
            1,
        )
    })
}

/// `cargo publish --dry-run` of every crate we publish, verification included: each is packaged
/// alone and built from its package against the others' packages (cargo's temporary registry).
/// The workspace-level `tests/` and `examples/` are not in the packages (cargo says so).
fn publish_check() -> Result<(), Failed> {
    let mut publish = cargo();
    publish.args([
        "publish",
        "--dry-run",
        "--allow-dirty",
        "--workspace",
        "--exclude",
        "xtask",
    ]);
    run(publish)
}

const HELP: &str = "cargo xtask <task>
  train --config FILE [--device cpu|cuda|wgpu] [--resume | --overwrite] [--stop-after N] [--release]
  eval --checkpoint DIR [--device D] [--protocol knn|wmse-knn|wmse-linear|flatness|all]
  export --checkpoint DIR --out FILE.safetensors
  report --run DIR                 (write a run's report.md and plots again)
  compare RUN_A RUN_B [--out DIR]  (runs side by side: compare.md and plots)
  cut-dataset [--source /usr/share/datasets/fashion-mnist]
  bench [--device D] [--layers] [--pytorch] [--dtype f16|bf16]
  bench data [--device D] [--width 8] [--batch 64] [--batches 20] [--configs configs/fashion_mnist]
  parity [--runs [--methods moco,simclr,byol,swav] [--seeds 0,1,2] [--epochs 10] [--jobs 2] [--same-init] [--dry-run]]
  test [--full]
  gpu-kit
  publish-check";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let release = args.iter().any(|a| a == "--release");
    let rest: Vec<String> = args
        .iter()
        .skip(1)
        .filter(|a| *a != "--release")
        .cloned()
        .collect();
    let result = match args.first().map(String::as_str) {
        Some("train") => unmix(&[vec!["train".to_string()], rest].concat(), release),
        Some("eval") => unmix(&[vec!["eval".to_string()], rest].concat(), release),
        Some("export") => unmix(&[vec!["export".to_string()], rest].concat(), release),
        Some("report") => unmix(&[vec!["report".to_string()], rest].concat(), release),
        Some("compare") => unmix(&[vec!["compare".to_string()], rest].concat(), release),
        Some("cut-dataset") => {
            let source = option(&rest, "--source")
                .unwrap_or("/usr/share/datasets/fashion-mnist")
                .to_string();
            unmix(
                &["cut-fashion-mnist".into(), "--source".into(), source],
                release,
            )
        }
        Some("bench") if rest.first().is_some_and(|a| a == "data") => {
            bench_data::bench_data(&rest[1..], release)
        }
        Some("bench") => unmix(&[vec!["bench".to_string()], rest].concat(), release),
        Some("parity") if rest.iter().any(|a| a == "--runs") => parity_runs(&rest, release),
        Some("parity") => linted_cargo().and_then(|mut cmd| {
            // The test build's flags and features, so that after `test` nothing recompiles.
            cmd.args(["test", "-p", "unmix-train", "--features", ALL_BACKENDS]);
            cmd.args(["--test", "parity", "--", "--nocapture"]);
            run(cmd)
        }),
        Some("test") => test(rest.iter().any(|a| a == "--full")),
        Some("gpu-kit") => gpu_kit(),
        Some("publish-check") => publish_check(),
        _ => {
            eprintln!("{HELP}");
            return ExitCode::from(if args.is_empty() { 0 } else { 2 });
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed(message, code)) => {
            eprintln!("error: {message}");
            ExitCode::from(code.max(1))
        }
    }
}
