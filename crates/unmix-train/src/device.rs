//! Backend selection at run time among the backends compiled in.

use burn::prelude::Device;

use crate::error::TrainError;

/// Backends compiled into this binary.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "flex") {
        v.push("flex");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    v
}

fn missing(spec: &str, feature: &str) -> TrainError {
    TrainError::Device(format!(
        "--device {spec}: this binary was built without the `{feature}` backend; rebuild with \
         `--features {feature}` (`cargo xtask train --device {spec}` does this), compiled in: {}",
        compiled_backends().join(", ")
    ))
}

/// Parses `cpu` (the CPU backend, Burn's `flex`), `flex`, `cuda`, `cuda:N` or `wgpu` into a
/// device (without autodiff).
///
/// CubeCL's own CPU backend (`burn/cpu`) is not offered: it is an LLVM JIT, and the workspace
/// replaces `cubecl-llvm` with a stand-in without LLVM so that CUDA builds offline
/// (`patches/cubecl-llvm`).
pub fn parse_device(spec: &str) -> Result<Device, TrainError> {
    let spec = spec.trim();
    let (name, index) = match spec.split_once(':') {
        Some((n, i)) => {
            let idx: usize = i.parse().map_err(|_| {
                TrainError::Device(format!("--device {spec}: `{i}` is not a device index"))
            })?;
            (n, idx)
        }
        None => (spec, 0),
    };
    match name {
        "cpu" | "flex" => {
            #[cfg(feature = "flex")]
            return Ok(Device::flex());
            #[allow(unreachable_code)]
            Err(missing(spec, "flex"))
        }
        "cuda" => {
            #[cfg(feature = "cuda")]
            {
                cuda_libraries_load(spec)?;
                return Ok(Device::cuda(index));
            }
            #[allow(unreachable_code)]
            {
                let _ = index;
                Err(missing(spec, "cuda"))
            }
        }
        "wgpu" => {
            #[cfg(feature = "wgpu")]
            return Ok(Device::wgpu(burn::prelude::DeviceKind::DefaultDevice));
            #[allow(unreachable_code)]
            Err(missing(spec, "wgpu"))
        }
        other => Err(TrainError::Device(format!(
            "--device {other}: unknown backend; expected cpu, flex, cuda[:N] or wgpu"
        ))),
    }
}

/// The CUDA runtime loads the driver (`libcuda`) and NVRTC (`libnvrtc`) at the first kernel and
/// panics when one is missing: asked here first, so that a machine without them gets an error
/// that names the library.
#[cfg(feature = "cuda")]
fn cuda_libraries_load(spec: &str) -> Result<(), TrainError> {
    // SAFETY: both only try to open the shared libraries by their usual names.
    let (driver, nvrtc) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
        )
    };
    let missing: Vec<&str> = [
        (!driver).then_some("the NVIDIA driver library (libcuda.so)"),
        (!nvrtc).then_some("NVRTC (libnvrtc.so, from the CUDA toolkit)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TrainError::Device(format!(
            "--device {spec}: {} could not be loaded; install it or add its folder to \
             LD_LIBRARY_PATH",
            missing.join(" and ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses_and_unknown_or_missing_backends_are_named() {
        assert!(parse_device("cpu").is_ok());
        let err = parse_device("tpu").unwrap_err().to_string();
        assert!(err.contains("unknown backend"), "{err}");
        if !cfg!(feature = "cuda") {
            let err = parse_device("cuda").unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
        if !cfg!(feature = "wgpu") {
            let err = parse_device("wgpu").unwrap_err().to_string();
            assert!(err.contains("--features wgpu"), "{err}");
        }
        assert!(parse_device("cuda:x").is_err());
    }
}
