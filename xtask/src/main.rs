//! `cargo xtask <task>`: the project's commands, as thin wrappers around cargo.
//!
//! - `train --config FILE [--device D] [--resume] [...]`: builds `unmix` with the backend the
//!   device needs (`--device cuda` → `--features cuda`) and runs `unmix train`.
//! - `eval --checkpoint DIR [--device D]`: runs `unmix eval`.
//! - `cut-dataset [--source DIR]`: re-cuts the embedded Fashion-MNIST subset.
//! - `bench`: the backend and training-step benchmarks (`docs/benchmarks.md`).
//! - `parity`: step-level parity of our methods with the PyTorch references in
//!   `docs/reference/` (`tests/parity.rs`; skipped with a message without Python and torch).
//! - `test [--full]`: the whole CI: fmt, then one build of every target under clippy
//!   (`-D warnings`) that also runs every test; `--full` runs the learn tests at full length
//!   and the CIFAR-demo-settings learn tests.
//! - `check-backends`: clippy with the `cuda` and `wgpu` features compiled in (their type
//!   check; a second compilation of the dependency tree, so not part of `test`).

use std::process::{Command, ExitCode};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
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

/// The cargo feature a `--device` value needs.
fn feature_for(device: &str) -> Option<&'static str> {
    match device.split(':').next().unwrap_or("") {
        "cuda" => Some("cuda"),
        "wgpu" => Some("wgpu"),
        "cubecl-cpu" => Some("cpu"),
        _ => None,
    }
}

fn unmix(args: &[String], release: bool) -> Result<(), Failed> {
    let device = args
        .iter()
        .position(|a| a == "--device")
        .and_then(|i| args.get(i + 1))
        .cloned();
    // Build first, with cargo's own progress (crate count and the crate being compiled): on a
    // fresh clone Burn takes minutes to build, and a silent screen looks like a hang.
    let mut build = cargo();
    build.args(["build", "-p", "unmix-train", "--bin", "unmix"]);
    if release {
        build.arg("--release");
    }
    if let Some(f) = device.as_deref().and_then(feature_for) {
        build.args(["--features", f]);
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
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
    run(build)?;
    let mut cmd = cargo();
    cmd.args(["run", "--quiet", "-p", "unmix-train", "--bin", "unmix"]);
    if release {
        cmd.arg("--release");
    }
    if let Some(f) = device.as_deref().and_then(feature_for) {
        cmd.args(["--features", f]);
    }
    cmd.arg("--").args(args);
    run(cmd)
}

/// The whole CI, on one build of the workspace.
///
/// Lints come from building the tests under `clippy-driver` (as `RUSTC_WORKSPACE_WRAPPER`, the
/// way `cargo clippy` itself runs it, with `-D warnings`): one compilation of every target both
/// lints and produces the test binaries, where `cargo clippy` followed by `cargo test` compiled
/// the dependency tree twice (check mode, then code generation). `full` also runs the
/// full-length learn tests (`UNMIX_LEARNS=full`, see `tests/learns.rs`), then the ignored
/// CIFAR-demo-settings ones.
fn test(full: bool) -> Result<(), Failed> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;
    let mut tests = linted_cargo()?;
    tests.args(["test", "--workspace"]);
    if full {
        tests.env("UNMIX_LEARNS", "full");
    }
    run(tests)?;
    if full {
        // The CIFAR-demo-settings learn tests are ignored in CI's run (each takes about 15
        // minutes); the same build runs them here.
        let mut demo = linted_cargo()?;
        demo.args(["test", "-p", "unmix-train", "--test", "learns"]);
        demo.args(["demo_settings", "--", "--ignored"]);
        run(demo)?;
    }
    Ok(())
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

/// Clippy over every target with the `cuda` and `wgpu` backends compiled in: the type check and
/// lint of their code. Not part of `test` (it compiles the dependency tree a second time, with
/// both GPU stacks: about 8 minutes on 2 cores).
fn check_backends() -> Result<(), Failed> {
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--features",
        "unmix-train/cuda,unmix-train/wgpu",
        "--",
        "-D",
        "warnings",
    ]);
    // CubeCL's CUDA runtime (cubecl-llvm) builds C++ shims against an LLVM bundle that
    // tracel-llvm-bundler downloads from GitHub in its build script; machines that reach only
    // package registries cannot fetch it. Both build scripts skip that native setup under
    // DOCS_RS, which is all a type check needs (nothing is linked).
    clippy.env("DOCS_RS", "1");
    run(clippy)
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
  eval --checkpoint DIR [--device D]
  cut-dataset [--source /usr/share/datasets/fashion-mnist]
  bench [--device D]
  parity
  test [--full]
  check-backends
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
        Some("cut-dataset") => {
            let source = rest
                .iter()
                .position(|a| a == "--source")
                .and_then(|i| rest.get(i + 1).cloned())
                .unwrap_or_else(|| "/usr/share/datasets/fashion-mnist".into());
            unmix(
                &["cut-fashion-mnist".into(), "--source".into(), source],
                release,
            )
        }
        Some("bench") => unmix(&[vec!["bench".to_string()], rest].concat(), release),
        Some("parity") => {
            let mut cmd = cargo();
            cmd.args([
                "test",
                "-p",
                "unmix-train",
                "--test",
                "parity",
                "--",
                "--nocapture",
            ]);
            run(cmd)
        }
        Some("test") => test(rest.iter().any(|a| a == "--full")),
        Some("check-backends") => check_backends(),
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
