//! The compiler type `cubecl-cuda` holds for its LLVM path, and what it would produce.

use cubecl_core::prelude::KernelDefinition;
use cubecl_environment::backtrace::BackTrace;
use cubecl_server::compiler::CompilationError;

#[cfg(feature = "nvptx")]
use crate::nvptx::ptx_version::PtxVersion;
use crate::target::LlvmTarget;

/// Why the LLVM path cannot compile in this build, as every kernel sent to it is told.
pub const NOT_BUILT: &str = "cubecl-llvm is replaced by unmix's stand-in \
    (patches/cubecl-llvm): this build has no LLVM kernel compiler. CUDA kernels compile with \
    NVRTC when cubecl-cuda's `cpp` feature is on, as `unmix-train`'s `cuda` feature sets it; \
    enable that feature (or `cubecl-cuda/cpp`) in the crate that turns on `burn/cuda`";

/// The pliron/LLVM kernel compiler's handle: holds its target, compiles nothing.
#[derive(Clone, Debug, Default)]
pub struct PlironCompiler {
    /// The target kernels would be lowered to.
    pub target: LlvmTarget,
}

impl PlironCompiler {
    /// Always the error [`NOT_BUILT`]: there is no LLVM in this build.
    pub fn compile(
        &mut self,
        kernel: KernelDefinition,
        options: &PlironOptions,
    ) -> Result<PlironArtifact, CompilationError> {
        let _ = (kernel, options);
        Err(CompilationError::Generic {
            reason: format!("{NOT_BUILT} (target {:?})", self.target),
            backtrace: BackTrace::capture(),
        })
    }

    /// The language tag of what the path would emit (used in logs and cache file names).
    pub fn lang_tag(&self) -> &'static str {
        match self.target {
            LlvmTarget::Cpu => "mlir",
            #[cfg(feature = "amdgpu")]
            LlvmTarget::AmdGpu => "llvm",
            #[cfg(feature = "nvptx")]
            LlvmTarget::Nvptx => "llvm",
        }
    }
}

/// The options `cubecl-cuda` fills in for the LLVM path (its `compiler.rs` sets these fields and
/// takes the rest from `Default`).
#[derive(Clone, Debug, Default)]
pub struct PlironOptions {
    /// AMD GPU architecture name, `None` for other targets.
    pub arch: Option<String>,
    /// NVIDIA architecture of the device.
    #[cfg(feature = "nvptx")]
    pub sm_arch: Option<cubecl_core::ir::nvidia::SmArch>,
    /// PTX version to emit.
    #[cfg(feature = "nvptx")]
    pub ptx_version: Option<PtxVersion>,
    /// Whether launch parameters are passed as grid constants.
    pub grid_constants: bool,
}

/// A compiled NVPTX kernel, as `cubecl-cuda` would load it.
#[cfg(feature = "nvptx")]
#[derive(Clone, Debug, Default)]
pub struct NvptxModule {
    /// NUL-terminated PTX assembly.
    pub ptx: Vec<core::ffi::c_char>,
    /// Kernel entry point symbol.
    pub entrypoint: String,
    /// IR, for logging and cache keys.
    pub ir: String,
    /// Shared memory required per launch, in bytes.
    pub shared_memory_size: usize,
    /// Buffer access modes in binding order.
    pub io: Vec<cubecl_server::kernel::BufferIOAttr>,
}

/// What the LLVM path would hand back. Never constructed here.
#[derive(Debug)]
pub enum PlironArtifact {
    /// PTX for the CUDA driver.
    #[cfg(feature = "nvptx")]
    NvptxCode(NvptxModule),
}

/// Which device features the LLVM path can honour.
pub mod lowered_features {
    use cubecl_core::ir::DeviceProperties;

    /// The GPU family whose features are restricted.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum GpuTarget {
        /// NVIDIA GPUs.
        #[cfg(feature = "nvptx")]
        Nvptx,
    }

    /// Leaves the properties as they are: `cubecl-cuda` calls this only when the LLVM path is
    /// selected, and then every kernel fails with [`super::NOT_BUILT`] before any feature
    /// matters.
    pub fn restrict_features(props: &mut DeviceProperties, target: GpuTarget) {
        let _ = (props, target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_ptx_version_is_chosen_and_the_tags_are_named() {
        #[cfg(feature = "nvptx")]
        assert_eq!(PtxVersion::for_driver(12080), None);
        assert_eq!(PlironCompiler::default().lang_tag(), "mlir");
        assert!(NOT_BUILT.contains("`cpp` feature"));
    }
}
