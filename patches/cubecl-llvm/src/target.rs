//! The compilation targets the LLVM path would lower to.

/// Where a pliron kernel would be lowered to. Only a name here: nothing is lowered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LlvmTarget {
    /// The host CPU (`cubecl-cpu`'s JIT).
    #[default]
    Cpu,
    /// AMD GPUs.
    #[cfg(feature = "amdgpu")]
    AmdGpu,
    /// NVIDIA GPUs, through PTX.
    #[cfg(feature = "nvptx")]
    Nvptx,
}

impl LlvmTarget {
    /// Whether the target provides a hardware launch grid.
    pub fn is_gpu(self) -> bool {
        !matches!(self, LlvmTarget::Cpu)
    }
}
