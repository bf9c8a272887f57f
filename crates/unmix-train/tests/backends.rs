//! The wgpu backend against the CPU backend: ResNet-18's forward within
//! `backend_check::FORWARD_TOLERANCE`, and each method (`configs/fashion_mnist`, with Un-Mix)
//! trained two steps on one batch with the CPU's losses (within `STEP_TOLERANCE`), the loss
//! falling (MoCo excepted: its queue receives the batch's own keys).
//!
//! The Un-Mix mixture is made on the host and uploaded, as the training loop does
//! (`UnMix::apply_host`): built on the device from view 0, it made InsDis + Un-Mix drift from
//! the CPU by 6.6e-2 after two steps and Invariance Propagation + Un-Mix by 5e-3
//! (docs/benchmarks.md, "wgpu and the Un-Mix mixture").
//!
//! Every test here is named `wgpu_*`: `cargo xtask test` runs this binary in the background and
//! passes `--skip wgpu_` to the others' run, so a test named otherwise would run twice.
//!
//! Compiled with the `wgpu` feature (`cargo xtask test` builds every backend). It needs a
//! Vulkan driver: in CI Mesa's software one, lavapipe (`mesa-vulkan-drivers`, installed by
//! `cargo xtask test`, which then sets `UNMIX_REQUIRE_WGPU=1` so that a missing adapter fails
//! rather than skips). Without a driver and without that variable the tests say so and pass.
#![cfg(feature = "wgpu")]

use std::path::PathBuf;

use burn::prelude::{Device, DeviceKind};
use unmix_train::TrainConfig;
use unmix_train::run::backend_check::{check_method, forward_against_cpu};

/// The checks seed the CPU device's random draws (the initial weights both sides share), which
/// are global to the device: tests running side by side would interleave them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The wgpu device, or `None` (with the reason printed) where no Vulkan driver is installed
/// and none is required.
fn wgpu() -> Option<Device> {
    let icd_dirs = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"];
    let has_driver = std::env::var_os("VK_ICD_FILENAMES").is_some()
        || icd_dirs
            .iter()
            .any(|d| std::fs::read_dir(d).is_ok_and(|mut entries| entries.next().is_some()));
    let required = std::env::var_os("UNMIX_REQUIRE_WGPU").is_some();
    if !has_driver {
        assert!(
            !required,
            "UNMIX_REQUIRE_WGPU is set but no Vulkan driver is installed ({icd_dirs:?} empty): \
             install mesa-vulkan-drivers"
        );
        eprintln!(
            "skipped: no Vulkan driver ({icd_dirs:?} empty); `apt-get install mesa-vulkan-drivers` \
             (what `cargo xtask test` does) runs these tests on the CPU through lavapipe"
        );
        return None;
    }
    Some(Device::wgpu(DeviceKind::DefaultDevice))
}

#[test]
fn wgpu_resnet_forward_matches_the_cpu() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(device) = wgpu() else { return };
    // Width 4 and batch 8, as the method checks below: on a software driver each new kernel shape
    // is a shader compilation, and these share theirs.
    let f = forward_against_cpu(&device, 4, 8, 0).unwrap();
    eprintln!(
        "wgpu forward: max abs diff {:.3e} of {:.3} (relative {:.2e})",
        f.max_abs_diff,
        f.max_abs,
        f.relative()
    );
    assert!(f.passed(), "{f:?}");
}

#[test]
fn wgpu_trains_every_method_as_the_cpu_does() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(device) = wgpu() else { return };
    let mut failed = Vec::new();
    for name in CONFIGS {
        let path = root().join(format!("configs/fashion_mnist/{name}.toml"));
        let mut config = TrainConfig::load(&path).unwrap();
        config.data.path = root().join("datasets/fashion-mnist");
        config.model.backbone.width = 4;
        config.optim.batch_size = 8;
        config.data.num_workers = 1;
        let started = std::time::Instant::now();
        let check = check_method(&config, &device, 2).unwrap();
        eprintln!(
            "{name}: cpu {:?} wgpu {:?} (largest relative difference {:.1e}; {:.1} s)",
            check.cpu,
            check.device,
            check.largest_difference(),
            started.elapsed().as_secs_f64()
        );
        if !check.passed() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "failed on wgpu: {failed:?}");
}

/// One config per method, with Un-Mix where the method has it, plus InsDis alone. On the software
/// driver every new kernel is a shader compilation, the cost of a config's first step (cold, 2
/// cores, in this order: MoCo 156 s, which compiles ResNet's backward, BYOL 59 s, InsDis 5 s, IP
/// 4 s, InsDis + Un-Mix 5 s, SimCLR 22 s, SwAV 43 s, CMC 15 s); `cargo xtask test` runs this
/// binary beside the other tests.
const CONFIGS: [&str; 8] = [
    "moco_unmix",
    "byol_unmix",
    "insdis",
    "invariance_propagation_unmix",
    "insdis_unmix",
    "simclr_unmix",
    "swav_unmix",
    "cmc_unmix",
];
